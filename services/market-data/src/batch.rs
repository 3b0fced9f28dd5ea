//! What ingest hands to the writer: accepted ticks, already folded into the
//! bars and quote parts they change, plus the trades in arrival order for
//! the bus. Trades with an id wait unfolded until the writer's transaction
//! has claimed their ids: only then is it known they are not repeats.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use wizdata::r#type::v1::Interval;

use crate::bars::{BarState, LastTrade, QuoteState, TopOfBook};
use crate::interval::{INTERVALS, bar_open_seconds, width_seconds};

/// Identifies one bar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BarKey {
    pub symbol: Arc<str>,
    pub interval: Interval,
    /// Seconds since the epoch.
    pub open_time: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TradeEvent {
    pub symbol: Arc<str>,
    pub time_ns: i64,
    pub price: f64,
    pub size: f64,
    /// Both empty when the feed sent no id.
    pub source: String,
    pub trade_id: String,
}

/// What identifies a trade across calls, feeds' reconnects and replicas:
/// (symbol, source, trade id).
pub type TradeKey = (String, String, String);

/// A [`TradeKey`] borrowed from its trade: batches hold hundreds of
/// thousands of trades, so their keys are compared without copying.
pub type TradeKeyRef<'a> = (&'a str, &'a str, &'a str);

impl TradeEvent {
    pub fn key(&self) -> TradeKeyRef<'_> {
        (&self.symbol, &self.source, &self.trade_id)
    }
}

/// A trade id in canonical decimal form (digits only, no leading zero)
/// that fits an `i64`: how exchanges number a symbol's trades. Such ids are
/// claimed as runs; any other id ("0042", "a1", "-5") is claimed as it is,
/// so no two distinct ids ever meet as one number.
pub fn serial_id(trade_id: &str) -> Option<i64> {
    let canonical = match trade_id.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if canonical { trade_id.parse().ok() } else { None }
}

/// Consecutive ids `first..=last`.
pub type IdRun = (i64, i64);

/// Sorted ids (repeats allowed) as the fewest runs covering them.
pub fn runs_of_sorted(ids: &[i64]) -> Vec<IdRun> {
    let mut runs: Vec<IdRun> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, last)) if id <= last.saturating_add(1) => *last = id.max(*last),
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// The parts of `runs` that no run of `held` covers; both sorted and
/// disjoint.
pub fn runs_minus(runs: &[IdRun], held: &[IdRun]) -> Vec<IdRun> {
    let mut left = Vec::with_capacity(runs.len());
    let mut passed = 0;
    for &(first, last) in runs {
        while held.get(passed).is_some_and(|&(_, held_last)| held_last < first) {
            passed += 1;
        }
        // The first id of the run neither found held nor left yet; `None`
        // once the run is accounted for to its end.
        let mut next = Some(first);
        for &(held_first, held_last) in held[passed..].iter().take_while(|(held_first, _)| *held_first <= last) {
            let Some(from) = next else { break };
            if held_first > from {
                left.push((from, held_first - 1));
            }
            next = (held_last < last).then(|| held_last + 1);
        }
        if let Some(from) = next {
            left.push((from, last));
        }
    }
    left
}

/// The integer ids of one (symbol, source) in a batch.
#[derive(Debug, PartialEq)]
pub struct SeriesRuns<'a> {
    pub symbol: &'a str,
    pub source: &'a str,
    /// Sorted, disjoint and not adjacent.
    pub runs: Vec<IdRun>,
}

/// The ids a write claims before folding its identified trades in.
#[derive(Debug, PartialEq)]
pub struct Claims<'a> {
    /// Ids that are not integers, each once, sorted.
    pub keys: Vec<TradeKeyRef<'a>>,
    /// Integer ids as runs, series sorted.
    pub series: Vec<SeriesRuns<'a>>,
}

/// The offered ids an earlier write (or another replica) had applied.
#[derive(Debug, Default)]
pub struct AlreadyApplied {
    pub keys: std::collections::HashSet<TradeKey>,
    /// Per series, sorted: the stored runs that meet the offered ids.
    pub runs: Vec<((String, String), Vec<IdRun>)>,
}

impl AlreadyApplied {
    /// Whether a stored run holds integer id `id` of (symbol, source).
    fn holds_serial(&self, symbol: &str, source: &str, id: i64) -> bool {
        let Ok(series) = self.runs.binary_search_by(|((a, b), _)| (a.as_str(), b.as_str()).cmp(&(symbol, source)))
        else {
            return false;
        };
        let runs = &self.runs[series].1;
        let after = runs.partition_point(|(first, _)| *first <= id);
        after > 0 && runs[after - 1].1 >= id
    }
}

/// A trade with an id, not yet folded in.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentifiedTrade {
    /// Its position in its call's stream of ticks, for the call's summary.
    pub index: u64,
    pub trade: TradeEvent,
    /// Its id as [`serial_id`] reads it, once for the claim and the settle.
    pub serial: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub bars: HashMap<BarKey, BarState>,
    pub quotes: HashMap<Arc<str>, QuoteState>,
    /// Folded trades in arrival order, for the bus; identified ones follow
    /// the others of their batch once claimed.
    pub trades: Vec<TradeEvent>,
    /// Trades with ids, in arrival order, waiting for their claim.
    pub identified: Vec<IdentifiedTrade>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.bars.is_empty() && self.quotes.is_empty() && self.identified.is_empty()
    }

    /// Adds a trade to the bar of every interval and to the quote.
    pub fn add_trade(&mut self, trade: TradeEvent) {
        let bar = BarState::from_trade(trade.time_ns, trade.price, trade.size);
        for interval in INTERVALS {
            let width = width_seconds(interval).expect("aggregated intervals have widths");
            let open_time = bar_open_seconds(width, trade.time_ns);
            let key = BarKey { symbol: trade.symbol.clone(), interval, open_time };
            merge_into(&mut self.bars, key, &bar, BarState::merge);
        }
        let last_trade = LastTrade { time_ns: trade.time_ns, price: trade.price, size: trade.size };
        let quote = QuoteState { last_trade: Some(last_trade), top_of_book: None };
        merge_into(&mut self.quotes, trade.symbol.clone(), &quote, QuoteState::merge);
        self.trades.push(trade);
    }

    /// Holds a trade with an id until [`Batch::settle`].
    pub fn add_identified(&mut self, index: u64, trade: TradeEvent) {
        let serial = serial_id(&trade.trade_id);
        self.identified.push(IdentifiedTrade { index, trade, serial });
    }

    /// What to claim: each identified trade's id once, integer ids as runs
    /// per series, everything in one order for every writer (so two
    /// replicas claiming overlapping ids on one PostgreSQL wait for each
    /// other instead of deadlocking).
    pub fn claims(&self) -> Claims<'_> {
        let mut keys = Vec::new();
        let mut serials: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
        for held in &self.identified {
            let key @ (symbol, source, _) = held.trade.key();
            match held.serial {
                Some(id) => serials.entry((symbol, source)).or_default().push(id),
                None => keys.push(key),
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let mut series: Vec<SeriesRuns<'_>> = serials
            .into_iter()
            .map(|((symbol, source), mut ids)| {
                ids.sort_unstable();
                SeriesRuns { symbol, source, runs: runs_of_sorted(&ids) }
            })
            .collect();
        series.sort_unstable_by(|a, b| (a.symbol, a.source).cmp(&(b.symbol, b.source)));
        Claims { keys, series }
    }

    /// Folds in each identified trade that is not `already_applied` (the
    /// first to arrive, when an id repeats within the batch) and returns
    /// the rest, the duplicates, with their positions in the identified
    /// list.
    pub fn settle(&mut self, already_applied: &AlreadyApplied) -> Vec<(usize, IdentifiedTrade)> {
        let applies: Vec<bool> = {
            let held_keys: HashSet<TradeKeyRef<'_>> = already_applied
                .keys
                .iter()
                .map(|(symbol, source, id)| (symbol.as_str(), source.as_str(), id.as_str()))
                .collect();
            let mut seen = HashSet::with_capacity(self.identified.len());
            self.identified
                .iter()
                .map(|held| {
                    let key @ (symbol, source, _) = held.trade.key();
                    let applied = match held.serial {
                        Some(id) => already_applied.holds_serial(symbol, source, id),
                        None => held_keys.contains(&key),
                    };
                    !applied && seen.insert(key)
                })
                .collect()
        };
        self.trades.reserve(applies.iter().filter(|applies| **applies).count());
        let mut duplicates = Vec::new();
        for ((position, held), applies) in std::mem::take(&mut self.identified).into_iter().enumerate().zip(applies) {
            if applies {
                self.add_trade(held.trade);
            } else {
                duplicates.push((position, held));
            }
        }
        duplicates
    }

    pub fn add_top_of_book(&mut self, symbol: &Arc<str>, book: TopOfBook) {
        let quote = QuoteState { last_trade: None, top_of_book: Some(book) };
        merge_into(&mut self.quotes, symbol.clone(), &quote, QuoteState::merge);
    }

    /// Folds a later batch in; trades keep their arrival order.
    pub fn absorb(&mut self, other: Batch) {
        for (key, bar) in other.bars {
            merge_into(&mut self.bars, key, &bar, BarState::merge);
        }
        for (symbol, quote) in other.quotes {
            merge_into(&mut self.quotes, symbol, &quote, QuoteState::merge);
        }
        self.trades.extend(other.trades);
        self.identified.extend(other.identified);
    }
}

fn merge_into<K: std::hash::Hash + Eq, V: Clone>(map: &mut HashMap<K, V>, key: K, value: &V, merge: fn(&mut V, &V)) {
    match map.entry(key) {
        Entry::Occupied(mut entry) => merge(entry.get_mut(), value),
        Entry::Vacant(entry) => {
            entry.insert(value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(trade_id: &str, price: f64) -> TradeEvent {
        TradeEvent {
            symbol: "BTC/USDT".into(),
            time_ns: 1_709_643_600_000_000_000,
            price,
            size: 1.0,
            source: "binance".into(),
            trade_id: trade_id.into(),
        }
    }

    #[test]
    fn identified_trades_wait_for_their_claim_and_a_repeat_within_the_batch_is_a_duplicate() {
        let mut batch = Batch::default();
        for (index, (trade_id, price)) in
            [("1", 10.0), ("2", 11.0), ("1", 12.0), ("3", 13.0), ("a7", 14.0), ("a7", 15.0), ("0042", 16.0)]
                .into_iter()
                .enumerate()
        {
            batch.add_identified(index as u64, trade(trade_id, price));
        }
        assert!(batch.bars.is_empty() && batch.trades.is_empty(), "nothing folded before the claim");
        assert!(!batch.is_empty(), "but there is something to write");
        assert_eq!(
            batch.claims(),
            Claims {
                keys: vec![("BTC/USDT", "binance", "0042"), ("BTC/USDT", "binance", "a7")],
                series: vec![SeriesRuns { symbol: "BTC/USDT", source: "binance", runs: vec![(1, 3)] }],
            },
            "each id once, integers as one run, in order"
        );

        // An earlier write applied 3 to 5 and "0042": of the rest, the
        // first of each repeated id applies.
        let already_applied = AlreadyApplied {
            keys: [("BTC/USDT".into(), "binance".into(), "0042".into())].into(),
            runs: vec![(("BTC/USDT".into(), "binance".into()), vec![(3, 5)])],
        };
        let duplicates = batch.settle(&already_applied);
        assert_eq!(
            duplicates.iter().map(|(position, held)| (*position, held.index)).collect::<Vec<_>>(),
            [(2, 2), (3, 3), (5, 5), (6, 6)]
        );
        assert_eq!(batch.trades, [trade("1", 10.0), trade("2", 11.0), trade("a7", 14.0)]);
        let minute = batch.bars.iter().find(|(key, _)| key.interval == Interval::OneMinute).unwrap().1;
        assert_eq!((minute.trade_count, minute.volume, minute.open, minute.close), (3, 3.0, 10.0, 14.0));
        assert!(batch.identified.is_empty());
    }

    #[test]
    fn only_canonical_decimal_ids_are_integers() {
        assert_eq!(serial_id("0"), Some(0));
        assert_eq!(serial_id("42"), Some(42));
        assert_eq!(serial_id("9223372036854775807"), Some(i64::MAX));
        for other in ["", "00", "0042", "+5", "-5", "4 2", "4.0", "1e3", "9223372036854775808", "٣"] {
            assert_eq!(serial_id(other), None, "{other:?} is claimed as a string");
        }
    }

    #[test]
    fn runs_cover_sorted_ids_with_repeats() {
        assert_eq!(runs_of_sorted(&[]), []);
        assert_eq!(
            runs_of_sorted(&[1, 2, 2, 3, 5, 7, 8, i64::MAX, i64::MAX]),
            [(1, 3), (5, 5), (7, 8), (i64::MAX, i64::MAX)]
        );
    }

    proptest::proptest! {
        #[test]
        fn runs_minus_leaves_exactly_the_ids_not_held(
            offered in proptest::collection::vec(0i64..200, 0..60),
            stored in proptest::collection::vec(0i64..200, 0..60),
        ) {
            let (mut offered, mut stored) = (offered, stored);
            offered.sort_unstable();
            stored.sort_unstable();
            let left = runs_minus(&runs_of_sorted(&offered), &runs_of_sorted(&stored));
            let mut expected: Vec<i64> = offered.iter().copied().filter(|id| !stored.contains(id)).collect();
            expected.dedup();
            proptest::prop_assert_eq!(&left, &runs_of_sorted(&expected));
        }
    }

    #[test]
    fn absorbing_keeps_identified_trades_in_arrival_order() {
        let mut first = Batch::default();
        first.add_identified(0, trade("1", 10.0));
        let mut second = Batch::default();
        second.add_identified(0, trade("2", 11.0));
        second.add_trade(TradeEvent { source: String::new(), trade_id: String::new(), ..trade("", 9.0) });
        first.absorb(second);
        assert_eq!(first.identified.iter().map(|held| held.trade.trade_id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(first.trades.len(), 1, "the trade without an id was folded at once");
    }
}

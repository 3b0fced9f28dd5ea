//! What ingest hands to the writer: accepted ticks, already folded into the
//! bars and quote parts they change, plus the trades in arrival order for
//! the bus. Trades with an id wait unfolded until the writer's transaction
//! has claimed their ids: only then is it known they are not repeats.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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

/// A trade with an id, not yet folded in.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentifiedTrade {
    /// Its position in its call's stream of ticks, for the call's summary.
    pub index: u64,
    pub trade: TradeEvent,
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
        self.identified.push(IdentifiedTrade { index, trade });
    }

    /// The keys to claim: each identified trade's, once, in one order for
    /// every writer (so two replicas claiming overlapping keys on one
    /// PostgreSQL wait for each other instead of deadlocking).
    pub fn keys_to_claim(&self) -> Vec<TradeKeyRef<'_>> {
        let mut keys: Vec<TradeKeyRef<'_>> = self.identified.iter().map(|held| held.trade.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Folds in each identified trade whose key is not `already_applied`
    /// (the first to arrive, when a key repeats within the batch) and
    /// returns the rest, the duplicates, with their positions in the
    /// identified list.
    pub fn settle(&mut self, already_applied: &HashSet<TradeKey>) -> Vec<(usize, IdentifiedTrade)> {
        let applies: Vec<bool> = {
            let already_applied: HashSet<TradeKeyRef<'_>> = already_applied
                .iter()
                .map(|(symbol, source, id)| (symbol.as_str(), source.as_str(), id.as_str()))
                .collect();
            let mut seen = HashSet::with_capacity(self.identified.len());
            self.identified
                .iter()
                .map(|held| {
                    let key = held.trade.key();
                    !already_applied.contains(&key) && seen.insert(key)
                })
                .collect()
        };
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
        batch.add_identified(0, trade("1", 10.0));
        batch.add_identified(1, trade("2", 11.0));
        batch.add_identified(2, trade("1", 12.0));
        batch.add_identified(3, trade("3", 13.0));
        assert!(batch.bars.is_empty() && batch.trades.is_empty(), "nothing folded before the claim");
        assert!(!batch.is_empty(), "but there is something to write");
        let keys = batch.keys_to_claim();
        assert_eq!(keys.iter().map(|key| key.2).collect::<Vec<_>>(), ["1", "2", "3"], "each key once, in order");

        // "3" was applied by an earlier write: only "1" and "2" are new.
        let already_applied: HashSet<TradeKey> =
            keys.into_iter().filter(|key| key.2 == "3").map(|(a, b, c)| (a.into(), b.into(), c.into())).collect();
        let duplicates = batch.settle(&already_applied);
        assert_eq!(
            duplicates.iter().map(|(position, held)| (*position, held.index)).collect::<Vec<_>>(),
            [(2, 2), (3, 3)]
        );
        assert_eq!(batch.trades, [trade("1", 10.0), trade("2", 11.0)], "the first of a repeated id is applied");
        let minute = batch.bars.iter().find(|(key, _)| key.interval == Interval::OneMinute).unwrap().1;
        assert_eq!((minute.trade_count, minute.volume, minute.open, minute.close), (2, 2.0, 10.0, 11.0));
        assert!(batch.identified.is_empty());
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

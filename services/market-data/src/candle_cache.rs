//! Settled bars in memory, in front of the database: GetCandles' read at
//! memory speed.
//!
//! A bar is settled once it closed at least [`SETTLE_MARGIN_NS`] ago; only
//! settled bars are cached, the rest of a range (the open bar, the ones just
//! closed) is read from the database on every call. A settled bar still
//! changes when a late trade or an import writes it, so each series has a
//! *settled revision* in the database, raised by every write that touches
//! a bar already closed when it was written. The cache keeps a span of
//! each series (every bar between two open times) under the settled
//! revision it was read at, and a read uses it only while the database
//! still holds that revision: one indexed read per call, which GetCandles
//! makes anyway for the series' revision. So no replica serves a bar older
//! than the last committed write, however its invalidations travel.
//!
//! The writers keep the spans warm rather than correct: each write that
//! raises a settled revision is applied, in commit order, to the writer's
//! own cache and, over the bus, to every replica's (`SETTLED_TOPIC`). A
//! span that was at the revision just before takes the written bars and
//! moves to the new revision; any other is dropped and read again when next
//! asked for.
//!
//! The margin covers what the writer cannot see: a transaction deciding
//! which bars are closed and committing later, and clocks that differ
//! between replicas. A writer that took longer than half the margin between
//! deciding and committing raises the revision again afterwards (see
//! `Store::write`), so half the margin is the clock skew tolerated.
//!
//! A span also keeps its bars encoded as GetCandles sends them, made by the
//! first read that wants them and dropped when a write changes the span: a
//! page of cached bars is a slice of those bytes, not 10,000 candles
//! cloned and encoded again. The encoding is made under the cache's lock,
//! once per change of a span; settled bars change only by late trades and
//! imports.
//!
//! The cache is bounded by its number of bars: the series used least
//! recently are evicted first.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hashlink::LinkedHashMap;
use prost::Message;
use sea_orm::DbErr;
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::bus::{Delivery, Subscription};
use wizdata_common::interval::{self, width_seconds};
use wizdata_common::time::NANOS_PER_SECOND;

use crate::convert;
use crate::entity::candle;
use crate::store::{SettledRevision, Store};

/// How long after its close a bar is served from the cache.
pub const SETTLE_MARGIN_NS: i64 = 10 * NANOS_PER_SECOND;

/// The bus topic on which writers announce the bars of each write that
/// raised a settled revision.
pub const SETTLED_TOPIC: &str = "marketdata.settled";

/// The first open time (seconds) of a bar of `interval` not yet settled at
/// `now_ns`: every bar opening before it closed at least the margin ago.
pub fn settled_bound(interval: Interval, now_ns: i64) -> i64 {
    let width = width_seconds(interval).unwrap_or(1);
    let settled_by = now_ns.saturating_sub(SETTLE_MARGIN_NS).div_euclid(NANOS_PER_SECOND);
    settled_by.div_euclid(width) * width
}

/// What a write changed in one series whose settled revision it raised,
/// as published on [`SETTLED_TOPIC`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct SettledBars {
    #[prost(string, tag = "1")]
    pub symbol: String,
    #[prost(enumeration = "Interval", tag = "2")]
    pub interval: i32,
    /// The series' settled revision after the write.
    #[prost(int64, tag = "3")]
    pub settled_revision: i64,
    /// Every bar the write stored in the series, as now stored.
    #[prost(message, repeated, tag = "4")]
    pub candles: Vec<Candle>,
}

/// A symbol's bars at one interval.
pub type SeriesKey = (Arc<str>, Interval);

/// The field of GetCandlesResponse that holds the candles
/// (market_data_service.proto).
const CANDLES_FIELD: u32 = 3;

/// Every bar of a series with an open time in `span`, at one settled
/// revision, oldest first.
struct Span {
    settled_revision: i64,
    span: Range<i64>,
    candles: Vec<Candle>,
    /// The bars as GetCandles sends them, once a read wanted them.
    encoded: Option<Arc<EncodedBars>>,
}

/// Bars encoded one after the other as entries of GetCandlesResponse's
/// candles, and where each ends.
struct EncodedBars {
    bytes: Bytes,
    ends: Vec<usize>,
    open_times: Vec<i64>,
}

impl EncodedBars {
    fn of(candles: &[Candle]) -> Self {
        let size = candles.iter().map(|candle| prost::encoding::message::encoded_len(CANDLES_FIELD, candle)).sum();
        let mut bytes = Vec::with_capacity(size);
        let mut ends = Vec::with_capacity(candles.len());
        for candle in candles {
            prost::encoding::message::encode(CANDLES_FIELD, candle, &mut bytes);
            ends.push(bytes.len());
        }
        Self { bytes: bytes.into(), ends, open_times: candles.iter().map(Span::open_time).collect() }
    }

    fn start(&self, bar: usize) -> usize {
        bar.checked_sub(1).map_or(0, |before| self.ends[before])
    }
}

/// A run of cached bars, `bars` of a span's encoding.
#[derive(Clone)]
struct CachedRun {
    encoded: Arc<EncodedBars>,
    bars: Range<usize>,
}

/// Bars read through the cache, oldest first: the settled ones the cache
/// held, as it holds them (encoded), then those read from the database.
#[derive(Clone)]
pub struct ReadBars {
    cached: Option<CachedRun>,
    read: Vec<Candle>,
}

impl ReadBars {
    pub fn len(&self) -> usize {
        self.cached.as_ref().map_or(0, |run| run.bars.len()) + self.read.len()
    }

    /// Keeps the first `len` bars.
    pub fn truncate(&mut self, len: usize) {
        let cached = self.cached.as_ref().map_or(0, |run| run.bars.len());
        self.read.truncate(len.saturating_sub(cached));
        if let Some(run) = &mut self.cached {
            run.bars.end = run.bars.end.min(run.bars.start + len);
        }
    }

    /// The open time (seconds) of the last bar.
    pub fn last_open_time(&self) -> Option<i64> {
        match (self.read.last(), &self.cached) {
            (Some(candle), _) => Some(Span::open_time(candle)),
            (None, Some(run)) if !run.bars.is_empty() => Some(run.encoded.open_times[run.bars.end - 1]),
            _ => None,
        }
    }

    /// The bars as the entries of GetCandlesResponse's candles: the cached
    /// ones as they were encoded, the others encoded here.
    pub fn encode(&self, buffer: &mut impl bytes::BufMut) {
        if let Some(run) = &self.cached {
            let (start, end) = (run.encoded.start(run.bars.start), run.encoded.start(run.bars.end));
            buffer.put_slice(&run.encoded.bytes[start..end]);
        }
        for candle in &self.read {
            prost::encoding::message::encode(CANDLES_FIELD, candle, buffer);
        }
    }

    /// The bytes [`Self::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let cached =
            self.cached.as_ref().map_or(0, |run| run.encoded.start(run.bars.end) - run.encoded.start(run.bars.start));
        cached + prost::encoding::message::encoded_len_repeated(CANDLES_FIELD, &self.read)
    }

    /// The bars as messages.
    #[cfg(test)]
    pub fn into_candles(self) -> Vec<Candle> {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Candles {
            #[prost(message, repeated, tag = "3")]
            candles: Vec<Candle>,
        }
        let mut encoded = Vec::with_capacity(self.encoded_len());
        self.encode(&mut encoded);
        Candles::decode(encoded.as_slice()).expect("bars encoded here decode").candles
    }
}

impl Span {
    fn open_time(candle: &Candle) -> i64 {
        candle.open_time.map_or(i64::MIN, |time| time.seconds)
    }

    /// Where the bars from `open_time` on start.
    fn position(&self, open_time: i64) -> usize {
        self.candles.partition_point(|candle| Self::open_time(candle) < open_time)
    }

    /// Writes `candles` (sorted) over the held bars where they fall in the span.
    fn overwrite(&mut self, candles: &[Candle]) {
        self.encoded = None;
        for candle in candles {
            let open_time = Self::open_time(candle);
            if !self.span.contains(&open_time) {
                continue;
            }
            let at = self.position(open_time);
            match self.candles.get_mut(at) {
                Some(held) if Self::open_time(held) == open_time => *held = *candle,
                _ => self.candles.insert(at, *candle),
            }
        }
    }
}

#[derive(Default)]
struct Spans {
    /// Least recently used first.
    series: LinkedHashMap<SeriesKey, Span>,
    bars: usize,
}

impl Spans {
    fn remove(&mut self, key: &SeriesKey) {
        if let Some(span) = self.series.remove(key) {
            self.bars -= span.candles.len();
        }
    }

    fn insert(&mut self, key: SeriesKey, span: Span, capacity: usize) {
        self.remove(&key);
        if span.candles.len() > capacity {
            return;
        }
        self.bars += span.candles.len();
        self.series.insert(key, span);
        while self.bars > capacity {
            let Some((_, evicted)) = self.series.pop_front() else { break };
            self.bars -= evicted.candles.len();
            metrics::counter!("marketdata_candle_cache_evictions_total").increment(1);
        }
    }
}

/// Settled bars per series, shared by the service's calls and its writer.
#[derive(Clone)]
pub struct CandleCache {
    spans: Arc<Mutex<Spans>>,
    /// Most bars held; 0 turns the cache off.
    capacity: usize,
}

impl CandleCache {
    pub fn new(capacity_bars: usize) -> Self {
        for outcome in ["hit", "miss"] {
            metrics::counter!("marketdata_candle_cache_lookups_total", "outcome" => outcome).increment(0);
        }
        metrics::counter!("marketdata_candle_cache_evictions_total").increment(0);
        Self { spans: Arc::default(), capacity: capacity_bars }
    }

    fn spans(&self) -> std::sync::MutexGuard<'_, Spans> {
        self.spans.lock().expect("the candle cache's lock is never poisoned")
    }

    /// The first `limit` bars of `symbol` at `interval` opening in `range`,
    /// when the cache holds all of `range` at `settled_revision`.
    fn get(&self, key: &SeriesKey, settled_revision: i64, range: Range<i64>, limit: usize) -> Option<CachedRun> {
        let mut spans = self.spans();
        let found = spans.series.to_back(key).filter(|span| {
            span.settled_revision == settled_revision && span.span.start <= range.start && range.end <= span.span.end
        });
        let outcome = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("marketdata_candle_cache_lookups_total", "outcome" => outcome).increment(1);
        let span = found?;
        let (from, to) = (span.position(range.start), span.position(range.end));
        let encoded = span.encoded.get_or_insert_with(|| Arc::new(EncodedBars::of(&span.candles))).clone();
        Some(CachedRun { encoded, bars: from..to.min(from + limit) })
    }

    /// Remembers what a read found: every bar opening in `range` (sorted),
    /// read after the database held `settled_revision`. Joined to the span
    /// held at the same revision where the two meet; a span read at an
    /// older revision is replaced, and a read older than the held span is
    /// not kept.
    pub fn fill(&self, key: SeriesKey, settled_revision: i64, range: Range<i64>, candles: &[Candle]) {
        if self.capacity == 0 || range.is_empty() {
            return;
        }
        let mut spans = self.spans();
        let read = Span { settled_revision, span: range, candles: candles.to_vec(), encoded: None };
        let joined = match spans.series.get(&key) {
            Some(held) if held.settled_revision > settled_revision => return,
            Some(held)
                if held.settled_revision == settled_revision
                    && held.span.start <= read.span.end
                    && read.span.start <= held.span.end =>
            {
                let span = held.span.start.min(read.span.start)..held.span.end.max(read.span.end);
                let mut joined = Span { settled_revision, span, candles: held.candles.clone(), encoded: None };
                joined.overwrite(&read.candles);
                joined
            }
            _ => read,
        };
        spans.insert(key, joined, self.capacity);
    }

    /// Applies a write that raised the series' settled revision to
    /// `settled_revision`: a span held at the revision just before takes
    /// the written bars; any other is dropped (it missed a write), unless
    /// it already holds this write or a later one.
    pub fn apply(&self, key: &SeriesKey, settled_revision: i64, candles: &[Candle]) {
        let mut spans = self.spans();
        let Some(span) = spans.series.get_mut(key) else { return };
        if span.settled_revision >= settled_revision {
            return;
        }
        if span.settled_revision + 1 < settled_revision {
            spans.remove(key);
            return;
        }
        let before = span.candles.len();
        span.overwrite(candles);
        span.settled_revision = settled_revision;
        let added = span.candles.len() - before;
        spans.bars += added;
        if spans.bars > self.capacity {
            spans.remove(key);
        }
    }

    /// Forgets everything: the bus lost messages.
    pub fn clear(&self) {
        let mut spans = self.spans();
        spans.series.clear();
        spans.bars = 0;
    }

    /// How many bars are held.
    #[cfg(test)]
    pub fn bars(&self) -> usize {
        self.spans().bars
    }
}

/// The series' revision and the first `limit` bars of `symbol` at
/// `interval` opening in `range` (seconds): the settled ones from `cache`
/// when it holds them at the database's settled revision (else from the
/// database, kept for the next read), the rest from the database. The
/// revisions are read first, so the bars are at least as new as them.
pub async fn read_candles(
    store: &Store,
    cache: &CandleCache,
    symbol: &Arc<str>,
    interval: Interval,
    range: Range<i64>,
    limit: usize,
    now_ns: i64,
) -> Result<(i64, ReadBars), DbErr> {
    let (revision, settled_revision) = store.series_revisions(symbol, interval).await?;
    let read = |range: Range<i64>, limit: usize| async move {
        let rows = store.candles(symbol, interval, range.start, range.end, None, limit as u64).await?;
        Ok::<_, DbErr>(rows.iter().map(|row| convert::candle(row, interval, now_ns)).collect::<Vec<_>>())
    };
    let bound = settled_bound(interval, now_ns);
    let settled = range.start..range.end.min(bound);
    let key = (symbol.clone(), interval);
    let mut bars = ReadBars { cached: None, read: Vec::new() };
    if !settled.is_empty() {
        match cache.get(&key, settled_revision, settled.clone(), limit) {
            Some(cached) => bars.cached = Some(cached),
            None => {
                let candles = read(settled.clone(), limit).await?;
                // A full read knows every bar up to its last, not to the range's end.
                let known_to = match candles.last().and_then(|candle| candle.open_time) {
                    Some(last) if candles.len() == limit => last.seconds + 1,
                    _ => settled.end,
                };
                cache.fill(key, settled_revision, settled.start..known_to, &candles);
                bars.read = candles;
            }
        }
    }
    let fresh = range.start.max(bound)..range.end;
    if bars.len() < limit && !fresh.is_empty() {
        let more = read(fresh, limit - bars.len()).await?;
        bars.read.extend(more);
    }
    Ok((revision, bars))
}

/// Applies a write to this process's cache and returns what tells every
/// replica's: per series whose settled revision it raised, the series' bars
/// it stored (`candles`, as now stored) under the new settled revision.
pub fn announce_settled(
    cache: &CandleCache,
    settled: &[SettledRevision],
    candles: &[candle::Model],
    now_ns: i64,
) -> Vec<(String, Bytes)> {
    settled
        .iter()
        .filter_map(|series| {
            let interval = interval::parse(&series.interval)?;
            let mut written: Vec<Candle> = candles
                .iter()
                .filter(|row| (row.symbol.as_str(), row.interval.as_str()) == (&series.symbol, &series.interval))
                .map(|row| convert::candle(&row.into(), interval, now_ns))
                .collect();
            written.sort_unstable_by_key(Span::open_time);
            cache.apply(&(series.symbol.as_str().into(), interval), series.settled_revision, &written);
            let message = SettledBars {
                symbol: series.symbol.clone(),
                interval: interval as i32,
                settled_revision: series.settled_revision,
                candles: written,
            };
            Some((SETTLED_TOPIC.to_owned(), Bytes::from(message.encode_to_vec())))
        })
        .collect()
}

/// Applies every replica's writes to `cache` as the bus brings them, until
/// the bus is gone. A delivery that lost messages empties the cache: what
/// it missed would be found on the next read anyway, by its revision.
pub async fn follow_settled(cache: CandleCache, mut subscription: Subscription) {
    while let Some(delivery) = subscription.recv().await {
        match delivery {
            Delivery::Message(payload) => match SettledBars::decode(payload) {
                Ok(bars) => {
                    let Ok(interval) = Interval::try_from(bars.interval) else { continue };
                    cache.apply(&(bars.symbol.as_str().into(), interval), bars.settled_revision, &bars.candles);
                }
                Err(error) => tracing::warn!(%error, "an undecodable settled-bars message"),
            },
            Delivery::Lost(_) | Delivery::Interrupted => cache.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn bar(open_time: i64, close: f64) -> Candle {
        Candle {
            open_time: Some(Timestamp { seconds: open_time, nanos: 0 }),
            close,
            closed: true,
            ..Default::default()
        }
    }

    fn key(symbol: &str) -> SeriesKey {
        (symbol.into(), Interval::OneMinute)
    }

    /// What the cache holds, as messages.
    fn get(
        cache: &CandleCache,
        key: &SeriesKey,
        settled_revision: i64,
        range: Range<i64>,
        limit: usize,
    ) -> Option<Vec<Candle>> {
        let run = cache.get(key, settled_revision, range, limit)?;
        Some(ReadBars { cached: Some(run), read: Vec::new() }.into_candles())
    }

    fn closes(candles: &[Candle]) -> Vec<f64> {
        candles.iter().map(|candle| candle.close).collect()
    }

    #[test]
    fn a_span_answers_only_ranges_inside_it_at_its_revision() {
        let cache = CandleCache::new(100);
        cache.fill(key("A"), 3, 60..300, &[bar(60, 1.0), bar(180, 3.0), bar(240, 4.0)]);
        assert_eq!(closes(&get(&cache, &key("A"), 3, 60..300, 10).unwrap()), [1.0, 3.0, 4.0]);
        assert_eq!(closes(&get(&cache, &key("A"), 3, 120..241, 10).unwrap()), [3.0, 4.0]);
        assert_eq!(closes(&get(&cache, &key("A"), 3, 60..300, 2).unwrap()), [1.0, 3.0], "at most the limit");
        assert_eq!(get(&cache, &key("A"), 3, 100..120, 10).unwrap(), [], "a gap known to hold no bar");
        assert!(get(&cache, &key("A"), 3, 0..300, 10).is_none(), "starts before the span");
        assert!(get(&cache, &key("A"), 3, 60..301, 10).is_none(), "ends after it");
        assert!(get(&cache, &key("A"), 4, 60..300, 10).is_none(), "another revision");
        assert!(get(&cache, &key("B"), 3, 60..300, 10).is_none(), "another series");
    }

    #[test]
    fn reads_at_one_revision_join_and_an_older_read_never_replaces_a_newer_span() {
        let cache = CandleCache::new(100);
        cache.fill(key("A"), 3, 60..180, &[bar(60, 1.0), bar(120, 2.0)]);
        cache.fill(key("A"), 3, 180..300, &[bar(240, 4.0)]);
        assert_eq!(closes(&get(&cache, &key("A"), 3, 60..300, 10).unwrap()), [1.0, 2.0, 4.0]);
        cache.fill(key("A"), 3, 600..660, &[bar(600, 10.0)]);
        assert!(get(&cache, &key("A"), 3, 60..300, 10).is_none(), "a span apart replaces the held one");
        assert_eq!(cache.bars(), 1);
        cache.fill(key("A"), 2, 600..660, &[bar(600, 9.0)]);
        assert_eq!(closes(&get(&cache, &key("A"), 3, 600..660, 10).unwrap()), [10.0], "the older read is dropped");
        cache.fill(key("A"), 5, 0..60, &[]);
        assert!(get(&cache, &key("A"), 3, 600..660, 10).is_none(), "a newer read replaces it");
        assert_eq!(get(&cache, &key("A"), 5, 0..60, 10).unwrap(), []);
    }

    #[test]
    fn a_write_moves_a_span_to_its_revision_only_from_the_one_before() {
        let cache = CandleCache::new(100);
        cache.fill(key("A"), 3, 60..300, &[bar(60, 1.0), bar(240, 4.0)]);
        // A late trade into 60 and a new bar at 120, written as revision 4;
        // a bar outside the span is not taken.
        cache.apply(&key("A"), 4, &[bar(60, 1.5), bar(120, 2.0), bar(600, 6.0)]);
        assert_eq!(closes(&get(&cache, &key("A"), 4, 60..300, 10).unwrap()), [1.5, 2.0, 4.0]);
        assert_eq!(cache.bars(), 3);
        cache.apply(&key("A"), 4, &[bar(60, 99.0)]);
        assert_eq!(closes(&get(&cache, &key("A"), 4, 60..120, 10).unwrap()), [1.5], "already applied");
        cache.apply(&key("A"), 6, &[bar(60, 7.0)]);
        assert!(get(&cache, &key("A"), 6, 60..300, 10).is_none(), "revision 5 was missed: dropped");
        assert_eq!(cache.bars(), 0);
    }

    #[test]
    fn the_least_recently_used_series_go_first_and_a_series_larger_than_the_cache_is_not_kept() {
        let cache = CandleCache::new(4);
        cache.fill(key("A"), 1, 0..120, &[bar(0, 1.0), bar(60, 2.0)]);
        cache.fill(key("B"), 1, 0..120, &[bar(0, 1.0), bar(60, 2.0)]);
        assert!(get(&cache, &key("A"), 1, 0..120, 10).is_some(), "A is now the most recent");
        cache.fill(key("C"), 1, 0..60, &[bar(0, 1.0)]);
        assert!(get(&cache, &key("B"), 1, 0..120, 10).is_none(), "B evicted");
        assert!(get(&cache, &key("A"), 1, 0..120, 10).is_some());
        assert!(get(&cache, &key("C"), 1, 0..60, 10).is_some());
        assert_eq!(cache.bars(), 3);
        cache.fill(key("D"), 1, 0..300, &[bar(0, 1.0), bar(60, 1.0), bar(120, 1.0), bar(180, 1.0), bar(240, 1.0)]);
        assert!(get(&cache, &key("D"), 1, 0..300, 10).is_none());
        assert_eq!(cache.bars(), 3);

        let off = CandleCache::new(0);
        off.fill(key("A"), 1, 0..60, &[bar(0, 1.0)]);
        assert!(off.get(&key("A"), 1, 0..60, 10).is_none());
    }

    mod through_the_writer {
        use std::time::Duration;

        use proptest::prelude::*;
        use wizdata_common::bus::Bus;
        use wizdata_common::cache::Cache;
        use wizdata_common::testing::TestDatabase;
        use wizdata_common::time::now_ns;

        use super::*;
        use crate::batch::{Batch, TradeEvent};
        use crate::quotes::QuoteCache;
        use crate::store::imported_row;
        use crate::writer::{Writer, acknowledged};

        const MINUTE: i64 = 60;

        /// What the property test does, bars counted back from the
        /// current minute (0: the open bar, and most of the time the one
        /// before it is not yet settled).
        #[derive(Debug, Clone)]
        enum Step {
            /// Trades: (bars back, second in the bar, price, size).
            Ingest(Vec<(i64, i64, u8, u8)>),
            /// 1m bars replaced: (bars back, close).
            Import(Vec<(i64, u8)>),
            /// A read of the bars opening from `from` back to `to` back, at
            /// 1m or 5m, at most `limit` of them.
            Read { from: i64, to: i64, five_minutes: bool, limit: usize },
        }

        fn steps() -> impl Strategy<Value = Vec<Step>> {
            let trade = (0i64..8, 0i64..60, 1u8..50, 1u8..5);
            let step = prop_oneof![
                proptest::collection::vec(trade, 1..6).prop_map(Step::Ingest),
                proptest::collection::vec((1i64..8, 1u8..50), 1..3).prop_map(Step::Import),
                // A few ranges, read again and again, so that most reads
                // can be answered from what an earlier one cached.
                (
                    prop_oneof![Just(9i64), Just(5)],
                    prop_oneof![Just(0i64), Just(3)],
                    any::<bool>(),
                    prop_oneof![Just(3usize), Just(100)]
                )
                    .prop_map(|(from, to, five_minutes, limit)| Step::Read {
                        from,
                        to,
                        five_minutes,
                        limit
                    }),
            ];
            proptest::collection::vec(step, 1..20)
        }

        /// The open time of the bar `back` bars before the current minute's.
        fn bar_back(back: i64) -> i64 {
            (now_ns() / NANOS_PER_SECOND).div_euclid(MINUTE) * MINUTE - back * MINUTE
        }

        async fn run(steps: Vec<Step>, capacity: usize) -> Result<(), TestCaseError> {
            let database = TestDatabase::new().await;
            let db = wizdata_common::db::connect(&database.config).await.unwrap();
            wizdata_common::db::migrate::<crate::Migrator>(&db).await.unwrap();
            let store = Store::new(db);
            let cache = CandleCache::new(capacity);
            let quotes = QuoteCache::new(Cache::memory());
            let (writer, tasks) =
                Writer::start(store.clone(), quotes, cache.clone(), Bus::local(), Duration::from_secs(3600));
            let symbol: Arc<str> = "SBK".into();
            for step in steps {
                match step {
                    Step::Ingest(trades) => {
                        let mut batch = Batch::default();
                        for (back, second, price, size) in trades {
                            batch.add_trade(TradeEvent {
                                symbol: symbol.clone(),
                                time_ns: (bar_back(back) + second) * NANOS_PER_SECOND,
                                price: f64::from(price),
                                size: f64::from(size),
                                source: String::new(),
                                trade_id: String::new(),
                            });
                        }
                        acknowledged(writer.submit(batch).await.unwrap()).await.unwrap();
                    }
                    Step::Import(bars) => {
                        let mut rows: Vec<candle::Model> = bars
                            .into_iter()
                            .map(|(back, close)| {
                                let close = f64::from(close);
                                let ohlcv = [close, close + 1.0, close - 1.0, close, 10.0];
                                imported_row(&symbol, Interval::OneMinute, bar_back(back), MINUTE, ohlcv)
                            })
                            .collect();
                        rows.sort_by_key(|row| row.open_time);
                        rows.dedup_by_key(|row| row.open_time);
                        // As the service imports: stored, then announced.
                        let (_, settled) = store.import(&rows).await.unwrap();
                        announce_settled(&cache, settled.as_slice(), &rows, now_ns());
                    }
                    Step::Read { from, to, five_minutes, limit } => {
                        let interval = if five_minutes { Interval::FiveMinutes } else { Interval::OneMinute };
                        let range = bar_back(from)..bar_back(to) + 1;
                        let now = now_ns();
                        let (_, bars) =
                            read_candles(&store, &cache, &symbol, interval, range.clone(), limit, now).await.unwrap();
                        let stored =
                            store.candles(&symbol, interval, range.start, range.end, None, limit as u64).await.unwrap();
                        let stored: Vec<Candle> =
                            stored.iter().map(|row| convert::candle(row, interval, now)).collect();
                        // A page cut shorter, as GetCandles cuts its look-ahead bar.
                        let mut shorter = bars.clone();
                        let keep = stored.len().saturating_sub(1);
                        shorter.truncate(keep);
                        let open_time = |candle: &Candle| candle.open_time.map(|time| time.seconds);
                        prop_assert_eq!(shorter.last_open_time(), stored[..keep].last().and_then(open_time));
                        prop_assert_eq!(shorter.into_candles(), &stored[..keep]);
                        prop_assert_eq!(bars.into_candles(), stored, "{:?} {:?} limit {}", interval, range, limit);
                    }
                }
            }
            drop(writer);
            for task in tasks {
                task.abort();
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

            /// Through the cache, exactly what an uncached read of the
            /// database gives, whatever was ingested (late trades into
            /// closed bars included) or imported in between; with room for
            /// everything and with room for only a few bars.
            #[test]
            fn reads_through_the_cache_equal_reads_of_the_database(steps in steps(), small in any::<bool>()) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(run(steps, if small { 3 } else { 10_000 }))?;
            }
        }
    }

    #[test]
    fn a_bar_is_settled_once_it_closed_the_margin_ago() {
        let minute = 60 * NANOS_PER_SECOND;
        // At 10:00:09 the 09:59 bar closed 9 s ago: not settled yet.
        let ten = 600 * minute;
        assert_eq!(settled_bound(Interval::OneMinute, ten + 9 * NANOS_PER_SECOND), 599 * 60);
        assert_eq!(settled_bound(Interval::OneMinute, ten + 10 * NANOS_PER_SECOND), 600 * 60);
        assert_eq!(settled_bound(Interval::FiveMinutes, ten + 10 * NANOS_PER_SECOND), 600 * 60);
        assert_eq!(settled_bound(Interval::FiveMinutes, ten + 9 * NANOS_PER_SECOND), 595 * 60);
    }
}

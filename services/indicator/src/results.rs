//! Computed indicator results, cached under the revision of the series they
//! were computed from.
//!
//! Market data gives each series (symbol, interval) a revision that changes
//! with every write to its bars and never returns to an earlier value. A
//! key names the series, its revision, the bars of the requested range and
//! the configured indicator, so a new candle, a late trade in a closed bar
//! or a re-imported history changes the key: nothing stale can be served,
//! on any replica, whoever changed the data. A call asks market data for
//! the revision (one indexed read) and, when every result it needs is
//! cached, skips fetching the candles altogether. The TTL only bounds the
//! memory used.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use prost_types::Timestamp;
use sha2::{Digest, Sha256};
use wizdata::r#type::v1::Interval;
use wizdata_common::cache::Cache;
use wizdata_common::interval;

/// Bumped when the encoding of results or the meaning of a key changes
/// (v3: results are cached without their spec).
const KEY_PREFIX: &str = "indicator:v3:";

/// The bars a request over stored candles covers, at one revision of their
/// series: what a cached result was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesView {
    /// The registry's spelling.
    symbol: String,
    interval: Interval,
    revision: u64,
    /// Bars open on multiples of the interval's width, so a range is the
    /// bars' numbers it reaches: the first (`None`: as far back as the
    /// range allows, which follows from the end) and the one past the last.
    /// Two calls a few seconds apart within one bar read the same bars.
    first_bar: Option<i64>,
    end_bar: i64,
}

impl SeriesView {
    /// The view of `[start, end)` at `revision`; `None` where nothing may be
    /// cached: a series never written since revisions began (its revision
    /// is 0, which a database started afresh would give again) or an
    /// interval without a fixed width.
    pub fn new(
        symbol: &str,
        interval: Interval,
        revision: u64,
        start: Option<&Timestamp>,
        end: &Timestamp,
    ) -> Option<Self> {
        let width = interval::width_seconds(interval)?;
        if revision == 0 {
            return None;
        }
        let bar_at_or_after = |time: &Timestamp| {
            let seconds = time.seconds + i64::from(time.nanos > 0);
            seconds.div_euclid(width) + i64::from(seconds.rem_euclid(width) != 0)
        };
        Some(Self {
            symbol: symbol.to_owned(),
            interval,
            revision,
            first_bar: start.map(bar_at_or_after),
            end_bar: bar_at_or_after(end),
        })
    }

    fn key(&self, what: &str) -> String {
        let mut hasher = Sha256::new();
        let first_bar = self.first_bar.map_or_else(|| "default".to_owned(), |bar| bar.to_string());
        let fields = [
            self.symbol.as_str(),
            interval::code(self.interval),
            &self.revision.to_string(),
            &first_bar,
            &self.end_bar.to_string(),
            what,
        ];
        for field in fields {
            // Length-prefixed, so no two field lists hash the same bytes.
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(hasher.finalize()))
    }

    /// The key of the indicator `identity` over these bars.
    pub fn result_key(&self, identity: &str) -> String {
        self.key(&format!("result:{identity}"))
    }

    /// The key of the bars' open times (an answer carries them).
    pub fn times_key(&self) -> String {
        self.key("times")
    }
}

#[derive(Clone, Debug)]
pub struct ResultCache {
    cache: Cache,
    ttl: Duration,
}

impl ResultCache {
    pub fn new(cache: Cache, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    /// What the cache holds for `view`: the result of each indicator
    /// `identities` names and the bars' open times, each as
    /// [`crate::answers`] encoded it, in one round trip. A miss for
    /// anything the cache cannot answer (it is then computed again).
    pub async fn lookup(&self, view: &SeriesView, identities: &[&str]) -> (Vec<Option<Bytes>>, Option<Bytes>) {
        let mut keys: Vec<String> = identities.iter().map(|identity| view.result_key(identity)).collect();
        keys.push(view.times_key());
        let mut values = self.cache.get_many(&keys).await.unwrap_or_else(|_| vec![None; keys.len()]);
        let times = values.pop().flatten();
        (values, times)
    }

    /// Remembers a computation over `view`: the bars' open times and the
    /// freshly computed results, encoded, in one round trip. A cache that
    /// cannot take them only costs a recomputation later.
    pub async fn remember(&self, view: &SeriesView, times: &Bytes, results: Vec<(&str, &Bytes)>) {
        let mut entries: Vec<(String, Bytes)> =
            results.into_iter().map(|(identity, result)| (view.result_key(identity), result.clone())).collect();
        entries.push((view.times_key(), times.clone()));
        let _ = self.cache.set_many(entries, self.ttl).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    fn view(revision: u64, start: Option<Timestamp>, end: Timestamp) -> SeriesView {
        SeriesView::new("SBK", Interval::OneMinute, revision, start.as_ref(), &end).expect("cacheable")
    }

    #[test]
    fn a_key_changes_with_the_revision_the_bars_and_the_indicator_and_only_with_them() {
        let key = view(7, Some(at(600, 0)), at(1200, 0)).result_key("SMA(time_period=2)");
        assert!(key.starts_with(KEY_PREFIX));
        // The same bars: any start after 540 up to 600, any end after 1140 up to 1200.
        for (start, end) in [(at(541, 0), at(1200, 0)), (at(599, 1), at(1141, 0)), (at(600, 0), at(1140, 1))] {
            assert_eq!(view(7, Some(start), end).result_key("SMA(time_period=2)"), key, "{start:?}..{end:?}");
        }
        let others = [
            view(8, Some(at(600, 0)), at(1200, 0)).result_key("SMA(time_period=2)"),
            view(7, Some(at(601, 0)), at(1200, 0)).result_key("SMA(time_period=2)"),
            view(7, Some(at(540, 0)), at(1200, 0)).result_key("SMA(time_period=2)"),
            view(7, None, at(1200, 0)).result_key("SMA(time_period=2)"),
            view(7, Some(at(600, 0)), at(1201, 0)).result_key("SMA(time_period=2)"),
            view(7, Some(at(600, 0)), at(1200, 0)).result_key("SMA(time_period=3)"),
            view(7, Some(at(600, 0)), at(1200, 0)).times_key(),
            SeriesView::new("SBK2", Interval::OneMinute, 7, Some(&at(600, 0)), &at(1200, 0))
                .unwrap()
                .result_key("SMA(time_period=2)"),
            SeriesView::new("SBK", Interval::FiveMinutes, 7, Some(&at(600, 0)), &at(1200, 0))
                .unwrap()
                .result_key("SMA(time_period=2)"),
        ];
        for other in others {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn a_series_never_written_is_never_cached() {
        assert_eq!(SeriesView::new("SBK", Interval::OneMinute, 0, None, &at(1200, 0)), None);
    }
}

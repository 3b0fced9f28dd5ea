//! Computed indicator results, cached by what they were computed from.
//!
//! A key is the SHA-256 of the candles (every time and value) and of the
//! configured indicator, so a new candle, a late trade in a closed bar or a
//! re-imported history changes the key: nothing stale can be served, on any
//! replica, whoever changed the data. The TTL only bounds the memory used.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;
use prost_types::Timestamp;
use sha2::{Digest, Sha256};
use wizdata::indicator::v1::IndicatorResult;
use wizdata_common::cache::Cache;

#[cfg(test)]
use crate::studies::Bar;
use crate::studies::Bars;

/// Bumped when the encoding of results or the meaning of a key changes.
const KEY_PREFIX: &str = "indicator:v1:";

/// A digest of a series of candles: equal exactly for equal series.
pub struct SeriesDigest([u8; 32]);

impl SeriesDigest {
    pub fn of(times: &[Timestamp], bars: &Bars) -> Self {
        let mut hasher = Sha256::new();
        hasher.update((bars.len() as u64).to_le_bytes());
        for (time, bar) in times.iter().zip(bars.iter()) {
            hasher.update(time.seconds.to_le_bytes());
            hasher.update(time.nanos.to_le_bytes());
            for value in [bar.open, bar.high, bar.low, bar.close, bar.volume] {
                hasher.update(value.to_bits().to_le_bytes());
            }
        }
        Self(hasher.finalize().into())
    }

    /// The cache key of the indicator `identity` over this series.
    pub fn key(&self, identity: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(identity.as_bytes());
        format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(hasher.finalize()))
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

    /// The cached result for each key; a miss for anything the cache cannot
    /// answer or decode (the result is then computed again).
    pub async fn get(&self, keys: &[String]) -> Vec<Option<IndicatorResult>> {
        match self.cache.get_many(keys).await {
            Ok(values) => values
                .into_iter()
                .map(|value| value.and_then(|bytes| IndicatorResult::decode(bytes.as_slice()).ok()))
                .collect(),
            Err(_) => vec![None; keys.len()],
        }
    }

    /// Remembers freshly computed results; a cache that cannot take them
    /// only costs a recomputation later.
    pub async fn put(&self, entries: Vec<(String, &IndicatorResult)>) {
        let entries = entries.into_iter().map(|(key, result)| (key, result.encode_to_vec())).collect();
        let _ = self.cache.set_many(entries, self.ttl).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(close: f64) -> Bar {
        Bar { open: close, high: close, low: close, close, volume: 1.0 }
    }

    #[test]
    fn any_change_to_the_series_or_the_indicator_changes_the_key() {
        let times = [Timestamp { seconds: 60, nanos: 0 }, Timestamp { seconds: 120, nanos: 0 }];
        let bars: Bars = [bar(1.0), bar(2.0)].into_iter().collect();
        let key = SeriesDigest::of(&times, &bars).key("SMA(time_period=2)");
        assert_eq!(key, SeriesDigest::of(&times, &bars).key("SMA(time_period=2)"), "stable");
        assert!(key.starts_with(KEY_PREFIX));

        let mut changed_value = bars.clone();
        changed_value.volume[1] = 2.0;
        let moved = [times[0], Timestamp { seconds: 180, nanos: 0 }];
        let others = [
            SeriesDigest::of(&times, &changed_value).key("SMA(time_period=2)"),
            SeriesDigest::of(&moved, &bars).key("SMA(time_period=2)"),
            SeriesDigest::of(&times[..1], &[bar(1.0)].into_iter().collect()).key("SMA(time_period=2)"),
            SeriesDigest::of(&times, &bars).key("SMA(time_period=3)"),
        ];
        for other in others {
            assert_ne!(key, other);
        }
    }
}

//! A byte cache shared by a service's replicas: Redis when configured, process
//! memory otherwise. A cache is never the source of truth: every error means
//! "ask the source", so callers treat `Err` like a miss that must not be
//! refilled blindly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::interfaces::KeysInterface;
use fred::types::Expiration;

use crate::redis::Redis;

/// Most entries the in-memory cache holds; past it, expired entries go first,
/// then everything (a cache may forget).
const MEMORY_CAPACITY: usize = 100_000;

/// The cache could not answer; use the source instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUnavailable;

#[derive(Clone)]
pub enum Cache {
    Memory(Arc<Mutex<HashMap<String, MemoryEntry>>>),
    Redis(Redis),
}

#[derive(Clone)]
pub struct MemoryEntry {
    value: Bytes,
    expires: Instant,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Memory(_) => "Cache::Memory",
            Self::Redis(_) => "Cache::Redis",
        })
    }
}

impl Cache {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Redis when given, memory otherwise.
    pub fn new(redis: Option<&Redis>) -> Self {
        let cache = redis.map_or_else(Self::memory, |redis| Self::Redis(redis.clone()));
        // Exported at zero, so `rate()` and alerts see the series from the start.
        count_lookups(&[], cache.store());
        cache
    }

    /// The store's name in `cache_lookups_total`.
    fn store(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// The values of `keys`, in order; `None` for a miss. Values held in
    /// memory are shared, not copied.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, CacheUnavailable> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Memory(entries) => {
                let now = Instant::now();
                let entries = entries.lock().expect("cache lock is never poisoned");
                let values: Vec<_> = keys
                    .iter()
                    .map(|key| entries.get(key).filter(|entry| entry.expires > now).map(|entry| entry.value.clone()))
                    .collect();
                count_lookups(&values, self.store());
                Ok(values)
            }
            Self::Redis(redis) => {
                if !redis.is_up() {
                    return Err(CacheUnavailable);
                }
                let prefixed: Vec<String> = keys.iter().map(|key| redis.key(key)).collect();
                // MGET of one key answers a bare value, not an array.
                let result = if prefixed.len() == 1 {
                    redis.client().get::<Option<Bytes>, _>(&prefixed[0]).await.map(|value| vec![value])
                } else {
                    redis.client().mget::<Vec<Option<Bytes>>, _>(prefixed).await
                };
                let values = result.map_err(|error| {
                    redis.command_failed(&error);
                    CacheUnavailable
                })?;
                count_lookups(&values, self.store());
                Ok(values)
            }
        }
    }

    /// Stores every entry for `ttl`, in one round trip.
    pub async fn set_many(&self, entries: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheUnavailable> {
        if entries.is_empty() {
            return Ok(());
        }
        match self {
            Self::Memory(map) => {
                let now = Instant::now();
                let mut map = map.lock().expect("cache lock is never poisoned");
                if map.len() + entries.len() > MEMORY_CAPACITY {
                    map.retain(|_, entry| entry.expires > now);
                    if map.len() + entries.len() > MEMORY_CAPACITY {
                        map.clear();
                    }
                }
                for (key, value) in entries {
                    map.insert(key, MemoryEntry { value, expires: now + ttl });
                }
                Ok(())
            }
            Self::Redis(redis) => {
                if !redis.is_up() {
                    return Err(CacheUnavailable);
                }
                let pipeline = redis.client().pipeline();
                let expiry = Expiration::PX(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
                for (key, value) in entries {
                    let _: () = pipeline
                        .set(redis.key(&key), value, Some(expiry.clone()), None, false)
                        .await
                        .expect("queueing a pipelined command does not fail");
                }
                pipeline.all::<()>().await.map_err(|error| {
                    redis.command_failed(&error);
                    CacheUnavailable
                })
            }
        }
    }

    /// Forgets `keys`.
    pub async fn delete(&self, keys: &[String]) -> Result<(), CacheUnavailable> {
        if keys.is_empty() {
            return Ok(());
        }
        match self {
            Self::Memory(map) => {
                let mut map = map.lock().expect("cache lock is never poisoned");
                for key in keys {
                    map.remove(key);
                }
                Ok(())
            }
            Self::Redis(redis) => {
                if !redis.is_up() {
                    return Err(CacheUnavailable);
                }
                let prefixed: Vec<String> = keys.iter().map(|key| redis.key(key)).collect();
                redis.client().del::<(), _>(prefixed).await.map_err(|error| {
                    redis.command_failed(&error);
                    CacheUnavailable
                })
            }
        }
    }
}

/// `cache_lookups_total{store, outcome="hit"|"miss"}`.
fn count_lookups(values: &[Option<Bytes>], store: &'static str) {
    let hits = values.iter().filter(|value| value.is_some()).count() as u64;
    metrics::counter!("cache_lookups_total", "store" => store, "outcome" => "hit").increment(hits);
    metrics::counter!("cache_lookups_total", "store" => store, "outcome" => "miss")
        .increment(values.len() as u64 - hits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cache_answers_hits_misses_and_expiry() {
        let cache = Cache::memory();
        cache.set_many(vec![("a".into(), Bytes::from_static(b"1"))], Duration::from_secs(60)).await.unwrap();
        cache.set_many(vec![("gone".into(), Bytes::from_static(b"2"))], Duration::ZERO).await.unwrap();
        let values = cache.get_many(&["a".into(), "b".into(), "gone".into()]).await.unwrap();
        assert_eq!(values, vec![Some(Bytes::from_static(b"1")), None, None]);
        cache.delete(&["a".into()]).await.unwrap();
        assert_eq!(cache.get_many(&["a".into()]).await.unwrap(), vec![None]);
    }
}

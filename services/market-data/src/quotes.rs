//! Quotes served from a cache (Redis or memory) in front of the database.
//!
//! Only the writer fills the cache, in the order writes commit, so a reader
//! can never put an older quote back over a newer one. When a fill fails
//! (Redis down or slow) the symbol is marked unsynced and read from the
//! database until a later fill succeeds: after Redis returns, nobody is
//! served what it held before the outage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use wizdata::r#type::v1::Quote;
use wizdata_common::cache::Cache;

/// Cached quotes expire after a day without a write: the cache only bounds
/// garbage, freshness comes from the writer.
const QUOTE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
pub struct QuoteCache {
    cache: Cache,
    unsynced: Arc<Mutex<HashSet<String>>>,
}

fn key(symbol: &str) -> String {
    format!("quote:{symbol}")
}

impl QuoteCache {
    pub fn new(cache: Cache) -> Self {
        Self { cache, unsynced: Arc::default() }
    }

    /// Stores `quotes` (the writer's job only).
    pub async fn fill(&self, quotes: &[Quote]) {
        if quotes.is_empty() {
            return;
        }
        let entries = quotes.iter().map(|quote| (key(&quote.symbol), quote.encode_to_vec().into())).collect();
        let filled = self.cache.set_many(entries, QUOTE_TTL).await.is_ok();
        let mut unsynced = self.unsynced.lock().expect("unsynced lock is never poisoned");
        for quote in quotes {
            if filled {
                unsynced.remove(&quote.symbol);
            } else {
                unsynced.insert(quote.symbol.clone());
            }
        }
    }

    /// The cached quote of each symbol; `None` where the database must answer
    /// (a miss, an unsynced symbol, or the cache unavailable).
    pub async fn get_many(&self, symbols: &[Arc<str>]) -> Vec<Option<Quote>> {
        let trusted: Vec<bool> = {
            let unsynced = self.unsynced.lock().expect("unsynced lock is never poisoned");
            symbols.iter().map(|symbol| !unsynced.contains(symbol.as_ref())).collect()
        };
        let keys: Vec<String> =
            symbols.iter().zip(&trusted).filter(|(_, trusted)| **trusted).map(|(symbol, _)| key(symbol)).collect();
        let mut cached = match self.cache.get_many(&keys).await {
            Ok(values) => values.into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        trusted
            .into_iter()
            .map(|trusted| {
                if !trusted {
                    return None;
                }
                cached.next().flatten().and_then(|bytes| Quote::decode(bytes).ok())
            })
            .collect()
    }
}

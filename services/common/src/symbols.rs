//! Which symbols exist, asked of the registry over gRPC with a deadline and
//! remembered for a while, so ingest does not call the registry per tick.
//! When the registry cannot answer, a symbol known before is still trusted;
//! one never seen makes the call fail UNAVAILABLE rather than reject ticks
//! that may be good.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ApiError;
use crate::auth::Caller;
use crate::endpoints::ServiceChannel;
use futures_util::future::join_all;
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;

/// The longest ticker the registry accepts; a longer symbol is a bad
/// request, not an unknown symbol, and is refused before any lookup.
pub const MAX_SYMBOL_CHARS: usize = 24;

/// `Err` describing a symbol too long to be any registry's ticker.
pub fn check_symbol_length(symbol: &str) -> Result<(), String> {
    match symbol.chars().count() > MAX_SYMBOL_CHARS {
        true => Err(format!("must be at most {MAX_SYMBOL_CHARS} characters")),
        false => Ok(()),
    }
}

/// How long "no such symbol" is remembered: short, so a symbol created in the
/// registry is accepted soon after.
const UNKNOWN_TTL: Duration = Duration::from_secs(1);
/// Most answers remembered: callers choose what they ask for, so the memory
/// they can take is bounded.
const MAX_ENTRIES: usize = 50_000;

#[derive(Clone)]
pub struct SymbolDirectory {
    client: RegistryServiceClient<ServiceChannel>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    ttl: Duration,
    timeout: Duration,
}

#[derive(Clone)]
struct Entry {
    /// `None` for an unknown symbol.
    symbol: Option<KnownSymbol>,
    fetched: Instant,
}

/// What the registry says about a symbol it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownSymbol {
    /// The registry's spelling.
    pub ticker: Arc<str>,
    /// Whether live events are offered for it.
    pub streamable: bool,
}

impl SymbolDirectory {
    pub fn new(registry: ServiceChannel, ttl: Duration, timeout: Duration) -> Self {
        Self { client: RegistryServiceClient::new(registry), entries: Arc::default(), ttl, timeout }
    }

    /// The registry's ticker for each of `symbols` (`None` when unknown).
    pub async fn resolve_many<'a>(
        &self,
        symbols: impl IntoIterator<Item = &'a str>,
        caller: &Caller,
    ) -> Result<HashMap<String, Option<Arc<str>>>, ApiError> {
        let mut unique: Vec<&str> = symbols.into_iter().collect();
        unique.sort_unstable();
        unique.dedup();
        let answers = join_all(unique.iter().map(|symbol| self.resolve(symbol, caller))).await;
        unique.into_iter().zip(answers).map(|(symbol, answer)| Ok((symbol.to_owned(), answer?))).collect()
    }

    /// The registry's ticker for `symbol`, or `None` when it has none.
    pub async fn resolve(&self, symbol: &str, caller: &Caller) -> Result<Option<Arc<str>>, ApiError> {
        Ok(self.lookup(symbol, caller).await?.map(|known| known.ticker))
    }

    /// What the registry says about `symbol`, or `None` when it has no such
    /// symbol. The registry is asked with the credentials of the `caller`
    /// being served.
    pub async fn lookup(&self, symbol: &str, caller: &Caller) -> Result<Option<KnownSymbol>, ApiError> {
        let cached = self.entries.lock().expect("symbol cache lock is never poisoned").get(symbol).cloned();
        if let Some(entry) = &cached {
            let ttl = if entry.symbol.is_some() { self.ttl } else { UNKNOWN_TTL };
            if entry.fetched.elapsed() < ttl {
                return Ok(entry.symbol.clone());
            }
        }
        let mut request = tonic::Request::new(GetSymbolRequest { ticker: symbol.to_owned() });
        request.set_timeout(self.timeout);
        caller.forward(&mut request);
        let answer = tokio::time::timeout(self.timeout, self.client.clone().get_symbol(request)).await;
        let known = match answer {
            Ok(Ok(response)) => response
                .into_inner()
                .symbol
                .map(|found| KnownSymbol { ticker: Arc::from(found.ticker), streamable: found.streamable }),
            Ok(Err(status)) if matches!(status.code(), tonic::Code::NotFound | tonic::Code::InvalidArgument) => None,
            // The registry judged the caller's credentials, not the symbol.
            Ok(Err(status))
                if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) =>
            {
                return Err(ApiError::from(status));
            }
            failure => {
                let why = match failure {
                    Ok(Err(status)) => format!("{}: {}", status.code(), status.message()),
                    _ => format!("no answer within {:?}", self.timeout),
                };
                if let Some(entry) = cached.filter(|entry| entry.symbol.is_some()) {
                    tracing::warn!(symbol, %why, "registry unavailable; trusting the symbol seen before");
                    return Ok(entry.symbol);
                }
                tracing::warn!(symbol, %why, "registry unavailable");
                return Err(ApiError::unavailable("the symbol registry is unavailable; retry later"));
            }
        };
        let entry = Entry { symbol: known.clone(), fetched: Instant::now() };
        let mut entries = self.entries.lock().expect("symbol cache lock is never poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.fetched.elapsed() < self.ttl && entry.symbol.is_some());
        }
        entries.insert(symbol.to_owned(), entry);
        Ok(known)
    }
}

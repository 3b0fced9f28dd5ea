//! The market data service: ticks in, candles and quotes out.
//!
//! Ticks are admitted (symbols checked against the registry over gRPC),
//! folded into bars of every interval and into quote parts, and written by one
//! group-commit writer per process with order-independent upserts. Quotes are
//! served from a cache (Redis or memory) in front of the database; every
//! write is published on the bus for the streaming service.

mod bars;
mod batch;
mod candle_cache;
mod convert;
mod entity;
pub use wizdata_common::market_events as events;
pub mod history;
pub use wizdata_common::interval;
pub mod migration;
mod quotes;
mod routes;
mod service;
pub mod simulator;
mod store;
mod ticks;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use wizdata_common::bus::Bus;
use wizdata_common::cache::Cache;
use wizdata_common::config::parse_duration;
use wizdata_common::pagination::PageTokens;
use wizdata_common::symbols::SymbolDirectory;

pub use migration::Migrator;
pub use routes::MarketDataRoutes;
pub use service::{
    DEFAULT_CANDLE_PAGE, MAX_CANDLE_PAGE, MAX_IMPORT_CANDLES, MAX_QUOTES_PER_CALL, MAX_RANGE_BARS, MarketData,
};

/// The full gRPC name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = wizdata::marketdata::v1::market_data_service_server::SERVICE_NAME;

#[derive(clap::Args, Debug, Clone)]
pub struct MarketDataConfig {
    /// Ticks stamped further than this into the future are rejected.
    #[arg(long, env = "WIZDATA_MAX_FUTURE_SKEW", default_value = "5s", value_parser = parse_duration)]
    pub max_future_skew: Duration,

    /// Quotes not updated for this long are flagged stale.
    #[arg(long, env = "WIZDATA_QUOTE_STALENESS", default_value = "1m", value_parser = parse_duration)]
    pub quote_staleness: Duration,

    /// How long the ids of applied trades are remembered, so that a feed's
    /// replay within it is dropped as duplicate (at least a minute).
    #[arg(long, env = "WIZDATA_TRADE_DEDUPE_WINDOW", default_value = "24h", value_parser = parse_dedupe_window)]
    pub trade_dedupe_window: Duration,

    /// Most settled bars kept in memory for GetCandles, over all series
    /// (about 100 bytes each, twice that once read: a span keeps its bars
    /// encoded as they are sent too); 0 reads every bar from the database.
    #[arg(long, env = "WIZDATA_CANDLE_CACHE_BARS", default_value_t = 1_000_000)]
    pub candle_cache_bars: usize,
}

/// The dedupe window: at least a minute, because ids are forgotten by a
/// sweep each minute, and a shorter window would promise what the sweep
/// cannot keep.
fn parse_dedupe_window(text: &str) -> Result<Duration, String> {
    let window = parse_duration(text)?;
    if window < Duration::from_secs(60) {
        return Err(format!("{text:?} is shorter than the minimum of 1m"));
    }
    Ok(window)
}

/// The service and the background tasks it needs (the writer and the bus
/// publisher), over an already migrated database; ticks' symbols are checked
/// in `symbols`.
pub fn service(
    db: DatabaseConnection,
    cache: Cache,
    bus: Bus,
    symbols: SymbolDirectory,
    page_tokens: PageTokens,
    config: &MarketDataConfig,
) -> (MarketDataRoutes, Vec<JoinHandle<()>>) {
    ticks::export_counters();
    let store = store::Store::new(db);
    let quotes = quotes::QuoteCache::new(cache);
    let candles = candle_cache::CandleCache::new(config.candle_cache_bars);
    let (writer, mut tasks) =
        writer::Writer::start(store.clone(), quotes.clone(), candles.clone(), bus.clone(), config.trade_dedupe_window);
    tasks.push(tokio::spawn({
        let (bus, candles) = (bus.clone(), candles.clone());
        async move {
            match bus.subscribe(candle_cache::SETTLED_TOPIC).await {
                Ok(subscription) => candle_cache::follow_settled(candles, subscription).await,
                // Reads stay correct by the revision they check; only the
                // other replicas' writes are not applied ahead of them.
                Err(_) => tracing::warn!("cannot follow other replicas' writes of settled bars: the bus is down"),
            }
        }
    }));
    let max_future_ns = i64::try_from(config.max_future_skew.as_nanos()).unwrap_or(i64::MAX);
    let market_data = MarketData {
        store,
        writer,
        quotes,
        candles,
        bus,
        symbols,
        admission: Arc::new(ticks::Admission { max_future_ns }),
        page_tokens,
        staleness: config.quote_staleness,
    };
    (routes::routes(market_data), tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dedupe_window_is_a_duration_of_at_least_a_minute() {
        assert_eq!(parse_dedupe_window("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_dedupe_window("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_dedupe_window("59s").unwrap_err().contains("minimum of 1m"));
        assert!(parse_dedupe_window("soon").is_err());
    }
}

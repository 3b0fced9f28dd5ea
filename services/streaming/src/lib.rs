//! The streaming service: live market events to many subscribers. Events
//! come from the bus market data publishes on; each replica subscribes only
//! to the topics its own clients need (`hub`) and gives every subscriber a
//! bounded outbox of its own (`outbox`), so a slow client hurts nobody else.
//! A topic's event is encoded once for all its subscribers (`encoded`,
//! served by `routes`). Live indicators (`live`) run the indicator engine's
//! incremental studies over the candle events, one computation per symbol,
//! interval and indicator, shared by its subscribers.

mod encoded;
mod hub;
mod live;
mod outbox;
mod routes;
mod service;
mod stats;

use std::time::Duration;

use tokio::sync::watch;
use wizdata_common::bus::Bus;
use wizdata_common::config::parse_duration;
use wizdata_common::endpoints::ServiceChannel;
use wizdata_common::symbols::SymbolDirectory;

pub use routes::StreamingRoutes;
pub use service::Streamer;

pub const SERVICE_NAME: &str = wizdata::streaming::v1::streaming_service_server::SERVICE_NAME;

/// How subscribers are served.
#[derive(clap::Args, Debug, Clone)]
pub struct StreamingConfig {
    /// Trades and candle events one subscriber may have waiting; beyond it
    /// they are dropped and reported as a gap (quotes are conflated instead).
    #[arg(long, env = "WIZDATA_SUBSCRIBER_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub subscriber_queue: u32,

    /// How long a subscriber may leave events waiting without reading any
    /// before its call ends RESOURCE_EXHAUSTED.
    #[arg(long, env = "WIZDATA_SLOW_SUBSCRIBER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub slow_subscriber_timeout: Duration,

    /// How often an idle stream sends a heartbeat.
    #[arg(long, env = "WIZDATA_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Most subscriptions (symbols x channels) one call may hold.
    #[arg(long, env = "WIZDATA_MAX_SUBSCRIPTIONS_PER_CALL", default_value_t = 200)]
    pub max_subscriptions_per_call: u32,

    /// Most concurrent Subscribe and Session calls per subject (anonymous
    /// callers: per client address).
    #[arg(long, env = "WIZDATA_MAX_STREAMS_PER_SUBJECT", default_value_t = 16)]
    pub max_streams_per_subject: u32,

    /// Peers whose `x-forwarded-for` names the real client (the gateway),
    /// comma-separated, so anonymous callers behind it are counted apart.
    #[arg(long, env = "WIZDATA_TRUSTED_PROXIES", default_value = "127.0.0.1,::1", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The service, fanning out `bus` events; symbols are checked in `symbols`,
/// snapshots read from market data behind `market_data`. Streams end when
/// `stopping` turns true.
pub fn service(
    bus: Bus,
    symbols: SymbolDirectory,
    market_data: ServiceChannel,
    stopping: watch::Receiver<bool>,
    config: &StreamingConfig,
) -> StreamingRoutes {
    routes::routes(Streamer::new(bus, symbols, market_data, stopping, config.clone()))
}

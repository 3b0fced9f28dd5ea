//! Real market data into the mesh: each provider's documented public API
//! (WebSocket streams and REST), turned into IngestTicks trades carrying the
//! provider's own trade ids (so a replay after a reconnect counts once) and
//! ImportCandles history.
//!
//! A feed is a client of the mesh like any other: it needs only the market
//! data address and a key with `marketdata:write`. Each provider module owns
//! its wire format; what they share is here: the symbol map ([`symbols`]),
//! the publisher that batches and retries ([`sink`]), reconnect backoff
//! ([`backoff`]), the WebSocket session ([`ws`]) and the metrics ([`stats`]).

pub mod backoff;
pub mod binance;
pub mod error;
pub mod rest;
pub mod sink;
pub mod stats;
pub mod symbols;
pub mod ws;

use std::time::Duration;

use wizdata_common::config::parse_duration;

pub use error::FeedError;
pub use sink::Publisher;

/// Installs ring as the process's TLS provider (once; later calls do
/// nothing), so `wss://` and `https://` work without aws-lc.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How every feed keeps its connection: deadlines and reconnect backoff.
#[derive(clap::Args, Debug, Clone)]
pub struct SessionConfig {
    /// A connection (TCP, TLS and the WebSocket upgrade) must open within this.
    #[arg(long = "feed-connect-timeout", env = "WIZDATA_FEED_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Nothing received for this long (not even a ping) is a dead
    /// connection: Binance pings every 20 s, so three missed pings.
    #[arg(long = "feed-stall-timeout", env = "WIZDATA_FEED_STALL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub stall_timeout: Duration,

    /// The first reconnect waits between half of this and this; each
    /// further one doubles, up to --feed-reconnect-max.
    #[arg(long = "feed-reconnect-min", env = "WIZDATA_FEED_RECONNECT_MIN", default_value = "1s", value_parser = parse_duration)]
    pub reconnect_min: Duration,

    #[arg(long = "feed-reconnect-max", env = "WIZDATA_FEED_RECONNECT_MAX", default_value = "60s", value_parser = parse_duration)]
    pub reconnect_max: Duration,

    /// Deadline of each REST call.
    #[arg(long = "feed-request-timeout", env = "WIZDATA_FEED_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

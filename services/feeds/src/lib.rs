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

pub mod alphavantage;
pub mod backoff;
pub mod binance;
pub mod coinbase;
pub mod coingecko;
pub mod error;
pub mod kraken;
pub mod parse;
pub mod rest;
pub mod sink;
pub mod stats;
pub mod symbols;
pub mod ws;

use std::time::Duration;

use wizdata_common::config::parse_duration;

pub use error::FeedError;
pub use sink::Publisher;
pub use stats::connections;

/// Installs ring as the process's TLS provider (once; later calls do
/// nothing), so `wss://` and `https://` work without aws-lc. Called where a
/// TLS client is made (`rest`, `ws`).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How every feed keeps its connection: deadlines and reconnect backoff.
#[derive(clap::Args, Debug, Clone)]
pub struct SessionConfig {
    /// A connection (TCP, TLS and the WebSocket upgrade) must open within this.
    #[arg(long = "feed-connect-timeout", id = "feed-connect-timeout", env = "WIZDATA_FEED_CONNECT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Nothing received for this long (not even a ping) is a dead
    /// connection: Binance pings every 20 s, so three missed pings.
    #[arg(long = "feed-stall-timeout", id = "feed-stall-timeout", env = "WIZDATA_FEED_STALL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub stall_timeout: Duration,

    /// The first reconnect waits between half of this and this; each
    /// further one doubles, up to --feed-reconnect-max.
    #[arg(long = "feed-reconnect-min", id = "feed-reconnect-min", env = "WIZDATA_FEED_RECONNECT_MIN", default_value = "1s", value_parser = parse_duration)]
    pub reconnect_min: Duration,

    #[arg(long = "feed-reconnect-max", id = "feed-reconnect-max", env = "WIZDATA_FEED_RECONNECT_MAX", default_value = "60s", value_parser = parse_duration)]
    pub reconnect_max: Duration,

    /// Deadline of each REST call.
    #[arg(long = "feed-request-timeout", id = "feed-request-timeout", env = "WIZDATA_FEED_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// A provider's live connection, which [`keep_connected`] runs again and
/// again.
pub trait Live {
    const PROVIDER: &'static str;

    fn stats(&self) -> &stats::FeedStats;

    /// One connection, from connecting to its end: always the reason it
    /// ended. It resets `backoff` once the provider has accepted it.
    fn session(
        &mut self,
        publisher: &Publisher,
        backoff: &mut backoff::Backoff,
    ) -> impl std::future::Future<Output = FeedError> + Send;
}

/// Runs `live`'s connections one after another, waiting between them as
/// [`reconnect_delay`] says, until an error retrying cannot help.
pub async fn keep_connected<L: Live>(
    live: &mut L,
    publisher: &Publisher,
    session: &SessionConfig,
) -> anyhow::Result<()> {
    let mut backoff = backoff::Backoff::new(session.reconnect_min, session.reconnect_max);
    loop {
        let error = live.session(publisher, &mut backoff).await;
        live.stats().connected(false);
        let Some(wait) = reconnect_delay(&error, &mut backoff) else {
            return Err(anyhow::anyhow!("{}: {error}", L::PROVIDER));
        };
        tracing::warn!(provider = L::PROVIDER, %error, ?wait, "feed disconnected; reconnecting");
        live.stats().reconnect();
        tokio::time::sleep(wait).await;
    }
}

/// After a connection ended with `error`, how long to wait before the
/// next; `None` when retrying cannot help.
fn reconnect_delay(error: &FeedError, backoff: &mut backoff::Backoff) -> Option<Duration> {
    match error {
        error if error.is_fatal() => None,
        // Renewing an old connection is planned, not a failure.
        FeedError::Aged(_) => Some(Duration::ZERO),
        FeedError::RateLimited(wait) => Some(*wait),
        _ => Some(backoff.next_delay()),
    }
}

/// Runs `feed` with a publisher into the mesh behind `channel` until it
/// ends or `stop` fires; what it received is sent before this returns.
pub async fn publish_until<Feed>(
    provider: &'static str,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
    feed: impl FnOnce(Publisher) -> Feed,
) -> anyhow::Result<()>
where
    Feed: std::future::Future<Output = anyhow::Result<()>>,
{
    let (publisher, sending) = Publisher::start(channel, provider);
    let result = tokio::select! {
        result = feed(publisher.clone()) => result,
        _ = stop => Ok(()),
    };
    publisher.flush().await;
    drop(publisher);
    let _ = sending.await;
    result
}

/// The providers a feed can come from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Binance,
    Coinbase,
    Kraken,
    Coingecko,
    Alphavantage,
}

impl Provider {
    /// Its name in metrics and health checks.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Binance => binance::PROVIDER,
            Provider::Coinbase => coinbase::PROVIDER,
            Provider::Kraken => kraken::PROVIDER,
            Provider::Coingecko => coingecko::PROVIDER,
            Provider::Alphavantage => alphavantage::PROVIDER,
        }
    }
}

/// Every provider's settings, for a process that may run any of them
/// (`serve all --feeds ...`).
#[derive(clap::Args, Debug, Clone)]
pub struct FeedsConfig {
    #[command(flatten)]
    pub session: SessionConfig,
    #[command(flatten)]
    pub binance: binance::BinanceConfig,
    #[command(flatten)]
    pub coinbase: coinbase::CoinbaseConfig,
    #[command(flatten)]
    pub kraken: kraken::KrakenConfig,
    #[command(flatten)]
    pub coingecko: coingecko::CoingeckoConfig,
    #[command(flatten)]
    pub alphavantage: alphavantage::AlphaVantageConfig,
}

/// Runs `provider`'s feed into the mesh behind `channel` until `stop`.
pub async fn run(
    provider: Provider,
    config: &FeedsConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let session = config.session.clone();
    match provider {
        Provider::Binance => binance::run(config.binance.clone(), session, channel, stop).await,
        Provider::Coinbase => coinbase::run(config.coinbase.clone(), session, channel, stop).await,
        Provider::Kraken => kraken::run(config.kraken.clone(), session, channel, stop).await,
        Provider::Coingecko => coingecko::run(config.coingecko.clone(), session, channel, stop).await,
        Provider::Alphavantage => alphavantage::run(config.alphavantage.clone(), session, channel, stop).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn a_provider_is_labelled_as_it_is_named_on_the_command_line() {
        for provider in Provider::value_variants() {
            assert_eq!(provider.label(), provider.to_possible_value().unwrap().get_name());
        }
    }
}

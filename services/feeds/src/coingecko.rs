//! CoinGecko (<https://docs.coingecko.com/reference/simple-price>): prices
//! polled from REST `simple/price`, all symbols in one call per interval,
//! within the public API's rate limit (about 30 calls a minute on the Demo
//! plan; a 429 waits out its Retry-After). CoinGecko aggregates prices
//! across exchanges: there is no trade or book behind one, so each price is
//! published as a trade of size 0 (it moves the last price and the bars'
//! prices, not their volume) whose id is CoinGecko's `last_updated_at`, so
//! a poll that finds the same price as the last counts once.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use wizdata::marketdata::v1::{Tick, Trade, tick};
use wizdata_common::config::parse_duration;
use wizdata_common::time::{NANOS_PER_SECOND, timestamp_from_ns};

use crate::parse::{Skipped, skipped};
use crate::rest::Rest;
use crate::stats::{FeedStats, MessageKind};
use crate::symbols::SymbolMap;
use crate::{FeedError, Publisher, SessionConfig};

pub const PROVIDER: &str = "coingecko";

#[derive(clap::Args, Debug, Clone)]
pub struct CoingeckoConfig {
    /// The REST API's base URL.
    #[arg(
        long = "coingecko-url",
        id = "coingecko-url",
        env = "WIZDATA_COINGECKO_URL",
        default_value = "https://api.coingecko.com/api/v3"
    )]
    pub url: String,

    /// Registry symbols to carry, each REGISTRY=COIN:CURRENCY (CoinGecko's
    /// coin id and quote currency).
    #[arg(
        long = "coingecko-symbols",
        id = "coingecko-symbols",
        env = "WIZDATA_COINGECKO_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC/USDT=bitcoin:usd,ETH/USDT=ethereum:usd"
    )]
    pub symbols: Vec<String>,

    /// Time between polls (at least 2s: one call carries every symbol, and
    /// the public API allows about 30 a minute).
    #[arg(long = "coingecko-interval", id = "coingecko-interval", env = "WIZDATA_COINGECKO_INTERVAL", default_value = "30s", value_parser = parse_poll_interval)]
    pub interval: Duration,

    /// A Demo API key, sent as x-cg-demo-api-key (optional; a secret).
    #[arg(
        long = "coingecko-api-key",
        id = "coingecko-api-key",
        env = "WIZDATA_COINGECKO_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<SecretString>,
}

fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_secs(2) {
        return Err(format!("{text:?} polls faster than CoinGecko's public limit allows (at least 2s)"));
    }
    Ok(interval)
}

/// CoinGecko's coin ids cannot be spelled from a ticker: a bare symbol
/// stays as it is and [`symbol_map`] refuses it.
fn spell(symbol: &str) -> String {
    symbol.to_owned()
}

/// The configured symbols, each of which must name COIN:CURRENCY.
pub fn symbol_map(entries: &[String]) -> Result<SymbolMap, String> {
    let symbols = SymbolMap::parse(entries, spell)?;
    for (symbol, name) in symbols.pairs() {
        let named = name.split_once(':').is_some_and(|(coin, currency)| {
            let plain = |part: &str| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            plain(coin) && plain(currency)
        });
        if !named {
            return Err(format!(
                "{symbol}: expected REGISTRY=COIN:CURRENCY with CoinGecko's ids, e.g. BTC/USDT=bitcoin:usd"
            ));
        }
    }
    Ok(symbols)
}

/// The prices of a `simple/price` answer as ticks, with what was skipped.
pub fn parse_prices(json: &Value, symbols: &SymbolMap) -> (Vec<Tick>, Vec<Skipped>) {
    let (mut ticks, mut skips) = (Vec::new(), Vec::new());
    for (symbol, name) in symbols.pairs() {
        let Some((coin, currency)) = name.split_once(':') else { continue };
        let entry = &json[coin];
        let price = entry[currency].as_f64().filter(|price| price.is_finite());
        let updated = entry["last_updated_at"].as_i64();
        match (price, updated) {
            (Some(price), Some(updated)) => {
                let trade = Trade { price, size: 0.0, source: PROVIDER.into(), trade_id: updated.to_string() };
                ticks.push(Tick {
                    symbol: symbol.to_owned(),
                    time: Some(timestamp_from_ns(updated.saturating_mul(NANOS_PER_SECOND))),
                    kind: Some(tick::Kind::Trade(trade)),
                });
            }
            _ => skips.push(skipped(MessageKind::Malformed, format!("no {currency} price or update time for {coin}"))),
        }
    }
    (ticks, skips)
}

/// Runs the CoinGecko poller into the mesh behind `channel` until `stop`.
pub async fn run(
    config: CoingeckoConfig,
    session: SessionConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let symbols = symbol_map(&config.symbols).map_err(|why| anyhow::anyhow!("--coingecko-symbols: {why}"))?;
    let key = config.api_key.as_ref().map(|key| ("x-cg-demo-api-key", key));
    let rest = Rest::with_key_header(&config.url, session.request_timeout, key)?;
    let stats = FeedStats::new(PROVIDER);
    crate::publish_until(PROVIDER, channel, stop, |publisher| async move {
        poll(&config, &symbols, &rest, &stats, &publisher).await
    })
    .await
}

async fn poll(
    config: &CoingeckoConfig,
    symbols: &SymbolMap,
    rest: &Rest,
    stats: &FeedStats,
    publisher: &Publisher,
) -> anyhow::Result<()> {
    let coins: Vec<&str> = symbols.pairs().filter_map(|(_, name)| name.split_once(':').map(|(coin, _)| coin)).collect();
    let currencies: Vec<&str> =
        symbols.pairs().filter_map(|(_, name)| name.split_once(':').map(|(_, currency)| currency)).collect();
    let path = format!(
        "/simple/price?ids={}&vs_currencies={}&include_last_updated_at=true",
        coins.join(","),
        currencies.join(",")
    );
    loop {
        let wait = match rest.get_json(&path).await {
            Ok(json) => {
                stats.connected(true);
                let (ticks, skips) = parse_prices(&json, symbols);
                for skip in &skips {
                    stats.skipped(skip);
                }
                for tick in ticks {
                    stats.message(MessageKind::Quote);
                    if let Some(time) = &tick.time {
                        stats.lag(time.seconds.saturating_mul(NANOS_PER_SECOND));
                    }
                    publisher.tick(tick).await;
                }
                config.interval
            }
            Err(error) => {
                stats.connected(false);
                stats.message(MessageKind::Error);
                if error.is_fatal() {
                    return Err(anyhow::anyhow!("{PROVIDER}: {error}"));
                }
                tracing::warn!(provider = PROVIDER, %error, "poll failed");
                match error {
                    FeedError::RateLimited(wait) => wait.max(config.interval),
                    _ => config.interval,
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_become_zero_size_trades_identified_by_their_update_time() {
        let symbols = symbol_map(&["BTC/USDT=bitcoin:usd".into(), "XYZ=nothing:usd".into()]).unwrap();
        let json: Value =
            serde_json::from_str(r#"{"bitcoin":{"usd":67187.3358,"last_updated_at":1711356300}}"#).unwrap();
        let (ticks, skips) = parse_prices(&json, &symbols);
        assert_eq!(ticks.len(), 1);
        assert_eq!((ticks[0].symbol.as_str(), ticks[0].time.unwrap().seconds), ("BTC/USDT", 1_711_356_300));
        let Some(tick::Kind::Trade(trade)) = &ticks[0].kind else { panic!() };
        assert_eq!((trade.price, trade.size, trade.trade_id.as_str()), (67187.3358, 0.0, "1711356300"));
        assert_eq!(skips.len(), 1);
        assert!(skips[0].why.contains("nothing"), "{:?}", skips[0]);
    }

    #[test]
    fn a_symbol_without_its_coin_is_refused_and_polling_faster_than_the_limit_too() {
        for entry in ["BTC/USDT", "BTC/USDT=bitcoin", "BTC/USDT=Bitcoin:USD", "BTC/USDT=:usd"] {
            let refused = symbol_map(&[entry.into()]).unwrap_err();
            assert!(refused.contains("REGISTRY=COIN:CURRENCY"), "{entry}: {refused}");
        }
        assert!(parse_poll_interval("1s").unwrap_err().contains("at least 2s"));
        assert_eq!(parse_poll_interval("30s"), Ok(Duration::from_secs(30)));
    }
}

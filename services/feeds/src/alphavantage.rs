//! Alpha Vantage (<https://www.alphavantage.co/documentation/>): history
//! from REST `TIME_SERIES_DAILY` or `TIME_SERIES_INTRADAY` into
//! ImportCandles, for each symbol at start and again every refresh. The API
//! key is a secret from the environment; it travels in the query string
//! (Alpha Vantage takes it nowhere else), and no error here names a URL.
//! The free tier allows few calls (25 a day, and a handful a minute): calls
//! are spaced, and Alpha Vantage's own limit answer (HTTP 200 with a
//! `Note` or `Information`) waits and is retried a few times.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeZone};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::config::parse_duration;
use wizdata_common::interval::{self, code};
use wizdata_common::time::timestamp_from_ns;

use crate::rest::Rest;
use crate::stats::{FeedStats, MessageKind};
use crate::symbols::SymbolMap;
use crate::{FeedError, Publisher, SessionConfig};

pub const PROVIDER: &str = "alphavantage";
/// A limit answer is waited out and retried this many times per call.
const LIMIT_RETRIES: u32 = 3;
/// How long a limit answer is waited out (Alpha Vantage gives no time).
const LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug, Clone)]
pub struct AlphaVantageConfig {
    #[arg(
        long = "alphavantage-url",
        id = "alphavantage-url",
        env = "WIZDATA_ALPHAVANTAGE_URL",
        default_value = "https://www.alphavantage.co"
    )]
    pub url: String,

    /// The API key (a secret; required to run this feed).
    #[arg(
        long = "alphavantage-api-key",
        id = "alphavantage-api-key",
        env = "WIZDATA_ALPHAVANTAGE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<SecretString>,

    /// Registry symbols to import, each REGISTRY or REGISTRY=ALPHAVANTAGE.
    #[arg(
        long = "alphavantage-symbols",
        id = "alphavantage-symbols",
        env = "WIZDATA_ALPHAVANTAGE_SYMBOLS",
        value_delimiter = ',',
        default_value = "AAPL,MSFT"
    )]
    pub symbols: Vec<String>,

    /// Bar width: 1d (TIME_SERIES_DAILY), or 1m, 5m, 15m, 1h (TIME_SERIES_INTRADAY).
    #[arg(long = "alphavantage-interval", id = "alphavantage-interval", env = "WIZDATA_ALPHAVANTAGE_INTERVAL", default_value = "1d", value_parser = parse_interval)]
    pub interval: Interval,

    /// Time between two calls: the free tier allows a handful a minute.
    #[arg(long = "alphavantage-spacing", id = "alphavantage-spacing", env = "WIZDATA_ALPHAVANTAGE_SPACING", default_value = "15s", value_parser = parse_duration)]
    pub spacing: Duration,

    /// Every symbol is imported again after this long.
    #[arg(long = "alphavantage-refresh", id = "alphavantage-refresh", env = "WIZDATA_ALPHAVANTAGE_REFRESH", default_value = "24h", value_parser = parse_duration)]
    pub refresh: Duration,
}

fn parse_interval(text: &str) -> Result<Interval, String> {
    interval::parse(text).ok_or_else(|| format!("{text:?}: expected 1m, 5m, 15m, 1h or 1d"))
}

/// The call for `interval`: its function, the intraday interval parameter,
/// and the key of the series in the answer.
fn series_call(interval: Interval) -> (&'static str, Option<&'static str>, &'static str) {
    match interval {
        Interval::OneMinute => ("TIME_SERIES_INTRADAY", Some("1min"), "Time Series (1min)"),
        Interval::FiveMinutes => ("TIME_SERIES_INTRADAY", Some("5min"), "Time Series (5min)"),
        Interval::FifteenMinutes => ("TIME_SERIES_INTRADAY", Some("15min"), "Time Series (15min)"),
        Interval::OneHour => ("TIME_SERIES_INTRADAY", Some("60min"), "Time Series (60min)"),
        _ => ("TIME_SERIES_DAILY", None, "Time Series (Daily)"),
    }
}

/// US Eastern wall time (the intraday series' zone) as UTC seconds: EST is
/// UTC-5, and EDT (UTC-4) runs from the second Sunday of March to the first
/// Sunday of November, 2:00 local, as US law has had it since 2007.
pub fn us_eastern_to_utc(local: NaiveDateTime) -> i64 {
    let nth_sunday = |month: u32, nth: u32| {
        let first = NaiveDate::from_ymd_opt(local.year(), month, 1).expect("a valid month");
        let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
        first + chrono::Days::new(u64::from(to_sunday + 7 * (nth - 1)))
    };
    let daylight_from = nth_sunday(3, 2).and_hms_opt(2, 0, 0).expect("2:00 exists");
    let daylight_to = nth_sunday(11, 1).and_hms_opt(2, 0, 0).expect("2:00 exists");
    let offset_hours = if local >= daylight_from && local < daylight_to { 4 } else { 5 };
    chrono::Utc.from_utc_datetime(&local).timestamp() + offset_hours * 3600
}

/// The candles of an answer, oldest first. An error or limit answer is
/// typed: a rejected key is [`FeedError::Unauthorized`], a limit
/// [`FeedError::RateLimited`], anything else [`FeedError::Protocol`].
pub fn parse_series(json: &Value, interval: Interval) -> Result<Vec<Candle>, FeedError> {
    if let Some(message) = json.get("Error Message").and_then(Value::as_str) {
        return Err(if message.contains("apikey") {
            FeedError::Unauthorized(message.to_owned())
        } else {
            FeedError::Http { status: 200, message: message.to_owned() }
        });
    }
    for field in ["Note", "Information"] {
        if let Some(message) = json.get(field).and_then(Value::as_str) {
            return Err(if message.contains("rate limit") || message.contains("call frequency") {
                FeedError::RateLimited(LIMIT_WAIT)
            } else {
                FeedError::Unauthorized(message.to_owned())
            });
        }
    }
    let (_, _, key) = series_call(interval);
    let series = json
        .get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| FeedError::Protocol(format!("no {key:?} in the answer")))?;
    let mut candles = Vec::with_capacity(series.len());
    for (time, bar) in series {
        let bad = |why: &str| FeedError::Protocol(format!("{time}: {why}"));
        let open_time = if interval == Interval::OneDay {
            let date = NaiveDate::parse_from_str(time, "%Y-%m-%d").map_err(|_| bad("not a date"))?;
            date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp()
        } else {
            let local = NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").map_err(|_| bad("not a time"))?;
            us_eastern_to_utc(local)
        };
        let mut values = [0.0; 5];
        for (value, field) in values.iter_mut().zip(["1. open", "2. high", "3. low", "4. close", "5. volume"]) {
            *value = bar
                .get(field)
                .and_then(Value::as_str)
                .and_then(|text| text.parse::<f64>().ok())
                .filter(|value| value.is_finite())
                .ok_or_else(|| bad(&format!("{field} is not a number")))?;
        }
        let [open, high, low, close, volume] = values;
        let open_time = Some(timestamp_from_ns(open_time * 1_000_000_000));
        candles.push(Candle { open_time, open, high, low, close, volume, ..Default::default() });
    }
    candles.sort_by_key(|candle| candle.open_time.map(|time| time.seconds));
    Ok(candles)
}

/// Runs the Alpha Vantage importer into the mesh behind `channel` until
/// `stop`, or until Alpha Vantage rejects the key.
pub async fn run(
    config: AlphaVantageConfig,
    session: SessionConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let symbols = SymbolMap::parse(&config.symbols, str::to_owned)
        .map_err(|why| anyhow::anyhow!("--alphavantage-symbols: {why}"))?;
    let Some(key) = config.api_key.clone() else {
        anyhow::bail!("the Alpha Vantage feed needs its API key: set WIZDATA_ALPHAVANTAGE_API_KEY");
    };
    let rest = Rest::new(&config.url, session.request_timeout)?;
    let stats = FeedStats::new(PROVIDER);
    crate::publish_until(PROVIDER, channel, stop, |publisher| async move {
        loop {
            for (index, (symbol, name)) in symbols.pairs().enumerate() {
                if index > 0 {
                    tokio::time::sleep(config.spacing).await;
                }
                match import(&config, &key, &rest, &publisher, symbol, name).await {
                    Ok(imported) => {
                        stats.connected(true);
                        stats.message(MessageKind::Control);
                        tracing::info!(provider = PROVIDER, %symbol, imported, interval = code(config.interval), "history imported");
                    }
                    Err(error) if error.is_fatal() => return Err(anyhow::anyhow!("{PROVIDER}: {error}")),
                    Err(error) => {
                        stats.message(MessageKind::Error);
                        tracing::warn!(provider = PROVIDER, %symbol, %error, "cannot import history");
                    }
                }
            }
            tokio::time::sleep(config.refresh).await;
        }
    })
    .await
}

async fn import(
    config: &AlphaVantageConfig,
    key: &SecretString,
    rest: &Rest,
    publisher: &Publisher,
    symbol: &str,
    name: &str,
) -> Result<u64, FeedError> {
    let (function, intraday, _) = series_call(config.interval);
    let mut path = format!("/query?function={function}&symbol={name}&outputsize=compact");
    if let Some(width) = intraday {
        path.push_str(&format!("&interval={width}"));
    }
    path.push_str(&format!("&apikey={}", key.expose_secret()));
    let mut limited = 0;
    let candles = loop {
        let answer = rest.get_json(&path).await.and_then(|json| parse_series(&json, config.interval));
        match answer {
            Err(FeedError::RateLimited(wait)) if limited < LIMIT_RETRIES => {
                limited += 1;
                tracing::warn!(provider = PROVIDER, %symbol, ?wait, "at Alpha Vantage's request limit; waiting");
                tokio::time::sleep(wait.min(config.refresh)).await;
            }
            other => break other?,
        }
    };
    if candles.is_empty() {
        return Ok(0);
    }
    Ok(publisher.import(symbol, config.interval, candles).await?.imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn eastern_time_is_five_hours_behind_in_winter_and_four_in_summer() {
        let utc = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp();
        assert_eq!(us_eastern_to_utc(local("2024-01-15 09:30:00")), utc("2024-01-15T14:30:00Z"));
        assert_eq!(us_eastern_to_utc(local("2024-07-15 09:30:00")), utc("2024-07-15T13:30:00Z"));
        // 2024: daylight time from Sunday 10 March to Sunday 3 November.
        assert_eq!(us_eastern_to_utc(local("2024-03-10 01:59:00")), utc("2024-03-10T06:59:00Z"));
        assert_eq!(us_eastern_to_utc(local("2024-03-10 03:00:00")), utc("2024-03-10T07:00:00Z"));
        assert_eq!(us_eastern_to_utc(local("2024-11-03 02:00:00")), utc("2024-11-03T07:00:00Z"));
        assert_eq!(chrono::Weekday::Sun, NaiveDate::from_ymd_opt(2024, 3, 10).unwrap().weekday());
    }

    #[test]
    fn answers_become_candles_or_typed_errors() {
        let daily: Value = serde_json::from_str(
            r#"{"Meta Data":{"2. Symbol":"IBM"},"Time Series (Daily)":{"2024-03-22":{"1. open":"192.0000","2. high":"192.9850","3. low":"190.5100","4. close":"191.0200","5. volume":"3988961"},"2024-03-21":{"1. open":"193.0000","2. high":"193.9800","3. low":"191.3100","4. close":"193.9600","5. volume":"3410234"}}}"#,
        )
        .unwrap();
        let candles = parse_series(&daily, Interval::OneDay).unwrap();
        assert_eq!(
            candles.iter().map(|c| c.open_time.unwrap().seconds).collect::<Vec<_>>(),
            [1_710_979_200, 1_711_065_600]
        );
        assert_eq!(
            (candles[1].open, candles[1].high, candles[1].low, candles[1].close, candles[1].volume),
            (192.0, 192.985, 190.51, 191.02, 3_988_961.0)
        );

        let key = serde_json::json!({"Error Message": "the parameter apikey is invalid or missing. Please claim your free API key."});
        assert!(matches!(parse_series(&key, Interval::OneDay), Err(FeedError::Unauthorized(_))));
        let symbol = serde_json::json!({"Error Message": "Invalid API call. Please retry or visit the documentation for TIME_SERIES_DAILY."});
        assert!(matches!(parse_series(&symbol, Interval::OneDay), Err(FeedError::Http { .. })));
        let limit = serde_json::json!({"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day."});
        assert!(matches!(parse_series(&limit, Interval::OneDay), Err(FeedError::RateLimited(_))));
        let bad = serde_json::json!({"Time Series (Daily)": {"2024-03-22": {"1. open": "x"}}});
        assert!(parse_series(&bad, Interval::OneDay).unwrap_err().to_string().contains("2024-03-22"));
    }
}

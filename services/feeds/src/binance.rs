//! Binance spot (<https://developers.binance.com/docs/binance-spot-api-docs>):
//! live trades and best bid/ask from the WebSocket combined stream
//! (`<symbol>@trade`, `<symbol>@bookTicker`), history from REST
//! `/api/v3/klines`, both at start (backfill) and for the bars a reconnect
//! missed. Binance pings every 20 s and ends a connection at 24 h: pings are
//! answered at once, silence past the stall deadline is a dead connection,
//! and the feed reconnects on its own before the 24-hour cut.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use wizdata::marketdata::v1::{BidAsk, Tick, Trade, tick};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::config::parse_duration;
use wizdata_common::interval::{INTERVALS, code, width_seconds};
use wizdata_common::time::{NANOS_PER_SECOND, now_ns, timestamp_from_ns};

use crate::backoff::Backoff;
use crate::parse::{Skipped, number, registry_symbol, skipped};
use crate::rest::Rest;
use crate::stats::{FeedStats, MessageKind};
use crate::symbols::SymbolMap;
use crate::{FeedError, Publisher, SessionConfig, ws};

pub const PROVIDER: &str = "binance";
/// Most klines one REST call returns.
const KLINES_PER_CALL: usize = 1000;
const NANOS_PER_MILLI: i64 = 1_000_000;

#[derive(clap::Args, Debug, Clone)]
pub struct BinanceConfig {
    /// The combined-stream WebSocket endpoint.
    #[arg(
        long = "binance-ws-url",
        id = "binance-ws-url",
        env = "WIZDATA_BINANCE_WS_URL",
        default_value = "wss://stream.binance.com:9443/stream"
    )]
    pub ws_url: String,

    /// The REST API's base URL (klines).
    #[arg(
        long = "binance-rest-url",
        id = "binance-rest-url",
        env = "WIZDATA_BINANCE_REST_URL",
        default_value = "https://api.binance.com"
    )]
    pub rest_url: String,

    /// Registry symbols to carry, each REGISTRY or REGISTRY=BINANCE (a bare
    /// BTC/USDT is Binance's BTCUSDT).
    #[arg(
        long = "binance-symbols",
        id = "binance-symbols",
        env = "WIZDATA_BINANCE_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC/USDT,ETH/USDT"
    )]
    pub symbols: Vec<String>,

    /// History imported from klines at start, at every interval (0s: none).
    #[arg(long = "binance-backfill", id = "binance-backfill", env = "WIZDATA_BINANCE_BACKFILL", default_value = "1d", value_parser = parse_duration)]
    pub backfill: Duration,

    /// A connection is renewed after this long: Binance cuts each at 24 h.
    #[arg(long = "binance-max-connection-age", id = "binance-max-connection-age",
        env = "WIZDATA_BINANCE_MAX_CONNECTION_AGE",
        default_value = "23h30m",
        value_parser = parse_duration
    )]
    pub max_connection_age: Duration,
}

/// Binance's spelling of a registry symbol: BTC/USDT is BTCUSDT.
fn spell(symbol: &str) -> String {
    symbol.replace(['/', '-'], "").to_uppercase()
}

/// What one frame of the combined stream is.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Trade {
        tick: Tick,
        event_ns: i64,
    },
    Quote(Tick),
    /// The answer to our SUBSCRIBE.
    Subscribed,
    /// Binance refused the subscription.
    Refused(String),
}

#[derive(Deserialize)]
struct TradeData {
    #[serde(rename = "s")]
    symbol: String,
    #[serde(rename = "t")]
    trade_id: u64,
    #[serde(rename = "p")]
    price: String,
    #[serde(rename = "q")]
    quantity: String,
    #[serde(rename = "T")]
    trade_time_ms: i64,
}

#[derive(Deserialize)]
struct BookTickerData {
    #[serde(rename = "s")]
    symbol: String,
    #[serde(rename = "b")]
    bid: String,
    #[serde(rename = "B")]
    bid_quantity: String,
    #[serde(rename = "a")]
    ask: String,
    #[serde(rename = "A")]
    ask_quantity: String,
}

/// Reads one frame of the combined stream. `received_ns` stamps a
/// bookTicker, which carries no time of its own.
pub fn parse(text: &str, symbols: &SymbolMap, received_ns: i64) -> Result<Frame, Skipped> {
    let json: Value =
        serde_json::from_str(text).map_err(|error| skipped(MessageKind::Malformed, format!("not JSON: {error}")))?;
    if let Some(error) = json.get("error").or_else(|| json.get("code").map(|_| &json)) {
        let message = error.get("msg").and_then(Value::as_str).unwrap_or("no message");
        return Ok(Frame::Refused(format!("code {}: {message}", error.get("code").unwrap_or(&Value::Null))));
    }
    if json.get("id").is_some() && json.get("result").is_some() {
        return Ok(Frame::Subscribed);
    }
    let (Some(stream), Some(data)) = (json.get("stream").and_then(Value::as_str), json.get("data")) else {
        return Err(skipped(MessageKind::Unknown, "neither stream data nor an answer"));
    };
    let malformed = |error: serde_json::Error| skipped(MessageKind::Malformed, format!("{stream}: {error}"));
    if stream.ends_with("@trade") {
        let trade = TradeData::deserialize(data).map_err(malformed)?;
        let symbol = registry_symbol(symbols, &trade.symbol)?;
        let price = number("p", &trade.price)?;
        let size = number("q", &trade.quantity)?;
        let event_ns = trade.trade_time_ms.saturating_mul(NANOS_PER_MILLI);
        let trade = Trade { price, size, source: PROVIDER.into(), trade_id: trade.trade_id.to_string() };
        let tick = Tick { symbol, time: Some(timestamp_from_ns(event_ns)), kind: Some(tick::Kind::Trade(trade)) };
        Ok(Frame::Trade { tick, event_ns })
    } else if stream.ends_with("@bookTicker") {
        let book = BookTickerData::deserialize(data).map_err(malformed)?;
        let symbol = registry_symbol(symbols, &book.symbol)?;
        let bid_ask = BidAsk {
            bid: number("b", &book.bid)?,
            bid_size: number("B", &book.bid_quantity)?,
            ask: number("a", &book.ask)?,
            ask_size: number("A", &book.ask_quantity)?,
        };
        let time = Some(timestamp_from_ns(received_ns));
        Ok(Frame::Quote(Tick { symbol, time, kind: Some(tick::Kind::BidAsk(bid_ask)) }))
    } else {
        Err(skipped(MessageKind::Unknown, format!("stream {stream:?}")))
    }
}

/// Klines (`[open ms, "open", "high", "low", "close", "volume", ...]`) as
/// candles.
pub fn parse_klines(json: &Value) -> Result<Vec<Candle>, FeedError> {
    let rows = json.as_array().ok_or_else(|| FeedError::Protocol("klines: expected an array".into()))?;
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let bad = |why: &str| FeedError::Protocol(format!("klines[{index}]: {why}"));
            let row =
                row.as_array().filter(|row| row.len() >= 6).ok_or_else(|| bad("expected an array of 6 or more"))?;
            let open_ms = row[0].as_i64().ok_or_else(|| bad("open time is not an integer"))?;
            let mut values = [0.0; 5];
            for (value, field) in values.iter_mut().zip(&row[1..6]) {
                *value = field
                    .as_str()
                    .and_then(|text| text.parse::<f64>().ok())
                    .filter(|value| value.is_finite())
                    .ok_or_else(|| bad("a price or volume is not a number"))?;
            }
            let [open, high, low, close, volume] = values;
            let open_time = Some(timestamp_from_ns(open_ms.saturating_mul(NANOS_PER_MILLI)));
            Ok(Candle { open_time, open, high, low, close, volume, ..Default::default() })
        })
        .collect()
}

/// Runs the Binance feed into the mesh behind `channel` until `stop`.
pub async fn run(
    config: BinanceConfig,
    session: SessionConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut feed = Binance::new(config, session)?;
    crate::publish_until(PROVIDER, channel, stop, |publisher| async move { feed.run(&publisher).await }).await
}

pub struct Binance {
    config: BinanceConfig,
    session: SessionConfig,
    symbols: SymbolMap,
    rest: Rest,
    stats: FeedStats,
    /// The newest trade time received: after a reconnect, the bars from
    /// there on are refilled from klines.
    last_trade_ns: Option<i64>,
}

impl Binance {
    pub fn new(config: BinanceConfig, session: SessionConfig) -> anyhow::Result<Self> {
        let symbols =
            SymbolMap::parse(&config.symbols, spell).map_err(|why| anyhow::anyhow!("--binance-symbols: {why}"))?;
        let rest = Rest::new(&config.rest_url, session.request_timeout)?;
        Ok(Self { config, session, symbols, rest, stats: FeedStats::new(PROVIDER), last_trade_ns: None })
    }

    /// Backfills, then streams until a fatal error (credentials) or forever.
    pub async fn run(&mut self, publisher: &Publisher) -> anyhow::Result<()> {
        if !self.config.backfill.is_zero() {
            let now = now_ns();
            let from = now.saturating_sub(i64::try_from(self.config.backfill.as_nanos()).unwrap_or(i64::MAX));
            self.import_closed_bars(publisher, from, now).await;
        }
        let session = self.session.clone();
        crate::keep_connected(self, publisher, &session).await
    }
}

impl crate::Live for Binance {
    const PROVIDER: &'static str = PROVIDER;

    fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// One connection: subscribe, fill the gap since the last one, then
    /// stream until it fails (always with the reason).
    async fn session(&mut self, publisher: &Publisher, backoff: &mut Backoff) -> FeedError {
        let mut socket = match ws::connect(&self.config.ws_url, self.session.connect_timeout).await {
            Ok(socket) => socket,
            Err(error) => return error,
        };
        let params: Vec<String> = self
            .symbols
            .pairs()
            .flat_map(|(_, name)| {
                let name = name.to_lowercase();
                [format!("{name}@trade"), format!("{name}@bookTicker")]
            })
            .collect();
        let subscribe = serde_json::json!({ "method": "SUBSCRIBE", "params": params, "id": 1 });
        if let Err(error) = ws::send_text(&mut socket, subscribe.to_string()).await {
            return error;
        }
        let opened = Instant::now();
        let mut subscribed = false;
        loop {
            let age = opened.elapsed();
            if age >= self.config.max_connection_age {
                return FeedError::Aged(self.config.max_connection_age);
            }
            let wait = self.session.stall_timeout.min(self.config.max_connection_age - age);
            let text = match ws::next_text(&mut socket, wait).await {
                Ok(text) => text,
                Err(FeedError::Stalled(_)) if opened.elapsed() >= self.config.max_connection_age => continue,
                Err(error) => return error,
            };
            match parse(&text, &self.symbols, now_ns()) {
                Ok(Frame::Trade { tick, event_ns }) => {
                    self.stats.message(MessageKind::Trade);
                    self.stats.lag(event_ns);
                    self.last_trade_ns = Some(self.last_trade_ns.map_or(event_ns, |last| last.max(event_ns)));
                    publisher.tick(tick).await;
                }
                Ok(Frame::Quote(tick)) => {
                    self.stats.message(MessageKind::Quote);
                    publisher.tick(tick).await;
                }
                Ok(Frame::Subscribed) => {
                    self.stats.message(MessageKind::Control);
                    if !subscribed {
                        subscribed = true;
                        self.stats.connected(true);
                        backoff.reset();
                        tracing::info!(provider = PROVIDER, symbols = params.len() / 2, "subscribed");
                        if let Some(from) = self.last_trade_ns {
                            // Trades still queued from before the cut land
                            // first, so the refilled bars replace them.
                            publisher.flush().await;
                            self.import_closed_bars(publisher, from, now_ns()).await;
                        }
                    }
                }
                Ok(Frame::Refused(why)) => {
                    self.stats.message(MessageKind::Error);
                    return FeedError::Subscription(why);
                }
                Err(skipped) => {
                    self.stats.skipped(&skipped);
                }
            }
        }
    }
}

impl Binance {
    /// Imports, at every interval, the bars that opened at or after `from`'s
    /// bar and closed by `to` (ns). A failure is logged: the live stream
    /// carries on without that history.
    async fn import_closed_bars(&self, publisher: &Publisher, from: i64, to: i64) {
        for (symbol, name) in self.symbols.pairs() {
            for interval in INTERVALS {
                let width_ns = width_seconds(interval).expect("intervals have widths") * NANOS_PER_SECOND;
                let start = from.div_euclid(width_ns) * width_ns;
                let end = to.div_euclid(width_ns) * width_ns;
                if start >= end {
                    continue;
                }
                let result = match self.klines(name, interval, start, end).await {
                    Ok(candles) if candles.is_empty() => continue,
                    Ok(candles) => publisher.import(symbol, interval, candles).await.map(|_| ()),
                    Err(error) => Err(error),
                };
                if let Err(error) = result {
                    tracing::warn!(provider = PROVIDER, %symbol, interval = code(interval), %error, "cannot import history");
                }
            }
        }
    }

    /// Klines of `name` opening in `[start, end)` (ns), page by page; waits
    /// out a rate limit (429 with Retry-After) up to three times.
    async fn klines(&self, name: &str, interval: Interval, start: i64, end: i64) -> Result<Vec<Candle>, FeedError> {
        let mut candles = Vec::new();
        let mut from_ms = start / NANOS_PER_MILLI;
        let end_ms = end / NANOS_PER_MILLI - 1;
        let mut rate_limited = 0;
        while from_ms <= end_ms {
            let path = format!(
                "/api/v3/klines?symbol={name}&interval={}&startTime={from_ms}&endTime={end_ms}&limit={KLINES_PER_CALL}",
                code(interval)
            );
            let page = match self.rest.get_json(&path).await {
                Ok(json) => parse_klines(&json)?,
                Err(FeedError::RateLimited(wait)) if rate_limited < 3 => {
                    rate_limited += 1;
                    tracing::warn!(provider = PROVIDER, ?wait, "klines rate limited; waiting");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let full = page.len() == KLINES_PER_CALL;
            let Some(last) = page.last().and_then(|candle| candle.open_time) else { break };
            from_ms = last.seconds * 1000 + width_seconds(interval).unwrap_or(60) * 1000;
            candles.extend(page);
            if !full {
                break;
            }
        }
        Ok(candles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> SymbolMap {
        SymbolMap::parse(&["BTC/USDT".into(), "BNB/BTC=BNBBTC".into()], spell).unwrap()
    }

    /// The trade frame of Binance's documentation, in a combined stream.
    const TRADE: &str = r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#;

    #[test]
    fn a_trade_becomes_a_tick_with_binances_trade_id() {
        let Ok(Frame::Trade { tick, event_ns }) = parse(TRADE, &symbols(), 0) else { panic!() };
        assert_eq!(event_ns, 1_672_515_782_136 * NANOS_PER_MILLI);
        assert_eq!(tick.symbol, "BNB/BTC");
        let Some(tick::Kind::Trade(trade)) = tick.kind else { panic!() };
        assert_eq!(
            (trade.price, trade.size, trade.source.as_str(), trade.trade_id.as_str()),
            (0.001, 100.0, "binance", "12345")
        );
    }

    #[test]
    fn a_book_ticker_becomes_a_bid_ask_stamped_on_receipt() {
        let frame = r#"{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
        let Ok(Frame::Quote(tick)) = parse(frame, &symbols(), 5_000_000_000) else { panic!() };
        assert_eq!((tick.symbol.as_str(), tick.time.unwrap().seconds), ("BTC/USDT", 5));
        let Some(tick::Kind::BidAsk(book)) = tick.kind else { panic!() };
        assert_eq!((book.bid, book.bid_size, book.ask, book.ask_size), (25.3519, 31.21, 25.3652, 40.66));
    }

    #[test]
    fn answers_and_refusals_are_told_apart() {
        assert_eq!(parse(r#"{"result":null,"id":1}"#, &symbols(), 0), Ok(Frame::Subscribed));
        let refused = parse(r#"{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":1}"#, &symbols(), 0);
        assert_eq!(refused, Ok(Frame::Refused("code 2: Invalid request: unknown stream".into())));
        let old_style = parse(r#"{"code":-1121,"msg":"Invalid symbol.","id":1}"#, &symbols(), 0);
        assert_eq!(old_style, Ok(Frame::Refused("code -1121: Invalid symbol.".into())));
    }

    #[test]
    fn bad_frames_are_skipped_with_their_kind() {
        let kind = |text: &str| parse(text, &symbols(), 0).unwrap_err().kind;
        assert_eq!(kind("not json"), MessageKind::Malformed);
        assert_eq!(kind(&TRADE.replace(r#""p":"0.001""#, r#""p":"abc""#)), MessageKind::Malformed);
        assert_eq!(
            kind(&TRADE.replace(r#""p":"0.001""#, r#""p":0.001"#)),
            MessageKind::Malformed,
            "a number, not a string"
        );
        assert_eq!(kind(&TRADE.replace(r#""t":12345,"#, "")), MessageKind::Malformed, "no trade id");
        assert_eq!(kind(&TRADE.replace("BNBBTC", "DOGEBTC")), MessageKind::Unmapped);
        assert_eq!(kind(&TRADE.replace("@trade", "@kline_1m")), MessageKind::Unknown);
        assert_eq!(kind(r#"{"hello":"there"}"#), MessageKind::Unknown);
    }

    #[test]
    fn klines_become_candles_and_bad_rows_are_named() {
        let json: Value = serde_json::from_str(
            r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#,
        )
        .unwrap();
        let candles = parse_klines(&json).unwrap();
        assert_eq!(candles.len(), 1);
        assert_eq!(candles[0].open_time.unwrap().seconds, 1_499_040_000);
        assert_eq!(
            (candles[0].open, candles[0].high, candles[0].low, candles[0].close),
            (0.0163479, 0.8, 0.015758, 0.015771)
        );
        assert_eq!(candles[0].volume, 148_976.114_278_15);
        let bad: Value = serde_json::from_str(r#"[[1499040000000,"x","1","1","1","1"]]"#).unwrap();
        assert!(parse_klines(&bad).unwrap_err().to_string().contains("klines[0]"));
    }
}

//! Kraken (<https://docs.kraken.com/api/docs/websocket-v2/trade>): trades
//! and best bid/ask from the WebSocket v2 `trade` and `ticker` channels.
//! Kraken sends a heartbeat every second while subscribed, so silence past
//! the stall deadline is a dead connection; a pair Kraken refuses is logged
//! and counted while the others stream on. Kraken's trade ids are its own
//! per pair, so a reconnect's replay counts once.

use serde::Deserialize;
use serde_json::Value;
use wizdata::marketdata::v1::{BidAsk, Tick, Trade, tick};
use wizdata_common::time::{now_ns, timestamp_from_ns};

use crate::backoff::Backoff;
use crate::parse::{Skipped, registry_symbol, rfc3339_ns, skipped};
use crate::stats::{FeedStats, MessageKind};
use crate::symbols::SymbolMap;
use crate::{FeedError, Publisher, SessionConfig, ws};

pub const PROVIDER: &str = "kraken";

#[derive(clap::Args, Debug, Clone)]
pub struct KrakenConfig {
    /// The WebSocket v2 endpoint.
    #[arg(
        long = "kraken-ws-url",
        id = "kraken-ws-url",
        env = "WIZDATA_KRAKEN_WS_URL",
        default_value = "wss://ws.kraken.com/v2"
    )]
    pub ws_url: String,

    /// Registry symbols to carry, each REGISTRY or REGISTRY=PAIR (a bare
    /// BTC/USDT is Kraken's BTC/USDT).
    #[arg(
        long = "kraken-symbols",
        id = "kraken-symbols",
        env = "WIZDATA_KRAKEN_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC/USDT,ETH/USDT"
    )]
    pub symbols: Vec<String>,
}

/// Kraken's v2 spelling of a registry symbol: the same, BASE/QUOTE.
fn spell(symbol: &str) -> String {
    symbol.to_uppercase()
}

/// What one message is. A trade or ticker message carries a list of data.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Ticks {
        trades: Vec<(Tick, i64)>,
        quotes: Vec<Tick>,
        skipped: Vec<Skipped>,
    },
    Subscribed(String),
    /// Kraken refused one subscription (a pair, say); the rest go on.
    Refused(String),
    /// Heartbeats, status and pongs.
    Control,
}

#[derive(Deserialize)]
struct TradeData {
    symbol: String,
    price: f64,
    qty: f64,
    trade_id: u64,
    timestamp: String,
}

#[derive(Deserialize)]
struct TickerData {
    symbol: String,
    bid: f64,
    bid_qty: f64,
    ask: f64,
    ask_qty: f64,
}

fn trade(data: &Value, symbols: &SymbolMap) -> Result<(Tick, i64), Skipped> {
    let trade =
        TradeData::deserialize(data).map_err(|error| skipped(MessageKind::Malformed, format!("trade: {error}")))?;
    let symbol = registry_symbol(symbols, &trade.symbol)?;
    let event_ns = rfc3339_ns("timestamp", &trade.timestamp)?;
    let kind = tick::Kind::Trade(Trade {
        price: trade.price,
        size: trade.qty,
        source: PROVIDER.into(),
        trade_id: trade.trade_id.to_string(),
    });
    Ok((Tick { symbol, time: Some(timestamp_from_ns(event_ns)), kind: Some(kind) }, event_ns))
}

fn ticker(data: &Value, symbols: &SymbolMap, received_ns: i64) -> Result<Tick, Skipped> {
    let ticker =
        TickerData::deserialize(data).map_err(|error| skipped(MessageKind::Malformed, format!("ticker: {error}")))?;
    let symbol = registry_symbol(symbols, &ticker.symbol)?;
    let book = BidAsk { bid: ticker.bid, bid_size: ticker.bid_qty, ask: ticker.ask, ask_size: ticker.ask_qty };
    // Kraken's ticker carries no time of its own.
    Ok(Tick { symbol, time: Some(timestamp_from_ns(received_ns)), kind: Some(tick::Kind::BidAsk(book)) })
}

/// Reads one message. Each item of a trade or ticker list stands alone: a
/// bad one is skipped, the others kept.
pub fn parse(text: &str, symbols: &SymbolMap, received_ns: i64) -> Result<Frame, Skipped> {
    let json: Value =
        serde_json::from_str(text).map_err(|error| skipped(MessageKind::Malformed, format!("not JSON: {error}")))?;
    if let Some(method) = json.get("method").and_then(Value::as_str) {
        return match (method, json.get("success").and_then(Value::as_bool)) {
            ("subscribe", Some(true)) => {
                let channel = json.pointer("/result/channel").and_then(Value::as_str).unwrap_or("?");
                let symbol = json.pointer("/result/symbol").and_then(Value::as_str).unwrap_or("?");
                Ok(Frame::Subscribed(format!("{channel} {symbol}")))
            }
            ("subscribe", _) => {
                let error = json.get("error").and_then(Value::as_str).unwrap_or("no reason given");
                let symbol = json.get("symbol").and_then(Value::as_str).unwrap_or("?");
                Ok(Frame::Refused(format!("{symbol}: {error}")))
            }
            ("pong", _) => Ok(Frame::Control),
            (other, _) => Err(skipped(MessageKind::Unknown, format!("method {other:?}"))),
        };
    }
    let channel = json.get("channel").and_then(Value::as_str).unwrap_or_default();
    match channel {
        "heartbeat" | "status" => Ok(Frame::Control),
        "trade" | "ticker" => {
            let Some(items) = json.get("data").and_then(Value::as_array) else {
                return Err(skipped(MessageKind::Malformed, format!("{channel}: no data list")));
            };
            let (mut trades, mut quotes, mut skipped_items) = (Vec::new(), Vec::new(), Vec::new());
            for item in items {
                let read = if channel == "trade" {
                    trade(item, symbols).map(|trade| trades.push(trade))
                } else {
                    ticker(item, symbols, received_ns).map(|quote| quotes.push(quote))
                };
                if let Err(skip) = read {
                    skipped_items.push(skip);
                }
            }
            Ok(Frame::Ticks { trades, quotes, skipped: skipped_items })
        }
        other => Err(skipped(MessageKind::Unknown, format!("channel {other:?}"))),
    }
}

/// Runs the Kraken feed into the mesh behind `channel` until `stop`.
pub async fn run(
    config: KrakenConfig,
    session: SessionConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut feed = Kraken::new(config, session)?;
    crate::publish_until(PROVIDER, channel, stop, |publisher| async move { feed.run(&publisher).await }).await
}

pub struct Kraken {
    config: KrakenConfig,
    session: SessionConfig,
    symbols: SymbolMap,
    stats: FeedStats,
}

impl Kraken {
    pub fn new(config: KrakenConfig, session: SessionConfig) -> anyhow::Result<Self> {
        let symbols =
            SymbolMap::parse(&config.symbols, spell).map_err(|why| anyhow::anyhow!("--kraken-symbols: {why}"))?;
        Ok(Self { config, session, symbols, stats: FeedStats::new(PROVIDER) })
    }

    pub async fn run(&mut self, publisher: &Publisher) -> anyhow::Result<()> {
        let session = self.session.clone();
        crate::keep_connected(self, publisher, &session).await
    }
}

impl crate::Live for Kraken {
    const PROVIDER: &'static str = PROVIDER;

    fn stats(&self) -> &FeedStats {
        &self.stats
    }

    async fn session(&mut self, publisher: &Publisher, backoff: &mut Backoff) -> FeedError {
        let mut socket = match ws::connect(&self.config.ws_url, self.session.connect_timeout).await {
            Ok(socket) => socket,
            Err(error) => return error,
        };
        let pairs: Vec<&str> = self.symbols.pairs().map(|(_, pair)| pair).collect();
        for (req_id, channel) in [(1, "trade"), (2, "ticker")] {
            let mut params = serde_json::json!({ "channel": channel, "symbol": pairs });
            if channel == "trade" {
                // Only trades from now on: a snapshot repeats the last 50.
                params["snapshot"] = false.into();
            }
            let subscribe = serde_json::json!({ "method": "subscribe", "params": params, "req_id": req_id });
            if let Err(error) = ws::send_text(&mut socket, subscribe.to_string()).await {
                return error;
            }
        }
        loop {
            let text = match ws::next_text(&mut socket, self.session.stall_timeout).await {
                Ok(text) => text,
                Err(error) => return error,
            };
            match parse(&text, &self.symbols, now_ns()) {
                Ok(Frame::Ticks { trades, quotes, skipped }) => {
                    for skip in skipped {
                        self.stats.skipped(&skip);
                    }
                    for (tick, event_ns) in trades {
                        self.stats.message(MessageKind::Trade);
                        self.stats.lag(event_ns);
                        publisher.tick(tick).await;
                    }
                    for tick in quotes {
                        self.stats.message(MessageKind::Quote);
                        publisher.tick(tick).await;
                    }
                }
                Ok(Frame::Subscribed(what)) => {
                    self.stats.message(MessageKind::Control);
                    self.stats.connected(true);
                    backoff.reset();
                    tracing::info!(provider = PROVIDER, %what, "subscribed");
                }
                Ok(Frame::Refused(why)) => {
                    self.stats.message(MessageKind::Error);
                    tracing::warn!(provider = PROVIDER, %why, "subscription refused; the other pairs go on");
                }
                Ok(Frame::Control) => self.stats.message(MessageKind::Control),
                Err(skip) => {
                    self.stats.skipped(&skip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> SymbolMap {
        SymbolMap::parse(&["MATIC/USD".into(), "ALGO/USD".into()], spell).unwrap()
    }

    /// The trade update of Kraken's documentation.
    const TRADES: &str = r#"{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"},{"symbol":"MATIC/USD","side":"buy","price":0.5118,"qty":10.5,"ord_type":"limit","trade_id":4665907,"timestamp":"2023-09-25T07:49:38.000000Z"}]}"#;

    #[test]
    fn a_trade_update_becomes_ticks_with_krakens_trade_ids() {
        let Ok(Frame::Ticks { trades, quotes, skipped }) = parse(TRADES, &symbols(), 0) else { panic!() };
        assert!(quotes.is_empty() && skipped.is_empty());
        let ids: Vec<(String, f64, f64, i64)> = trades
            .iter()
            .map(|(tick, ns)| match &tick.kind {
                Some(tick::Kind::Trade(trade)) => (trade.trade_id.clone(), trade.price, trade.size, *ns),
                _ => panic!(),
            })
            .collect();
        assert_eq!(ids[0], ("4665906".into(), 0.5117, 40.0, 1_695_628_177_708_706_000));
        assert_eq!(ids[1].0, "4665907");
    }

    #[test]
    fn a_bad_item_is_skipped_and_the_rest_of_its_list_kept() {
        let mixed = TRADES.replace(r#""price":0.5118"#, r#""price":"abc""#);
        let Ok(Frame::Ticks { trades, skipped, .. }) = parse(&mixed, &symbols(), 0) else { panic!() };
        assert_eq!((trades.len(), skipped.len(), skipped[0].kind), (1, 1, MessageKind::Malformed));
        let unmapped = TRADES.replace("MATIC/USD", "DOGE/USD");
        let Ok(Frame::Ticks { skipped, .. }) = parse(&unmapped, &symbols(), 0) else { panic!() };
        assert!(skipped.iter().all(|skip| skip.kind == MessageKind::Unmapped));
    }

    #[test]
    fn tickers_answers_and_the_rest_are_told_apart() {
        let ticker = r#"{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}"#;
        let Ok(Frame::Ticks { quotes, .. }) = parse(ticker, &symbols(), 7_000_000_000) else { panic!() };
        assert_eq!(quotes[0].time.unwrap().seconds, 7, "stamped on receipt");
        let ack = r#"{"method":"subscribe","req_id":1,"result":{"channel":"trade","snapshot":false,"symbol":"MATIC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
        assert_eq!(parse(ack, &symbols(), 0), Ok(Frame::Subscribed("trade MATIC/USD".into())));
        let refused = r#"{"error":"Currency pair not supported","method":"subscribe","req_id":1,"success":false,"symbol":"BTC/ABC","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}"#;
        assert_eq!(parse(refused, &symbols(), 0), Ok(Frame::Refused("BTC/ABC: Currency pair not supported".into())));
        assert_eq!(parse(r#"{"channel":"heartbeat"}"#, &symbols(), 0), Ok(Frame::Control));
        assert_eq!(parse("[", &symbols(), 0).unwrap_err().kind, MessageKind::Malformed);
        assert_eq!(
            parse(r#"{"channel":"book","type":"update","data":[]}"#, &symbols(), 0).unwrap_err().kind,
            MessageKind::Unknown
        );
    }
}

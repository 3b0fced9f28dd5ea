//! Coinbase Exchange (<https://docs.cdp.coinbase.com/exchange/docs/websocket-overview>):
//! trades from the WebSocket feed's `matches` channel, best bid/ask from
//! `ticker`, liveness and the last trade id from `heartbeat`. Coinbase
//! numbers each product's messages (`sequence`) and its trades (`trade_id`,
//! consecutive): a message whose sequence is not newer than the last of its
//! channel is a duplicate or out of order and is skipped; a trade id that
//! jumps, or a heartbeat naming a newer trade than we saw (after a
//! reconnect, too), is a gap, filled from REST `/products/{id}/trades`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use wizdata::marketdata::v1::{BidAsk, Tick, Trade, tick};
use wizdata_common::time::{now_ns, timestamp_from_ns};

use crate::backoff::Backoff;
use crate::parse::{Skipped, number, registry_symbol, rfc3339_ns, skipped};
use crate::rest::Rest;
use crate::stats::{FeedStats, MessageKind};
use crate::symbols::SymbolMap;
use crate::{FeedError, Publisher, SessionConfig, ws};

pub const PROVIDER: &str = "coinbase";
/// Most trades one REST page returns.
const TRADES_PER_PAGE: usize = 1000;
/// A gap longer than this is reported, not filled: REST would take longer
/// than the stream gives it.
pub const MAX_GAP_FILL: u64 = 10_000;

#[derive(clap::Args, Debug, Clone)]
pub struct CoinbaseConfig {
    /// The WebSocket feed.
    #[arg(
        long = "coinbase-ws-url",
        id = "coinbase-ws-url",
        env = "WIZDATA_COINBASE_WS_URL",
        default_value = "wss://ws-feed.exchange.coinbase.com"
    )]
    pub ws_url: String,

    /// The REST API's base URL (trades, to fill gaps).
    #[arg(
        long = "coinbase-rest-url",
        id = "coinbase-rest-url",
        env = "WIZDATA_COINBASE_REST_URL",
        default_value = "https://api.exchange.coinbase.com"
    )]
    pub rest_url: String,

    /// Registry symbols to carry, each REGISTRY or REGISTRY=PRODUCT (a bare
    /// BTC/USDT is Coinbase's BTC-USDT).
    #[arg(
        long = "coinbase-symbols",
        id = "coinbase-symbols",
        env = "WIZDATA_COINBASE_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTC/USDT,ETH/USDT"
    )]
    pub symbols: Vec<String>,
}

/// Coinbase's spelling of a registry symbol: BTC/USDT is BTC-USDT.
fn spell(symbol: &str) -> String {
    symbol.replace('/', "-").to_uppercase()
}

/// One trade as Coinbase reports it, on the stream or over REST.
#[derive(Clone, Debug, PartialEq)]
pub struct Match {
    pub product: String,
    pub trade_id: u64,
    pub tick: Tick,
}

/// What one feed message is.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A `match`, or the `last_match` sent on subscribing.
    Match {
        sequence: u64,
        matched: Match,
    },
    Ticker {
        product: String,
        sequence: u64,
        tick: Tick,
    },
    Heartbeat {
        product: String,
        sequence: u64,
        last_trade_id: u64,
    },
    Subscribed,
    Refused(String),
}

#[derive(Deserialize)]
struct MatchData {
    product_id: String,
    trade_id: u64,
    sequence: u64,
    time: String,
    price: String,
    size: String,
}

#[derive(Deserialize)]
struct TickerData {
    product_id: String,
    sequence: u64,
    time: String,
    best_bid: String,
    best_bid_size: String,
    best_ask: String,
    best_ask_size: String,
}

#[derive(Deserialize)]
struct HeartbeatData {
    product_id: String,
    sequence: u64,
    last_trade_id: u64,
}

/// A REST trade: `{"time", "trade_id", "price", "size", "side"}`.
#[derive(Deserialize)]
struct RestTrade {
    trade_id: u64,
    time: String,
    price: String,
    size: String,
}

fn trade_tick(symbol: String, trade_id: u64, time: &str, price: &str, size: &str) -> Result<Tick, Skipped> {
    let trade = Trade {
        price: number("price", price)?,
        size: number("size", size)?,
        source: PROVIDER.into(),
        trade_id: trade_id.to_string(),
    };
    Ok(Tick { symbol, time: Some(timestamp_from_ns(rfc3339_ns("time", time)?)), kind: Some(tick::Kind::Trade(trade)) })
}

/// Reads one feed message.
pub fn parse(text: &str, symbols: &SymbolMap) -> Result<Frame, Skipped> {
    let json: Value =
        serde_json::from_str(text).map_err(|error| skipped(MessageKind::Malformed, format!("not JSON: {error}")))?;
    let Some(kind) = json.get("type").and_then(Value::as_str) else {
        return Err(skipped(MessageKind::Unknown, "no type"));
    };
    let malformed = |error: serde_json::Error| skipped(MessageKind::Malformed, format!("{kind}: {error}"));
    match kind {
        "match" | "last_match" => {
            let data = MatchData::deserialize(&json).map_err(malformed)?;
            let symbol = registry_symbol(symbols, &data.product_id)?;
            let tick = trade_tick(symbol, data.trade_id, &data.time, &data.price, &data.size)?;
            let matched = Match { product: data.product_id, trade_id: data.trade_id, tick };
            Ok(Frame::Match { sequence: data.sequence, matched })
        }
        "ticker" => {
            let data = TickerData::deserialize(&json).map_err(malformed)?;
            let symbol = registry_symbol(symbols, &data.product_id)?;
            let book = BidAsk {
                bid: number("best_bid", &data.best_bid)?,
                bid_size: number("best_bid_size", &data.best_bid_size)?,
                ask: number("best_ask", &data.best_ask)?,
                ask_size: number("best_ask_size", &data.best_ask_size)?,
            };
            let tick = Tick {
                symbol,
                time: Some(timestamp_from_ns(rfc3339_ns("time", &data.time)?)),
                kind: Some(tick::Kind::BidAsk(book)),
            };
            Ok(Frame::Ticker { product: data.product_id, sequence: data.sequence, tick })
        }
        "heartbeat" => {
            let data = HeartbeatData::deserialize(&json).map_err(malformed)?;
            registry_symbol(symbols, &data.product_id)?;
            Ok(Frame::Heartbeat {
                product: data.product_id,
                sequence: data.sequence,
                last_trade_id: data.last_trade_id,
            })
        }
        "subscriptions" => Ok(Frame::Subscribed),
        "error" => {
            let message = json.get("message").and_then(Value::as_str).unwrap_or("no message");
            let reason = json.get("reason").and_then(Value::as_str).unwrap_or("");
            Ok(Frame::Refused(format!("{message} {reason}").trim().to_owned()))
        }
        other => Err(skipped(MessageKind::Unknown, format!("type {other:?}"))),
    }
}

/// Where each product's numbering stands, kept across connections.
#[derive(Debug, Default)]
pub struct Sequencer {
    products: HashMap<String, Numbering>,
}

#[derive(Debug, Default)]
struct Numbering {
    last_match_sequence: u64,
    last_ticker_sequence: u64,
    last_trade_id: Option<u64>,
}

/// What to do with a numbered message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Publish it.
    Fresh,
    /// Not newer than the last of its channel: skip it.
    Stale,
    /// Fill the trades `first..=last` from REST first, then publish it.
    Gap { first: u64, last: u64 },
}

impl Sequencer {
    pub fn on_match(&mut self, product: &str, sequence: u64, trade_id: u64) -> Verdict {
        let numbering = self.products.entry(product.to_owned()).or_default();
        if sequence <= numbering.last_match_sequence {
            return Verdict::Stale;
        }
        numbering.last_match_sequence = sequence;
        let verdict = match numbering.last_trade_id {
            Some(last) if trade_id <= last => return Verdict::Stale,
            Some(last) if trade_id > last + 1 => Verdict::Gap { first: last + 1, last: trade_id - 1 },
            _ => Verdict::Fresh,
        };
        numbering.last_trade_id = Some(trade_id);
        verdict
    }

    pub fn on_ticker(&mut self, product: &str, sequence: u64) -> Verdict {
        let numbering = self.products.entry(product.to_owned()).or_default();
        if sequence <= numbering.last_ticker_sequence {
            return Verdict::Stale;
        }
        numbering.last_ticker_sequence = sequence;
        Verdict::Fresh
    }

    /// A heartbeat names the product's last trade: newer than ours is a gap.
    pub fn on_heartbeat(&mut self, product: &str, last_trade_id: u64) -> Verdict {
        let numbering = self.products.entry(product.to_owned()).or_default();
        match numbering.last_trade_id {
            Some(last) if last_trade_id > last => {
                numbering.last_trade_id = Some(last_trade_id);
                Verdict::Gap { first: last + 1, last: last_trade_id }
            }
            // Before any trade, a heartbeat only tells where counting starts.
            None => {
                numbering.last_trade_id = Some(last_trade_id);
                Verdict::Fresh
            }
            _ => Verdict::Fresh,
        }
    }
}

/// Runs the Coinbase feed into the mesh behind `channel` until `stop`.
pub async fn run(
    config: CoinbaseConfig,
    session: SessionConfig,
    channel: wizdata_common::auth::credentials::AuthenticatedChannel,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut feed = Coinbase::new(config, session)?;
    crate::publish_until(PROVIDER, channel, stop, |publisher| async move { feed.run(&publisher).await }).await
}

pub struct Coinbase {
    config: CoinbaseConfig,
    session: SessionConfig,
    symbols: SymbolMap,
    rest: Rest,
    stats: FeedStats,
    sequencer: Sequencer,
}

impl Coinbase {
    pub fn new(config: CoinbaseConfig, session: SessionConfig) -> anyhow::Result<Self> {
        let symbols =
            SymbolMap::parse(&config.symbols, spell).map_err(|why| anyhow::anyhow!("--coinbase-symbols: {why}"))?;
        let rest = Rest::new(&config.rest_url, session.request_timeout)?;
        metrics::counter!("feed_gaps_total", "provider" => PROVIDER).increment(0);
        metrics::counter!("feed_gap_trades_unfilled_total", "provider" => PROVIDER).increment(0);
        Ok(Self { config, session, symbols, rest, stats: FeedStats::new(PROVIDER), sequencer: Sequencer::default() })
    }

    /// Streams until a fatal error, reconnecting after every other.
    pub async fn run(&mut self, publisher: &Publisher) -> anyhow::Result<()> {
        let session = self.session.clone();
        crate::keep_connected(self, publisher, &session).await
    }
}

impl crate::Live for Coinbase {
    const PROVIDER: &'static str = PROVIDER;

    fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// One connection, from subscribing to its end (always with the reason).
    async fn session(&mut self, publisher: &Publisher, backoff: &mut Backoff) -> FeedError {
        let mut socket = match ws::connect(&self.config.ws_url, self.session.connect_timeout).await {
            Ok(socket) => socket,
            Err(error) => return error,
        };
        let products: Vec<&str> = self.symbols.pairs().map(|(_, product)| product).collect();
        let subscribe = serde_json::json!({
            "type": "subscribe",
            "product_ids": products,
            "channels": ["matches", "ticker", "heartbeat"],
        });
        if let Err(error) = ws::send_text(&mut socket, subscribe.to_string()).await {
            return error;
        }
        loop {
            let text = match ws::next_text(&mut socket, self.session.stall_timeout).await {
                Ok(text) => text,
                Err(error) => return error,
            };
            let frame = match parse(&text, &self.symbols) {
                Ok(frame) => frame,
                Err(skipped) => {
                    self.stats.skipped(&skipped);
                    continue;
                }
            };
            match frame {
                Frame::Subscribed => {
                    self.stats.message(MessageKind::Control);
                    self.stats.connected(true);
                    backoff.reset();
                    tracing::info!(provider = PROVIDER, products = self.symbols.pairs().count(), "subscribed");
                }
                Frame::Refused(why) => {
                    self.stats.message(MessageKind::Error);
                    return FeedError::Subscription(why);
                }
                Frame::Match { sequence, matched } => {
                    match self.sequencer.on_match(&matched.product, sequence, matched.trade_id) {
                        Verdict::Stale => {
                            self.stats.message(MessageKind::Stale);
                            continue;
                        }
                        Verdict::Gap { first, last } => self.fill(publisher, &matched.product, first, last).await,
                        Verdict::Fresh => {}
                    }
                    self.stats.message(MessageKind::Trade);
                    if let Some(time) = &matched.tick.time {
                        self.stats.lag(wizdata_common::time::ns_from_timestamp(time).unwrap_or_else(now_ns));
                    }
                    publisher.tick(matched.tick).await;
                }
                Frame::Ticker { product, sequence, tick } => {
                    if self.sequencer.on_ticker(&product, sequence) == Verdict::Stale {
                        self.stats.message(MessageKind::Stale);
                        continue;
                    }
                    self.stats.message(MessageKind::Quote);
                    publisher.tick(tick).await;
                }
                Frame::Heartbeat { product, last_trade_id, .. } => {
                    self.stats.message(MessageKind::Control);
                    if let Verdict::Gap { first, last } = self.sequencer.on_heartbeat(&product, last_trade_id) {
                        self.fill(publisher, &product, first, last).await;
                    }
                }
            }
        }
    }
}

impl Coinbase {
    /// Publishes the trades `first..=last` of `product` from REST, oldest
    /// first; a gap too long, or a REST failure, is reported instead.
    async fn fill(&self, publisher: &Publisher, product: &str, first: u64, last: u64) {
        metrics::counter!("feed_gaps_total", "provider" => PROVIDER).increment(1);
        let missing = last - first + 1;
        if missing > MAX_GAP_FILL {
            metrics::counter!("feed_gap_trades_unfilled_total", "provider" => PROVIDER).increment(missing);
            tracing::warn!(provider = PROVIDER, %product, first, last, "gap too long to fill from REST; reported");
            return;
        }
        match self.trades_between(product, first, last).await {
            Ok(matches) => {
                tracing::info!(provider = PROVIDER, %product, first, last, filled = matches.len(), "gap filled");
                let filled = matches.len() as u64;
                for matched in matches {
                    publisher.tick(matched.tick).await;
                }
                metrics::counter!("feed_gap_trades_unfilled_total", "provider" => PROVIDER)
                    .increment(missing.saturating_sub(filled));
            }
            Err(error) => {
                metrics::counter!("feed_gap_trades_unfilled_total", "provider" => PROVIDER).increment(missing);
                tracing::warn!(provider = PROVIDER, %product, first, last, %error, "cannot fill a gap; reported");
            }
        }
    }

    /// The trades `first..=last` of `product`, oldest first, paging back
    /// from `last` (Coinbase's `after` cursor returns older trades).
    async fn trades_between(&self, product: &str, first: u64, last: u64) -> Result<Vec<Match>, FeedError> {
        let symbol = self.symbols.registry_symbol(product).unwrap_or(product).to_owned();
        let mut found = Vec::new();
        let mut before = last + 1;
        while before > first {
            let path = format!("/products/{product}/trades?limit={TRADES_PER_PAGE}&after={before}");
            let json = self.rest.get_json(&path).await?;
            let page: Vec<RestTrade> = serde_json::from_value(json)
                .map_err(|error| FeedError::Protocol(format!("trades of {product}: {error}")))?;
            let Some(oldest) = page.iter().map(|trade| trade.trade_id).min() else { break };
            for trade in page.into_iter().filter(|trade| (first..=last).contains(&trade.trade_id)) {
                let tick = trade_tick(symbol.clone(), trade.trade_id, &trade.time, &trade.price, &trade.size)
                    .map_err(|skipped| FeedError::Protocol(skipped.why))?;
                found.push(Match { product: product.to_owned(), trade_id: trade.trade_id, tick });
            }
            if oldest >= before {
                break;
            }
            before = oldest;
        }
        found.sort_by_key(|matched| matched.trade_id);
        found.dedup_by_key(|matched| matched.trade_id);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> SymbolMap {
        SymbolMap::parse(&["BTC/USD".into(), "ETH/USD".into()], spell).unwrap()
    }

    /// The match message of Coinbase's documentation.
    const MATCH: &str = r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#;

    #[test]
    fn a_match_becomes_a_tick_with_coinbases_trade_id() {
        let Ok(Frame::Match { sequence, matched }) = parse(MATCH, &symbols()) else { panic!() };
        assert_eq!((sequence, matched.trade_id, matched.tick.symbol.as_str()), (50, 10, "BTC/USD"));
        assert_eq!(matched.tick.time.unwrap(), prost_types::Timestamp { seconds: 1_415_348_367, nanos: 28_459_000 });
        let Some(tick::Kind::Trade(trade)) = matched.tick.kind else { panic!() };
        assert_eq!(
            (trade.price, trade.size, trade.source.as_str(), trade.trade_id.as_str()),
            (400.23, 5.23512, "coinbase", "10")
        );
    }

    #[test]
    fn tickers_heartbeats_answers_and_errors_are_read() {
        let ticker = r#"{"type":"ticker","sequence":37475248783,"product_id":"ETH-USD","price":"1285.22","open_24h":"1310.79","volume_24h":"245532.79269678","low_24h":"1280.52","high_24h":"1313.8","volume_30d":"9788783.60117027","best_bid":"1285.04","best_bid_size":"0.46688654","best_ask":"1285.27","best_ask_size":"1.56637040","side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,"last_size":"11.4396987"}"#;
        let Ok(Frame::Ticker { product, sequence, tick }) = parse(ticker, &symbols()) else { panic!() };
        assert_eq!((product.as_str(), sequence, tick.symbol.as_str()), ("ETH-USD", 37_475_248_783, "ETH/USD"));
        let Some(tick::Kind::BidAsk(book)) = tick.kind else { panic!() };
        assert_eq!((book.bid, book.bid_size, book.ask, book.ask_size), (1285.04, 0.46688654, 1285.27, 1.5663704));
        let heartbeat = r#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#;
        assert_eq!(
            parse(heartbeat, &symbols()),
            Ok(Frame::Heartbeat { product: "BTC-USD".into(), sequence: 90, last_trade_id: 20 })
        );
        assert_eq!(parse(r#"{"type":"subscriptions","channels":[]}"#, &symbols()), Ok(Frame::Subscribed));
        let error = r#"{"type":"error","message":"Failed to subscribe","reason":"BTC-XYZ is not a valid product"}"#;
        assert_eq!(
            parse(error, &symbols()),
            Ok(Frame::Refused("Failed to subscribe BTC-XYZ is not a valid product".into()))
        );
    }

    #[test]
    fn bad_messages_are_skipped_with_their_kind() {
        let kind = |text: &str| parse(text, &symbols()).unwrap_err().kind;
        assert_eq!(kind("{"), MessageKind::Malformed);
        assert_eq!(kind(&MATCH.replace(r#""price":"400.23""#, r#""price":"four hundred""#)), MessageKind::Malformed);
        assert_eq!(kind(&MATCH.replace(r#""trade_id":10,"#, "")), MessageKind::Malformed);
        assert_eq!(kind(&MATCH.replace(r#""trade_id":10"#, r#""trade_id":"10""#)), MessageKind::Malformed);
        assert_eq!(kind(&MATCH.replace("2014-11-07T08:19:27.028459Z", "yesterday")), MessageKind::Malformed);
        assert_eq!(kind(&MATCH.replace("BTC-USD", "DOGE-USD")), MessageKind::Unmapped);
        assert_eq!(kind(r#"{"type":"l2update","product_id":"BTC-USD","changes":[]}"#), MessageKind::Unknown);
        assert_eq!(kind(r#"{"hello":1}"#), MessageKind::Unknown);
    }

    #[test]
    fn the_sequencer_skips_repeats_and_old_messages_and_finds_gaps() {
        let mut sequencer = Sequencer::default();
        assert_eq!(sequencer.on_match("BTC-USD", 50, 10), Verdict::Fresh);
        assert_eq!(sequencer.on_match("BTC-USD", 50, 10), Verdict::Stale, "a duplicate");
        assert_eq!(sequencer.on_match("BTC-USD", 49, 9), Verdict::Stale, "out of order");
        assert_eq!(
            sequencer.on_ticker("BTC-USD", 50),
            Verdict::Fresh,
            "the ticker of the same trade has its own count"
        );
        assert_eq!(sequencer.on_ticker("BTC-USD", 50), Verdict::Stale);
        assert_eq!(sequencer.on_match("BTC-USD", 55, 13), Verdict::Gap { first: 11, last: 12 });
        assert_eq!(sequencer.on_heartbeat("BTC-USD", 13), Verdict::Fresh);
        assert_eq!(sequencer.on_heartbeat("BTC-USD", 15), Verdict::Gap { first: 14, last: 15 });
        assert_eq!(sequencer.on_match("BTC-USD", 60, 15), Verdict::Stale, "filled from the heartbeat's gap");
        assert_eq!(sequencer.on_match("ETH-USD", 7, 1000), Verdict::Fresh, "products count apart");
    }
}

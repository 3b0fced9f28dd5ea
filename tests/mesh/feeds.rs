//! Feeds from real providers, against local servers speaking each
//! provider's protocol (no internet here or in CI): the provider's
//! documented frames replayed from `tests/fixtures/<provider>/`, cut
//! mid-stream, silent, rate limiting, answering errors. What reaches the
//! mesh must be exactly the provider's trades, once each.

use std::time::Duration;

use serde_json::Value;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wizdata::marketdata::v1::GetQuoteRequest;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::{Channel, SubscribeRequest, subscribe_response};
use wizdata::r#type::v1::Interval;
use wizdata_common::endpoints::{DiscoveryConfig, Resolver};
use wizdata_feeds::SessionConfig;
use wizdata_feeds::binance::BinanceConfig;
use wizdata_test_support::fake_provider::{FakeRest, FakeWebSocket, Script, Step};
use wizdata_test_support::{TestMesh, all_candles, eventually, health_of, now_ns};

use crate::market_data::{candles_request, ohlcv};

const NANOS: i64 = 1_000_000_000;
/// The fixtures' times are around this (ms): 2022-12-31T19:43:00Z.
const FIXTURE_BASE_MS: i64 = 1_672_515_780_000;

fn fixture(path: &str) -> String {
    let path = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Moves every time in `value` by `by_ms`: Binance's millisecond "E" and
/// "T", and RFC 3339 "time" (Coinbase) and "timestamp" (Kraken) strings.
fn shift_times(value: &mut Value, by_ms: i64) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                match (name.as_str(), &field) {
                    ("E" | "T", Value::Number(ms)) => *field = (ms.as_i64().unwrap() + by_ms).into(),
                    ("time" | "timestamp", Value::String(text)) => {
                        let time =
                            chrono::DateTime::parse_from_rfc3339(text).unwrap() + chrono::Duration::milliseconds(by_ms);
                        *field = time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into();
                    }
                    _ => shift_times(field, by_ms),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| shift_times(item, by_ms)),
        _ => {}
    }
}

/// A fixture's frames with their times moved by `by_ms`; frames that are
/// not JSON are sent as they are.
fn frames(path: &str, by_ms: i64) -> Vec<Step> {
    fixture(path)
        .lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(mut frame) => {
                shift_times(&mut frame, by_ms);
                Step::Send(frame.to_string())
            }
            Err(_) => Step::Send(line.to_owned()),
        })
        .collect()
}

/// The fixtures' first minute moved to the minute before last: (its open
/// time in seconds, the shift in ms).
fn minute_before_last() -> (i64, i64) {
    let now_s = now_ns() / NANOS;
    let bar = now_s - now_s % 60 - 120;
    (bar, bar * 1000 - FIXTURE_BASE_MS)
}

/// The trade ids of the next `count` trades a Subscribe stream delivers.
async fn trade_ids(
    trades: &mut tonic::Streaming<wizdata::streaming::v1::SubscribeResponse>,
    source: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), trades.message()).await.expect("trades in time");
        if let Some(subscribe_response::Payload::Event(event)) = message.unwrap().unwrap().payload
            && let Some(Payload::Trade(trade)) = event.payload
        {
            assert_eq!(trade.source, source);
            ids.push(trade.trade_id);
        }
    }
    ids
}

async fn subscribe_trades(
    mesh: &TestMesh,
    symbol: &str,
) -> tonic::Streaming<wizdata::streaming::v1::SubscribeResponse> {
    let mut streams = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let request =
        SubscribeRequest { symbols: vec![symbol.into()], channels: vec![Channel::Trades as i32], ..Default::default() };
    streams.subscribe(request).await.unwrap().into_inner()
}

fn session_config() -> SessionConfig {
    SessionConfig {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(1),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
    }
}

/// The feed's channel to `mesh`, built as `wizdata feed` builds it.
fn feed_channel(mesh: &TestMesh) -> wizdata_common::auth::credentials::AuthenticatedChannel {
    let channel =
        wizdata_mesh::channel_to(&mesh.url(), "", Duration::from_secs(5), &Resolver::new(&DiscoveryConfig::default()))
            .unwrap();
    mesh.admin_credentials().on(channel)
}

/// `symbol`'s 1m bars opening in `[start, end)`, as (open time, OHLCV, trades).
async fn minute_bars(mesh: &TestMesh, symbol: &str, start: i64, end: i64) -> Vec<(i64, f64, f64, f64, f64, f64, u64)> {
    let mut market = mesh.market_data().await;
    all_candles(&mut market, candles_request(symbol, Interval::OneMinute, start, end), 10)
        .await
        .iter()
        .map(ohlcv)
        .collect()
}

async fn quote_of(mesh: &TestMesh, symbol: &str) -> wizdata::r#type::v1::Quote {
    let mut market = mesh.market_data().await;
    market.get_quote(GetQuoteRequest { symbol: symbol.into() }).await.unwrap().into_inner().quote.unwrap()
}

/// A recorded Binance session: the first connection carries trades, a
/// book ticker and every kind of bad frame, answers a ping, and closes
/// mid-stream; the second replays two trades and adds one, then goes
/// silent; the third is refused with 429; the fourth stays. The bars the
/// cut may have missed come from klines. Every trade reaches the candles,
/// the quote and a Subscribe client exactly once.
#[tokio::test]
async fn a_binance_session_with_a_cut_a_replay_a_stall_and_a_rate_limit_lands_each_trade_once() {
    let mesh = TestMesh::all().await;
    let (bar, shift_ms) = minute_before_last();

    let mut first = vec![Step::Receive];
    first.extend(frames("binance/first-connection.jsonl", shift_ms));
    first.extend([Step::Ping, Step::Close]);
    let mut second = vec![Step::Receive];
    second.extend(frames("binance/second-connection.jsonl", shift_ms));
    second.push(Step::Silence);
    let ack = Step::Send(r#"{"result":null,"id":1}"#.into());
    let provider = FakeWebSocket::start(vec![
        Script::Upgrade(first),
        Script::Upgrade(second),
        Script::Refuse { status: 429, retry_after: Some(1) },
        Script::Upgrade(vec![Step::Receive, ack, Step::Silence]),
    ])
    .await;
    // Klines: the gap's minute as Binance has it (with a trade the feed
    // never saw); an error body for ETHUSDT; nothing for the rest.
    let gap_start_ms = bar * 1000;
    let klines = fixture("binance/klines-gap.json").replace(&FIXTURE_BASE_MS.to_string(), &gap_start_ms.to_string());
    let rest = FakeRest::start(move |path| {
        if path.starts_with("/api/v3/klines?symbol=ETHUSDT") {
            return (400, vec![], fixture("binance/klines-error.json"));
        }
        if !path.starts_with("/api/v3/klines?symbol=BTCUSDT") {
            return (404, vec![], r#"{"code":-1,"msg":"no such path"}"#.into());
        }
        let start: i64 = query_value(path, "startTime").parse().unwrap();
        let end: i64 = query_value(path, "endTime").parse().unwrap();
        match query_value(path, "interval") {
            "1m" if (start..=end).contains(&gap_start_ms) => (200, vec![], klines.clone()),
            _ => (200, vec![], "[]".into()),
        }
    })
    .await;

    let mut trades = subscribe_trades(&mesh, "BTC/USDT").await;

    let config = BinanceConfig {
        ws_url: provider.url("/stream"),
        rest_url: rest.url(),
        symbols: vec!["BTC/USDT".into(), "ETH/USDT".into()],
        backfill: Duration::ZERO,
        max_connection_age: Duration::from_secs(3600),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = tokio::spawn(wizdata_feeds::binance::run(config, session_config(), feed_channel(&mesh), async {
        let _ = stopped.await;
    }));

    // Trades reach a subscriber once each, in the provider's order.
    assert_eq!(trade_ids(&mut trades, "binance", 5).await, ["1001", "1002", "1003", "1004", "1005"]);
    // The last connection's SUBSCRIBE lands a moment after its upgrade, so
    // wait for it too before reading what the provider received.
    let subscribes = || provider.received().iter().filter(|(_, text)| text.contains("SUBSCRIBE")).count();
    assert!(
        eventually(Duration::from_secs(20), async || provider.connections() >= 4 && subscribes() >= 3).await,
        "a stalled connection is replaced, and a 429 waited out: {} connections, {} subscribes",
        provider.connections(),
        subscribes()
    );

    let received = provider.received();
    let subscribe: Value = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(subscribe["method"], "SUBSCRIBE");
    let streams = ["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@trade", "ethusdt@bookTicker"];
    assert_eq!(subscribe["params"], serde_json::json!(streams));
    assert!(received.contains(&(1, "pong".into())), "the ping was answered: {received:?}");
    assert_eq!(subscribes(), 3, "each upgraded connection subscribes, once");

    let mut market = mesh.market_data().await;
    assert_eq!(
        minute_bars(&mesh, "BTC/USDT", bar, bar + 180).await,
        [(bar, 42000.1, 42010.0, 41985.0, 42005.0, 3.5, 0), (bar + 120, 42020.5, 42020.5, 42020.5, 42020.5, 0.125, 1)],
        "the cut minute as Binance's kline has it, not added to by the replayed trades; then the new trade"
    );
    let days =
        all_candles(&mut market, candles_request("BTC/USDT", Interval::OneDay, bar - 86_400, bar + 86_400), 10).await;
    let (volume, count) =
        days.iter().fold((0.0, 0), |(volume, count), day| (volume + day.volume, count + day.trade_count));
    assert_eq!((volume, count), (0.5 + 0.25 + 1.0 + 0.75 + 0.125, 5), "every trade once in the day");
    let quote = quote_of(&mesh, "BTC/USDT").await;
    assert_eq!((quote.last_price, quote.last_size), (42020.5, 0.125));
    assert_eq!((quote.bid, quote.bid_size, quote.ask, quote.ask_size), (42000.0, 31.21, 42000.2, 40.66));
    let requests = rest.requests();
    assert!(requests.iter().any(|path| path.contains("symbol=BTCUSDT&interval=1m")), "the gap: {requests:?}");
    assert!(requests.iter().any(|path| path.contains("symbol=ETHUSDT")), "{requests:?}");
    let eth = all_candles(&mut market, candles_request("ETH/USDT", Interval::OneMinute, bar, bar + 180), 10).await;
    assert!(eth.is_empty(), "an error body imports nothing, and the feed carried on: {eth:?}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed).await.expect("the feed stops").unwrap().unwrap();
}

/// A recorded Coinbase session: the first connection carries a last_match,
/// trades, a ticker, a repeated and an out-of-order sequence, a heartbeat,
/// bad messages, and a trade whose id skips two (filled from REST), then
/// closes; the second repeats its last_match and names, by heartbeat, two
/// trades it never sent (filled from REST), then one more, and goes silent.
/// Each trade lands once, in trade-id order, in candles, quote and streams.
#[tokio::test]
async fn a_coinbase_session_with_repeats_and_gaps_lands_each_trade_once_in_order() {
    let mesh = TestMesh::all().await;
    let (bar, shift_ms) = minute_before_last();
    let mut first = vec![Step::Receive];
    first.extend(frames("coinbase/first-connection.jsonl", shift_ms));
    first.push(Step::Close);
    let mut second = vec![Step::Receive];
    second.extend(frames("coinbase/second-connection.jsonl", shift_ms));
    second.push(Step::Silence);
    let provider = FakeWebSocket::start(vec![Script::Upgrade(first), Script::Upgrade(second)]).await;
    let mut trades_page: Value = serde_json::from_str(&fixture("coinbase/trades.json")).unwrap();
    shift_times(&mut trades_page, shift_ms);
    // Coinbase's trades endpoint: newest first, ids below the `after` cursor.
    let rest = FakeRest::start(move |path| {
        if !path.starts_with("/products/BTC-USDT/trades?") {
            return (404, vec![], r#"{"message":"NotFound"}"#.into());
        }
        let after: u64 = query_value(path, "after").parse().unwrap();
        let older: Vec<&Value> = trades_page
            .as_array()
            .unwrap()
            .iter()
            .filter(|trade| trade["trade_id"].as_u64().unwrap() < after)
            .collect();
        (200, vec![], serde_json::to_string(&older).unwrap())
    })
    .await;
    let mut trades = subscribe_trades(&mesh, "BTC/USDT").await;

    let config = wizdata_feeds::coinbase::CoinbaseConfig {
        ws_url: provider.url("/"),
        rest_url: rest.url(),
        symbols: vec!["BTC/USDT".into()],
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = tokio::spawn(wizdata_feeds::coinbase::run(config, session_config(), feed_channel(&mesh), async {
        let _ = stopped.await;
    }));

    let expected: Vec<String> = (99..=106).map(|id: u64| id.to_string()).collect();
    assert_eq!(trade_ids(&mut trades, "coinbase", 8).await, expected, "once each, the gaps' trades in their place");
    assert!(
        eventually(Duration::from_secs(20), async || provider.connections() >= 3).await,
        "a silent connection is replaced"
    );
    let subscribe: Value = serde_json::from_str(&provider.received()[0].1).unwrap();
    assert_eq!(subscribe["type"], "subscribe");
    assert_eq!(subscribe["product_ids"], serde_json::json!(["BTC-USDT"]));
    assert_eq!(subscribe["channels"], serde_json::json!(["matches", "ticker", "heartbeat"]));
    let requests = rest.requests();
    assert!(requests.iter().any(|path| path.ends_with("after=103")), "the jump from 100 to 103: {requests:?}");
    assert!(requests.iter().any(|path| path.ends_with("after=106")), "the heartbeat naming 105: {requests:?}");

    assert_eq!(
        minute_bars(&mesh, "BTC/USDT", bar, bar + 60).await,
        [(bar, 16800.0, 16805.25, 16798.5, 16804.75, 0.5 + 0.25 + 0.125 + 1.0 + 0.75 + 0.5 + 0.25 + 2.0, 8)],
        "trades 99 to 106 once each; the repeated 100 and the out-of-order 98 not at all"
    );
    let quote = quote_of(&mesh, "BTC/USDT").await;
    assert_eq!((quote.last_price, quote.last_size), (16804.75, 2.0));
    assert_eq!((quote.bid, quote.bid_size, quote.ask, quote.ask_size), (16801.0, 1.25, 16802.0, 0.75));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed).await.expect("the feed stops").unwrap().unwrap();
}

/// A recorded Kraken v2 session: status, acknowledgements (one pair
/// refused), trades, a ticker, a heartbeat, a list mixing good and bad
/// trades, a message cut short and an unknown channel, then a close; the
/// second connection replays one trade and adds one, then goes silent.
#[tokio::test]
async fn a_kraken_session_with_bad_items_a_refused_pair_and_a_replay_lands_each_trade_once() {
    let mesh = TestMesh::all().await;
    let (bar, shift_ms) = minute_before_last();
    let mut first = vec![Step::Receive, Step::Receive];
    first.extend(frames("kraken/first-connection.jsonl", shift_ms));
    first.push(Step::Close);
    let mut second = vec![Step::Receive, Step::Receive];
    second.extend(frames("kraken/second-connection.jsonl", shift_ms));
    second.push(Step::Silence);
    let provider = FakeWebSocket::start(vec![Script::Upgrade(first), Script::Upgrade(second)]).await;
    let mut trades = subscribe_trades(&mesh, "BTC/USDT").await;

    let config = wizdata_feeds::kraken::KrakenConfig { ws_url: provider.url("/v2"), symbols: vec!["BTC/USDT".into()] };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = tokio::spawn(wizdata_feeds::kraken::run(config, session_config(), feed_channel(&mesh), async {
        let _ = stopped.await;
    }));

    assert_eq!(trade_ids(&mut trades, "kraken", 4).await, ["700", "701", "702", "703"], "the replayed 702 once");
    assert!(
        eventually(Duration::from_secs(20), async || provider.connections() >= 3).await,
        "a silent connection is replaced"
    );
    let received = provider.received();
    let requests: Vec<Value> = received.iter().take(2).map(|(_, text)| serde_json::from_str(text).unwrap()).collect();
    assert_eq!(requests[0]["method"], "subscribe");
    assert_eq!(
        requests[0]["params"],
        serde_json::json!({"channel": "trade", "symbol": ["BTC/USDT"], "snapshot": false})
    );
    assert_eq!(requests[1]["params"], serde_json::json!({"channel": "ticker", "symbol": ["BTC/USDT"]}));

    assert_eq!(
        minute_bars(&mesh, "BTC/USDT", bar, bar + 60).await,
        [(bar, 16800.0, 16810.0, 16790.5, 16805.0, 0.5 + 0.25 + 0.125 + 2.0, 4)],
        "the good trades of the mixed list, and the replay once"
    );
    let quote = quote_of(&mesh, "BTC/USDT").await;
    assert_eq!((quote.last_price, quote.last_size), (16805.0, 2.0));
    assert_eq!((quote.bid, quote.bid_size, quote.ask, quote.ask_size), (16790.0, 1.5, 16791.0, 2.25));

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed).await.expect("the feed stops").unwrap().unwrap();
}

/// CoinGecko polled through a rate limit: each price lands once (a poll
/// finding the same update is a duplicate), as a size-0 trade, and moves
/// the quote.
#[tokio::test]
async fn coingecko_prices_land_once_each_across_a_rate_limit() {
    let mesh = TestMesh::all().await;
    let (bar, _) = minute_before_last();
    let (first, second) = (bar + 5, bar + 30);
    let price = |price: f64, updated: i64| format!(r#"{{"bitcoin":{{"usd":{price},"last_updated_at":{updated}}}}}"#);
    let answers = [
        (200, vec![], price(16800.5, first)),
        (
            429,
            vec![("retry-after", "1".to_owned())],
            r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#.to_owned(),
        ),
        (200, vec![], price(16800.5, first)),
        (200, vec![], price(16810.25, second)),
    ];
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let rest = FakeRest::start(move |path| {
        assert!(path.starts_with("/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true"), "{path}");
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        answers[call.min(answers.len() - 1)].clone()
    })
    .await;
    let mut trades = subscribe_trades(&mesh, "BTC/USDT").await;
    let config = wizdata_feeds::coingecko::CoingeckoConfig {
        url: rest.url(),
        symbols: vec!["BTC/USDT=bitcoin:usd".into()],
        interval: Duration::from_millis(100),
        api_key: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = tokio::spawn(wizdata_feeds::coingecko::run(config, session_config(), feed_channel(&mesh), async {
        let _ = stopped.await;
    }));

    assert_eq!(trade_ids(&mut trades, "coingecko", 2).await, [first.to_string(), second.to_string()]);
    assert!(
        eventually(Duration::from_secs(10), async || rest.requests().len() >= 6).await,
        "polling goes on after the rate limit"
    );
    let minutes = minute_bars(&mesh, "BTC/USDT", bar, bar + 60).await;
    assert_eq!(
        minutes,
        [(bar, 16800.5, 16810.25, 16800.5, 16810.25, 0.0, 2)],
        "prices, no volume, each poll's update once"
    );
    assert_eq!(quote_of(&mesh, "BTC/USDT").await.last_price, 16810.25);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed).await.expect("the feed stops").unwrap().unwrap();
}

/// A key CoinGecko rejects stops the feed with the provider's words, and
/// the key itself appears in no error.
#[tokio::test]
async fn a_rejected_coingecko_key_stops_the_feed_without_showing_the_key() {
    let mesh = TestMesh::all().await;
    let rest = FakeRest::start(|_| {
        (401, vec![], r#"{"status":{"error_code":10002,"error_message":"Invalid API Key"}}"#.to_owned())
    })
    .await;
    let config = wizdata_feeds::coingecko::CoingeckoConfig {
        url: rest.url(),
        symbols: vec!["BTC/USDT=bitcoin:usd".into()],
        interval: Duration::from_millis(100),
        api_key: Some("CG-not-a-real-key-3141".to_owned().into()),
    };
    let run = wizdata_feeds::coingecko::run(config, session_config(), feed_channel(&mesh), std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(10), run).await.expect("a rejected key stops").unwrap_err();
    let error = format!("{error:#} {error:?}");
    assert!(error.contains("rejected the credentials") && error.contains("Invalid API Key"), "{error}");
    assert!(!error.contains("CG-not-a-real-key-3141"), "the key leaked: {error}");
    assert_eq!(rest.requests().len(), 1, "not retried");
}

/// `serve all --feeds kraken`: the feed runs inside the mesh, as its own
/// internal key, configured by the same flags as `wizdata feed kraken`.
#[tokio::test]
async fn serve_all_runs_a_configured_feed_in_process() {
    let (_, shift_ms) = minute_before_last();
    let mut first = vec![Step::Receive, Step::Receive];
    first.extend(frames("kraken/first-connection.jsonl", shift_ms));
    first.push(Step::Silence);
    let provider = FakeWebSocket::start(vec![Script::Upgrade(first)]).await;
    let url = provider.url("/v2");
    let mesh = TestMesh::all_with(&[
        "--feeds",
        "kraken",
        "--kraken-ws-url",
        &url,
        "--kraken-symbols",
        "BTC/USDT",
        "--feed-stall-timeout",
        "2s",
    ])
    .await;
    let mut health = HealthClient::new(mesh.channel().await)
        .watch(HealthCheckRequest { service: "feed/kraken".into() })
        .await
        .unwrap()
        .into_inner();
    // The last trade of the session, 702, sets the quote.
    let quoted = eventually(Duration::from_secs(10), async || quote_of_now(&mesh).await == Some(16810.0)).await;
    assert!(quoted, "the in-process feed's trades reach market data: {:?}", quote_of_now(&mesh).await);

    // Its health: serving once subscribed, then, silent past the stall
    // deadline and never subscribed again, not serving, while the process
    // (and market data) serve on.
    let mut statuses = Vec::new();
    while statuses.last() != Some(&ServingStatus::NotServing) || !statuses.contains(&ServingStatus::Serving) {
        let next = tokio::time::timeout(Duration::from_secs(10), health.message()).await;
        statuses.push(next.expect("a change within the stall deadline").unwrap().unwrap().status());
    }
    statuses.dedup();
    assert!(statuses.ends_with(&[ServingStatus::Serving, ServingStatus::NotServing]), "{statuses:?}");
    assert_eq!(health_of(&mesh, "").await.unwrap(), ServingStatus::Serving);
    let reconnected = eventually(Duration::from_secs(10), async || provider.connections() >= 2).await;
    assert!(reconnected, "it tries again");
}

async fn quote_of_now(mesh: &TestMesh) -> Option<f64> {
    let mut market = mesh.market_data().await;
    let answer = market.get_quote(GetQuoteRequest { symbol: "BTC/USDT".into() }).await.ok()?;
    answer.into_inner().quote.map(|quote| quote.last_price)
}

fn alphavantage(url: String, key: &str, refresh: Duration) -> wizdata_feeds::alphavantage::AlphaVantageConfig {
    wizdata_feeds::alphavantage::AlphaVantageConfig {
        url,
        api_key: Some(key.to_owned().into()),
        symbols: vec!["AAPL".into()],
        interval: Interval::OneDay,
        spacing: Duration::ZERO,
        refresh,
    }
}

/// Alpha Vantage's daily history, after its limit answer, lands as daily
/// candles of the symbol.
#[tokio::test]
async fn alphavantage_history_is_imported_after_a_limit_answer() {
    let mesh = TestMesh::all().await;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let rest = FakeRest::start(move |path| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return (200, vec![], fixture("alphavantage/rate-limit.json"));
        }
        assert!(path.starts_with("/query?function=TIME_SERIES_DAILY&symbol=AAPL&outputsize=compact&apikey="), "{path}");
        (200, vec![], fixture("alphavantage/daily.json"))
    })
    .await;
    let config = alphavantage(rest.url(), "av-test-key", Duration::from_millis(300));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = tokio::spawn(wizdata_feeds::alphavantage::run(config, session_config(), feed_channel(&mesh), async {
        let _ = stopped.await;
    }));
    let (march_21, march_22) = (1_710_979_200, 1_711_065_600);
    let mut market = mesh.market_data().await;
    let imported = eventually(Duration::from_secs(10), async || {
        !all_candles(&mut market, candles_request("AAPL", Interval::OneDay, march_21, march_22 + 86_400), 10)
            .await
            .is_empty()
    })
    .await;
    assert!(imported, "history arrives after the limit answer");
    let days: Vec<_> =
        all_candles(&mut market, candles_request("AAPL", Interval::OneDay, march_21, march_22 + 86_400), 10)
            .await
            .iter()
            .map(ohlcv)
            .collect();
    assert_eq!(
        days,
        [
            (march_21, 171.76, 173.05, 170.06, 171.37, 51_988_305.0, 0),
            (march_22, 171.76, 173.05, 170.06, 172.28, 71_160_138.0, 0)
        ]
    );
    assert!(rest.requests().iter().all(|path| path.ends_with("apikey=av-test-key")), "the key is sent");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), feed).await.expect("the feed stops").unwrap().unwrap();
}

/// A key Alpha Vantage rejects stops the importer in its words, and the
/// key, though it travels in the URL, appears in no error.
#[tokio::test]
async fn a_rejected_alphavantage_key_stops_the_importer_without_showing_the_key() {
    let mesh = TestMesh::all().await;
    let rest = FakeRest::start(|_| (200, vec![], fixture("alphavantage/invalid-key.json"))).await;
    let config = alphavantage(rest.url(), "av-not-a-real-key-2718", Duration::from_secs(3600));
    let run = wizdata_feeds::alphavantage::run(config, session_config(), feed_channel(&mesh), std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(10), run).await.expect("a rejected key stops").unwrap_err();
    let error = format!("{error:#} {error:?}");
    assert!(error.contains("rejected the credentials") && error.contains("apikey is invalid"), "{error}");
    assert!(!error.contains("av-not-a-real-key-2718"), "the key leaked: {error}");
}

fn query_value<'a>(path: &'a str, name: &str) -> &'a str {
    let query = path.split_once('?').map_or("", |(_, query)| query);
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')).unwrap_or("")
}

//! Fixtures every area's tests build on: ticks, ingest, candle page walks
//! and the reading of rich error details.

use crate::ClientChannel;
use prost_types::Timestamp;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{BidAsk, IngestTicksRequest, IngestTicksResponse, Tick, Trade, tick};

use crate::{TestMesh, TestRedis};

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// A timestamp `seconds` after the epoch.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// A timestamp `ns` nanoseconds after the epoch.
pub fn at_ns(ns: i64) -> Timestamp {
    Timestamp { seconds: ns.div_euclid(NANOS_PER_SECOND), nanos: ns.rem_euclid(NANOS_PER_SECOND) as i32 }
}

/// The wall clock in whole seconds since the epoch.
pub fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The wall clock in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().expect("the clock is within i64 nanoseconds")
}

/// A trade of `size` at `price`, `seconds` after the epoch.
pub fn trade(symbol: &str, seconds: i64, price: f64, size: f64) -> Tick {
    let trade = Trade { price, size, ..Default::default() };
    Tick { symbol: symbol.into(), time: Some(at(seconds)), kind: Some(tick::Kind::Trade(trade)) }
}

/// A trade with `source`'s id `trade_id`, which market data applies once.
pub fn identified_trade(symbol: &str, seconds: i64, price: f64, size: f64, source: &str, trade_id: &str) -> Tick {
    let trade = Trade { price, size, source: source.into(), trade_id: trade_id.into() };
    Tick { symbol: symbol.into(), time: Some(at(seconds)), kind: Some(tick::Kind::Trade(trade)) }
}

/// A trade of one unit at `price`, now.
pub fn trade_now(symbol: &str, price: f64) -> Tick {
    trade(symbol, now_seconds(), price, 1.0)
}

/// A bid/ask (sizes 3 and 4), `seconds` after the epoch.
pub fn book(symbol: &str, seconds: i64, bid: f64, ask: f64) -> Tick {
    Tick {
        symbol: symbol.into(),
        time: Some(at(seconds)),
        kind: Some(tick::Kind::BidAsk(BidAsk { bid, bid_size: 3.0, ask, ask_size: 4.0 })),
    }
}

/// A bid/ask, now.
pub fn book_now(symbol: &str, bid: f64, ask: f64) -> Tick {
    book(symbol, now_seconds(), bid, ask)
}

/// One IngestTicks call sending each inner vector as one message.
pub async fn ingest(
    client: &mut MarketDataServiceClient<ClientChannel>,
    messages: Vec<Vec<Tick>>,
) -> Result<IngestTicksResponse, tonic::Status> {
    let requests: Vec<IngestTicksRequest> = messages.into_iter().map(|ticks| IngestTicksRequest { ticks }).collect();
    client.ingest_ticks(tokio_stream::iter(requests)).await.map(|response| response.into_inner())
}

/// Ingests `ticks` as the admin in one message and checks none was
/// rejected; awaited, so their events are published when it returns.
pub async fn ingest_accepted(mesh: &TestMesh, ticks: Vec<Tick>) {
    let answer = ingest(&mut mesh.market_data().await, vec![ticks]).await.expect("ingest succeeds");
    assert_eq!(answer.rejected, 0, "{answer:?}");
}

/// The text of a file of the sample market data, when WIZDATA_SAMPLE_DATA
/// names its folder; `None` (and a note saying what is skipped) otherwise.
pub fn sample_data(file: &str, skipping: &str) -> Option<String> {
    let Ok(folder) = std::env::var("WIZDATA_SAMPLE_DATA") else {
        eprintln!("WIZDATA_SAMPLE_DATA is unset; skipping {skipping}");
        return None;
    };
    let path = std::path::Path::new(&folder).join(file);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
}

/// A Redis prefix of the test's own when WIZDATA_TEST_REDIS_URL is set
/// (failing when it is set but unreachable); `None`, and a note saying why
/// the test needs one, when it is unset.
pub async fn redis_or_skip(needed_for: &str) -> Option<TestRedis> {
    let redis = TestRedis::from_env().await;
    if redis.is_none() {
        eprintln!("{} is unset; {needed_for} needs a Redis", wizdata_common::testing::TEST_REDIS_URL);
    }
    redis
}

/// The fields named by a status's BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The fields an INVALID_ARGUMENT status names; fails on any other code.
pub fn invalid_fields(status: tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    violated_fields(&status)
}

/// Every candle of the range, walking pages of `page_size`.
pub async fn all_candles(
    client: &mut wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient<ClientChannel>,
    request: wizdata::marketdata::v1::GetCandlesRequest,
    page_size: i32,
) -> Vec<wizdata::r#type::v1::Candle> {
    use wizdata::marketdata::v1::GetCandlesRequest;
    let mut candles = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .get_candles(GetCandlesRequest { page_size, page_token, ..request.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(page.candles.len() <= page_size as usize);
        candles.extend(page.candles);
        if page.next_page_token.is_empty() {
            return candles;
        }
        page_token = page.next_page_token;
    }
}

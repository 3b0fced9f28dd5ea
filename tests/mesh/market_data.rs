//! The market data service end to end: ticks in, candles and quotes out,
//! bus events, history import, durability across restarts, and every bad
//! input answered with its code and details.

use std::time::Duration;

use prost_types::Timestamp;
use tonic::Code;
use tonic_types::StatusExt;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::*;
use wizdata::r#type::v1::{Candle, Interval, Quote};
use wizdata_common::bus::Delivery;
use wizdata_market_data::events;
use wizdata_test_support::ClientChannel as Channel;
use wizdata_test_support::{
    NANOS_PER_SECOND as NANOS, TestMesh, all_candles, at, at_ns, book, ingest, invalid_fields, now_ns, trade,
    violated_fields,
};

mod revisions;
mod trade_ids;

type Client = MarketDataServiceClient<Channel>;

/// 2024-03-05T13:00:00Z: on a boundary of every interval but the day.
const BASE: i64 = 1_709_643_600;
const DAY: i64 = 86_400;

pub(crate) fn candles_request(symbol: &str, interval: Interval, start: i64, end: i64) -> GetCandlesRequest {
    GetCandlesRequest {
        symbol: symbol.into(),
        interval: interval as i32,
        start_time: Some(at(start)),
        end_time: Some(at(end)),
        ..Default::default()
    }
}

pub(crate) fn ohlcv(candle: &Candle) -> (i64, f64, f64, f64, f64, f64, u64) {
    let open_time = candle.open_time.unwrap().seconds;
    (open_time, candle.open, candle.high, candle.low, candle.close, candle.volume, candle.trade_count)
}

async fn quote(client: &mut Client, symbol: &str) -> Result<Quote, tonic::Status> {
    client
        .get_quote(GetQuoteRequest { symbol: symbol.into() })
        .await
        .map(|response| response.into_inner().quote.unwrap())
}

/// The trades of a fixed scenario: two minutes of AAPL on 2024-03-05, one
/// trade arriving late for the first minute, and one trade the day before.
fn scenario() -> Vec<Vec<Tick>> {
    vec![
        vec![trade("AAPL", BASE - DAY + 3600, 98.0, 1.0), trade("AAPL", BASE + 10, 100.0, 10.0)],
        vec![trade("AAPL", BASE + 70, 101.5, 5.0), trade("AAPL", BASE + 30, 99.0, 2.0)],
        vec![trade("aapl", BASE + 65, 102.0, 1.0), book("AAPL", BASE + 80, 101.4, 101.6)],
    ]
}

#[tokio::test]
async fn trades_become_candles_at_every_interval_and_a_quote() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let summary = ingest(&mut client, scenario()).await.unwrap();
    assert_eq!((summary.accepted, summary.rejected), (6, 0));

    let minutes = all_candles(&mut client, candles_request("AAPL", Interval::OneMinute, BASE, BASE + 3600), 1000).await;
    assert_eq!(
        minutes.iter().map(ohlcv).collect::<Vec<_>>(),
        vec![(BASE, 100.0, 100.0, 99.0, 99.0, 12.0, 2), (BASE + 60, 102.0, 102.0, 101.5, 101.5, 6.0, 2)],
        "the late trade at :30 closes the first minute; the :65 trade opens the second"
    );
    assert!(minutes.iter().all(|candle| candle.closed), "2024 bars are closed");
    for interval in [Interval::FiveMinutes, Interval::FifteenMinutes, Interval::OneHour] {
        let bars = all_candles(&mut client, candles_request("AAPL", interval, BASE, BASE + 3600), 1000).await;
        assert_eq!(bars.iter().map(ohlcv).collect::<Vec<_>>(), vec![(BASE, 100.0, 102.0, 99.0, 101.5, 18.0, 4)]);
    }
    let today = BASE - BASE % DAY;
    let days =
        all_candles(&mut client, candles_request("AAPL", Interval::OneDay, today - DAY, today + DAY), 1000).await;
    assert_eq!(
        days.iter().map(ohlcv).collect::<Vec<_>>(),
        vec![(today - DAY, 98.0, 98.0, 98.0, 98.0, 1.0, 1), (today, 100.0, 102.0, 99.0, 101.5, 18.0, 4)]
    );

    let quote = quote(&mut client, "aapl").await.unwrap();
    assert_eq!(quote.symbol, "AAPL");
    assert_eq!((quote.last_price, quote.last_size), (101.5, 5.0));
    assert_eq!((quote.bid, quote.bid_size, quote.ask, quote.ask_size), (101.4, 3.0, 101.6, 4.0));
    assert_eq!((quote.day_open, quote.day_high, quote.day_low, quote.day_volume), (100.0, 102.0, 99.0, 18.0));
    assert_eq!(quote.previous_close, 98.0);
    assert_eq!(quote.change, 3.5);
    assert!((quote.change_percent - 3.5 / 98.0 * 100.0).abs() < 1e-12);
    assert_eq!(quote.update_time, Some(at(BASE + 80)));
    assert!(quote.stale, "a quote last updated in 2024 is stale");

    let quotes =
        client.get_quotes(GetQuotesRequest { symbols: vec!["MSFT".into(), "AAPL".into()] }).await.unwrap().into_inner();
    assert_eq!(quotes.quotes.iter().map(|q| q.symbol.as_str()).collect::<Vec<_>>(), ["AAPL"]);
    assert_eq!(quotes.missing_symbols, ["MSFT"]);
}

#[tokio::test]
async fn a_fresh_quote_is_not_stale() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let now = now_ns() / NANOS;
    ingest(&mut client, vec![vec![trade("MSFT", now, 420.0, 1.0)]]).await.unwrap();
    let quote = quote(&mut client, "MSFT").await.unwrap();
    assert_eq!(quote.last_price, 420.0);
    assert!(!quote.stale);
    let open = all_candles(&mut client, candles_request("MSFT", Interval::OneDay, now - DAY, now + 60), 10).await;
    assert_eq!(open.len(), 1);
    assert!(!open[0].closed, "today's bar is still open");
}

#[tokio::test]
async fn bad_ticks_are_rejected_and_counted_while_the_rest_carry_on() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let future = now_ns() / NANOS + 3600;
    let without_time = Tick { time: None, ..trade("AAPL", 0, 100.0, 1.0) };
    let without_kind = Tick { kind: None, ..trade("AAPL", BASE, 100.0, 1.0) };
    let bad_nanos = Tick { time: Some(Timestamp { seconds: BASE, nanos: -1 }), ..trade("AAPL", 0, 100.0, 1.0) };
    let first = vec![
        trade("NOPE", BASE, 100.0, 1.0),
        trade("AAPL", BASE, f64::NAN, 1.0),
        trade("AAPL", BASE, f64::INFINITY, 1.0),
        trade("AAPL", BASE, -1.0, 1.0),
        trade("AAPL", BASE, 100.0, -5.0),
        trade("AAPL", future, 100.0, 1.0),
        without_time,
        without_kind,
        bad_nanos,
        book("AAPL", BASE, 100.0, f64::NAN),
        trade("AAPL", BASE + 1, 100.0, 1.0),
        trade("NOT A TICKER", BASE, 100.0, 1.0),
    ];
    let second = vec![trade("AAPL", BASE + 2, 101.0, 2.0), trade("AAPL", BASE + 3, 100.5, f64::NAN)];
    let summary = ingest(&mut client, vec![first, second]).await.unwrap();
    assert_eq!((summary.accepted, summary.rejected), (2, 12));
    let count =
        |reason: TickRejection| summary.rejections.iter().find(|r| r.reason == reason as i32).map_or(0, |r| r.count);
    assert_eq!(count(TickRejection::UnknownSymbol), 2);
    assert_eq!(count(TickRejection::InvalidPrice), 4);
    assert_eq!(count(TickRejection::InvalidSize), 2);
    assert_eq!(count(TickRejection::FutureTime), 1);
    assert_eq!(count(TickRejection::MissingTime), 1);
    assert_eq!(count(TickRejection::MissingKind), 1);
    assert_eq!(count(TickRejection::InvalidTime), 1);
    let samples: Vec<(u64, i32)> = summary.samples.iter().map(|s| (s.index, s.reason)).collect();
    assert_eq!(samples.len(), 10, "the first ten rejections are described");
    assert_eq!(samples[0], (0, TickRejection::UnknownSymbol as i32));
    assert_eq!(samples[9], (9, TickRejection::InvalidPrice as i32));
    assert!(summary.samples[0].detail.contains("NOPE"), "{:?}", summary.samples[0]);

    let bars = all_candles(&mut client, candles_request("AAPL", Interval::OneMinute, BASE, BASE + 60), 10).await;
    assert_eq!(bars.iter().map(ohlcv).collect::<Vec<_>>(), vec![(BASE, 100.0, 101.0, 100.0, 101.0, 3.0, 2)]);
}

#[tokio::test]
async fn an_empty_ingest_is_a_zero_summary() {
    let mesh = TestMesh::all().await;
    let summary = ingest(&mut mesh.market_data().await, vec![]).await.unwrap();
    assert_eq!((summary.accepted, summary.rejected), (0, 0));
}

#[tokio::test]
async fn ingested_data_survives_a_restart() {
    let mesh = TestMesh::all().await;
    ingest(&mut mesh.market_data().await, scenario()).await.unwrap();
    let database = mesh.database().clone();
    mesh.stop().await.unwrap();

    let mesh = TestMesh::serve("all").database(&database).redis_from_env().start().await;
    let mut client = mesh.market_data().await;
    let quote = quote(&mut client, "AAPL").await.unwrap();
    assert_eq!((quote.last_price, quote.previous_close, quote.bid), (101.5, 98.0, 101.4));
    let hours = all_candles(&mut client, candles_request("AAPL", Interval::OneHour, BASE, BASE + 3600), 10).await;
    assert_eq!(hours.iter().map(ohlcv).collect::<Vec<_>>(), vec![(BASE, 100.0, 102.0, 99.0, 101.5, 18.0, 4)]);
}

#[tokio::test]
async fn every_write_is_published_on_the_bus() {
    let mesh = TestMesh::all().await;
    let bus = mesh.bus.clone().expect("serve all runs market data");
    let mut trades = bus.subscribe(&events::trades_topic("AAPL")).await.unwrap();
    let mut quotes = bus.subscribe(&events::quotes_topic("AAPL")).await.unwrap();
    let mut minutes = bus.subscribe(&events::candles_topic("AAPL", Interval::OneMinute)).await.unwrap();
    let mut client = mesh.market_data().await;
    ingest(&mut client, scenario()).await.unwrap();

    async fn next_events(subscription: &mut wizdata_common::bus::Subscription) -> Vec<MarketDataEvent> {
        match tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await {
            Ok(Some(Delivery::Message(payload))) => events::decode(&payload).unwrap(),
            other => panic!("expected events on {}, got {other:?}", subscription.topic()),
        }
    }
    let mut prices = Vec::new();
    while prices.len() < 5 {
        for event in next_events(&mut trades).await {
            match event.kind {
                Some(market_data_event::Kind::Trade(trade)) => prices.push(trade.price),
                other => panic!("a trade topic carries trades, got {other:?}"),
            }
        }
    }
    assert_eq!(prices, [98.0, 100.0, 101.5, 99.0, 102.0], "every trade, in arrival order");

    let mut last_quote = None;
    while last_quote.as_ref().is_none_or(|quote: &Quote| quote.bid != 101.4) {
        for event in next_events(&mut quotes).await {
            if let Some(market_data_event::Kind::Quote(quote)) = event.kind {
                last_quote = Some(quote);
            }
        }
    }
    assert_eq!(last_quote.unwrap().last_price, 101.5);

    let mut bars = std::collections::BTreeMap::new();
    while bars.get(&(BASE + 60)).is_none_or(|candle: &Candle| candle.trade_count < 2) {
        for event in next_events(&mut minutes).await {
            if let Some(market_data_event::Kind::Candle(update)) = event.kind {
                assert_eq!(update.interval, Interval::OneMinute as i32);
                let candle = update.candle.unwrap();
                bars.insert(candle.open_time.unwrap().seconds, candle);
            }
        }
    }
    assert_eq!(ohlcv(&bars[&(BASE + 60)]), (BASE + 60, 102.0, 102.0, 101.5, 101.5, 6.0, 2));
}

#[tokio::test]
async fn a_bar_is_announced_closed_once_its_time_is_up() {
    let mesh = TestMesh::all().await;
    let bus = mesh.bus.clone().unwrap();
    let mut minutes = bus.subscribe(&events::candles_topic("TSLA", Interval::OneMinute)).await.unwrap();
    // A trade 59.5 s ago sits in a minute that has ended or ends within 0.5 s.
    let time = now_ns() - 59_500_000_000;
    let tick = Tick { time: Some(at_ns(time)), ..trade("TSLA", 0, 250.0, 1.0) };
    ingest(&mut mesh.market_data().await, vec![vec![tick]]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let delivery = tokio::time::timeout_at(deadline, minutes.recv()).await.expect("a closed bar within 5 s");
        let Some(Delivery::Message(payload)) = delivery else { panic!("bus closed") };
        let closed = events::decode(&payload).unwrap().into_iter().any(|event| {
            matches!(event.kind, Some(market_data_event::Kind::Candle(update)) if update.candle.unwrap().closed)
        });
        if closed {
            break;
        }
    }
}

#[tokio::test]
async fn bad_candle_requests() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let good = candles_request("AAPL", Interval::OneMinute, BASE, BASE + 3600);

    let unspecified = GetCandlesRequest { interval: 0, ..good.clone() };
    assert_eq!(invalid_fields(client.get_candles(unspecified).await.unwrap_err()), ["interval"]);
    let unknown = GetCandlesRequest { interval: 42, ..good.clone() };
    assert_eq!(invalid_fields(client.get_candles(unknown).await.unwrap_err()), ["interval"]);
    let backwards = GetCandlesRequest { end_time: Some(at(BASE - 60)), ..good.clone() };
    assert_eq!(invalid_fields(client.get_candles(backwards).await.unwrap_err()), ["end_time"]);
    let too_wide = GetCandlesRequest { start_time: Some(at(BASE - 100_001 * 60)), ..good.clone() };
    let status = client.get_candles(too_wide).await.unwrap_err();
    assert!(status.message().contains("100000 bars"), "{status:?}");
    assert_eq!(invalid_fields(status), ["end_time"]);
    let everything = GetCandlesRequest {
        symbol: String::new(),
        interval: 0,
        start_time: Some(Timestamp { seconds: 0, nanos: -5 }),
        page_size: -1,
        ..good.clone()
    };
    let mut fields = invalid_fields(client.get_candles(everything).await.unwrap_err());
    fields.sort();
    assert_eq!(fields, ["interval", "page_size", "start_time", "symbol"], "every bad field at once");
    let forged = GetCandlesRequest { page_token: "forged".into(), ..good.clone() };
    assert_eq!(invalid_fields(client.get_candles(forged).await.unwrap_err()), ["page_token"]);

    let status = client.get_candles(GetCandlesRequest { symbol: "NOPE".into(), ..good }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.get_details_resource_info().unwrap().resource_name, "NOPE");
}

#[tokio::test]
async fn candle_pages_walk_the_range_once() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let ticks: Vec<Tick> =
        (0..250).map(|minute| trade("GOOGL", BASE + minute * 60, 170.0 + minute as f64, 1.0)).collect();
    ingest(&mut client, vec![ticks]).await.unwrap();
    let range = candles_request("GOOGL", Interval::OneMinute, BASE + 60, BASE + 240 * 60);
    let walked = all_candles(&mut client, range.clone(), 7).await;
    let times: Vec<i64> = walked.iter().map(|candle| candle.open_time.unwrap().seconds).collect();
    assert_eq!(times, (1..240).map(|minute| BASE + minute * 60).collect::<Vec<_>>());
    let other_filters = client
        .get_candles(GetCandlesRequest { page_size: 7, ..range.clone() })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    let replayed = GetCandlesRequest { page_token: other_filters, interval: Interval::FiveMinutes as i32, ..range };
    assert_eq!(client.get_candles(replayed).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn bad_quote_requests() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let status = quote(&mut client, "").await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["symbol".to_owned()]));
    let status = quote(&mut client, "NOPE").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.get_details_resource_info().unwrap().resource_type, "symbol");
    let status = quote(&mut client, "NPN").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "NPN is known but has not traded");
    assert_eq!(status.get_details_resource_info().unwrap().resource_type, "quote");

    let too_many = vec!["AAPL".to_owned(); 501];
    let status = client.get_quotes(GetQuotesRequest { symbols: too_many }).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["symbols".to_owned()]));
    assert!(status.message().contains("at most 500"), "{status:?}");
    let at_limit = vec!["AAPL".to_owned(); 500];
    let answer = client.get_quotes(GetQuotesRequest { symbols: at_limit }).await.unwrap().into_inner();
    assert_eq!(answer.missing_symbols.len(), 500);
    let status = client.get_quotes(GetQuotesRequest { symbols: vec![] }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let unknown = vec!["AAPL".into(), "NOPE".into(), "MSFT".into(), "ZZZ".into()];
    let status = client.get_quotes(GetQuotesRequest { symbols: unknown }).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["symbols[1]", "symbols[3]"]);
    // Longer than any ticker: a bad request, refused before any lookup.
    let long = "L".repeat(25);
    let status = quote(&mut client, &long).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["symbol".to_owned()]));
    let status = client.get_quotes(GetQuotesRequest { symbols: vec!["AAPL".into(), long] }).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["symbols[1]".to_owned()]));
}

fn history(candles: &[(i64, [f64; 5])]) -> Vec<Candle> {
    candles
        .iter()
        .map(|(open_time, [open, high, low, close, volume])| Candle {
            open_time: Some(at(*open_time)),
            open: *open,
            high: *high,
            low: *low,
            close: *close,
            volume: *volume,
            ..Default::default()
        })
        .collect()
}

async fn import(
    client: &mut Client,
    symbol: &str,
    interval: Interval,
    candles: Vec<Candle>,
) -> Result<ImportCandlesResponse, tonic::Status> {
    wizdata_market_data::history::import(client, symbol, interval, candles).await
}

#[tokio::test]
async fn imports_replace_bars_and_feed_the_quote() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let today = BASE - BASE % DAY;
    let first =
        history(&[(today - 2 * DAY, [10.0, 11.0, 9.0, 10.5, 100.0]), (today - DAY, [10.5, 12.0, 10.0, 11.0, 200.0])]);
    let summary = import(&mut client, "SOL", Interval::OneDay, first).await.unwrap();
    assert_eq!((summary.imported, summary.replaced), (2, 0));
    let again = history(&[(today - DAY, [10.5, 12.5, 10.0, 12.0, 250.0]), (today, [12.0, 12.0, 12.0, 12.0, 0.0])]);
    let summary = import(&mut client, "SOL", Interval::OneDay, again).await.unwrap();
    assert_eq!((summary.imported, summary.replaced), (2, 1));
    let days =
        all_candles(&mut client, candles_request("SOL", Interval::OneDay, today - 2 * DAY, today + DAY), 10).await;
    assert_eq!(
        days.iter().map(ohlcv).collect::<Vec<_>>(),
        vec![
            (today - 2 * DAY, 10.0, 11.0, 9.0, 10.5, 100.0, 0),
            (today - DAY, 10.5, 12.5, 10.0, 12.0, 250.0, 0),
            (today, 12.0, 12.0, 12.0, 12.0, 0.0, 0),
        ]
    );
    // A live trade today merges into the imported bar and quotes against
    // the imported previous close.
    ingest(&mut client, vec![vec![trade("SOL", BASE, 13.0, 5.0)]]).await.unwrap();
    let quote = quote(&mut client, "SOL").await.unwrap();
    assert_eq!((quote.last_price, quote.previous_close, quote.day_open, quote.day_high), (13.0, 12.0, 12.0, 13.0));
}

#[tokio::test]
async fn bad_imports_are_refused_whole() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let today = BASE - BASE % DAY;
    let bad = history(&[
        (today, [10.0, 11.0, 9.0, 10.5, 100.0]),
        (today + 60, [10.0, 11.0, 9.0, 10.5, 100.0]),
        (today + DAY, [10.0, 9.0, 9.5, 9.2, 100.0]),
        (today + 2 * DAY, [f64::NAN, 11.0, 9.0, 10.5, 100.0]),
        (today, [10.0, 11.0, 9.0, 10.5, 100.0]),
        (today + 3 * DAY, [10.0, 11.0, 9.0, 10.5, -1.0]),
    ]);
    let status = import(&mut client, "FSR", Interval::OneDay, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["candles[1].open_time", "candles[2].high", "candles[3].open", "candles[4].open_time", "candles[5].volume"]
    );
    let days = all_candles(&mut client, candles_request("FSR", Interval::OneDay, today, today + 10 * DAY), 10).await;
    assert!(days.is_empty(), "nothing of a refused import is stored");

    let status = import(&mut client, "NOPE", Interval::OneDay, history(&[(today, [1.0; 5])])).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = import(&mut client, "FSR", Interval::Unspecified, history(&[(today, [1.0; 5])])).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["interval"]);
    let empty = client.import_candles(tokio_stream::iter(Vec::<ImportCandlesRequest>::new())).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let switching = vec![
        ImportCandlesRequest {
            symbol: "FSR".into(),
            interval: Interval::OneDay as i32,
            candles: history(&[(today, [1.0; 5])]),
        },
        ImportCandlesRequest { symbol: "SBK".into(), interval: 0, candles: vec![] },
    ];
    let status = client.import_candles(tokio_stream::iter(switching)).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["symbol"]);
}

/// The sample history: every row of the file comes back from GetCandles,
/// value for value.
#[tokio::test]
async fn orcl_history_round_trips_value_for_value() {
    let Some(text) = wizdata_test_support::sample_data("orcl-1995-2014.csv", "the ORCL import") else { return };
    let mesh = TestMesh::all().await;
    wizdata_test_support::register_orcl(&mesh).await;

    let candles = wizdata_market_data::history::parse_candles(text.as_bytes(), Interval::OneDay).unwrap();
    let mut client = mesh.market_data().await.max_decoding_message_size(64 * 1024 * 1024);
    let summary = import(&mut client, "ORCL", Interval::OneDay, candles).await.unwrap();

    // The file's rows, read here without the importer's parser.
    let rows: Vec<(String, [f64; 5])> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let number = |index: usize| fields[index].trim().parse::<f64>().unwrap();
            (fields[0].to_owned(), [number(1), number(2), number(3), number(4), number(6)])
        })
        .collect();
    assert_eq!(summary.imported, rows.len() as u64);
    let first = chrono::NaiveDate::parse_from_str(&rows[0].0, "%Y-%m-%d").unwrap();
    let start = first.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let range = GetCandlesRequest { end_time: None, ..candles_request("ORCL", Interval::OneDay, start, 0) };
    let stored = all_candles(&mut client, range, 10_000).await;
    assert_eq!(stored.len(), rows.len());
    for ((date, [open, high, low, close, volume]), candle) in rows.iter().zip(&stored) {
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let open_time = day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
        assert_eq!(ohlcv(candle), (open_time, *open, *high, *low, *close, *volume, 0), "{date}");
    }
}

#[tokio::test]
async fn without_the_registry_ingest_fails_unavailable_instead_of_rejecting() {
    let auth = TestMesh::serve("auth").start().await;
    let auth_url = auth.url();
    let mesh = TestMesh::serve("market-data")
        .database(auth.database())
        .flags(&["--registry-url", "http://127.0.0.1:9", "--registry-timeout", "300ms", "--auth-url", &auth_url])
        .start()
        .await;
    let mut client = MarketDataServiceClient::new(mesh.channel_as(auth.admin_credentials()).await);
    let status = ingest(&mut client, vec![vec![trade("AAPL", BASE, 100.0, 1.0)]]).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(quote(&mut client, "AAPL").await.unwrap_err().code(), Code::Unavailable);
}

/// A trade for the reference aggregation: (nanoseconds, price, size).
type RawTrade = (i64, f64, f64);

/// Candles as a straightforward reading of the rules: group by bar, sort each
/// bar's trades by (time, price), and read open, high, low, close and volume
/// off the sorted list.
fn reference_candles(trades: &[RawTrade], width: i64) -> Vec<(i64, f64, f64, f64, f64, f64, u64)> {
    let mut bars: std::collections::BTreeMap<i64, Vec<RawTrade>> = std::collections::BTreeMap::new();
    for trade in trades {
        bars.entry(trade.0.div_euclid(NANOS).div_euclid(width) * width).or_default().push(*trade);
    }
    bars.into_iter()
        .map(|(open_time, mut trades)| {
            trades.sort_by(|a, b| (a.0, a.1).partial_cmp(&(b.0, b.1)).unwrap());
            let high = trades.iter().map(|t| t.1).fold(f64::MIN, f64::max);
            let low = trades.iter().map(|t| t.1).fold(f64::MAX, f64::min);
            let volume = trades.iter().map(|t| t.2).sum();
            (open_time, trades[0].1, high, low, trades[trades.len() - 1].1, volume, trades.len() as u64)
        })
        .collect()
}

const INTERVAL_WIDTHS: [(Interval, i64); 5] = [
    (Interval::OneMinute, 60),
    (Interval::FiveMinutes, 300),
    (Interval::FifteenMinutes, 900),
    (Interval::OneHour, 3600),
    (Interval::OneDay, DAY),
];

/// Checks every interval's stored candles over `[start, end)` against the
/// reference.
async fn assert_reference_candles(client: &mut Client, symbol: &str, trades: &[RawTrade], start: i64, end: i64) {
    for (interval, width) in INTERVAL_WIDTHS {
        let stored = all_candles(client, candles_request(symbol, interval, start, end), 10_000).await;
        let stored: Vec<_> = stored.iter().map(ohlcv).collect();
        assert_eq!(stored, reference_candles(trades, width), "{interval:?}");
    }
}

fn tick_of(symbol: &str, (time_ns, price, size): RawTrade) -> Tick {
    Tick { time: Some(at_ns(time_ns)), ..trade(symbol, 0, price, size) }
}

/// Random trades, shuffled within their hour, cut into random calls sent
/// concurrently and random messages: the candles are exactly the reference's.
#[test]
fn candles_do_not_depend_on_arrival_order_or_how_ticks_were_split() {
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mesh = runtime.block_on(TestMesh::all());
    let channel = runtime.block_on(mesh.channel());
    let case = std::sync::atomic::AtomicI64::new(0);

    // Seconds within a three-hour window (so ties are common), prices in
    // cents, whole sizes (so sums are exact in any order).
    let trades = proptest::collection::vec((0i64..3 * 3600, 1u32..20_000, 1u32..1_000), 1..400);
    let config = ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(trades, any::<u64>()), |(raw, seed)| {
            // Each case trades on a day of its own, so cases never share a bar.
            let day = 1_672_531_200 + case.fetch_add(1, std::sync::atomic::Ordering::SeqCst) * DAY;
            let window = day + 3600;
            let trades: Vec<RawTrade> = raw
                .iter()
                .map(|(second, cents, size)| ((window + second) * NANOS, f64::from(*cents) / 100.0, f64::from(*size)))
                .collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut arrival = trades.clone();
            arrival.sort_by_key(|trade| trade.0);
            for hour in arrival.chunk_by_mut(|a, b| a.0 / (3600 * NANOS) == b.0 / (3600 * NANOS)) {
                hour.shuffle(&mut rng);
            }
            let mut calls: Vec<Vec<Vec<Tick>>> = Vec::new();
            let mut rest = arrival.as_slice();
            while !rest.is_empty() {
                let take = rng.random_range(1..=rest.len());
                let (call, after) = rest.split_at(take);
                let mut messages = Vec::new();
                for message in call.chunks(rng.random_range(1..=50)) {
                    messages.push(message.iter().map(|trade| tick_of("BTC/USDT", *trade)).collect());
                }
                calls.push(messages);
                rest = after;
            }
            runtime.block_on(async {
                let sends = calls.into_iter().map(|messages| {
                    let mut client = MarketDataServiceClient::new(channel.clone());
                    async move { ingest(&mut client, messages).await.unwrap().accepted }
                });
                let accepted: u64 = futures_util::future::join_all(sends).await.into_iter().sum();
                assert_eq!(accepted, trades.len() as u64);
                let mut client = MarketDataServiceClient::new(channel.clone());
                assert_reference_candles(&mut client, "BTC/USDT", &trades, day, day + DAY).await;
            });
            Ok(())
        })
        .unwrap();
    runtime.block_on(mesh.stop()).unwrap();
}

/// Real ticks from the sample file make the reference candles.
#[tokio::test]
async fn sample_ticks_make_the_reference_candles() {
    let Some(text) = wizdata_test_support::sample_data("ticksample.csv", "the tick sample") else { return };
    let trades: Vec<RawTrade> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let time = chrono::NaiveDateTime::parse_from_str(fields[0], "%Y-%m-%dT%H:%M:%S%.f").unwrap();
            let ns = time.and_utc().timestamp_nanos_opt().unwrap();
            (ns, fields[4].parse().unwrap(), fields[5].parse().unwrap())
        })
        .collect();
    assert!(trades.len() > 100, "the sample has its ticks");
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let ticks: Vec<Tick> = trades.iter().map(|trade| tick_of("ETH/USDT", *trade)).collect();
    let summary = ingest(&mut client, ticks.chunks(10).map(<[Tick]>::to_vec).collect()).await.unwrap();
    assert_eq!(summary.accepted, trades.len() as u64);
    let first_day = trades.iter().map(|t| t.0).min().unwrap() / NANOS / DAY * DAY;
    let last = trades.iter().map(|t| t.0).max().unwrap() / NANOS;
    assert_reference_candles(&mut client, "ETH/USDT", &trades, first_day, last + DAY).await;
}

/// Redis between the service and the test runs through a proxy the test
/// cuts, so the shared Redis keeps serving every other test.
#[tokio::test]
async fn quotes_fall_back_to_the_database_while_redis_is_down_and_recover() {
    use fred::interfaces::{ClientLike, KeysInterface};
    use prost::Message;
    use tonic_health::pb::health_check_response::ServingStatus;
    use wizdata_test_support::{health_of, wait_for_health};

    let Some(redis) = wizdata_test_support::redis_or_skip("Redis fallback").await else { return };
    let (proxy, via_proxy) = redis.behind_proxy().await;
    // `redis` (not the mesh) owns the prefix and cleans it up.
    let flags = [
        "--redis-url",
        &via_proxy,
        "--redis-prefix",
        &redis.prefix,
        "--redis-health-interval",
        "200ms",
        "--redis-timeout",
        "200ms",
    ];
    let mesh = TestMesh::serve("all").flags(&flags).start().await;
    let mut client = mesh.market_data().await;
    let redis_health = "dependency/redis";

    let direct =
        fred::types::Builder::from_config(fred::types::config::Config::from_url(&redis.url).unwrap()).build().unwrap();
    direct.init().await.unwrap();
    let key = format!("{}quote:AAPL", redis.prefix);
    let cached_price = || async {
        let bytes: Option<Vec<u8>> = direct.get(&key).await.unwrap();
        bytes.map(|bytes| Quote::decode(bytes.as_slice()).unwrap().last_price)
    };

    ingest(&mut client, vec![vec![trade("AAPL", BASE, 100.0, 1.0)]]).await.unwrap();
    assert_eq!(quote(&mut client, "AAPL").await.unwrap().last_price, 100.0);
    assert_eq!(cached_price().await, Some(100.0), "the writer filled Redis");
    assert_eq!(health_of(&mesh, redis_health).await.unwrap(), ServingStatus::Serving);

    proxy.cut();
    assert!(
        wait_for_health(&mesh, redis_health, ServingStatus::NotServing, Duration::from_secs(10)).await,
        "health says Redis is gone"
    );
    assert_eq!(health_of(&mesh, "").await.unwrap(), ServingStatus::Serving, "degraded, still serving");
    ingest(&mut client, vec![vec![trade("AAPL", BASE + 1, 101.0, 1.0)]]).await.expect("ingest carries on");
    assert_eq!(quote(&mut client, "AAPL").await.unwrap().last_price, 101.0, "answered from the database");
    assert_eq!(cached_price().await, Some(100.0), "Redis still holds the old quote");

    proxy.restore();
    assert!(
        wait_for_health(&mesh, redis_health, ServingStatus::Serving, Duration::from_secs(10)).await,
        "health says Redis is back"
    );
    assert_eq!(quote(&mut client, "AAPL").await.unwrap().last_price, 101.0, "never the stale cached quote");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cached_price().await != Some(101.0) {
        assert!(tokio::time::Instant::now() < deadline, "the cache is refilled once Redis is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ingest(&mut client, vec![vec![trade("AAPL", BASE + 2, 102.0, 1.0)]]).await.unwrap();
    assert_eq!(cached_price().await, Some(102.0), "writes reach Redis again");
    let _ = direct.quit().await;
}

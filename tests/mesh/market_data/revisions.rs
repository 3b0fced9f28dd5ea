//! Series revisions: every write to a symbol's bars at an interval gives
//! them a new, larger revision; nothing else does. GetCandles carries the
//! revision it read before its candles, and serves settled bars from a
//! cache that no write, on any replica, leaves stale.

use super::*;
use wizdata_test_support::identified_trade;

async fn revision(client: &mut Client, symbol: &str, interval: Interval) -> u64 {
    let request = GetSeriesRevisionRequest { symbol: symbol.into(), interval: interval as i32 };
    let answer = client.get_series_revision(request).await.unwrap().into_inner();
    assert_eq!((answer.symbol.as_str(), answer.interval), (symbol, interval as i32));
    answer.revision
}

/// A bar as an import sends it: close 1.5.
fn imported_bar(open_time: i64) -> Candle {
    Candle {
        open_time: Some(at(open_time)),
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close: 1.5,
        volume: 3.0,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_write_to_a_series_and_only_a_write_gives_it_a_larger_revision() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    assert_eq!(revision(&mut client, "AAPL", Interval::OneMinute).await, 0, "never written");

    // A new bar, at every interval.
    let trade_at = |offset: i64, price: f64, id: &str| identified_trade("AAPL", BASE + offset, price, 1.0, "x", id);
    ingest(&mut client, vec![vec![trade_at(10, 100.0, "1")]]).await.unwrap();
    let mut seen = vec![revision(&mut client, "AAPL", Interval::OneMinute).await];
    let day = revision(&mut client, "AAPL", Interval::OneDay).await;
    assert!(seen[0] > 0 && day > 0, "{seen:?} {day}");

    // GetCandles carries the revision it read before its candles.
    let candles =
        client.get_candles(candles_request("AAPL", Interval::OneMinute, BASE, BASE + 3600)).await.unwrap().into_inner();
    assert_eq!((candles.revision, candles.candles.len()), (seen[0], 1));

    // The same bar updated, then a later bar, then a late trade into the
    // first (closed) bar, then an import: each a larger revision.
    ingest(&mut client, vec![vec![trade_at(20, 101.0, "2")]]).await.unwrap();
    seen.push(revision(&mut client, "AAPL", Interval::OneMinute).await);
    ingest(&mut client, vec![vec![trade_at(70, 102.0, "3")]]).await.unwrap();
    seen.push(revision(&mut client, "AAPL", Interval::OneMinute).await);
    ingest(&mut client, vec![vec![trade_at(30, 99.0, "4")]]).await.unwrap();
    seen.push(revision(&mut client, "AAPL", Interval::OneMinute).await);
    let bar = imported_bar(BASE + 120);
    import(&mut client, "AAPL", Interval::OneMinute, vec![bar]).await.unwrap();
    seen.push(revision(&mut client, "AAPL", Interval::OneMinute).await);
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "strictly growing: {seen:?}");

    // The import wrote only 1m bars; a replay writes no bar at all.
    assert!(revision(&mut client, "AAPL", Interval::OneDay).await > day, "ingest wrote the day bar too");
    let day = revision(&mut client, "AAPL", Interval::OneDay).await;
    let replay = ingest(&mut client, vec![vec![trade_at(10, 100.0, "1"), trade_at(30, 99.0, "4")]]).await.unwrap();
    assert_eq!((replay.accepted, replay.rejected), (0, 2), "{replay:?}");
    assert_eq!(
        revision(&mut client, "AAPL", Interval::OneMinute).await,
        seen[seen.len() - 1],
        "a replay changes nothing"
    );
    assert_eq!(revision(&mut client, "AAPL", Interval::OneDay).await, day);
    assert_eq!(revision(&mut client, "MSFT", Interval::OneMinute).await, 0, "another symbol's series is its own");
}

#[tokio::test]
async fn bad_revision_requests() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let everything = GetSeriesRevisionRequest { symbol: " ".into(), interval: 0 };
    let mut fields = invalid_fields(client.get_series_revision(everything).await.unwrap_err());
    fields.sort();
    assert_eq!(fields, ["interval", "symbol"], "every bad field at once");
    let unknown_interval = GetSeriesRevisionRequest { symbol: "AAPL".into(), interval: 42 };
    assert_eq!(invalid_fields(client.get_series_revision(unknown_interval).await.unwrap_err()), ["interval"]);

    let unknown = GetSeriesRevisionRequest { symbol: "NOPE".into(), interval: Interval::OneMinute as i32 };
    let status = client.get_series_revision(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.get_details_resource_info().unwrap().resource_name, "NOPE");
}

/// Two replicas on one database (and one Redis, when the tests have one):
/// a write through one is in the other's next GetCandles once acknowledged,
/// though the other had the bar cached; never an older bar.
#[tokio::test]
async fn a_replica_never_serves_a_bar_older_than_another_replicas_acknowledged_write() {
    let first = TestMesh::all().await;
    let shared_redis: Vec<String> =
        first.redis.as_ref().map(wizdata_common::testing::TestRedis::args).unwrap_or_default();
    let flags: Vec<&str> = shared_redis.iter().map(String::as_str).collect();
    let second = TestMesh::serve("all").database(first.database()).flags(&flags).start().await;
    let ticks: Vec<Tick> = (0..10).map(|minute| trade("GOOGL", BASE + minute * 60 + 10, 100.0, 1.0)).collect();
    ingest(&mut first.market_data().await, vec![ticks]).await.unwrap();
    let range = candles_request("GOOGL", Interval::OneMinute, BASE, BASE + 600);
    let closes = |candles: Vec<Candle>| candles.iter().map(|candle| candle.close).collect::<Vec<_>>();
    let (mut writer, mut reader) = (first.market_data().await, second.market_data().await);
    // The reader's first read fills its cache; the next ones may come from it.
    assert_eq!(closes(all_candles(&mut reader, range.clone(), 1000).await), [100.0; 10]);
    let mut expected = [100.0; 10];
    for minute in 0..10 {
        // A late trade into a long closed bar, after its last one: its close.
        let late = trade("GOOGL", BASE + minute * 60 + 50, 200.0 + minute as f64, 1.0);
        ingest(&mut writer, vec![vec![late]]).await.unwrap();
        expected[minute as usize] = 200.0 + minute as f64;
        assert_eq!(closes(all_candles(&mut reader, range.clone(), 1000).await), expected, "after write {minute}");
        assert_eq!(closes(all_candles(&mut reader, range.clone(), 3).await), expected, "in pages of 3");
    }
    // And an import through the reader, read through the writer.
    let bar = imported_bar(BASE);
    all_candles(&mut writer, range.clone(), 1000).await;
    import(&mut reader, "GOOGL", Interval::OneMinute, vec![bar]).await.unwrap();
    expected[0] = 1.5;
    assert_eq!(closes(all_candles(&mut writer, range, 1000).await), expected);
}

/// A cache with room for four bars keeps evicting series and still answers
/// every read exactly.
#[tokio::test]
async fn a_cache_at_its_size_limit_evicts_and_answers_correctly() {
    let mesh = TestMesh::all_with(&["--candle-cache-bars", "4"]).await;
    let mut client = mesh.market_data().await;
    let symbols = ["AAPL", "MSFT", "GOOGL"];
    for (index, symbol) in symbols.iter().enumerate() {
        let ticks =
            (0..3).map(|minute| trade(symbol, BASE + minute * 60, (10 + index * 10) as f64 + minute as f64, 1.0));
        ingest(&mut client, vec![ticks.collect()]).await.unwrap();
    }
    for round in 0..3 {
        for (index, symbol) in symbols.iter().enumerate() {
            let candles =
                all_candles(&mut client, candles_request(symbol, Interval::OneMinute, BASE, BASE + 180), 2).await;
            let closes: Vec<f64> = candles.iter().map(|candle| candle.close).collect();
            let base = (10 + index * 10) as f64;
            assert_eq!(closes, [base, base + 1.0, base + 2.0], "{symbol}, round {round}");
        }
    }
}

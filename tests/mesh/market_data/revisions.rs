//! Series revisions: every write to a symbol's bars at an interval gives
//! them a new, larger revision; nothing else does. GetCandles carries the
//! revision it read before its candles.

use super::*;
use wizdata_test_support::identified_trade;

async fn revision(client: &mut Client, symbol: &str, interval: Interval) -> u64 {
    let request = GetSeriesRevisionRequest { symbol: symbol.into(), interval: interval as i32 };
    let answer = client.get_series_revision(request).await.unwrap().into_inner();
    assert_eq!((answer.symbol.as_str(), answer.interval), (symbol, interval as i32));
    answer.revision
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
    let bar = Candle {
        open_time: Some(at(BASE + 120)),
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close: 1.5,
        volume: 3.0,
        ..Default::default()
    };
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

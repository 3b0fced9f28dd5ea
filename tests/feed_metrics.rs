//! Its own test binary: a feed's metrics are the process's, counted from
//! zero here. A Kraken feed inside `serve all`, against a local server
//! speaking Kraken's protocol, shows on the mesh's metrics page what it
//! received by kind, its lag, and its health (connected).

use std::time::Duration;

use wizdata_test_support::fake_provider::{FakeWebSocket, Script, Step};
use wizdata_test_support::prometheus::{sample, scrape};
use wizdata_test_support::{TestMesh, eventually};

#[tokio::test]
async fn a_feed_counts_what_it_received_by_kind_and_reports_its_connection() {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let trade = format!(
        r#"{{"channel":"trade","type":"update","data":[{{"symbol":"BTC/USDT","side":"buy","price":16800.0,"qty":0.5,"ord_type":"market","trade_id":1,"timestamp":"{now}"}}]}}"#
    );
    let ack = r#"{"method":"subscribe","req_id":1,"result":{"channel":"trade","snapshot":false,"symbol":"BTC/USDT"},"success":true,"time_in":"2022-12-31T19:42:59.742599Z","time_out":"2022-12-31T19:42:59.742648Z"}"#;
    let provider = FakeWebSocket::start(vec![Script::Upgrade(vec![
        Step::Receive,
        Step::Receive,
        Step::Send(ack.into()),
        Step::Send(r#"{"channel":"heartbeat"}"#.into()),
        Step::Send(trade),
        Step::Send("not json".into()),
        Step::Send(r#"{"channel":"book","type":"update","data":[]}"#.into()),
        Step::Silence,
    ])])
    .await;
    let url = provider.url("/v2");
    let mesh =
        TestMesh::all_with(&["--feeds", "kraken", "--kraken-ws-url", &url, "--kraken-symbols", "BTC/USDT"]).await;
    let kraken = |kind: &'static str| [("provider", "kraken"), ("kind", kind)];
    let counted = eventually(Duration::from_secs(10), async || {
        sample(&scrape(mesh.metrics_port).await, "feed_messages_total", &kraken("unknown")) == Some(1.0)
    })
    .await;
    let page = scrape(mesh.metrics_port).await;
    assert!(counted, "{page}");
    assert_eq!(sample(&page, "feed_messages_total", &kraken("trade")), Some(1.0));
    assert_eq!(sample(&page, "feed_messages_total", &kraken("control")), Some(2.0), "the answer and the heartbeat");
    assert_eq!(sample(&page, "feed_messages_total", &kraken("malformed")), Some(1.0));
    assert_eq!(sample(&page, "feed_messages_total", &kraken("stale")), Some(0.0), "exported at zero");
    assert_eq!(sample(&page, "feed_connected", &[("provider", "kraken")]), Some(1.0));
    assert_eq!(sample(&page, "feed_reconnects_total", &[("provider", "kraken")]), Some(0.0));
    let lag = sample(&page, "feed_lag_seconds", &[("provider", "kraken")]).expect("a lag after a trade");
    assert!((0.0..60.0).contains(&lag), "received within the minute: {lag}");
    let published = eventually(Duration::from_secs(10), async || {
        let page = scrape(mesh.metrics_port).await;
        sample(&page, "feed_ticks_total", &[("provider", "kraken"), ("outcome", "accepted")]) == Some(1.0)
    })
    .await;
    assert!(published, "{}", scrape(mesh.metrics_port).await);
}

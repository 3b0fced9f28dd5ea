//! Its own test binary (and one test), outside tests/mesh: the counters it
//! checks by exact count are the process's.
//!
//! Every process serves Prometheus text on its metrics port: after some
//! calls, `curl` of it shows the standard gRPC server metrics with the right
//! labels and counts, and the services' own counters.

use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::{ComputeIndicatorsRequest, IndicatorSpec};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetQuoteRequest, IngestTicksRequest};
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::TestMesh;
use wizdata_test_support::prometheus::{sample, scrape};

#[tokio::test]
async fn the_metrics_port_shows_grpc_server_metrics_and_service_counters() {
    let mesh = TestMesh::all().await;
    // Before any call, every counter the README lists is there at zero, so
    // `rate()` and alerts see the series from the start.
    let fresh = scrape(mesh.metrics_port).await;
    for (name, labels) in [
        ("gateway_rate_limit_decisions_total", &[("outcome", "limited"), ("mode", "local")][..]),
        ("gateway_retries_total", &[]),
        ("gateway_breaker_rejections_total", &[("grpc_service", "wizdata.registry.v1.RegistryService")]),
        ("gateway_no_healthy_endpoint_total", &[("grpc_service", "wizdata.auth.v1.AuthService")]),
        ("marketdata_ticks_total", &[("outcome", "accepted")]),
        ("marketdata_ticks_total", &[("outcome", "rejected"), ("reason", "TICK_REJECTION_FUTURE_TIME")]),
        ("marketdata_ticks_total", &[("outcome", "rejected"), ("reason", "TICK_REJECTION_DUPLICATE")]),
        ("marketdata_trade_ids_forgotten_total", &[]),
        ("marketdata_commits_total", &[]),
        ("marketdata_candles_written_total", &[]),
        ("streaming_events_total", &[("direction", "out")]),
        ("streaming_events_dropped_total", &[]),
        ("streaming_quotes_conflated_total", &[]),
        ("streaming_connections", &[]),
        ("indicator_series_cache_hits_total", &[]),
        ("indicator_candle_fetches_total", &[]),
        ("marketdata_candle_cache_lookups_total", &[("outcome", "hit")]),
        ("marketdata_candle_cache_evictions_total", &[]),
    ] {
        assert_eq!(sample(&fresh, name, labels), Some(0.0), "{name} {labels:?} at zero: {fresh}");
    }
    let store = if mesh.redis.is_some() { "redis" } else { "memory" };
    assert!(sample(&fresh, "cache_lookups_total", &[("store", store), ("outcome", "miss")]).is_some(), "{fresh}");

    let mut registry = RegistryServiceClient::new(mesh.channel().await);
    for _ in 0..3 {
        registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.unwrap();
    }
    registry.get_symbol(GetSymbolRequest { ticker: "NOPE".into() }).await.unwrap_err();
    let mut through_gateway = RegistryServiceClient::new(mesh.gateway_channel_as(Credentials::none()).await);
    for _ in 0..2 {
        through_gateway.get_symbol(GetSymbolRequest { ticker: "MSFT".into() }).await.unwrap();
    }
    // A failure answered trailers-only is counted by the code in its headers.
    through_gateway.get_symbol(GetSymbolRequest { ticker: "NOPE".into() }).await.unwrap_err();
    let text = scrape(mesh.metrics_port).await;
    let registry_service = ("grpc_service", "wizdata.registry.v1.RegistryService");
    let get_symbol = ("grpc_method", "GetSymbol");
    let served = ("component", "service");
    let handled = |code: &str, component: &str| {
        sample(
            &text,
            "grpc_server_handled_total",
            &[registry_service, get_symbol, ("grpc_code", code), ("component", component)],
        )
    };
    // Direct calls and the ones the gateway forwarded, all served here.
    assert_eq!(handled("OK", "service"), Some(5.0), "{text}");
    assert_eq!(handled("NotFound", "service"), Some(2.0));
    assert_eq!(handled("OK", "gateway"), Some(2.0), "the gateway counts what entered through it");
    assert_eq!(handled("NotFound", "gateway"), Some(1.0));
    let at_the_gateway = ("component", "gateway");
    assert_eq!(sample(&text, "grpc_server_started_total", &[registry_service, get_symbol, at_the_gateway]), Some(3.0));
    assert_eq!(sample(&text, "grpc_server_in_flight", &[registry_service, get_symbol, at_the_gateway]), Some(0.0));
    assert_eq!(sample(&text, "grpc_server_started_total", &[registry_service, get_symbol, served]), Some(7.0));
    assert_eq!(sample(&text, "grpc_server_handling_seconds_count", &[registry_service, get_symbol, served]), Some(7.0));
    let within_30s =
        sample(&text, "grpc_server_handling_seconds_bucket", &[registry_service, get_symbol, served, ("le", "30")]);
    assert_eq!(within_30s, Some(7.0), "every call fell in a bucket");
    assert_eq!(sample(&text, "grpc_server_in_flight", &[registry_service, get_symbol, served]), Some(0.0));

    // The services' own counters (ingest also looks its symbols up in the registry).
    let mut market = MarketDataServiceClient::new(mesh.channel().await);
    let now = wizdata_test_support::now_seconds();
    let trade = |symbol: &str| wizdata_test_support::trade(symbol, now, 101.5, 2.0);
    let ingested = market
        .ingest_ticks(tokio_stream::iter(vec![IngestTicksRequest { ticks: vec![trade("AAPL"), trade("NOPE")] }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ingested.accepted, ingested.rejected), (1, 1));
    market.get_quote(GetQuoteRequest { symbol: "AAPL".into() }).await.unwrap();

    let text = scrape(mesh.metrics_port).await;
    let ingest = [("grpc_service", "wizdata.marketdata.v1.MarketDataService"), ("grpc_method", "IngestTicks")];
    assert_eq!(sample(&text, "grpc_server_handled_total", &[ingest[0], ingest[1], ("grpc_code", "OK")]), Some(1.0));
    assert_eq!(sample(&text, "marketdata_ticks_total", &[("outcome", "accepted")]), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "marketdata_ticks_total",
            &[("outcome", "rejected"), ("reason", "TICK_REJECTION_UNKNOWN_SYMBOL")]
        ),
        Some(1.0)
    );
    assert!(sample(&text, "marketdata_candles_written_total", &[]).unwrap_or_default() >= 5.0, "one bar per interval");
    let lookups = sample(&text, "cache_lookups_total", &[("outcome", "hit")]).unwrap_or_default()
        + sample(&text, "cache_lookups_total", &[("outcome", "miss")]).unwrap_or_default();
    assert!(lookups >= 1.0, "the quote read looked in the cache: {text}");
    assert!(sample(&text, "gateway_rate_limit_decisions_total", &[("outcome", "allowed")]).is_some());
    let pool = [("service", "wizdata.registry.v1.RegistryService"), ("state", "idle")];
    assert!(sample(&text, "db_pool_connections", &pool).is_some(), "database pool state: {text}");
    assert!(text.contains("# TYPE grpc_server_handling_seconds histogram"));

    // ComputeIndicators over the same range twice: the second finds every
    // result under the series' revision and fetches no candles.
    let mut indicators = IndicatorServiceClient::new(mesh.channel().await);
    let compute = ComputeIndicatorsRequest {
        symbol: "AAPL".into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(prost_types::Timestamp { seconds: now - 3600, nanos: 0 }),
        end_time: Some(prost_types::Timestamp { seconds: now + 60, nanos: 0 }),
        indicators: vec![IndicatorSpec { name: "OBV".into(), parameters: Default::default() }],
    };
    let first = indicators.compute_indicators(compute.clone()).await.unwrap().into_inner();
    let second = indicators.compute_indicators(compute).await.unwrap().into_inner();
    assert_eq!(first, second);
    assert_eq!(first.results[0].outputs[0].values, [2.0], "the one trade's size");
    let text = scrape(mesh.metrics_port).await;
    assert_eq!(sample(&text, "indicator_candle_fetches_total", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "indicator_series_cache_hits_total", &[]), Some(1.0), "{text}");

    // A call its caller resets after its headers, before its message, ends
    // CANCELLED: the caller left and nothing failed, so it is no INTERNAL.
    let started = |text: &str| sample(text, "grpc_server_started_total", &[registry_service, get_symbol, served]);
    let before = started(&text);
    let (mut call, connection) = open_call(mesh.port, "/wizdata.registry.v1.RegistryService/GetSymbol").await;
    let text = scrape_until(mesh.metrics_port, |text| started(text) > before).await;
    assert!(started(&text) > before, "the call reached the service: {text}");
    call.send_reset(h2::Reason::CANCEL);
    let ended = |text: &str, code: &str| {
        let labels = [registry_service, get_symbol, ("grpc_code", code), served];
        sample(text, "grpc_server_handled_total", &labels).unwrap_or_default()
    };
    let text = scrape_until(mesh.metrics_port, |text| ended(text, "Cancelled") + ended(text, "Internal") > 0.0).await;
    assert_eq!(ended(&text, "Cancelled"), 1.0, "{text}");
    assert_eq!(ended(&text, "Internal"), 0.0, "{text}");
    connection.abort();
}

/// The metrics on `port` once `done` says so, or after 5 s.
async fn scrape_until(port: u16, done: impl Fn(&str) -> bool) -> String {
    let mut text = scrape(port).await;
    for _ in 0..200 {
        if done(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        text = scrape(port).await;
    }
    text
}

/// Opens a gRPC call to `path` on `port` over a bare HTTP/2 connection and
/// sends its headers only; the connection stays open until the returned
/// task is aborted.
async fn open_call(port: u16, path: &str) -> (h2::SendStream<bytes::Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (_answer, call) = client.send_request(request, false).unwrap();
    (call, connection)
}

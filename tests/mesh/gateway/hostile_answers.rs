//! Answers a caller can make large: errors echoing huge or many bad inputs
//! stay small enough for every client (8 KiB of headers in grpc-go and
//! grpcio), and no answer, however large, takes a backend out of rotation
//! or opens its circuit: a caller must not be able to eject an endpoint.

use tonic::Code;
use tonic_types::StatusExt;
use wizdata::marketdata::v1::{GetQuoteRequest, GetQuotesRequest};
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::streaming::v1::{Channel, SubscribeRequest};
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::ClientChannel;
use wizdata_test_support::{TestMesh, ingest_accepted, trade_now};

/// The size of a status's headers as a client receives them.
fn header_bytes(status: &tonic::Status) -> usize {
    status
        .metadata()
        .clone()
        .into_headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum::<usize>()
        + status.message().len()
        + status.details().len() * 4 / 3
}

/// The hostile calls, each answered INVALID_ARGUMENT naming the bad fields:
/// many unknown symbols, and one symbol far longer than any ticker.
async fn hostile_calls(channel: &ClientChannel) -> Vec<tonic::Status> {
    use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
    use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
    let mut market = MarketDataServiceClient::new(channel.clone());
    let mut streams = StreamingServiceClient::new(channel.clone());
    let unknown = |count: usize| (0..count).map(|index| format!("Q{index:05}")).collect::<Vec<_>>();
    vec![
        market.get_quotes(GetQuotesRequest { symbols: unknown(500) }).await.unwrap_err(),
        market.get_quote(GetQuoteRequest { symbol: "Q".repeat(1 << 20) }).await.unwrap_err(),
        streams
            .subscribe(SubscribeRequest {
                symbols: unknown(200),
                channels: vec![Channel::Trades as i32],
                ..Default::default()
            })
            .await
            .unwrap_err(),
    ]
}

#[tokio::test]
async fn errors_echoing_hostile_input_stay_small_and_readable() {
    let mesh = TestMesh::all_with(&["--rate-limit-anonymous", "1000/1m"]).await;
    for channel in [mesh.anonymous_channel().await, mesh.gateway_channel_as(Credentials::none()).await] {
        let statuses = hostile_calls(&channel).await;
        for status in &statuses {
            assert!(header_bytes(status) < 8 * 1024, "{} bytes of status", header_bytes(status));
        }
        for status in &statuses {
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert!(status.get_details_bad_request().is_some(), "the field violations decode");
        }
        for status in [&statuses[0], &statuses[2]] {
            let bad_request = status.get_details_bad_request().unwrap();
            assert_eq!(bad_request.field_violations.len(), 20, "the first 20 of many");
            assert!(status.message().ends_with("more"), "the rest counted: {}", status.message());
        }
        let huge = statuses[1].get_details_bad_request().unwrap();
        assert_eq!(huge.field_violations[0].field, "symbol");
        assert!(huge.field_violations[0].description.contains("at most 24 characters"));
    }
}

#[tokio::test]
async fn an_answer_over_the_gateways_header_limit_fails_that_call_only() {
    // A limit small enough that the hostile errors exceed it.
    let mesh = TestMesh::all_with(&["--rate-limit-anonymous", "1000/1m", "--max-answer-header-bytes", "1024"]).await;
    let anonymous = mesh.gateway_channel_as(Credentials::none()).await;
    for _ in 0..4 {
        let statuses = hostile_calls(&anonymous).await;
        // The many-symbol errors exceed 1 KiB of headers; the huge symbol's is short.
        for status in [&statuses[0], &statuses[2]] {
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert!(status.message().contains("could not be passed on"), "{}", status.message());
        }
        assert_eq!(statuses[1].code(), Code::InvalidArgument, "{:?}", statuses[1]);
    }
    let ready = mesh.gateway_readiness().await;
    for service in ["wizdata.marketdata.v1.MarketDataService", "wizdata.streaming.v1.StreamingService"] {
        let backend = &ready["backends"][service];
        assert_eq!(backend["healthy_endpoints"], 1, "{service} stays in rotation: {ready}");
        assert_eq!(backend["circuit_open"], false, "{service}'s circuit stays closed: {ready}");
    }
    let mut registry = wizdata::registry::v1::registry_service_client::RegistryServiceClient::new(
        mesh.gateway_channel_as(mesh.admin_credentials()).await,
    );
    for _ in 0..10 {
        registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.expect("others are served");
    }
}

#[tokio::test]
async fn hostile_calls_at_the_anonymous_rate_for_20_seconds_eject_nothing() {
    use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
    use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
    // The default anonymous limit (60 a minute), and an answer-header limit
    // the many-symbol errors exceed: the answers that once ejected backends.
    let mesh = TestMesh::all_with(&["--max-answer-header-bytes", "1024"]).await;
    ingest_accepted(&mesh, vec![trade_now("AAPL", 150.0)]).await;
    let anonymous = mesh.gateway_channel_as(Credentials::none()).await;
    let mut hostile_market = MarketDataServiceClient::new(anonymous.clone());
    let mut hostile_streams = StreamingServiceClient::new(anonymous);
    let mut market = MarketDataServiceClient::new(mesh.gateway_channel_as(mesh.admin_credentials()).await);

    let unknown = |count: usize| (0..count).map(|index| format!("Q{index:05}")).collect::<Vec<_>>();
    let hostile = async {
        let mut pace = tokio::time::interval(std::time::Duration::from_secs(1));
        let mut answers = Vec::new();
        for round in 0..20 {
            pace.tick().await;
            let answer = match round % 3 {
                0 => hostile_market.get_quotes(GetQuotesRequest { symbols: unknown(500) }).await.map(|_| ()),
                1 => hostile_market.get_quote(GetQuoteRequest { symbol: "Q".repeat(1 << 20) }).await.map(|_| ()),
                _ => hostile_streams
                    .subscribe(SubscribeRequest {
                        symbols: unknown(200),
                        channels: vec![Channel::Trades as i32],
                        ..Default::default()
                    })
                    .await
                    .map(|_| ()),
            };
            answers.push(answer.expect_err("every hostile call is refused").code());
        }
        answers
    };
    let authenticated = async {
        let started = tokio::time::Instant::now();
        let mut codes = Vec::new();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            let answer = market.get_quote(GetQuoteRequest { symbol: "AAPL".into() }).await;
            codes.push(answer.map_or_else(|status| status.code(), |_| Code::Ok));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        codes
    };
    let (hostile_codes, authenticated_codes) = tokio::join!(hostile, authenticated);

    // Over the header limit: INTERNAL for that call; the huge symbol's short error passes.
    for (round, code) in hostile_codes.iter().enumerate() {
        let expected = if round % 3 == 1 { Code::InvalidArgument } else { Code::Internal };
        assert_eq!(*code, expected, "hostile call {round}: {hostile_codes:?}");
    }
    assert!(authenticated_codes.len() > 100, "the authenticated client kept calling: {}", authenticated_codes.len());
    assert!(authenticated_codes.iter().all(|code| *code == Code::Ok), "{authenticated_codes:?}");
    let ready = mesh.gateway_readiness().await;
    for (service, backend) in ready["backends"].as_object().unwrap() {
        assert_eq!(backend["healthy_endpoints"], backend["endpoints"], "{service} stays in rotation: {ready}");
        assert_eq!(backend["circuit_open"], false, "{service}'s circuit stays closed: {ready}");
    }
}

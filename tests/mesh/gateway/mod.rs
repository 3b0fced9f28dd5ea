//! The gateway end to end: gRPC-Web (binary and text, over HTTP/1.1) and
//! native gRPC through one port give the same answers as calling the
//! services directly; identity and rate limits at the edge; routing around
//! failed endpoints; and every kind of bad input answered with a clear
//! status.

mod hostile_answers;
mod http_versions;
mod odd_backends;
mod protocols;
mod shared_limits;
mod trailers;

use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::auth::v1::{Tier, WhoAmIRequest, WhoAmIResponse};
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::{
    ComputeIndicatorsRequest, ComputeIndicatorsResponse, IndicatorSpec, ListIndicatorsRequest,
};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, GetCandlesResponse, GetQuoteRequest, GetQuoteResponse};
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::{GetSymbolRequest, GetSymbolResponse, ListSymbolsRequest, ListSymbolsResponse};
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::{
    Channel, GetStreamStatsRequest, GetStreamStatsResponse, SubscribeRequest, SubscribeResponse, market_event,
    subscribe_response,
};
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::grpc_web::{Encoding, GrpcWebClient, frame};
use wizdata_test_support::{TestMesh, health_at, ingest_accepted, trade_now, wait_for_health_at};

const WAIT: Duration = Duration::from_secs(20);

fn web(mesh: &TestMesh, encoding: Encoding) -> GrpcWebClient {
    GrpcWebClient::new(mesh.gateway_port.expect("serve all runs the gateway"), encoding)
}

fn bearer(key: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    format!("Bearer {}", key.expose_secret())
}

/// Calls `path` with `request` over gRPC-Web binary and text and checks both
/// decode to `native`.
async fn same_over_grpc_web<M>(
    mesh: &TestMesh,
    path: &str,
    request: &impl Message,
    native: &M,
    headers: &[(&str, &str)],
) where
    M: Message + Default + PartialEq + std::fmt::Debug,
{
    for encoding in [Encoding::Binary, Encoding::Text] {
        let answer = web(mesh, encoding).call(path, request, headers).await;
        assert_eq!(answer.http_status, 200, "{path} over {encoding:?}");
        assert_eq!(&answer.message::<M>(), native, "{path} over {encoding:?}");
        assert!(answer.header("ratelimit-limit").is_some(), "{path}: rate-limit headers on every answer");
    }
}

#[tokio::test]
async fn grpc_web_and_native_through_the_gateway_answer_as_the_services_do() {
    let mesh = TestMesh::all().await;
    ingest_accepted(&mesh, (0..30).map(|n| trade_now("AAPL", 150.0 + f64::from(n) / 10.0)).collect()).await;
    let direct = mesh.channel().await;
    let through = mesh.gateway_channel_as(mesh.admin_credentials()).await;
    let admin = bearer(mesh.admin_key.as_ref().unwrap());
    let auth_header = [("authorization", admin.as_str())];

    // Registry.
    let list = ListSymbolsRequest { page_size: 5, ..Default::default() };
    let native = RegistryServiceClient::new(direct.clone()).list_symbols(list.clone()).await.unwrap().into_inner();
    assert_eq!(
        RegistryServiceClient::new(through.clone()).list_symbols(list.clone()).await.unwrap().into_inner(),
        native
    );
    same_over_grpc_web::<ListSymbolsResponse>(
        &mesh,
        "/wizdata.registry.v1.RegistryService/ListSymbols",
        &list,
        &native,
        &[],
    )
    .await;
    let get = GetSymbolRequest { ticker: "AAPL".into() };
    let native = RegistryServiceClient::new(direct.clone()).get_symbol(get.clone()).await.unwrap().into_inner();
    same_over_grpc_web::<GetSymbolResponse>(
        &mesh,
        "/wizdata.registry.v1.RegistryService/GetSymbol",
        &get,
        &native,
        &[],
    )
    .await;

    // Market data.
    let quote = GetQuoteRequest { symbol: "AAPL".into() };
    let native = MarketDataServiceClient::new(direct.clone()).get_quote(quote.clone()).await.unwrap().into_inner();
    assert_eq!(native.quote.as_ref().unwrap().last_price, 152.9);
    assert_eq!(
        MarketDataServiceClient::new(through.clone()).get_quote(quote.clone()).await.unwrap().into_inner(),
        native
    );
    same_over_grpc_web::<GetQuoteResponse>(
        &mesh,
        "/wizdata.marketdata.v1.MarketDataService/GetQuote",
        &quote,
        &native,
        &[],
    )
    .await;
    let candles = GetCandlesRequest {
        symbol: "AAPL".into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 }),
        ..Default::default()
    };
    let native = MarketDataServiceClient::new(direct.clone()).get_candles(candles.clone()).await.unwrap().into_inner();
    assert!(!native.candles.is_empty());
    same_over_grpc_web::<GetCandlesResponse>(
        &mesh,
        "/wizdata.marketdata.v1.MarketDataService/GetCandles",
        &candles,
        &native,
        &[],
    )
    .await;

    // Indicators.
    let compute = ComputeIndicatorsRequest {
        symbol: "AAPL".into(),
        interval: Interval::OneMinute as i32,
        indicators: vec![IndicatorSpec { name: "sma".into(), parameters: [("time_period".to_owned(), 2.0)].into() }],
        ..Default::default()
    };
    let native =
        IndicatorServiceClient::new(direct.clone()).compute_indicators(compute.clone()).await.unwrap().into_inner();
    same_over_grpc_web::<ComputeIndicatorsResponse>(
        &mesh,
        "/wizdata.indicator.v1.IndicatorService/ComputeIndicators",
        &compute,
        &native,
        &[],
    )
    .await;

    // Auth: the API key is exchanged at the edge; the service sees its subject.
    let native = AuthServiceClient::new(direct.clone()).who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert!(!native.anonymous);
    let via_gateway = AuthServiceClient::new(through.clone()).who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!((&via_gateway.subject, &via_gateway.scopes), (&native.subject, &native.scopes));
    for encoding in [Encoding::Binary, Encoding::Text] {
        let answer =
            web(&mesh, encoding).call("/wizdata.auth.v1.AuthService/WhoAmI", &WhoAmIRequest {}, &auth_header).await;
        let who = answer.message::<WhoAmIResponse>();
        assert_eq!((&who.subject, &who.scopes), (&native.subject, &native.scopes), "{encoding:?}");
        let answer = web(&mesh, encoding)
            .call(
                "/wizdata.auth.v1.AuthService/WhoAmI",
                &WhoAmIRequest {},
                &[("x-api-key", admin.trim_start_matches("Bearer "))],
            )
            .await;
        assert_eq!(answer.message::<WhoAmIResponse>().subject, native.subject, "x-api-key works too");
    }

    // Streaming (unary).
    let stats = GetStreamStatsRequest {};
    let native = StreamingServiceClient::new(direct.clone()).get_stream_stats(stats).await.unwrap().into_inner();
    same_over_grpc_web::<GetStreamStatsResponse>(
        &mesh,
        "/wizdata.streaming.v1.StreamingService/GetStreamStats",
        &stats,
        &native,
        &auth_header,
    )
    .await;
}

#[tokio::test]
async fn a_server_stream_over_grpc_web_carries_what_a_native_stream_does() {
    let mesh = TestMesh::all().await;
    let request = SubscribeRequest {
        symbols: vec!["MSFT".into()],
        channels: vec![Channel::Trades as i32],
        candle_interval: Interval::Unspecified as i32,
        indicators: Vec::new(),
    };
    let path = "/wizdata.streaming.v1.StreamingService/Subscribe";
    let mut native =
        StreamingServiceClient::new(mesh.channel().await).subscribe(request.clone()).await.unwrap().into_inner();
    let mut binary = web(&mesh, Encoding::Binary).stream(path, &request, &[]).await;
    let mut text = web(&mesh, Encoding::Text).stream(path, &request, &[]).await;
    assert_eq!(binary.headers.get("content-type").unwrap(), "application/grpc-web+proto");
    assert_eq!(text.headers.get("content-type").unwrap(), "application/grpc-web-text+proto");
    // Every stream is registered before the trades go in.
    let stats = StreamingServiceClient::new(mesh.channel().await);
    for _ in 0..200 {
        let connections =
            stats.clone().get_stream_stats(GetStreamStatsRequest {}).await.unwrap().into_inner().connections;
        if connections == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let prices: Vec<f64> = (0..20).map(|n| 400.0 + f64::from(n)).collect();
    ingest_accepted(&mesh, prices.iter().map(|price| trade_now("MSFT", *price)).collect()).await;

    let trades_of = |events: Vec<SubscribeResponse>| -> Vec<(u64, f64)> {
        events
            .into_iter()
            .filter_map(|message| match message.payload? {
                subscribe_response::Payload::Event(event) => match event.payload? {
                    market_event::Payload::Trade(trade) => Some((event.sequence, trade.price)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let mut from_native = Vec::new();
    while trades_of(from_native.clone()).len() < 20 {
        from_native.push(tokio::time::timeout(WAIT, native.message()).await.unwrap().unwrap().unwrap());
    }
    let expected: Vec<(u64, f64)> = prices.iter().enumerate().map(|(at, price)| (at as u64 + 1, *price)).collect();
    assert_eq!(trades_of(from_native), expected);
    for (stream, name) in [(&mut binary, "binary"), (&mut text, "text")] {
        let mut events = Vec::new();
        while trades_of(events.clone()).len() < 20 {
            let message = tokio::time::timeout(WAIT, stream.next_message()).await.unwrap().expect("the stream goes on");
            events.push(SubscribeResponse::decode(message).unwrap());
        }
        assert_eq!(trades_of(events), expected, "grpc-web {name}");
    }
}

#[tokio::test]
async fn errors_keep_their_code_and_details_over_grpc_web() {
    let mesh = TestMesh::all().await;
    for encoding in [Encoding::Binary, Encoding::Text] {
        let answer = web(&mesh, encoding)
            .call("/wizdata.registry.v1.RegistryService/GetSymbol", &GetSymbolRequest { ticker: "NOPE".into() }, &[])
            .await;
        let status = answer.status();
        assert_eq!(status.code(), Code::NotFound, "{encoding:?}");
        assert_eq!(status.get_details_resource_info().expect("ResourceInfo survives").resource_name, "NOPE");
        let answer = web(&mesh, encoding)
            .call("/wizdata.auth.v1.AuthService/WhoAmI", &WhoAmIRequest {}, &[("authorization", "Bearer not.a.token")])
            .await;
        let status = answer.status();
        assert_eq!(status.code(), Code::Unauthenticated, "the gateway refuses bad credentials itself");
        assert_eq!(status.get_details_error_info().unwrap().reason, "TOKEN_MALFORMED");
    }
}

#[tokio::test]
async fn malformed_requests_get_a_clear_status_and_the_gateway_keeps_serving() {
    let mesh = TestMesh::all_with(&["--allowed-origins", "https://dash.example"]).await;
    let binary = web(&mesh, Encoding::Binary);
    let text = web(&mesh, Encoding::Text);
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let message = GetSymbolRequest { ticker: "AAPL".into() }.encode_to_vec();
    let invalid = |answer: &wizdata_test_support::grpc_web::WebAnswer, what: &str| {
        let status = answer.status();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        status.message().to_owned()
    };

    // A length prefix announcing more than the body holds.
    let mut short = frame(0, &message).to_vec();
    short[4] += 10;
    let answer = binary.raw(get_symbol, "application/grpc-web+proto", short.into(), &[]).await;
    assert!(invalid(&answer, "bad length prefix").contains("truncated"));
    // A body cut inside the prefix.
    let answer = binary.raw(get_symbol, "application/grpc-web+proto", Bytes::from_static(&[0, 0, 0]), &[]).await;
    assert!(invalid(&answer, "truncated prefix").contains("truncated"));
    // No message at all.
    let answer = binary.raw(get_symbol, "application/grpc-web+proto", Bytes::new(), &[]).await;
    assert!(invalid(&answer, "empty body").contains("no message"));
    // Two messages to a unary RPC.
    let mut two = frame(0, &message).to_vec();
    two.extend_from_slice(&frame(0, &message));
    let answer = binary.raw(get_symbol, "application/grpc-web+proto", two.into(), &[]).await;
    assert!(invalid(&answer, "two messages").contains("exactly one"));
    // A trailer frame (0x80) or compressed flag sent by the client.
    for flag in [0x80, 0x02, 0x01] {
        let answer = binary.raw(get_symbol, "application/grpc-web+proto", frame(flag, &message), &[]).await;
        invalid(&answer, &format!("flag {flag:#x}"));
    }
    // Not base64.
    let answer = text.raw(get_symbol, "application/grpc-web-text", Bytes::from_static(b"AAAA!!!*"), &[]).await;
    let message_text = invalid(&answer, "bad base64");
    assert!(message_text.contains("base64"), "{message_text}");
    // Base64 of a frame, cut mid-quantum.
    let answer = text.raw(get_symbol, "application/grpc-web-text", Bytes::from_static(b"AAAAAA"), &[]).await;
    invalid(&answer, "cut base64");

    // Oversized message (the limit is 4 MiB): OUT_OF_RANGE, as the services
    // answer it directly.
    let huge = frame(0, &vec![7u8; 5 * 1024 * 1024]);
    let answer = binary.raw(get_symbol, "application/grpc-web+proto", huge, &[]).await;
    assert_eq!(answer.status().code(), Code::OutOfRange);
    // A prefix announcing an oversized message is refused without waiting for it.
    let answer = binary
        .raw(get_symbol, "application/grpc-web+proto", Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff, 1]), &[])
        .await;
    assert_eq!(answer.status().code(), Code::OutOfRange);

    // Unknown content type, service and method.
    let answer = binary.raw(get_symbol, "text/plain", frame(0, &message), &[]).await;
    assert_eq!(answer.http_status, 415);
    assert_eq!(answer.status().code(), Code::InvalidArgument);
    let answer = binary.raw(get_symbol, "", frame(0, &message), &[]).await;
    assert_eq!(answer.http_status, 415, "no content type at all");
    let answer = binary.raw(get_symbol, "application/grpc", frame(0, &message), &[]).await;
    assert_eq!(answer.http_status, 415, "native gRPC needs HTTP/2");
    let answer = binary.call("/wizdata.billing.v1.BillingService/Charge", &GetSymbolRequest::default(), &[]).await;
    assert_eq!(answer.status().code(), Code::Unimplemented);
    assert!(answer.status().message().contains("unknown service"));
    let answer = binary.call("/wizdata.registry.v1.RegistryService/Steal", &GetSymbolRequest::default(), &[]).await;
    assert_eq!(answer.status().code(), Code::Unimplemented);
    let answer = binary.call("/", &GetSymbolRequest::default(), &[]).await;
    assert_eq!(answer.status().code(), Code::Unimplemented);

    // CORS: an allowed origin's preflight is answered, an unknown one refused.
    let preflight = |origin: &'static str| {
        let client = binary;
        async move {
            client
                .send(
                    "OPTIONS",
                    get_symbol,
                    "",
                    Bytes::new(),
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                        ("access-control-request-headers", "content-type,x-grpc-web,authorization"),
                    ],
                )
                .await
        }
    };
    let allowed = preflight("https://dash.example").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://dash.example");
    let refused = preflight("https://evil.example").await;
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    let answer = binary
        .call(get_symbol, &GetSymbolRequest { ticker: "AAPL".into() }, &[("origin", "https://dash.example")])
        .await;
    let exposed = answer.header("access-control-expose-headers").expect("exposed headers").to_owned();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin", "ratelimit-remaining", "retry-after"] {
        assert!(exposed.contains(header), "{header} is exposed: {exposed}");
    }
    let answer = binary
        .call(get_symbol, &GetSymbolRequest { ticker: "AAPL".into() }, &[("origin", "https://evil.example")])
        .await;
    assert_eq!((answer.http_status.as_u16(), answer.status().code()), (403, Code::PermissionDenied));

    // A grpc-web call with a method other than POST.
    let answer = binary.send("GET", get_symbol, "application/grpc-web+proto", Bytes::new(), &[]).await;
    assert_eq!(answer.status(), 405);

    // Garbage and oversized headers: hyper refuses them before any routing.
    let mut stream = tokio::net::TcpStream::connect(binary.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"POST / HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n").await.unwrap();
    let mut reply = vec![0u8; 64];
    let read = stream.read(&mut reply).await.unwrap();
    assert!(
        String::from_utf8_lossy(&reply[..read]).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&reply[..read])
    );
    let oversized = "x".repeat(64 * 1024);
    let answer = binary
        .send("POST", get_symbol, "application/grpc-web+proto", frame(0, &message), &[("x-padding", &oversized)])
        .await;
    assert_eq!(answer.status(), 431);

    // Through all of that, the gateway kept serving.
    let answer = binary.call(get_symbol, &GetSymbolRequest { ticker: "AAPL".into() }, &[]).await;
    assert_eq!(answer.message::<GetSymbolResponse>().symbol.unwrap().ticker, "AAPL");
}

#[tokio::test]
async fn callers_are_held_to_their_rate_limit_and_told_when_to_retry() {
    let mesh = TestMesh::all_with(&[
        "--rate-limit-anonymous",
        "5/1m",
        "--rate-limit-standard",
        "8/1m",
        "--gateway-max-streams-per-subject",
        "2",
    ])
    .await;
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let request = GetSymbolRequest { ticker: "AAPL".into() };
    let client = web(&mesh, Encoding::Binary);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let answer = client.call(get_symbol, &request, &[]).await;
        assert_eq!(answer.status().code(), Code::Ok);
        assert_eq!(answer.header("ratelimit-limit"), Some("5"));
        remaining.push(answer.header("ratelimit-remaining").unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let refused = client.call(get_symbol, &request, &[]).await;
    let status = refused.status();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("RetryInfo").retry_delay.expect("a delay");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(12), "{retry:?}");
    let quota = status.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "anonymous@127.0.0.1");
    assert_eq!(status.get_details_error_info().unwrap().reason, "RATE_LIMITED");
    assert!(refused.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));

    // Native gRPC shares the same limit: it is the caller's, not the protocol's.
    let mut native = RegistryServiceClient::new(mesh.gateway_channel_as(Credentials::none()).await);
    assert_eq!(native.get_symbol(request.clone()).await.unwrap_err().code(), Code::ResourceExhausted);

    // A standard-tier key has its own, larger limit.
    let key = mesh.key_with(&["registry:read", "streaming:read"], Tier::Standard).await;
    let mut keyed = RegistryServiceClient::new(mesh.gateway_channel_as(Credentials::bearer(&key).unwrap()).await);
    for call in 0..8 {
        let answer = keyed.get_symbol(request.clone()).await.unwrap_or_else(|status| panic!("call {call}: {status:?}"));
        assert_eq!(answer.metadata().get("ratelimit-limit").unwrap(), "8");
    }
    assert_eq!(keyed.get_symbol(request.clone()).await.unwrap_err().code(), Code::ResourceExhausted);

    // Streams: at most two open at once per subject.
    let premium = mesh.key_with(&["streaming:read"], Tier::Premium).await;
    let mut streams =
        StreamingServiceClient::new(mesh.gateway_channel_as(Credentials::bearer(&premium).unwrap()).await);
    let subscribe = SubscribeRequest {
        symbols: vec!["AAPL".into()],
        channels: vec![Channel::Trades as i32],
        candle_interval: Interval::Unspecified as i32,
        indicators: Vec::new(),
    };
    let first = streams.subscribe(subscribe.clone()).await.unwrap();
    let _second = streams.subscribe(subscribe.clone()).await.unwrap();
    let third = streams.subscribe(subscribe.clone()).await.unwrap_err();
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert_eq!(third.get_details_error_info().unwrap().reason, "TOO_MANY_STREAMS");
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        match streams.subscribe(subscribe.clone()).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(reopened.is_some(), "a closed stream frees its slot");
}

#[tokio::test]
async fn the_gateway_reports_its_own_health_and_routes_reflection() {
    let mesh = TestMesh::all().await;
    let channel = tonic::transport::Channel::from_shared(mesh.gateway_url()).unwrap().connect().await.unwrap();
    for service in ["", "wizdata.registry.v1.RegistryService", "wizdata.streaming.v1.StreamingService"] {
        let status =
            health_at(&mesh.gateway_url(), service).await.unwrap_or_else(|status| panic!("{service:?}: {status:?}"));
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }

    let client = web(&mesh, Encoding::Binary);
    let healthz = client.send("GET", "/healthz", "", Bytes::new(), &[]).await;
    assert_eq!(healthz.status(), 200);
    let readyz = client.send("GET", "/readyz", "", Bytes::new(), &[]).await;
    assert_eq!(readyz.status(), 200);
    use http_body_util::BodyExt;
    let body = readyz.into_body().collect().await.unwrap().to_bytes();
    let ready: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ready["ready"], true);
    let expected_mode = if mesh.redis.is_some() { "redis" } else { "local" };
    assert_eq!(ready["rate_limit_mode"], expected_mode);
    assert_eq!(ready["backends"]["wizdata.auth.v1.AuthService"]["healthy_endpoints"], 1);

    let _ = client
        .call("/wizdata.registry.v1.RegistryService/GetSymbol", &GetSymbolRequest { ticker: "AAPL".into() }, &[])
        .await;
    let metrics = client.send("GET", "/metrics", "", Bytes::new(), &[]).await;
    let text = String::from_utf8(metrics.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains(&format!("gateway_rate_limit_decisions_total{{outcome=\"allowed\",mode=\"{expected_mode}\"}} 1")),
        "{text}"
    );
    assert!(text.contains(&format!("gateway_rate_limit_mode{{mode=\"{expected_mode}\"}} 1")), "{text}");

    // Reflection lists every service the gateway routes.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    for service in [
        "wizdata.registry.v1.RegistryService",
        "wizdata.marketdata.v1.MarketDataService",
        "wizdata.auth.v1.AuthService",
    ] {
        assert!(names.iter().any(|name| name == service), "{service} in {names:?}");
    }
}

#[tokio::test]
async fn failed_endpoints_are_routed_around_and_a_dead_backend_fails_fast() {
    let mesh = TestMesh::all_with(&["--with-gateway", "false"]).await;
    // A port nothing listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
    };
    let registry = format!("registry={},{}", dead, mesh.url());
    let market_data = format!("market-data={dead}");
    let auth_url = mesh.url();
    let gateway = TestMesh::serve("gateway")
        .database(mesh.database())
        .flags(&[
            "--auth-url",
            &auth_url,
            "--default-backend",
            &auth_url,
            "--backend",
            &registry,
            "--backend",
            &market_data,
            "--health-interval",
            "200ms",
            "--breaker-failures",
            "3",
            "--breaker-cooldown",
            "30s",
        ])
        .start()
        .await;
    let channel = tonic::transport::Channel::from_shared(gateway.url()).unwrap().connect().await.unwrap();

    // Half the registry's endpoints are dead: every read still succeeds.
    let mut registry = RegistryServiceClient::new(channel.clone());
    for call in 0..20 {
        registry
            .get_symbol(GetSymbolRequest { ticker: "AAPL".into() })
            .await
            .unwrap_or_else(|status| panic!("call {call}: {status:?}"));
    }
    assert_eq!(health_at(&gateway.url(), "wizdata.registry.v1.RegistryService").await.unwrap(), ServingStatus::Serving);

    // Every market data endpoint is dead: UNAVAILABLE, then the breaker answers at once.
    let mut market = MarketDataServiceClient::new(channel.clone());
    let mut messages = Vec::new();
    for _ in 0..5 {
        let status = market.get_quote(GetQuoteRequest { symbol: "AAPL".into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        messages.push(status.message().to_owned());
    }
    assert!(
        messages.last().unwrap().contains("failing") || messages.last().unwrap().contains("no endpoint"),
        "{messages:?}"
    );
    let market_data = "wizdata.marketdata.v1.MarketDataService";
    assert!(
        wait_for_health_at(&gateway.url(), market_data, ServingStatus::NotServing, WAIT).await,
        "health reports the unreachable backend"
    );
    assert_eq!(health_at(&gateway.url(), "").await.unwrap(), ServingStatus::Serving, "the gateway itself still serves");
}

#[tokio::test]
async fn slow_and_idle_clients_are_let_go_and_deadlines_are_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mesh = TestMesh::all_with(&["--client-timeout", "300ms", "--idle-timeout", "500ms"]).await;
    let address = ("127.0.0.1", mesh.gateway_port.unwrap());
    let read_all = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("the gateway lets go").ok();
        String::from_utf8_lossy(&answer).into_owned()
    };

    // A unary body that never finishes arriving.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            b"POST /wizdata.registry.v1.RegistryService/GetSymbol HTTP/1.1\r\nhost: gateway\r\n\
              content-type: application/grpc-web+proto\r\ncontent-length: 100\r\n\r\n\0\0\0\0\x5f",
        )
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let read = tokio::time::timeout(WAIT, stream.read(&mut head)).await.expect("an answer in time").unwrap();
    let head = String::from_utf8_lossy(&head[..read]).to_lowercase();
    assert!(head.contains("grpc-status: 4"), "DEADLINE_EXCEEDED for the body that never came: {head}");

    // Headers that never finish: the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"POST /wizdata.registry.v1.RegistryService/GetSymbol HTTP/1.1\r\nhost: gate").await.unwrap();
    let answer = read_all(stream).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    // An idle keep-alive connection is closed once its call is done.
    let client = web(&mesh, Encoding::Binary);
    let mut stream = tokio::net::TcpStream::connect(client.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n").await.unwrap();
    let answer = read_all(stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "served, then closed when idle: {answer:?}"
    );

    // A deadline already too short answers DEADLINE_EXCEEDED, not a hang.
    let answer = client
        .call(
            "/wizdata.registry.v1.RegistryService/GetSymbol",
            &GetSymbolRequest { ticker: "AAPL".into() },
            &[("grpc-timeout", "1n")],
        )
        .await;
    assert_eq!(answer.status().code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn anonymous_streams_behind_the_gateway_are_counted_per_client_not_per_gateway() {
    let mesh = TestMesh::all_with(&["--max-streams-per-subject", "1"]).await;
    let from = |local: [u8; 4]| {
        let endpoint = tonic::transport::Endpoint::from_shared(mesh.gateway_url())
            .unwrap()
            .local_address(Some(std::net::IpAddr::from(local)));
        async move { StreamingServiceClient::new(endpoint.connect().await.expect("connect from a loopback address")) }
    };
    let request = SubscribeRequest {
        symbols: vec!["AAPL".into()],
        channels: vec![Channel::Trades as i32],
        candle_interval: Interval::Unspecified as i32,
        indicators: Vec::new(),
    };
    let mut first = from([127, 0, 0, 1]).await;
    let mut second = from([127, 0, 0, 2]).await;
    let _one = first.subscribe(request.clone()).await.expect("the first client's stream");
    let _other = second.subscribe(request.clone()).await.expect("another client's stream: not the gateway's");
    let refused = first.subscribe(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "the streaming service still counts each client");
    let quota = refused.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "anonymous@127.0.0.1");
}

#[tokio::test]
async fn each_service_has_its_own_limit_per_subject() {
    let mesh = TestMesh::all_with(&["--rate-limit-per-service", "3/1m"]).await;
    let channel = mesh.gateway_channel_as(Credentials::none()).await;
    let mut registry = RegistryServiceClient::new(channel.clone());
    for call in 0..3 {
        registry
            .get_symbol(GetSymbolRequest { ticker: "AAPL".into() })
            .await
            .unwrap_or_else(|status| panic!("call {call}: {status:?}"));
    }
    let refused = registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(refused.get_details_error_info().unwrap().metadata["scope"], "service");
    assert_eq!(refused.metadata().get("ratelimit-limit").unwrap(), "3", "the binding limit is reported");
    let mut indicators = IndicatorServiceClient::new(channel);
    let listed = indicators.list_indicators(ListIndicatorsRequest {}).await.expect("another service: its own limit");
    assert_eq!(listed.metadata().get("ratelimit-remaining").unwrap(), "2");
}

#[tokio::test]
async fn an_endpoint_that_recovers_is_put_back_in_rotation() {
    use wizdata_common::testing::TcpProxy;
    let mesh = TestMesh::all_with(&["--with-gateway", "false"]).await;
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", mesh.port).parse().unwrap()).await;
    let registry_url = format!("registry=http://{}", proxy.local_addr());
    let services = mesh.url();
    let gateway = TestMesh::serve("gateway")
        .database(mesh.database())
        .flags(&[
            "--auth-url",
            &services,
            "--default-backend",
            &services,
            "--backend",
            &registry_url,
            "--health-interval",
            "200ms",
        ])
        .start()
        .await;
    let registry_service = "wizdata.registry.v1.RegistryService";
    let mut registry = RegistryServiceClient::new(
        tonic::transport::Channel::from_shared(gateway.url()).unwrap().connect().await.unwrap(),
    );
    registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.expect("reachable at first");

    proxy.cut();
    assert!(wait_for_health_at(&gateway.url(), registry_service, ServingStatus::NotServing, WAIT).await, "taken out");
    let status = registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "answered at once, not after a hang: {status:?}");

    proxy.restore();
    assert!(wait_for_health_at(&gateway.url(), registry_service, ServingStatus::Serving, WAIT).await, "put back");
    registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.expect("served again");
}

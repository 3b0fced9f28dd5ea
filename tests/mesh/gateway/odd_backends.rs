//! The gateway in front of a backend that misbehaves on the wire in ways a
//! real service rarely does: answering trailers-only with every error code,
//! resetting its stream mid-answer, and answering too late for any deadline. A bare HTTP/2 server plays it, so the
//! test controls every frame.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tonic::Code;
use tonic_health::pb::HealthCheckResponse;
use tonic_health::pb::health_check_response::ServingStatus;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::{GetSymbolRequest, GetSymbolResponse, Symbol};
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::error::http_status_of;
use wizdata_test_support::TestMesh;
use wizdata_test_support::grpc_web::{Encoding, GrpcWebClient, frame};
use wizdata_test_support::http::HttpClient;

type FakeBody = BoxBody<Bytes, std::io::Error>;

/// Health checks are SERVING; GetSymbol of `CODE-<n>` answers trailers-only
/// with code n, of `RESET` sends headers and half a message, then resets
/// the stream, and of `SLOW` answers only after 10 seconds. `BIG` answers a
/// symbol whose name is [`BIG_NAME_BYTES`] long, in 64 KiB frames (more
/// than the gateway reads whole before passing an answer on); `BIG-RESET`
/// sends most of that answer, then resets; `BIG-SLOW` sends most of it,
/// then waits 10 seconds.
async fn answer(request: http::Request<Incoming>) -> Result<http::Response<FakeBody>, Infallible> {
    let grpc = |status: http::response::Builder| status.header("content-type", "application/grpc");
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
    if path == "/grpc.health.v1.Health/Check" {
        let message = frame(0, &HealthCheckResponse { status: ServingStatus::Serving as i32 }.encode_to_vec());
        let trailers = http::HeaderMap::from_iter([(http::HeaderName::from_static("grpc-status"), 0.into())]);
        let frames = [Ok(Frame::data(message)), Ok(Frame::trailers(trailers))];
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        return Ok(grpc(http::Response::builder()).body(body).unwrap());
    }
    let ticker = GetSymbolRequest::decode(body.get(5..).unwrap_or_default()).map(|request| request.ticker);
    if let Ok(big @ ("BIG" | "BIG-RESET" | "BIG-SLOW")) = ticker.as_deref() {
        let symbol = Symbol { ticker: "BIG".into(), name: "x".repeat(BIG_NAME_BYTES), ..Default::default() };
        let answer = frame(0, &GetSymbolResponse { symbol: Some(symbol) }.encode_to_vec());
        let mut chunks: Vec<Result<Frame<Bytes>, std::io::Error>> =
            answer.chunks(64 * 1024).map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk)))).collect();
        let last = chunks.pop();
        let trailers = http::HeaderMap::from_iter([(http::HeaderName::from_static("grpc-status"), 0.into())]);
        let end = futures_util::stream::iter(match big {
            "BIG" => vec![last.unwrap(), Ok(Frame::trailers(trailers))],
            _ => vec![Err(std::io::Error::other("the fake backend breaks off"))],
        });
        // Nothing, after 10 seconds for BIG-SLOW.
        let slow = big == "BIG-SLOW";
        let stall = futures_util::stream::once(async move {
            if slow {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
        let stall = futures_util::StreamExt::filter_map(stall, |()| async { None });
        let frames = futures_util::StreamExt::chain(futures_util::stream::iter(chunks), stall);
        let body = StreamBody::new(futures_util::StreamExt::chain(frames, end)).boxed();
        return Ok(grpc(http::Response::builder()).body(body).unwrap());
    }
    let response = match ticker.as_deref() {
        Ok("SLOW") => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            grpc(http::Response::builder())
                .header("grpc-status", 0)
                .body(Empty::new().map_err(|never| match never {}).boxed())
        }
        Ok("RESET") => {
            let frames: [Result<Frame<Bytes>, std::io::Error>; 2] = [
                Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 100, 1, 2, 3]))),
                Err(std::io::Error::other("the fake backend breaks off")),
            ];
            grpc(http::Response::builder()).body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        }
        Ok(code) => {
            let code = code.strip_prefix("CODE-").and_then(|n| n.parse::<u16>().ok()).unwrap_or(2);
            grpc(http::Response::builder())
                .header("grpc-status", code)
                .header("grpc-message", format!("fake {code}"))
                .body(Empty::new().map_err(|never| match never {}).boxed())
        }
        Err(_) => grpc(http::Response::builder())
            .header("grpc-status", 13)
            .body(Full::default().map_err(|never| match never {}).boxed()),
    };
    Ok(response.unwrap())
}

/// The length of the name in the fake backend's `BIG` answer.
const BIG_NAME_BYTES: usize = 300_000;

/// Serves the fake backend on a free port; returns its URL.
async fn fake_backend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    });
    url
}

async fn gateway_in_front_of(backend: &str) -> TestMesh {
    TestMesh::serve("gateway")
        .flags(&[
            "--max-deadline",
            "2s",
            // Anonymous callers only: the auth service is never asked.
            "--auth-url",
            "http://127.0.0.1:9",
            "--default-backend",
            backend,
            "--health-interval",
            "200ms",
            "--rate-limit-anonymous",
            "10000/1m",
            "--breaker-failures",
            "1000",
        ])
        .start()
        .await
}

#[tokio::test]
async fn every_error_code_a_backend_answers_trailers_only_reaches_every_protocol() {
    let gateway = gateway_in_front_of(&fake_backend().await).await;
    let port = gateway.gateway_port.unwrap();
    let mut native = RegistryServiceClient::new(gateway.gateway_channel_as(Credentials::none()).await);
    let path = "/wizdata.registry.v1.RegistryService/GetSymbol";
    for number in 1..=16 {
        let code = Code::from_i32(number);
        let request = GetSymbolRequest { ticker: format!("CODE-{number}") };
        let status = native.get_symbol(request.clone()).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (code, format!("fake {number}").as_str()), "native");
        for encoding in [Encoding::Binary, Encoding::Text] {
            let answer = GrpcWebClient::new(port, encoding).call(path, &request, &[]).await;
            assert_eq!(answer.http_status, 200, "{encoding:?}");
            let status = answer.status();
            assert_eq!((status.code(), status.message()), (code, format!("fake {number}").as_str()), "{encoding:?}");
            assert!(answer.messages.is_empty(), "{encoding:?}");
        }
        // Connect and REST: the code's name or number, and its HTTP status.
        let client = HttpClient::new(port);
        let connect = client
            .send("POST", path, &[("content-type", "application/json")], format!(r#"{{"ticker":"CODE-{number}"}}"#))
            .await;
        assert_eq!(connect.status, http_status_of(code), "Connect {code:?}");
        assert_eq!(connect.json()["message"], format!("fake {number}"));
        let rest = client.get(&format!("/v1/symbols/CODE-{number}"), &[]).await;
        assert_eq!(rest.status, http_status_of(code), "REST {code:?}");
        assert_eq!(rest.json()["code"], number, "REST {code:?}");
    }
}

#[tokio::test]
async fn deadlines_hold_in_every_protocol() {
    let gateway = gateway_in_front_of(&fake_backend().await).await;
    let port = gateway.gateway_port.unwrap();
    let client = HttpClient::new(port);
    let path = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let slow = GetSymbolRequest { ticker: "SLOW".into() };
    let timed = |started: std::time::Instant| started.elapsed();

    // Connect: its own Connect-Timeout-Ms, shorter than the gateway's cap.
    let started = std::time::Instant::now();
    let connect = client
        .send(
            "POST",
            path,
            &[("content-type", "application/json"), ("connect-timeout-ms", "300")],
            r#"{"ticker":"SLOW"}"#,
        )
        .await;
    assert_eq!((connect.status.as_u16(), connect.json()["code"].as_str()), (504, Some("deadline_exceeded")));
    assert!(timed(started) < Duration::from_secs(2), "its own deadline, not the cap: {:?}", timed(started));
    // A longer one than the cap is cut to the cap (2 s here).
    let capped = client
        .send(
            "POST",
            path,
            &[("content-type", "application/json"), ("connect-timeout-ms", "60000")],
            r#"{"ticker":"SLOW"}"#,
        )
        .await;
    assert_eq!(capped.status, 504);
    // REST sends none: the cap.
    let started = std::time::Instant::now();
    let rest = client.get("/v1/symbols/SLOW", &[]).await;
    assert_eq!((rest.status.as_u16(), rest.json()["code"].as_i64()), (504, Some(Code::DeadlineExceeded as i64)));
    assert!(timed(started) < Duration::from_secs(9), "the cap, not the backend's 10 s");
    // gRPC-Web, with grpc-timeout (native gRPC's deadlines: the gateway suite's slow-client test).
    let answer = GrpcWebClient::new(port, Encoding::Binary).call(path, &slow, &[("grpc-timeout", "300m")]).await;
    assert_eq!(answer.status().code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn a_backend_resetting_mid_answer_gets_a_clear_status_and_stays_in_rotation() {
    let gateway = gateway_in_front_of(&fake_backend().await).await;
    let mut native = RegistryServiceClient::new(gateway.gateway_channel_as(Credentials::none()).await);
    // A small answer is read whole before it is passed on; a large one goes
    // on as it arrives, so its caller has its headers before the break.
    for ticker in ["RESET", "RESET", "RESET", "BIG-RESET", "BIG-RESET"] {
        let call = native.get_symbol(GetSymbolRequest { ticker: ticker.into() });
        let status = tokio::time::timeout(Duration::from_secs(10), call).await.expect("an answer, not a hang");
        let status = status.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{ticker}: {status:?}");
        // Reset before or after the headers reached the gateway, or after
        // the caller had them: either way the caller is told, at once.
        assert!(status.message().contains("could not be passed on"), "{}", status.message());
    }
    let ready = gateway.gateway_readiness().await;
    assert_eq!(ready["backends"]["wizdata.registry.v1.RegistryService"]["healthy_endpoints"], 1, "{ready}");
    let status = native.get_symbol(GetSymbolRequest { ticker: "CODE-5".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "the endpoint still serves: {status:?}");
}

#[tokio::test]
async fn a_large_answer_arrives_whole_in_every_protocol_and_a_stalled_one_ends_at_the_deadline() {
    let gateway = gateway_in_front_of(&fake_backend().await).await;
    let port = gateway.gateway_port.unwrap();
    let mut native = RegistryServiceClient::new(gateway.gateway_channel_as(Credentials::none()).await);
    let path = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let big = GetSymbolRequest { ticker: "BIG".into() };
    let symbol = native.get_symbol(big.clone()).await.unwrap().into_inner().symbol.unwrap();
    assert_eq!((symbol.ticker.as_str(), symbol.name.len()), ("BIG", BIG_NAME_BYTES));
    assert!(symbol.name.bytes().all(|byte| byte == b'x'), "byte for byte");
    for encoding in [Encoding::Binary, Encoding::Text] {
        let answer = GrpcWebClient::new(port, encoding).call(path, &big, &[]).await;
        let message: GetSymbolResponse = answer.message();
        assert_eq!(message.symbol.unwrap().name.len(), BIG_NAME_BYTES, "{encoding:?}");
    }
    let connect =
        HttpClient::new(port).send("POST", path, &[("content-type", "application/json")], r#"{"ticker":"BIG"}"#).await;
    assert_eq!(connect.status, 200);
    assert_eq!(connect.json()["symbol"]["name"].as_str().map(str::len), Some(BIG_NAME_BYTES));

    // The caller has the headers and most of the message when the backend
    // stalls: the gateway's cap (2 s here) still ends the call, with its
    // status in the trailers.
    let started = std::time::Instant::now();
    let status = native.get_symbol(GetSymbolRequest { ticker: "BIG-SLOW".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "the cap, not the backend's 10 s: {:?}", started.elapsed());
    let ready = gateway.gateway_readiness().await;
    assert_eq!(ready["backends"]["wizdata.registry.v1.RegistryService"]["healthy_endpoints"], 1, "{ready}");
}

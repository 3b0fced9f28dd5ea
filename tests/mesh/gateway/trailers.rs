//! Where the status of an answer travels, read off the raw HTTP/2 frames:
//! strict clients (grpc-go, so grpcurl; grpc-java) read it only from
//! trailers, or from a HEADERS frame that ends the stream (trailers-only).
//! Headers carrying a status followed by data and no trailers turn every
//! failed call into INTERNAL for them.

use bytes::{Bytes, BytesMut};
use prost::Message;
use tokio::net::TcpStream;
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::streaming::v1::{Channel, SubscribeRequest};
use wizdata_test_support::TestMesh;
use wizdata_test_support::grpc_web::frame;

/// How an answer's status arrived.
#[derive(Debug, PartialEq, Eq)]
enum StatusAt {
    /// In the response HEADERS, which ended the stream, with no data.
    TrailersOnly(String),
    /// In trailers after the data.
    Trailers(String),
}

/// Calls `path` with one message over a bare HTTP/2 connection to `port`
/// and returns the data received and where its status was.
async fn call_raw(port: u16, path: &str, message: &[u8]) -> (Bytes, StatusAt) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready for a stream");
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).expect("send the request");
    send.send_data(frame(0, message), true).expect("send the message");
    let (parts, mut body) = response.await.expect("an answer").into_parts();
    let ended_with_headers = body.is_end_stream();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers or none");
    let code = |headers: &http::HeaderMap| headers.get("grpc-status").map(|value| value.to_str().unwrap().to_owned());
    let at = match (code(&parts.headers), trailers.as_ref().and_then(code)) {
        (Some(code), None) => {
            assert!(ended_with_headers && data.is_empty(), "a status in the headers must end the stream there");
            StatusAt::TrailersOnly(code)
        }
        (None, Some(code)) => StatusAt::Trailers(code),
        other => panic!("one status, in headers or in trailers: {other:?} {parts:?} {trailers:?}"),
    };
    (data.freeze(), at)
}

#[tokio::test]
async fn statuses_arrive_in_trailers_or_in_headers_that_end_the_stream() {
    let mesh = TestMesh::all().await;
    let gateway = mesh.gateway_port.unwrap();
    let get_symbol = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let unknown = GetSymbolRequest { ticker: "NOPE.XX".into() }.encode_to_vec();
    let known = GetSymbolRequest { ticker: "AAPL".into() }.encode_to_vec();
    let bad_subscription = SubscribeRequest {
        symbols: vec!["NOPE.XX".into()],
        channels: vec![Channel::Trades as i32],
        ..Default::default()
    }
    .encode_to_vec();

    for port in [mesh.port, gateway] {
        let direct_or_gateway = if port == gateway { "through the gateway" } else { "direct" };
        // A service's refusal: NOT_FOUND, trailers-only.
        let (data, at) = call_raw(port, get_symbol, &unknown).await;
        assert_eq!(at, StatusAt::TrailersOnly("5".into()), "{direct_or_gateway}");
        assert!(data.is_empty());
        // A refused server stream: INVALID_ARGUMENT.
        let (_, at) = call_raw(port, "/wizdata.streaming.v1.StreamingService/Subscribe", &bad_subscription).await;
        assert_eq!(at, StatusAt::TrailersOnly("3".into()), "{direct_or_gateway}");
        // An answer keeps its message and its trailers.
        let (data, at) = call_raw(port, get_symbol, &known).await;
        assert_eq!(at, StatusAt::Trailers("0".into()), "{direct_or_gateway}");
        assert!(data.len() > 5, "the message came: {data:?}");
    }
    // The gateway's own refusal: a method outside the contract.
    let (_, at) = call_raw(gateway, "/wizdata.registry.v1.RegistryService/Nope", &known).await;
    assert_eq!(at, StatusAt::TrailersOnly("12".into()));
}

//! Where the status of an answer travels, read off the raw HTTP/2 frames:
//! strict clients (grpc-go, so grpcurl; grpc-java) read it only from
//! trailers, or from a HEADERS frame that ends the stream (trailers-only).
//! Headers carrying a status followed by data and no trailers turn every
//! failed call into INTERNAL for them.

use prost::Message;
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::streaming::v1::{Channel, SubscribeRequest};
use wizdata_test_support::TestMesh;
use wizdata_test_support::raw_h2::{StatusAt, call_raw};

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
        let (data, at) = call_raw(port, get_symbol, &unknown, &[]).await;
        assert_eq!(at, StatusAt::TrailersOnly("5".into()), "{direct_or_gateway}");
        assert!(data.is_empty());
        // A refused server stream: INVALID_ARGUMENT.
        let (_, at) = call_raw(port, "/wizdata.streaming.v1.StreamingService/Subscribe", &bad_subscription, &[]).await;
        assert_eq!(at, StatusAt::TrailersOnly("3".into()), "{direct_or_gateway}");
        // An answer keeps its message and its trailers.
        let (data, at) = call_raw(port, get_symbol, &known, &[]).await;
        assert_eq!(at, StatusAt::Trailers("0".into()), "{direct_or_gateway}");
        assert!(data.len() > 5, "the message came: {data:?}");
    }
    // The gateway's own refusal: a method outside the contract.
    let (_, at) = call_raw(gateway, "/wizdata.registry.v1.RegistryService/Nope", &known, &[]).await;
    assert_eq!(at, StatusAt::TrailersOnly("12".into()));
}

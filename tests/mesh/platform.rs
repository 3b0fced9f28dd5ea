//! The platform kit end to end: health for every service and for "",
//! reflection v1 and v1alpha, unbuilt RPCs, single roles, request ids,
//! graceful shutdown, and registry health following its database.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wizdata::registry::v1::ListSymbolsRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata_test_support::{TestDatabase, TestMesh, health_of, wait_for_health};

const WIZDATA_SERVICES: [&str; 5] = [
    "wizdata.auth.v1.AuthService",
    "wizdata.indicator.v1.IndicatorService",
    "wizdata.marketdata.v1.MarketDataService",
    "wizdata.registry.v1.RegistryService",
    "wizdata.streaming.v1.StreamingService",
];

/// Service names listed by reflection, over v1 or v1alpha.
macro_rules! list_services {
    ($module:ident, $mesh:expr) => {{
        use tonic_reflection::pb::$module::ServerReflectionRequest;
        use tonic_reflection::pb::$module::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$module::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$module::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new($mesh.channel().await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
        let response = responses.next().await.unwrap().unwrap();
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<BTreeSet<String>>()
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

#[tokio::test]
async fn health_is_serving_for_the_process_and_every_service() {
    let mesh = TestMesh::all().await;
    assert_eq!(health_of(&mesh, "").await.unwrap(), ServingStatus::Serving);
    for service in WIZDATA_SERVICES {
        assert_eq!(health_of(&mesh, service).await.unwrap(), ServingStatus::Serving, "{service}");
    }
    let unknown = health_of(&mesh, "wizdata.nothing.v1.NoService").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let mesh = TestMesh::all().await;
    let mut expected: BTreeSet<String> = WIZDATA_SERVICES.iter().map(|s| s.to_string()).collect();
    expected.extend(
        ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
            .map(String::from),
    );
    assert_eq!(list_services!(v1, mesh), expected);
    assert_eq!(list_services!(v1alpha, mesh), expected);
}

#[tokio::test]
async fn reflection_serves_the_contract_with_its_access_options() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mesh = TestMesh::all().await;
    let mut client = ServerReflectionClient::new(mesh.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("wizdata.registry.v1.RegistryService".into())),
    };
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    use prost::Message;
    let files: Vec<_> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let registry =
        files.iter().find(|f| f.name() == "wizdata/registry/v1/registry_service.proto").expect("registry file");
    let methods: Vec<_> = registry.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(methods, ["ListSymbols", "GetSymbol", "CreateSymbol", "UpdateSymbol", "DeleteSymbol", "ListExchanges"]);
    // Dependencies travel with it, so clients can resolve every type.
    assert!(registry.dependency.iter().any(|d| d == "wizdata/auth/v1/access.proto"));
}

#[tokio::test]
async fn a_single_role_serves_and_advertises_only_its_service() {
    // Its calls are checked against an auth service it does not serve.
    let mesh = TestMesh::serve("registry").flags(&["--auth-url", "http://127.0.0.1:9"]).start().await;
    let expected: BTreeSet<String> = [
        "wizdata.registry.v1.RegistryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .map(String::from)
    .into();
    assert_eq!(list_services!(v1, mesh), expected);
    assert_eq!(health_of(&mesh, "wizdata.registry.v1.RegistryService").await.unwrap(), ServingStatus::Serving);
    let other = health_of(&mesh, "wizdata.marketdata.v1.MarketDataService").await.unwrap_err();
    assert_eq!(other.code(), Code::NotFound);

    use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
    let mut market = MarketDataServiceClient::new(mesh.channel().await);
    let status = market.get_quote(wizdata::marketdata::v1::GetQuoteRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "a service this role does not run is absent");
}

#[tokio::test]
async fn every_call_gets_a_request_id_and_a_callers_id_is_kept() {
    let mesh = TestMesh::all().await;
    let mut registry = RegistryServiceClient::new(mesh.channel().await);
    let response = registry.list_symbols(ListSymbolsRequest::default()).await.unwrap();
    let generated = response.metadata().get("x-request-id").expect("a request id").to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let mut request = tonic::Request::new(ListSymbolsRequest::default());
    request.metadata_mut().insert("x-request-id", "trace-me-42".parse().unwrap());
    let response = registry.list_symbols(request).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "trace-me-42");
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_then_stops_cleanly() {
    let mesh = TestMesh::serve("all").flags(&["--shutdown-delay", "2s"]).start().await;
    let mut health = HealthClient::new(mesh.channel().await);
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let stopping = tokio::spawn(mesh.stop());
    // During the shutdown delay the server still answers, and says it is going.
    let update =
        tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("a health update").unwrap().unwrap();
    assert_eq!(update.status(), ServingStatus::NotServing);
    stopping.await.unwrap().expect("graceful shutdown ends cleanly");
}

/// Registry health follows its PostgreSQL: NOT_SERVING within 10 s of the
/// database becoming unreachable, SERVING within 10 s of its return. The
/// connection runs through a proxy the test cuts, so the shared server keeps
/// serving every other test.
#[tokio::test]
async fn registry_health_follows_its_database() {
    let database = Arc::new(TestDatabase::new().await);
    let Some((proxy, through_proxy)) = database.behind_proxy().await else {
        eprintln!(
            "registry_health_follows_its_database needs {}; SQLite cannot become unreachable",
            wizdata_common::testing::TEST_DATABASE_URL
        );
        return;
    };
    // Anonymous reads need no auth service; a dead address will do.
    let mesh = TestMesh::serve("registry")
        .database(&database)
        .database_url(through_proxy)
        .flags(&["--auth-url", "http://127.0.0.1:9"])
        .start()
        .await;
    let registry = "wizdata.registry.v1.RegistryService";
    assert_eq!(health_of(&mesh, registry).await.unwrap(), ServingStatus::Serving);

    proxy.cut();
    assert!(
        wait_for_health(&mesh, registry, ServingStatus::NotServing, Duration::from_secs(10)).await,
        "NOT_SERVING within 10 s"
    );
    assert_eq!(health_of(&mesh, "").await.unwrap(), ServingStatus::NotServing, "the process reports it too");
    let mut client = RegistryServiceClient::new(mesh.channel().await);
    let status = client.list_symbols(ListSymbolsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.message().contains("postgres://"), "no connection URL in errors");

    proxy.restore();
    assert!(
        wait_for_health(&mesh, registry, ServingStatus::Serving, Duration::from_secs(10)).await,
        "SERVING within 10 s"
    );
    client.list_symbols(ListSymbolsRequest::default()).await.expect("serves again");
}

#[tokio::test]
async fn health_watchers_hear_of_changes_not_of_every_check() {
    let mesh = TestMesh::all().await;
    let mut health = HealthClient::new(mesh.channel().await);
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);
    // Several database checks (every 500 ms) pass with nothing to report.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), watch.next()).await;
    assert!(quiet.is_err(), "no message while nothing changed, got {quiet:?}");
    // A service the database watcher does not own, so nothing flips it back.
    mesh.health.set_serving("wizdata.test.v1.ProbeService", false).await;
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::NotServing);
}

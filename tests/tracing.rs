//! Its own test binary, outside tests/mesh: it installs the process's tracing.
//!
//! One call through the gateway is one trace: the gateway's span, the
//! indicator engine's, market data's and the registry's, connected parent
//! to child, as received by an OTLP collector (running in the test).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::{ComputeIndicatorsRequest, IndicatorSpec};
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::TestMesh;
use wizdata_test_support::http::HttpClient;
use wizdata_test_support::raw_h2::call_raw;

/// Every log line the process writes.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'writer> tracing_subscriber::fmt::MakeWriter<'writer> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'writer self) -> Self::Writer {
        self.clone()
    }
}

/// A span as the collector received it.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    name: String,
    attributes: HashMap<String, String>,
}

/// An OTLP trace collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(text) => Some((attribute.key.clone(), text.clone())),
                            _ => None,
                        })
                        .collect();
                    spans.push(ReceivedSpan {
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        name: span.name,
                        attributes,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_call_is_one_connected_trace_across_the_services() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let serving = collector.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(serving))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    let config = wizdata_common::config::TelemetryConfig {
        log_filter: "info,tower_http=debug".into(),
        log_format: wizdata_common::config::LogFormat::Json,
        otlp_endpoint: Some(endpoint),
    };
    let logs = CapturedLogs::default();
    let telemetry = wizdata_common::telemetry::init_writing_to(&config, "wizdata-test", logs.clone());

    let mesh = TestMesh::all().await;
    let mut indicators = IndicatorServiceClient::new(mesh.gateway_channel_as(Credentials::none()).await);
    indicators
        .compute_indicators(ComputeIndicatorsRequest {
            symbol: "AAPL".into(),
            interval: Interval::OneMinute as i32,
            indicators: vec![IndicatorSpec {
                name: "SMA".into(),
                parameters: [("time_period".to_owned(), 2.0)].into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();

    // The spans arrive in batches, each service exporting on its own: wait
    // for the whole chain and for every parent its spans name, or a child
    // can be here while the span between it and the gateway is still on its way.
    let chain = [
        "wizdata.indicator.v1.IndicatorService/ComputeIndicators",
        "wizdata.marketdata.v1.MarketDataService/GetCandles",
        "wizdata.registry.v1.RegistryService/GetSymbol",
    ];
    let every_parent_received = |spans: &[ReceivedSpan]| {
        let received: std::collections::HashSet<&[u8]> = spans.iter().map(|span| span.span_id.as_slice()).collect();
        spans.iter().all(|span| span.parent_span_id.is_empty() || received.contains(span.parent_span_id.as_slice()))
    };
    let mut spans = Vec::new();
    for _ in 0..100 {
        telemetry.flush();
        spans = collector.spans.lock().unwrap().clone();
        if chain.iter().all(|name| spans.iter().any(|span| span.name == *name)) && every_parent_received(&spans) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entered = spans
        .iter()
        .find(|span| span.name == chain[0] && span.attributes.get("component").map(String::as_str) == Some("gateway"))
        .unwrap_or_else(|| panic!("the gateway's span of the call: {spans:#?}"));
    assert!(entered.parent_span_id.is_empty(), "the call started its trace at the gateway");
    let trace: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.trace_id == entered.trace_id).collect();
    let by_id: HashMap<&[u8], &ReceivedSpan> = trace.iter().map(|span| (span.span_id.as_slice(), *span)).collect();
    // Every span of the trace hangs from the gateway's, parent by parent.
    for span in &trace {
        let mut at = *span;
        while !at.parent_span_id.is_empty() {
            at = by_id
                .get(at.parent_span_id.as_slice())
                .unwrap_or_else(|| panic!("{}'s parent is in the trace", span.name));
        }
        assert_eq!(at.span_id, entered.span_id, "{} belongs to the gateway call's tree", span.name);
    }
    let services: std::collections::BTreeSet<&str> =
        trace.iter().filter_map(|span| span.attributes.get("rpc.service").map(String::as_str)).collect();
    assert!(
        [
            "wizdata.indicator.v1.IndicatorService",
            "wizdata.marketdata.v1.MarketDataService",
            "wizdata.registry.v1.RegistryService"
        ]
        .iter()
        .all(|service| services.contains(service)),
        "one trace across the services: {services:?}"
    );
    let served_under =
        |name: &str| trace.iter().find(|span| span.name == name && !span.attributes.contains_key("component"));
    let indicator = served_under(chain[0]).expect("the indicator engine's span");
    assert_eq!(indicator.parent_span_id, entered.span_id, "the indicator engine's span is the gateway's child");
    let candles = served_under(chain[1]).expect("market data's span");
    assert!(
        trace.iter().any(|span| span.span_id == candles.parent_span_id),
        "market data's span has its parent in the trace"
    );

    // A REST call of the same RPC is one trace too, its gateway span named
    // by the RPC rather than by its path.
    let rest = HttpClient::new(mesh.gateway_port.unwrap())
        .send(
            "POST",
            "/v1/symbols/AAPL/indicators:compute",
            &[("content-type", "application/json")],
            r#"{"interval": "INTERVAL_ONE_MINUTE", "indicators": [{"name": "SMA", "parameters": {"time_period": 2}}]}"#,
        )
        .await;
    assert_eq!(rest.status, 200, "{rest:?}");
    let is_gateway_call = |span: &&ReceivedSpan| {
        span.name == chain[0] && span.attributes.get("component").map(String::as_str) == Some("gateway")
    };
    let mut rest_entry = None;
    for _ in 0..100 {
        telemetry.flush();
        let spans = collector.spans.lock().unwrap().clone();
        rest_entry = spans.iter().filter(is_gateway_call).find(|span| span.trace_id != entered.trace_id).cloned();
        let served = rest_entry.as_ref().is_some_and(|entry| {
            spans.iter().any(|span| span.parent_span_id == entry.span_id && span.name == chain[0])
        });
        if served {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest_entry = rest_entry.expect("the REST call's gateway span, named by its RPC");
    assert!(rest_entry.parent_span_id.is_empty(), "the REST call started its trace at the gateway");
    let spans = collector.spans.lock().unwrap().clone();
    assert!(
        spans.iter().any(|span| span.parent_span_id == rest_entry.span_id && span.name == chain[0]),
        "the indicator engine's span is the REST call's child"
    );

    // Logs written while serving the call name its trace.
    let trace_id: String = entered.trace_id.iter().map(|byte| format!("{byte:02x}")).collect();
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log_text.lines().any(|line| line.contains(&format!("\"trace_id\":\"{trace_id}\""))),
        "a log line carries trace id {trace_id}"
    );

    // A call the gateway fails through no fault of its caller (a deadline
    // spent before the call was sent) is logged as failed, with its code;
    // a caller's mistake (an unknown ticker) is not.
    let gateway = mesh.gateway_port.unwrap();
    assert_eq!(get_symbol_status(gateway, "AAPL", "1n").await, "4", "DEADLINE_EXCEEDED");
    assert_eq!(get_symbol_status(gateway, "NOPE.XX", "10S").await, "5", "NOT_FOUND");
    let log_text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let failed: Vec<&str> = log_text.lines().filter(|line| line.contains("\"call failed\"")).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].contains("\"level\":\"ERROR\"") && failed[0].contains("DeadlineExceeded"), "{}", failed[0]);
    assert!(failed[0].contains("GetSymbol"), "logged in the call's span: {}", failed[0]);
}

/// The grpc-status of a GetSymbol call of `ticker` to the gateway on
/// `port` over a bare HTTP/2 connection, with `grpc-timeout` (which
/// tonic's client would not let through as it is).
async fn get_symbol_status(port: u16, ticker: &str, timeout: &str) -> String {
    use prost::Message as _;
    let message = wizdata::registry::v1::GetSymbolRequest { ticker: ticker.into() }.encode_to_vec();
    let path = "/wizdata.registry.v1.RegistryService/GetSymbol";
    let (_, status_at) = call_raw(port, path, &message, &[("grpc-timeout", timeout)]).await;
    status_at.code().to_owned()
}

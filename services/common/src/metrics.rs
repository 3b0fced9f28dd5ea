//! Prometheus metrics for every process: the standard gRPC server metrics,
//! recorded by [`GrpcMetricsLayer`] in each server's stack, and each
//! service's own counters through the `metrics` facade, served as
//! Prometheus text on the metrics port (`/metrics`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};

use crate::grpc::{grpc_status_in, rpc_of};

/// Where a process serves its metrics.
#[derive(clap::Args, Debug, Clone)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`); port 0 picks a
    /// free port.
    #[arg(long, env = "WIZDATA_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,
}

/// Seconds buckets of `grpc_server_handling_seconds`: 100 µs to 30 s.
const HANDLING_BUCKETS: [f64; 15] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// The process's recorder, installed on first use: every metric recorded
/// anywhere in the process from then on is in it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("grpc_server_handling_seconds".into()), &HANDLING_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test's) may already be installed; ours then
        // still renders what this code records through it.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!("grpc_server_started_total", "RPCs started on the server.");
    metrics::describe_counter!("grpc_server_handled_total", "RPCs completed on the server, by status code.");
    metrics::describe_histogram!(
        "grpc_server_handling_seconds",
        metrics::Unit::Seconds,
        "Time from an RPC's start to its status, as the server saw it."
    );
    metrics::describe_gauge!("grpc_server_in_flight", "RPCs started and not yet completed.");
}

/// A bound metrics endpoint.
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    health: Option<HealthCheck>,
}

/// Whether a process without a gRPC server (a feed) is healthy, for
/// `GET /healthz`.
pub type HealthCheck = Arc<dyn Fn() -> bool + Send + Sync>;

impl MetricsServer {
    pub async fn bind(config: &MetricsConfig) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.metrics_addr)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.metrics_addr))?;
        let local_addr = listener.local_addr()?;
        handle();
        Ok(Self { listener, local_addr, health: None })
    }

    /// Also answers `GET /healthz`: 200 `SERVING` while `check` holds, else
    /// 503 `NOT_SERVING` (what an HTTP liveness or readiness probe reads).
    pub fn with_health_check(self, check: HealthCheck) -> Self {
        Self { health: Some(check), ..self }
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves `GET /metrics` until the task is dropped.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = self.listener.accept().await else { continue };
                let health = self.health.clone();
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let health = health.clone();
                    async move {
                        let (status, body) = match (request.uri().path(), health) {
                            ("/metrics", _) => (http::StatusCode::OK, handle().render()),
                            ("/healthz", Some(check)) if check() => (http::StatusCode::OK, "SERVING\n".to_owned()),
                            ("/healthz", Some(_)) => {
                                (http::StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n".to_owned())
                            }
                            _ => (http::StatusCode::NOT_FOUND, "metrics are at /metrics\n".to_owned()),
                        };
                        let mut response = Response::new(http_body_util::Full::new(Bytes::from(body)));
                        *response.status_mut() = status;
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        })
    }
}

/// Records the standard gRPC server metrics for every call through it:
/// `grpc_server_started_total`, `grpc_server_handled_total` (with the status
/// code, read when the answer ends), `grpc_server_handling_seconds` and
/// `grpc_server_in_flight`, labelled by `grpc_service` and `grpc_method`,
/// and by `component`: `service` where the call is served, `gateway` where
/// it enters (one process may be both).
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    methods: Arc<MethodMetricsTable>,
}

impl GrpcMetricsLayer {
    /// For a server of the services.
    pub fn service() -> Self {
        Self { methods: Arc::new(MethodMetricsTable::new("service")) }
    }

    /// For the gateway.
    pub fn gateway() -> Self {
        Self { methods: Arc::new(MethodMetricsTable::new("gateway")) }
    }

    /// Counts a call to `path` as started, for a path that measures its
    /// calls itself rather than through this layer's service.
    pub fn start_call(&self, path: &str) -> CallMetrics {
        CallMetrics::start(self.methods.of(path))
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, methods: self.methods.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    methods: Arc<MethodMetricsTable>,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for GrpcMetrics<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    ResponseBody: HttpBody<Data = Bytes>,
{
    type Response = Response<Measured<ResponseBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let call = CallMetrics::start(self.methods.of(request.uri().path()));
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let code = grpc_status_in(response.headers());
            Ok(response.map(|body| Measured::new(body, call, code, ())))
        })
    }
}

/// How many distinct paths get labels of their own. Any caller can send any
/// path, and each label set is a series kept for the life of the process:
/// past this many, calls are counted under `unknown`.
const MAX_LABELLED_PATHS: usize = 256;

/// The metric handles of every path seen, so a call looks its handles up
/// by path instead of registering its label sets with the recorder (which
/// builds, hashes and compares keys: a tenth of a proxied call's work).
struct MethodMetricsTable {
    component: &'static str,
    /// Looked up on every call: hashed with foldhash, not SipHash (at most
    /// [`MAX_LABELLED_PATHS`] entries, so no caller can grow it to collide).
    by_path: RwLock<foldhash::HashMap<Box<str>, Arc<MethodMetrics>>>,
    unknown: Arc<MethodMetrics>,
}

impl MethodMetricsTable {
    fn new(component: &'static str) -> Self {
        // Handles taken before the recorder is installed would record nowhere.
        handle();
        Self { component, by_path: RwLock::default(), unknown: Arc::new(MethodMetrics::new(component, None)) }
    }

    fn of(&self, path: &str) -> Arc<MethodMetrics> {
        if let Some(known) = self.by_path.read().expect("metrics table lock is not poisoned").get(path) {
            return known.clone();
        }
        let Some(rpc) = rpc_of(path) else { return self.unknown.clone() };
        let mut by_path = self.by_path.write().expect("metrics table lock is not poisoned");
        if let Some(known) = by_path.get(path) {
            return known.clone();
        }
        if by_path.len() >= MAX_LABELLED_PATHS {
            return self.unknown.clone();
        }
        let method = Arc::new(MethodMetrics::new(self.component, Some(rpc)));
        by_path.insert(path.into(), method.clone());
        method
    }
}

/// One method's handles; `handled_total` per status code, registered the
/// first time a call ends with that code.
struct MethodMetrics {
    labels: [(&'static str, String); 3],
    started_total: metrics::Counter,
    in_flight: metrics::Gauge,
    handling_seconds: metrics::Histogram,
    handled_total: [OnceLock<metrics::Counter>; CODES],
}

/// gRPC status codes, 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: usize = 17;

impl MethodMetrics {
    fn new(component: &'static str, rpc: Option<(&str, &str)>) -> Self {
        let (service, method) = rpc.unwrap_or(("unknown", "unknown"));
        let labels = [
            ("grpc_service", service.to_owned()),
            ("grpc_method", method.to_owned()),
            ("component", component.to_owned()),
        ];
        Self {
            started_total: metrics::counter!("grpc_server_started_total", &labels),
            in_flight: metrics::gauge!("grpc_server_in_flight", &labels),
            handling_seconds: metrics::histogram!("grpc_server_handling_seconds", &labels),
            handled_total: Default::default(),
            labels,
        }
    }

    fn handled(&self, code: tonic::Code) -> &metrics::Counter {
        self.handled_total[(code as usize).min(CODES - 1)].get_or_init(|| {
            let [service, method, component] = self.labels.clone();
            let labels = [service, method, ("grpc_code", code_name(code).to_owned()), component];
            metrics::counter!("grpc_server_handled_total", &labels)
        })
    }
}

/// One call being measured: recorded as handled when its answer ends.
pub struct CallMetrics {
    method: Arc<MethodMetrics>,
    started: Instant,
}

impl CallMetrics {
    fn start(method: Arc<MethodMetrics>) -> Self {
        method.started_total.increment(1);
        method.in_flight.increment(1.0);
        Self { method, started: Instant::now() }
    }

    fn finish(self, code: tonic::Code) {
        let Self { method, started } = self;
        method.in_flight.decrement(1.0);
        method.handling_seconds.record(started.elapsed().as_secs_f64());
        method.handled(code).increment(1);
    }
}

/// What else is done when a measured call ends, besides counting it.
pub trait OnCallEnd: Unpin {
    /// The call ended with `code`, having started at `started`.
    fn call_ended(&mut self, code: tonic::Code, started: Instant);
}

/// Nothing else.
impl OnCallEnd for () {
    fn call_ended(&mut self, _: tonic::Code, _: Instant) {}
}

/// An answer's body, watched for the status in its trailers; when it ends,
/// the call is counted as handled and `on_end` is told.
pub struct Measured<B, E: OnCallEnd = ()> {
    body: B,
    call: Option<CallMetrics>,
    // From a trailers-only answer's headers, until trailers say otherwise.
    code: Option<tonic::Code>,
    on_end: E,
}

impl<B, E: OnCallEnd> Measured<B, E> {
    /// `body` of the answer to `call`, whose headers carried `code` if it
    /// was trailers-only.
    pub fn new(body: B, call: CallMetrics, code: Option<tonic::Code>, on_end: E) -> Self {
        Self { body, call: Some(call), code, on_end }
    }

    fn end(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            self.on_end.call_ended(code, call.started);
            call.finish(code);
        }
    }
}

impl<B, E: OnCallEnd> Drop for Measured<B, E> {
    fn drop(&mut self) {
        // Dropped before its status was sent: the client went away.
        self.end(self.code.unwrap_or(tonic::Code::Cancelled));
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin, E: OnCallEnd> HttpBody for Measured<B, E> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status_in) {
                    self.code = Some(code);
                }
            }
            Poll::Ready(None) => {
                let code = self.code.unwrap_or(tonic::Code::Ok);
                self.end(code);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Cancelled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(port: u16, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn healthz_follows_the_check_and_is_absent_without_one() {
        let config = MetricsConfig { metrics_addr: "127.0.0.1:0".parse().unwrap() };
        let healthy = Arc::new(AtomicBool::new(false));
        let check = healthy.clone();
        let server = MetricsServer::bind(&config)
            .await
            .unwrap()
            .with_health_check(Arc::new(move || check.load(Ordering::SeqCst)));
        let port = server.port();
        let _serving = server.spawn();
        let answer = get(port, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 503") && answer.ends_with("NOT_SERVING\n"), "{answer}");
        healthy.store(true, Ordering::SeqCst);
        let answer = get(port, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("\r\n\r\nSERVING\n"), "{answer}");

        let plain = MetricsServer::bind(&config).await.unwrap();
        let port = plain.port();
        let _serving = plain.spawn();
        assert!(get(port, "/healthz").await.starts_with("HTTP/1.1 404"));
        assert!(get(port, "/metrics").await.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn a_path_keeps_its_handles_and_made_up_paths_cannot_grow_the_series_without_bound() {
        let table = MethodMetricsTable::new("gateway");
        let first = table.of("/wizdata.registry.v1.RegistryService/GetSymbol");
        assert!(Arc::ptr_eq(&first, &table.of("/wizdata.registry.v1.RegistryService/GetSymbol")));
        assert_eq!(first.labels[1].1, "GetSymbol");
        assert!(Arc::ptr_eq(&table.of("not a path"), &table.unknown), "no service and method: unknown");

        for n in 0..2 * MAX_LABELLED_PATHS {
            table.of(&format!("/made.Up/Method{n}"));
        }
        assert_eq!(table.by_path.read().unwrap().len(), MAX_LABELLED_PATHS);
        assert!(Arc::ptr_eq(&table.of("/made.Up/OneMore"), &table.unknown), "past the bound: unknown");
        assert!(!Arc::ptr_eq(&table.of("/wizdata.registry.v1.RegistryService/GetSymbol"), &table.unknown));
    }
}

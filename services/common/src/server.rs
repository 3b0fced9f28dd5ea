//! The one way a WizData process serves gRPC: its services plus
//! grpc.health.v1 and server reflection (v1 and v1alpha), a request-id and
//! tracing stack, and graceful shutdown.
//!
//! `GrpcServer::bind` binds first (port 0 in tests) so `port()` is known
//! before `run_until` serves; the caller decides when to stop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroI32;

use http::Request;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tower::Service;
use tower_http::classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse, GrpcFailureClass, SharedClassifier};
use tower_http::trace::TraceLayer;

use crate::auth::layer::AuthLayer;
use crate::config::ServerConfig;
use crate::connections::{CONNECTION_WINDOW_BYTES, CallTracking, Incoming, STREAM_WINDOW_BYTES};
use crate::grpc::{CancelledRequests, X_REQUEST_ID, per_call, rpc_of};
use crate::health::Health;
use crate::ids;
use crate::metrics::GrpcMetricsLayer;

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_SERVICES: [&str; 2] =
    ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];

/// Adds one service to a server's routes.
type Mount = Box<dyn FnOnce(&mut RoutesBuilder) + Send>;

/// The application services one process serves.
#[derive(Default)]
pub struct Services {
    // Deferred additions: the routes also carry health, which exists only
    // once the server is bound.
    mounts: Vec<Mount>,
    names: Vec<&'static str>,
}

impl Services {
    pub fn mount<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.mounts.push(Box::new(move |routes: &mut RoutesBuilder| {
            routes.add_service(service);
        }));
        self.names.push(S::NAME);
        self
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

/// A bound, not yet serving, gRPC server.
pub struct GrpcServer {
    incoming: Incoming,
    local_addr: SocketAddr,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    health: Health,
    auth: Option<AuthLayer>,
    config: ServerConfig,
}

impl GrpcServer {
    /// Binds the listener before any service exists, so the port is known
    /// (and can be handed to services that call their neighbours in the same
    /// process) before services are built.
    pub async fn bind(config: &ServerConfig) -> anyhow::Result<Self> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let incoming = Incoming::bind(config.grpc_addr, config.connection_limits()).await?;
        let local_addr = incoming.local_addr();
        tracing::info!(%local_addr, "gRPC server bound");
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            incoming,
            local_addr,
            routes,
            names: Vec::new(),
            health: Health::new(reporter),
            auth: None,
            config: config.clone(),
        })
    }

    /// The application services to serve beside health and reflection, each
    /// reported SERVING, with every call checked by `auth`.
    pub async fn serve(mut self, services: Services, auth: AuthLayer) -> Self {
        self.auth = Some(auth);
        for name in services.names() {
            self.health.set_serving(name, true).await;
        }
        tracing::info!(services = ?services.names(), "services mounted");
        for mount in services.mounts {
            mount(&mut self.routes);
        }
        self.names.extend(services.names);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The health statuses this server reports; services flip theirs when a
    /// dependency comes and goes.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Serves until `stop` resolves, then shuts down gracefully: health turns
    /// NOT_SERVING, after `shutdown_delay` the listener closes, and in-flight
    /// calls get up to `drain_timeout` to finish.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self { incoming, local_addr, mut routes, names, health, auth, config } = self;
        let auth = auth.ok_or_else(|| anyhow::anyhow!("serve(services, auth) comes before run_until"))?;
        routes.add_service(reflection(&names).build_v1()?);
        routes.add_service(reflection(&names).build_v1alpha()?);
        let (drain, drained) = tokio::sync::oneshot::channel::<()>();
        let layers = tower::ServiceBuilder::new()
            // Count the call on its connection (idle connections are let go) and expose the peer's address.
            .layer(CallTracking)
            // Give every call an id (or keep the caller's) for its log lines, echoed for the caller to quote.
            .layer(RequestIdLayer)
            // One span per call with its method and request id; logs server-side failures with latency.
            .layer(TraceLayer::new(callers_mistakes_are_not_failures()).make_span_with(call_span).on_eos(end_of_stream))
            // Count every call by method and status, refused ones included.
            .layer(GrpcMetricsLayer::service())
            // Check credentials and the RPC's scope in every service, not only at the gateway.
            .layer(auth)
            // A call its caller reset before sending its message ends CANCELLED, not tonic's INTERNAL.
            .layer(CancelledRequests)
            .into_inner();
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = drained.await;
            });
        tokio::pin!(server);

        tokio::select! {
            result = &mut server => return result.map_err(Into::into),
            () = stop => {}
        }
        tracing::info!(%local_addr, "shutting down: health is NOT_SERVING");
        health.begin_shutdown().await;
        tokio::select! {
            result = &mut server => return result.map_err(Into::into),
            () = tokio::time::sleep(config.shutdown_delay) => {}
        }
        let _ = drain.send(());
        match tokio::time::timeout(config.drain_timeout, server).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(timeout = ?config.drain_timeout, "calls still in flight after the drain timeout; abandoning them")
            }
        }
        tracing::info!(%local_addr, "stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: call it before binding, so a signal that arrives while the
/// process starts up (a probe may already see it serving) stops it cleanly
/// instead of killing it with the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler succeeds on unix");
        let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler succeeds on unix");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reflection listing `names` (with health and reflection itself), able to
/// describe every contract type and the google.rpc error details, so
/// grpcurl and buf curl decode an error's BadRequest or ResourceInfo by name.
pub fn reflection(names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wizdata::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    // List only what this process serves: one role's process must not
    // advertise the other four services.
    for name in names.iter().chain([HEALTH_SERVICE].iter()).chain(REFLECTION_SERVICES.iter()) {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Codes that answer a caller's mistake, not a fault of the server: logging
/// them as errors would bury the real ones.
pub fn callers_mistakes_are_not_failures() -> SharedClassifier<ServerFaults> {
    SharedClassifier::new(ServerFaults)
}

const CALLERS_MISTAKES: [tonic::Code; 10] = [
    tonic::Code::Cancelled,
    tonic::Code::InvalidArgument,
    tonic::Code::NotFound,
    tonic::Code::AlreadyExists,
    tonic::Code::PermissionDenied,
    tonic::Code::ResourceExhausted,
    tonic::Code::FailedPrecondition,
    tonic::Code::OutOfRange,
    tonic::Code::Unimplemented,
    tonic::Code::Unauthenticated,
];

/// Whether a call that ended with `code` failed through the server's
/// fault: any code but OK and [`CALLERS_MISTAKES`].
pub fn is_server_fault(code: tonic::Code) -> bool {
    code != tonic::Code::Ok && !CALLERS_MISTAKES.contains(&code)
}

/// Classifies a call by its gRPC status, in its headers or trailers: any
/// code but OK and [`CALLERS_MISTAKES`] is a failure. As tower-http's
/// `GrpcErrorsAsFailures` with those codes as successes, but reading the
/// status by its parsed name: tower-http's looks it up by text, parsing the
/// name again twice a call.
#[derive(Clone, Copy, Debug)]
pub struct ServerFaults;

impl ServerFaults {
    /// `None` when `headers` carry no status (an answer's headers before its trailers).
    fn classify(headers: &http::HeaderMap) -> Option<Result<(), GrpcFailureClass>> {
        let status = headers.get(crate::grpc::GRPC_STATUS)?;
        // A status that is not a number is not read as a failure, as tower-http does.
        let code = status.to_str().ok().and_then(|status| status.parse::<i32>().ok()).and_then(NonZeroI32::new);
        Some(match code {
            Some(code) if is_server_fault(tonic::Code::from_i32(code.get())) => Err(GrpcFailureClass::Code(code)),
            _ => Ok(()),
        })
    }
}

impl ClassifyResponse for ServerFaults {
    type FailureClass = GrpcFailureClass;
    type ClassifyEos = Self;

    fn classify_response<B>(self, response: &http::Response<B>) -> ClassifiedResponse<GrpcFailureClass, Self> {
        match Self::classify(response.headers()) {
            Some(class) => ClassifiedResponse::Ready(class),
            None => ClassifiedResponse::RequiresEos(self),
        }
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> GrpcFailureClass {
        GrpcFailureClass::Error(error.to_string())
    }
}

impl ClassifyEos for ServerFaults {
    type FailureClass = GrpcFailureClass;

    fn classify_eos(self, trailers: Option<&http::HeaderMap>) -> Result<(), GrpcFailureClass> {
        trailers.and_then(Self::classify).unwrap_or(Ok(()))
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> GrpcFailureClass {
        GrpcFailureClass::Error(error.to_string())
    }
}

/// The end of a call's answer, at DEBUG as tower-http's default says it,
/// but looked at only when DEBUG is on: the default reads the status out of
/// the trailers first, on every call (476 instructions at the gateway).
pub fn end_of_stream(_: Option<&http::HeaderMap>, stream_duration: std::time::Duration, _: &tracing::Span) {
    tracing::debug!(?stream_duration, "end of stream");
}

/// Gives every call an id (the caller's `x-request-id`, or a new one from
/// [`ids::request_id`]), so its log lines can be found together, and echoes
/// it on the answer, so a client can quote it when reporting a problem.
/// One layer for what tower-http does in two, without the copies of the id
/// they keep in the request's and the answer's extensions (an allocation
/// each, on every call; nothing here reads them).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = WithRequestId<S>;

    fn layer(&self, inner: S) -> WithRequestId<S> {
        WithRequestId { inner }
    }
}

/// A service behind [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct WithRequestId<S> {
    inner: S,
}

impl<S, B, A> Service<Request<B>> for WithRequestId<S>
where
    S: Service<Request<B>, Response = http::Response<A>>,
{
    type Response = http::Response<A>;
    type Error = S::Error;
    type Future = EchoRequestId<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request_id_of(&mut request);
        EchoRequestId { answer: self.inner.call(request), id: Some(id) }
    }
}

/// The call's id: the caller's `x-request-id`, or a new one put in the
/// request (see [`RequestIdLayer`]).
pub fn request_id_of<B>(request: &mut Request<B>) -> http::HeaderValue {
    match request.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            request.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    }
}

/// Echoes the call's id on its answer (see [`RequestIdLayer`]).
pub fn echo_request_id(headers: &mut http::HeaderMap, id: http::HeaderValue) {
    // Marked per call: the id arrived so marked (HTTP/2 sends such values
    // as literals), but decoding a header drops the mark, and an echo
    // added to the connection's header table would push out entries that
    // do repeat (measured: 3.3k of 137k instructions of a call through
    // the gateway). An answer that echoes an id already keeps its own.
    // Looked up, not taken as an entry: an entry makes room for one more
    // header first, and a full map is grown even when the id is there.
    if let Some(echoed) = headers.get_mut(X_REQUEST_ID) {
        echoed.set_sensitive(true);
    } else {
        headers.insert(X_REQUEST_ID, per_call(id));
    }
}

fn new_request_id() -> http::HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = ids::request_id().hyphenated().encode_lower(&mut text);
    per_call(http::HeaderValue::from_str(id).expect("a UUID is a valid header value"))
}

pin_project_lite::pin_project! {
    /// A call's answer, with the call's id echoed (see [`RequestIdLayer`]).
    pub struct EchoRequestId<F> {
        #[pin]
        answer: F,
        id: Option<http::HeaderValue>,
    }
}

impl<F, A, E> Future for EchoRequestId<F>
where
    F: Future<Output = Result<http::Response<A>, E>>,
{
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.answer.poll(cx))?;
        if let Some(id) = this.id.take() {
            echo_request_id(response.headers_mut(), id);
        }
        std::task::Poll::Ready(Ok(response))
    }
}

/// The span of one call: its method and request id, in the trace its
/// `traceparent` names (or a new one), with the trace id for the logs.
pub fn call_span<B>(request: &Request<B>) -> tracing::Span {
    call_span_of_rpc(request, request.uri().path())
}

/// The call span of a request that calls the RPC at `rpc_path` whatever its
/// own path (a REST route at the gateway): named by the RPC, so span names
/// stay few however many tickers and ids the paths carry.
pub fn call_span_of_rpc<B>(request: &Request<B>, rpc_path: &str) -> tracing::Span {
    // With spans filtered out there is no span to fill, no trace to join,
    // and the fields below (a header looked up, the path split) are not read.
    if !tracing::enabled!(kind: tracing::metadata::Kind::SPAN, target: module_path!(), tracing::Level::INFO) {
        return tracing::Span::none();
    }
    let request_id = request.headers().get(X_REQUEST_ID).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let path = request.uri().path();
    let (service, method) = rpc_of(rpc_path).unwrap_or_default();
    let span = tracing::info_span!(
        "grpc",
        otel.name = %rpc_path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        method = %path,
        request_id,
        trace_id = tracing::field::Empty,
        component = tracing::field::Empty,
    );
    if !span.is_disabled() {
        crate::telemetry::accept_trace_context(&span, request.headers());
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_faults_are_failures_in_headers_or_trailers() {
        let with_status = |status: &'static str| {
            http::HeaderMap::from_iter([(crate::grpc::GRPC_STATUS, http::HeaderValue::from_static(status))])
        };
        let answer = |headers: http::HeaderMap| {
            let mut response = http::Response::new(());
            *response.headers_mut() = headers;
            ServerFaults.classify_response(&response)
        };
        let failed = |class: Result<(), GrpcFailureClass>| match class {
            Ok(()) => None,
            Err(GrpcFailureClass::Code(code)) => Some(code.get()),
            Err(GrpcFailureClass::Error(error)) => panic!("{error}"),
        };
        for (status, failure) in [("0", None), ("3", None), ("5", None), ("16", None), ("2", Some(2)), ("13", Some(13))]
        {
            let ClassifiedResponse::Ready(class) = answer(with_status(status)) else { panic!("trailers-only") };
            assert_eq!(failed(class), failure, "grpc-status {status} in the headers");
            assert_eq!(failed(ServerFaults.classify_eos(Some(&with_status(status)))), failure, "in the trailers");
        }
        assert_eq!(failed(ServerFaults.classify_eos(Some(&with_status("14")))), Some(14), "UNAVAILABLE is ours");
        assert!(matches!(answer(http::HeaderMap::new()), ClassifiedResponse::RequiresEos(_)), "the trailers decide");
        assert_eq!(failed(ServerFaults.classify_eos(None)), None, "no trailers, nothing to blame");
        assert_eq!(failed(ServerFaults.classify_eos(Some(&with_status("soon")))), None, "not a number");
    }

    #[tokio::test]
    async fn every_call_gets_an_id_and_its_answer_echoes_it_marked_per_call() {
        use tower::{Layer, ServiceExt};
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let answering = |echoes: Option<&'static str>| {
            let seen = seen.clone();
            RequestIdLayer.layer(tower::service_fn(move |request: Request<()>| {
                seen.lock().unwrap().push(request.headers()[X_REQUEST_ID].clone());
                let mut answer = http::Response::new(());
                answer.headers_mut().insert(http::header::DATE, http::HeaderValue::from_static("Sun, 06 Dec 2026"));
                if let Some(echoed) = echoes {
                    answer.headers_mut().insert(X_REQUEST_ID, http::HeaderValue::from_static(echoed));
                }
                async move { Ok::<_, Infallible>(answer) }
            }))
        };
        let id_of = |answer: &http::Response<()>| answer.headers()[X_REQUEST_ID].clone();

        // The caller's id goes to the service and back.
        let mut request = Request::new(());
        request.headers_mut().insert(X_REQUEST_ID, http::HeaderValue::from_static("caller-9"));
        let answered = answering(None).oneshot(request).await.unwrap();
        assert_eq!(id_of(&answered), "caller-9", "the caller's id, echoed");
        assert!(id_of(&answered).is_sensitive(), "sent as a literal, not added to the header table");
        assert!(!answered.headers()[http::header::DATE].is_sensitive(), "nothing else changes");

        // A call without one gets a new one, different every call, the same on both sides.
        let first = answering(None).oneshot(Request::new(())).await.unwrap();
        let second = answering(None).oneshot(Request::new(())).await.unwrap();
        assert_eq!(id_of(&first).len(), uuid::fmt::Hyphenated::LENGTH);
        assert_ne!(id_of(&first), id_of(&second));
        assert_eq!(seen.lock().unwrap()[1..], [id_of(&first), id_of(&second)], "the service saw the id echoed");

        // An answer that echoes an id itself keeps it, marked per call.
        let answered = answering(Some("call-7")).oneshot(Request::new(())).await.unwrap();
        assert_eq!(id_of(&answered), "call-7");
        assert!(id_of(&answered).is_sensitive());
    }
}

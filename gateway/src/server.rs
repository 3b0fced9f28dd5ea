//! The gateway's one port: HTTP/1.1 (hyper's server) and HTTP/2 (cleartext,
//! the gateway's own: [`crate::http2`]) on one listener, told apart by
//! HTTP/2's preface; the HTTP probes, metrics and OpenAPI document; and
//! every call through CORS and its protocol's translation
//! (gRPC-Web, Connect, REST/JSON, SSE) to the one gRPC pipeline. Each
//! connection is served on one of the gateway's threads
//! ([`wizdata_common::lanes`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tonic::body::Body;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use wizdata_common::connections::{Connection, ConnectionInfo, Incoming};
use wizdata_common::grpc::HoldingBody;
use wizdata_common::lanes::Lanes;
use wizdata_common::metrics::GrpcMetricsLayer;
use wizdata_common::server::{
    RequestIdLayer, call_span, call_span_of_rpc, callers_mistakes_are_not_failures, end_of_stream,
};

use crate::backend::Backend;
use crate::config::GatewayConfig;
use crate::dashboard::Dashboard;
use crate::http2::{self, Http2Settings};
use crate::native::NativeCalls;
use crate::proxy::{ClientAddr, Proxy, status_response};
use crate::ratelimit::RateLimiter;
use crate::routes::Methods;
pub use crate::transcode::GrpcService;
use crate::transcode::connect::{Call as ConnectCall, Connect};
use crate::transcode::rest::{Rest, RouteLookup, Routes};
use crate::transcode::{BodyLimits, compression, openapi};

/// Headers a browser may send on a gRPC-Web, Connect or REST call.
const ALLOWED_HEADERS: [&str; 15] = [
    "content-type",
    "content-encoding",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "x-api-key",
    "x-request-id",
    "grpc-accept-encoding",
    "grpc-encoding",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "accept",
];

/// Headers a browser may read from the answer.
const EXPOSED_HEADERS: [&str; 10] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
    "x-request-id",
    "content-encoding",
    "connect-content-encoding",
];

/// Which browser origins may call.
#[derive(Clone, Debug)]
pub struct AllowedOrigins {
    any: bool,
    listed: Arc<[HeaderValue]>,
}

impl AllowedOrigins {
    pub fn new(configured: &[String]) -> anyhow::Result<Self> {
        let any = configured.iter().any(|origin| origin.trim() == "*");
        let listed = configured
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/'))
            .filter(|origin| !origin.is_empty() && *origin != "*")
            .map(|origin| {
                HeaderValue::try_from(origin).map_err(|_| anyhow::anyhow!("{origin:?} is not a valid origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { any, listed: listed.into() })
    }

    /// Listed, or any when `*` is configured, or the gateway's own address
    /// (a page the gateway served calling back).
    fn allows(&self, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
        if self.any || self.listed.contains(origin) {
            return true;
        }
        let (Ok(origin), Some(Ok(host))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
            return false;
        };
        origin.split_once("://").is_some_and(|(_, authority)| authority == host)
    }
}

/// What /readyz and /metrics report.
pub struct Ops {
    pub backends: Vec<Arc<Backend>>,
    pub limiter: RateLimiter,
    pub stopping: AtomicBool,
}

/// The service every connection serves, shared by all of them: a call
/// clones only the stack it goes through.
pub struct Front {
    /// Every protocol but native gRPC: CORS, then the protocol's translation.
    translated: GrpcService,
    /// Native gRPC calls the native path does not take (the gateway's own
    /// health and reflection, paths outside the contract), which CORS and
    /// translation would only inspect and pass by: metrics alone.
    native: GrpcService,
    /// Native gRPC calls to the contract's RPCs, on their own path.
    native_calls: NativeCalls,
    ops: Arc<Ops>,
    origins: AllowedOrigins,
    dashboard: Arc<Dashboard>,
}

impl Front {
    /// `grpc` behind CORS and each protocol's translation, and as it is for
    /// native clients; `proxy` on the native path. Every call is counted in
    /// one table of metrics, whichever path it took.
    pub fn new(
        grpc: GrpcService,
        proxy: Proxy,
        ops: Arc<Ops>,
        origins: AllowedOrigins,
        limits: BodyLimits,
        dashboard: Arc<Dashboard>,
    ) -> Self {
        let cors_origins = origins.clone();
        // Count every gRPC call at the edge by method and status, refused ones included.
        let metrics = GrpcMetricsLayer::gateway();
        let native = BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                // One body type for every answer, whatever the layers below wrap it in.
                .map_response(|response: Response<_>| response.map(Body::new))
                .layer(metrics.clone())
                .service(grpc),
        );
        let grpc_web = BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                // Translate gRPC-Web (binary and base64 text) to gRPC and the answers back, trailers into the body.
                .layer(tonic_web::GrpcWebLayer::new())
                .map_response(|response: Response<_>| response.map(Body::new))
                .service(native.clone()),
        );
        let protocols = Protocols {
            grpc_web,
            connect: Connect { grpc: native.clone(), limits },
            rest: Rest { grpc: native.clone(), limits, routes: Routes::contract() },
        };
        let translated = tower::ServiceBuilder::new()
            // Answer browsers' preflights and let pages read the gRPC and rate-limit headers.
            .layer(
                CorsLayer::new()
                    .allow_origin(AllowOrigin::predicate(move |origin, parts| {
                        cors_origins.allows(origin, parts.headers.get(header::HOST))
                    }))
                    .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                    .allow_headers(ALLOWED_HEADERS.map(http::HeaderName::from_static))
                    .expose_headers(EXPOSED_HEADERS.map(http::HeaderName::from_static))
                    .max_age(Duration::from_secs(24 * 3600)),
            )
            .map_response(|response: Response<_>| response.map(Body::new))
            .service(tower::service_fn(move |request| {
                let protocols = protocols.clone();
                async move { Ok::<_, Infallible>(protocols.handle(request).await) }
            }));
        let native_calls = NativeCalls::new(proxy, metrics);
        Self { translated: BoxCloneSyncService::new(translated), native, native_calls, ops, origins, dashboard }
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n", "text/plain"),
            (&Method::GET, "/readyz") => return self.readiness(),
            (&Method::GET, "/metrics") => {
                let body = wizdata_common::metrics::handle().render();
                return text(StatusCode::OK, body, "text/plain; version=0.0.4");
            }
            _ => {}
        }
        if self.dashboard.serves(&request) {
            return self.dashboard.answer(&request);
        }
        if let Some(origin) = request.headers().get(header::ORIGIN)
            && !self.origins.allows(origin, request.headers().get(header::HOST))
        {
            let mut response =
                status_response(tonic::Status::permission_denied("this origin may not call the gateway"));
            *response.status_mut() = StatusCode::FORBIDDEN;
            return response;
        }
        let service = match grpc_protocol(&request) {
            // Native gRPC: nothing for CORS or translation to do.
            Some(GrpcProtocol::Native) if !request.headers().contains_key(header::ORIGIN) => self.native.clone(),
            _ => self.translated.clone(),
        };
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// Ready while not stopping and some backend has a healthy endpoint;
    /// the body says which backends and which rate-limit mode.
    fn readiness(&self) -> Response<Body> {
        let backends: serde_json::Map<String, serde_json::Value> = self
            .ops
            .backends
            .iter()
            .map(|backend| {
                let state = serde_json::json!({
                    "healthy_endpoints": backend.pool.healthy_endpoints(),
                    "endpoints": backend.pool.endpoint_count(),
                    "circuit_open": backend.breaker.is_open(),
                    "discovery_problem": backend.pool.discovery_problem(),
                });
                (backend.service.to_owned(), state)
            })
            .collect();
        let stopping = self.ops.stopping.load(Ordering::Relaxed);
        let reachable = self.ops.backends.iter().any(|backend| backend.pool.healthy_endpoints() > 0);
        let ready = !stopping && reachable;
        let body = serde_json::json!({
            "ready": ready,
            "stopping": stopping,
            "rate_limit_mode": self.ops.limiter.mode().as_str(),
            "backends": backends,
        });
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        text(status, format!("{body}\n"), "application/json")
    }
}

/// The translations in front of the gRPC pipeline, one per protocol.
#[derive(Clone)]
struct Protocols {
    grpc_web: GrpcService,
    connect: Connect,
    rest: Rest,
}

impl Protocols {
    /// A call to an RPC's path is gRPC(-Web) or Connect, by its content
    /// type; any other path is a REST route, or the OpenAPI document.
    async fn handle(self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path();
        if let Some(method) = Methods::contract().get(path).or_else(|| Methods::own().get(path)) {
            if grpc_protocol(&request).is_some() {
                return self.grpc_web(request).await;
            }
            return match ConnectCall::of(&request) {
                Some(call) => self.connect.handle(request, method, call).await,
                None => {
                    let mut response = status_response(tonic::Status::invalid_argument(
                        "content-type must be application/grpc (over HTTP/2), application/grpc-web, application/grpc-web-text, \
                         or Connect's application/json, application/proto, application/connect+json or application/connect+proto",
                    ));
                    *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                    response
                }
            };
        }
        if grpc_protocol(&request).is_some() {
            // A gRPC call to a path outside the contract: the proxy answers UNIMPLEMENTED.
            return self.grpc_web(request).await;
        }
        if request.method() == Method::GET && path == "/openapi.json" {
            return text(StatusCode::OK, openapi::document().clone(), "application/json");
        }
        self.rest.handle(request).await
    }

    /// A gRPC-Web call, its answer gzipped as it streams when the caller
    /// accepts it (browsers do, and inflate it unseen).
    async fn grpc_web(&self, request: Request<Body>) -> Response<Body> {
        let gzip = grpc_protocol(&request) == Some(GrpcProtocol::Web)
            && compression::accepts_gzip(request.headers().get(header::ACCEPT_ENCODING));
        let Ok(response) = self.grpc_web.clone().oneshot(request).await;
        if !gzip {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, compression::gzip_body(body))
    }
}

/// How a call speaks gRPC, read from its content type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcProtocol {
    /// `application/grpc`, over HTTP/2 (it needs trailers).
    Native,
    /// `application/grpc-web` or `-web-text`, over any HTTP version.
    Web,
}

pub(crate) fn grpc_protocol<B>(request: &Request<B>) -> Option<GrpcProtocol> {
    let content_type = request.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let is =
        |base: &str| content_type == base || content_type.strip_prefix(base).is_some_and(|rest| rest.starts_with('+'));
    if is("application/grpc-web") || is("application/grpc-web-text") {
        return Some(GrpcProtocol::Web);
    }
    (is("application/grpc") && request.version() >= http::Version::HTTP_2).then_some(GrpcProtocol::Native)
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// One connection's view of the front door: its client's address, and the
/// handle that counts its calls (a connection with none is let go when idle).
#[derive(Clone)]
struct ConnectionService {
    front: Arc<Front>,
    client: ClientAddr,
    connection: ConnectionInfo,
}

impl tower::Service<Request<Body>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        request.extensions_mut().insert(self.client.clone());
        let mark = self.connection.start_call();
        let front = self.front.clone();
        Box::pin(async move {
            let response = front.handle(request).await;
            Ok(response.map(|body| HoldingBody::wrap(body, mark)))
        })
    }
}

/// A connection's calls: native gRPC calls to the contract on their own
/// path ([`NativeCalls`]), every other call through `stack`.
#[derive(Clone)]
struct Edge<S> {
    stack: S,
    connection: ConnectionService,
}

type NativeFuture = std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures_util::future::Either<NativeFuture, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !NativeCalls::takes(&request) {
            return futures_util::future::Either::Right(self.stack.call(request));
        }
        let ConnectionService { front, client, connection } = &self.connection;
        let (front, client, mark) = (front.clone(), client.clone(), connection.start_call());
        futures_util::future::Either::Left(Box::pin(
            async move { Ok(front.native_calls.call(request, client, mark).await) },
        ))
    }
}

/// The listener and the threads its connections are served on.
pub struct Listener {
    incoming: Incoming,
    lanes: Lanes,
}

impl Listener {
    /// Binds with the connection caps and timeouts of `config`, and starts
    /// the threads that will serve the connections.
    pub async fn bind(config: &GatewayConfig) -> anyhow::Result<Self> {
        let incoming = Incoming::bind(config.gateway_addr, config.connection_limits()).await?;
        let lanes = Lanes::start(config.serving_threads(), "gateway")
            .map_err(|error| anyhow::anyhow!("cannot start the gateway's threads: {error}"))?;
        tracing::info!(local_addr = %incoming.local_addr(), threads = lanes.count(), "gateway bound");
        Ok(Self { incoming, lanes })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.incoming.local_addr()
    }

    /// Serves connections until `stop` resolves; then stops accepting, asks
    /// every connection to finish its calls, and waits up to `drain_timeout`.
    pub async fn serve(
        mut self,
        front: Front,
        config: &GatewayConfig,
        stop: impl Future<Output = ()>,
        drain_timeout: Duration,
    ) {
        let front = Arc::new(front);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            // Slow clients (slowloris) may not hold a connection open forever.
            .header_read_timeout(config.client_timeout)
            // hyper answers 431 above this; it cannot go below 8 KiB.
            .max_buf_size(config.max_header_bytes.max(8192));
        let http2_settings =
            Http2Settings { max_header_list_size: config.max_header_bytes as u32, keep_alive: Duration::from_secs(20) };
        let (stopping, _) = tokio::sync::watch::channel(false);
        // Every connection task holds a sender; all dropped means all done.
        let (connection_open, mut connections_done) = tokio::sync::mpsc::channel::<()>(1);
        tokio::pin!(stop);
        loop {
            // Caps, handshake and idle timeouts, and backing off when out of
            // file descriptors are the connection's own (see `connections`).
            let connection = tokio::select! {
                () = &mut stop => break,
                connection = self.incoming.accept() => connection,
            };
            let info = connection.info().clone();
            let client = info.remote_addr();
            let connection_service =
                ConnectionService { front: front.clone(), client: ClientAddr::new(client), connection: info };
            let service = Edge { stack: call_stack(connection_service.clone()), connection: connection_service };
            let http1 = http1.clone();
            let stopping = stopping.subscribe();
            let connection_open = connection_open.clone();
            let handshake_timeout = config.client_timeout;
            // Accepted here, served on a lane: the connection and its calls stay on that lane's thread.
            self.lanes.spawn(async move {
                let _open = connection_open;
                let connection = match connection.into_current_runtime() {
                    Ok(connection) => connection,
                    Err(error) => return tracing::debug!(%client, %error, "connection lost before it was served"),
                };
                // HTTP/2 with prior knowledge (every gRPC client) opens with its preface; anything else is HTTP/1.1.
                let preface = tokio::time::timeout(handshake_timeout, connection.starts_with(http2::PREFACE)).await;
                let result = match preface {
                    Ok(Ok(true)) => http2::connection::serve(connection, http2_settings, service, stopping)
                        .await
                        .map_err(Into::into),
                    _ => serve_http1(&http1, connection, service, stopping).await,
                };
                if let Err(error) = result {
                    tracing::debug!(%client, %error, "connection ended with an error");
                }
            });
        }
        drop(self.incoming);
        let _ = stopping.send(true);
        drop(connection_open);
        if tokio::time::timeout(drain_timeout, connections_done.recv()).await.is_err() {
            tracing::warn!(timeout = ?drain_timeout, "gateway calls still in flight after the drain timeout; abandoning them");
        }
    }
}

/// What every call goes through before the front door, whatever its
/// connection's HTTP version.
fn call_stack(
    connection: ConnectionService,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    tower::ServiceBuilder::new()
        // One body type for every answer, whatever the layers below wrap it in.
        .map_response(|response: Response<_>| response.map(Body::new))
        // Give every call an id (or keep the caller's), so its log lines here and in the backend match;
        // echoed, so a client can quote it when reporting a problem.
        .layer(RequestIdLayer)
        // Find a REST call's route once, so its span is named by the RPC the route calls.
        .map_request(RouteLookup::attach::<Body>)
        // One span per call with its method and request id; logs server-side failures with latency.
        .layer(TraceLayer::new(callers_mistakes_are_not_failures()).make_span_with(gateway_span).on_eos(end_of_stream))
        .service(connection)
}

/// Serves an HTTP/1.1 connection with hyper until the client closes it or
/// `stopping` turns true (then its call in flight finishes first).
async fn serve_http1<S>(
    http1: &hyper::server::conn::http1::Builder,
    connection: Connection,
    service: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let service = tower::ServiceBuilder::new()
        .map_request(|request: Request<hyper::body::Incoming>| request.map(Body::new))
        .service(service);
    let connection = http1.serve_connection(TokioIo::new(connection), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => return result.map_err(Into::into),
            _ = stopping.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// A call's span at the gateway: the services' call span, marked as the
/// gateway's, so a trace shows where each call entered. A REST call is
/// named by the RPC its route calls, not by its path, which carries the
/// call's own values (a ticker, a key id).
pub(crate) fn gateway_span<B>(request: &Request<B>) -> tracing::Span {
    let span = match RouteLookup::rpc_path(request) {
        Some(rpc_path) => call_span_of_rpc(request, rpc_path),
        None => call_span(request),
    };
    span.record("component", "gateway");
    span
}

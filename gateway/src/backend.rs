//! The endpoints of one backend service: each one HTTP/2 connection that
//! every call to it shares, chosen per call by the power of two choices (two
//! healthy endpoints at random, the one with fewer calls in flight), taken
//! out when its health check or a call fails, put back when its health
//! check passes.
//!
//! Calls go straight onto the connection's HTTP/2 streams (the `h2` crate)
//! rather than through a tonic Channel or hyper's client: the Channel's
//! buffer task is one more hand-off per call (about a third of the
//! gateway's added latency, measured), and hyper's client spawns a task per
//! call to wait for the answer and another to send the body, which a
//! single message does not need (BENCHMARKS.md).
//! A circuit breaker per backend fails calls at once while the service
//! keeps failing, instead of making every caller wait to find out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Response, Uri};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint as ChannelEndpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wizdata_common::health::Health;
use wizdata_common::ids::splitmix64;

use crate::breaker::Breaker;
use crate::config::GatewayConfig;

pub struct Backend {
    pub service: &'static str,
    endpoints: Vec<Arc<Endpoint>>,
    pub breaker: Breaker,
    // State of the cheap generator behind the random choices.
    seed: AtomicU64,
}

/// Why a call got no usable answer from an endpoint. Only the first two say
/// something of the endpoint: one bad answer must not take it out of
/// rotation for everyone (a caller could otherwise eject it at will).
#[derive(Debug)]
pub enum BackendError {
    /// No connection could be made: refused, timed out, handshake failed.
    Connect(String),
    /// The connection closed under the call.
    ConnectionLost(h2::Error),
    /// This call's answer was unusable (a reset stream, a header block over
    /// the limit); the connection serves other calls on.
    Answer(h2::Error),
    /// The answer broke off after its headers.
    BrokeOff(tonic::Status),
}

impl BackendError {
    /// Whether the endpoint itself is at fault, so it leaves rotation.
    pub fn counts_against_endpoint(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectionLost(_))
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::ConnectionLost(error) => write!(f, "the connection closed: {error}"),
            Self::Answer(error) => write!(f, "the answer was refused: {error}"),
            Self::BrokeOff(status) => write!(f, "the answer broke off: {}", status.message()),
        }
    }
}

pub struct Endpoint {
    url: String,
    origin: Uri,
    connect_timeout: Duration,
    max_answer_header_bytes: u32,
    // The shared connection, while it is open; replaced after it closes.
    connection: std::sync::Mutex<Option<Connection>>,
    // Held while connecting, so concurrent calls wait for one connection.
    connecting: tokio::sync::Mutex<()>,
    // Health checks go over a connection of their own, through tonic's client.
    health_channel: Channel,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

/// A call's claim on an endpoint: counted in flight until dropped.
pub struct Lease(Arc<Endpoint>);

impl Lease {
    pub fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a call sends: one message (unary and server-streaming calls), or
/// the caller's stream of them.
pub enum Payload {
    Message(Bytes),
    Stream(Body),
}

/// An open HTTP/2 connection to an endpoint, shared by every call to it.
#[derive(Clone)]
struct Connection {
    streams: h2::client::SendRequest<Bytes>,
    // Set by the task driving the connection when it ends.
    closed: Arc<AtomicBool>,
}

/// How often an idle connection is pinged, and how long a pong may take
/// before the connection is given up as dead.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Endpoint {
    /// Sends a call to `path` with `headers` over the endpoint's
    /// connection, connecting first when there is none.
    pub async fn send(
        &self,
        path: &PathAndQuery,
        headers: HeaderMap,
        payload: Payload,
    ) -> Result<Response<Body>, BackendError> {
        let connection = self.connection().await.map_err(BackendError::Connect)?;
        let failed = |error: h2::Error| self.failure(error, &connection);
        let mut request = Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri_of(path);
        *request.headers_mut() = headers;
        // Waits while the backend's limit of concurrent streams is reached.
        let mut streams = connection.streams.clone().ready().await.map_err(failed)?;
        let (answer, mut sending) = streams.send_request(request, false).map_err(failed)?;
        match payload {
            // Queued whole: the connection sends it as the flow-control window opens.
            Payload::Message(message) => sending.send_data(message, true).map_err(failed)?,
            Payload::Stream(body) => {
                tokio::spawn(send_stream(body, sending));
            }
        }
        let answer = answer.await.map_err(failed)?;
        Ok(answer.map(|stream| Body::new(AnswerBody { stream, data_done: false })))
    }

    /// The call's URI: the endpoint's scheme and authority, the call's path.
    fn uri_of(&self, path: &PathAndQuery) -> Uri {
        let mut uri = self.origin.clone().into_parts();
        uri.path_and_query = Some(path.clone());
        Uri::from_parts(uri).expect("the origin's scheme and authority with a request's path")
    }

    /// Sorts an HTTP/2 error into the connection's fault or this call's.
    fn failure(&self, error: h2::Error, connection: &Connection) -> BackendError {
        if error.is_io() || error.is_go_away() || connection.closed.load(Ordering::Relaxed) {
            self.connection.lock().expect("connection lock is not poisoned").take();
            return BackendError::ConnectionLost(error);
        }
        BackendError::Answer(error)
    }

    async fn connection(&self) -> Result<Connection, String> {
        if let Some(connection) = self.open_connection() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open_connection() {
            return Ok(connection);
        }
        let authority = self.origin.authority().map(|authority| authority.to_string()).unwrap_or_default();
        let address = if authority.contains(':') { authority } else { format!("{authority}:80") };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| format!("no connection to {address} within {:?}", self.connect_timeout))?
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        let _ = stream.set_nodelay(true);
        let (streams, mut driver) = h2::client::Builder::new()
            // As hyper's client: windows wide enough for large answers, no server push.
            .initial_window_size(2 << 20)
            .initial_connection_window_size(5 << 20)
            .max_send_buffer_size(1 << 20)
            .enable_push(false)
            .max_header_list_size(self.max_answer_header_bytes)
            .handshake(stream)
            .await
            .map_err(|error| format!("HTTP/2 handshake with {address} failed: {error}"))?;
        let closed = Arc::new(AtomicBool::new(false));
        let connection = Connection { streams, closed: closed.clone() };
        let url = self.url.clone();
        let mut ping_pong = driver.ping_pong();
        tokio::spawn(async move {
            // A backend that stops answering pings is gone, even if its socket is not closed.
            let keep_alive = async {
                let Some(ping_pong) = ping_pong.as_mut() else { return std::future::pending().await };
                loop {
                    tokio::time::sleep(KEEP_ALIVE_INTERVAL).await;
                    match tokio::time::timeout(KEEP_ALIVE_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
                        Ok(Ok(_)) => continue,
                        _ => return,
                    }
                }
            };
            tokio::select! {
                ended = &mut driver => if let Err(error) = ended {
                    tracing::debug!(endpoint = %url, %error, "backend connection closed");
                },
                () = keep_alive => tracing::debug!(endpoint = %url, "backend connection answered no ping; closing it"),
            }
            closed.store(true, Ordering::Relaxed);
        });
        *self.connection.lock().expect("connection lock is not poisoned") = Some(connection.clone());
        Ok(connection)
    }

    fn open_connection(&self) -> Option<Connection> {
        let connection = self.connection.lock().expect("connection lock is not poisoned");
        connection.as_ref().filter(|connection| !connection.closed.load(Ordering::Relaxed)).cloned()
    }

    /// Takes the endpoint out until its health check passes again: a call
    /// could not reach it.
    pub fn unreachable(&self) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.url, "endpoint unreachable; no calls until its health check passes");
        }
    }
}

/// Sends a caller's stream of messages on as the backend's flow-control
/// window allows, so a fast caller cannot make the gateway buffer without
/// bound; a request that breaks off resets the backend's stream.
async fn send_stream(body: Body, mut sending: h2::SendStream<Bytes>) {
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            sending.send_reset(h2::Reason::CANCEL);
            return;
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = sending.send_trailers(trailers);
                }
                return;
            }
        };
        while !data.is_empty() {
            sending.reserve_capacity(data.len());
            let granted = match std::future::poll_fn(|cx| sending.poll_capacity(cx)).await {
                Some(Ok(granted)) => granted.min(data.len()),
                _ => return,
            };
            if granted > 0 && sending.send_data(data.split_to(granted), false).is_err() {
                return;
            }
        }
    }
    let _ = sending.send_data(Bytes::new(), true);
}

/// A backend's answer as it arrives on its stream, trailers last; what is
/// read is given back to the flow-control window at once.
struct AnswerBody {
    stream: h2::RecvStream,
    data_done: bool,
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        Poll::Ready(match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

impl Backend {
    pub fn new(service: &'static str, urls: &[String], config: &GatewayConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(!urls.is_empty(), "{service} has no endpoint");
        let endpoints = urls
            .iter()
            .map(|url| {
                let invalid = |error: &dyn std::fmt::Display| {
                    anyhow::anyhow!("{url:?} is not a valid backend URL for {service}: {error}")
                };
                let origin: Uri = url.parse().map_err(|error| invalid(&error))?;
                if origin.scheme_str() != Some("http") || origin.authority().is_none() {
                    return Err(invalid(&"use http://host:port (the mesh speaks cleartext HTTP/2 inside)"));
                }
                let health_channel = ChannelEndpoint::from_shared(url.clone())
                    .map_err(|error| invalid(&error))?
                    .connect_timeout(config.connect_timeout)
                    .tcp_nodelay(true)
                    .connect_lazy();
                // Healthy until a check or a call says otherwise, so the
                // first calls after start-up are not refused.
                Ok(Arc::new(Endpoint {
                    url: url.clone(),
                    origin,
                    connect_timeout: config.connect_timeout,
                    max_answer_header_bytes: config.max_answer_header_bytes,
                    connection: std::sync::Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                    health_channel,
                    healthy: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                }))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            service,
            endpoints,
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15 ^ service.len() as u64),
        })
    }

    /// The endpoint for the next call: of two healthy endpoints picked at
    /// random, the one with fewer calls in flight. `None` when none is healthy.
    pub fn pick(&self) -> Option<Lease> {
        let count = self.endpoints.len();
        let healthy = |at: usize| self.endpoints[at].healthy.load(Ordering::Relaxed).then_some(at);
        let chosen = if count == 1 {
            healthy(0)?
        } else {
            let random = self.next_random();
            let first = (random % count as u64) as usize;
            let second = (first + 1 + ((random >> 32) % (count as u64 - 1)) as usize) % count;
            match (healthy(first), healthy(second)) {
                (Some(a), Some(b)) => {
                    let load = |at: usize| self.endpoints[at].in_flight.load(Ordering::Relaxed);
                    if load(b) < load(a) { b } else { a }
                }
                (Some(one), None) | (None, Some(one)) => one,
                // Both out: any healthy one will do.
                (None, None) => (0..count).find_map(healthy)?,
            }
        };
        let endpoint = self.endpoints[chosen].clone();
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease(endpoint))
    }

    pub fn healthy_endpoints(&self) -> usize {
        self.endpoints.iter().filter(|endpoint| endpoint.healthy.load(Ordering::Relaxed)).count()
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Choices need spread, not secrecy.
    fn next_random(&self) -> u64 {
        splitmix64(self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    /// Checks every endpoint's grpc.health.v1 status for this service every
    /// `interval`, taking failing endpoints out and putting passing ones back,
    /// and reports in `health` whether the service can be reached.
    pub fn watch_health(self: Arc<Self>, interval: Duration, health: Health) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let check_timeout = interval.max(Duration::from_millis(500));
            loop {
                ticker.tick().await;
                let checks = self.endpoints.iter().map(|endpoint| {
                    let request = HealthCheckRequest { service: self.service.to_owned() };
                    let mut client = HealthClient::new(endpoint.health_channel.clone());
                    async move {
                        let answer = tokio::time::timeout(check_timeout, client.check(request)).await;
                        let serving =
                            matches!(answer, Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving);
                        (endpoint, serving)
                    }
                });
                for (endpoint, serving) in futures_util::future::join_all(checks).await {
                    if endpoint.healthy.swap(serving, Ordering::Relaxed) != serving {
                        match serving {
                            true => {
                                tracing::info!(endpoint = %endpoint.url, service = self.service, "endpoint healthy again; back in rotation")
                            }
                            false => {
                                tracing::warn!(endpoint = %endpoint.url, service = self.service, "endpoint failed its health check; out of rotation")
                            }
                        }
                    }
                }
                health.set_routed(self.service, self.healthy_endpoints() > 0).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn backend(endpoints: usize) -> Backend {
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            gateway: GatewayConfig,
        }
        let config = Args::parse_from(["test"]).gateway;
        let urls: Vec<String> = (0..endpoints).map(|at| format!("http://127.0.0.1:{}", 1 + at)).collect();
        Backend::new("test.Service", &urls, &config).unwrap()
    }

    #[tokio::test]
    async fn calls_spread_over_healthy_endpoints_and_avoid_busy_ones() {
        let backend = backend(3);
        let mut picked = [0usize; 3];
        for _ in 0..300 {
            let lease = backend.pick().unwrap();
            let at = backend.endpoints.iter().position(|e| Arc::ptr_eq(e, &lease.0)).unwrap();
            picked[at] += 1;
        }
        assert!(picked.iter().all(|&count| count > 50), "spread over all three: {picked:?}");

        // Hold calls on endpoint 0: of any pair including it, the other wins.
        let busy: Vec<Lease> = (0..10)
            .map(|_| {
                Lease({
                    backend.endpoints[0].in_flight.fetch_add(1, Ordering::Relaxed);
                    backend.endpoints[0].clone()
                })
            })
            .collect();
        for _ in 0..100 {
            assert!(
                !Arc::ptr_eq(&backend.pick().unwrap().0, &backend.endpoints[0]),
                "the busy endpoint loses every pair"
            );
        }
        drop(busy);
        assert_eq!(backend.endpoints[0].in_flight.load(Ordering::Relaxed), 0, "leases count down when dropped");

        backend.endpoints[1].unreachable();
        backend.endpoints[2].unreachable();
        assert_eq!(backend.healthy_endpoints(), 1);
        for _ in 0..20 {
            assert!(Arc::ptr_eq(&backend.pick().unwrap().0, &backend.endpoints[0]), "only the healthy one");
        }
        backend.endpoints[0].unreachable();
        assert!(backend.pick().is_none(), "none healthy: no endpoint");
    }
}

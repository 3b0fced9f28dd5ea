//! The endpoints of one backend service: each one HTTP/2 connection that
//! every call to it shares, chosen per call by the power of two choices (two
//! healthy endpoints at random, the one with fewer calls in flight), taken
//! out when its health check or a call fails, put back when its health
//! check passes.
//!
//! Calls go straight to hyper's HTTP/2 client rather than through a tonic
//! Channel: the Channel's buffer task is one more hand-off between threads
//! per call, which measured about a third of the gateway's added latency.
//! A circuit breaker per backend fails calls at once while the service
//! keeps failing, instead of making every caller wait to find out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint as ChannelEndpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wizdata_common::health::Health;

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
    ConnectionLost(hyper::Error),
    /// This call's answer was unusable (a reset stream, a header block over
    /// the limit); the connection serves other calls on.
    Answer(hyper::Error),
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
    connection: std::sync::Mutex<Option<SendRequest<Body>>>,
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

impl Endpoint {
    /// Sends `request` (its URI the path alone) over the endpoint's
    /// connection, connecting first when there is none.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Response<Body>, BackendError> {
        let mut sender = self.connection().await.map_err(BackendError::Connect)?;
        let mut uri = self.origin.clone().into_parts();
        uri.path_and_query = request.uri().path_and_query().cloned();
        *request.uri_mut() = Uri::from_parts(uri).expect("the origin's scheme and authority with a request's path");
        match sender.send_request(request).await {
            Ok(response) => Ok(response.map(Body::new)),
            Err(error) if sender.is_closed() => {
                self.connection.lock().expect("connection lock is not poisoned").take();
                Err(BackendError::ConnectionLost(error))
            }
            Err(error) => Err(BackendError::Answer(error)),
        }
    }

    async fn connection(&self) -> Result<SendRequest<Body>, String> {
        if let Some(sender) = self.open_connection() {
            return Ok(sender);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(sender) = self.open_connection() {
            return Ok(sender);
        }
        let authority = self.origin.authority().map(|authority| authority.to_string()).unwrap_or_default();
        let address = if authority.contains(':') { authority } else { format!("{authority}:80") };
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| format!("no connection to {address} within {:?}", self.connect_timeout))?
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_header_list_size(self.max_answer_header_bytes)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("HTTP/2 handshake with {address} failed: {error}"))?;
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(endpoint = %url, %error, "backend connection closed");
            }
        });
        *self.connection.lock().expect("connection lock is not poisoned") = Some(sender.clone());
        Ok(sender)
    }

    fn open_connection(&self) -> Option<SendRequest<Body>> {
        let connection = self.connection.lock().expect("connection lock is not poisoned");
        connection.as_ref().filter(|sender| !sender.is_closed()).cloned()
    }

    /// Takes the endpoint out until its health check passes again: a call
    /// could not reach it.
    pub fn unreachable(&self) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.url, "endpoint unreachable; no calls until its health check passes");
        }
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

    /// splitmix64: choices need spread, not secrecy.
    fn next_random(&self) -> u64 {
        let mut z = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
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

//! The endpoints of one service and how each call picks one: every process
//! that calls another service (the gateway, and each service calling its
//! neighbours) goes through this one pool, so one implementation decides
//! where every call goes.
//!
//! - **Discovery**: a URL whose host is an IP address is one endpoint; one
//!   whose host is a name is resolved again every refresh interval, and
//!   every address it resolves to is an endpoint ([`discovery`]). Endpoints
//!   found later join once their health check passes; endpoints no longer
//!   named drain: no new calls, calls in flight finish on their connection.
//! - **Balance**: the power of two choices: two healthy endpoints at random,
//!   the one with fewer calls in flight.
//! - **Health**: each endpoint's grpc.health.v1 status for the service,
//!   checked on an interval over a connection of its own; failing endpoints,
//!   and endpoints a call could not reach, are out until a check passes.
//!
//! Calls go straight onto the endpoint's HTTP/2 connection (the mesh's own
//! client, [`crate::http2::client`]) rather than through a tonic Channel or
//! hyper's client: the Channel's buffer task is one more hand-off per call
//! (about a third of the gateway's added latency, measured), and hyper's
//! client spawns a task per call to wait for the answer and another to
//! send the body, which a single message does not need (BENCHMARKS.md). A
//! calling thread that is a lane ([`crate::lanes`]) has a connection of its
//! own to each endpoint, so a call and its backend connection are served
//! by one thread.

pub mod discovery;
mod service_channel;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{HeaderMap, Response, Uri};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint as ChannelEndpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use self::discovery::{DiscoveryConfig, Resolution, Resolver};
pub use self::service_channel::ServiceChannel;
use crate::health::Health;
pub use crate::http2::client::Payload;
use crate::http2::client::{CallError, Client, ClientSettings};
use crate::ids::splitmix64;

/// How a pool connects to and checks its endpoints.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long connecting to an endpoint may take.
    pub connect_timeout: Duration,
    /// Largest header (or trailer) block accepted in an answer, in bytes.
    pub max_answer_header_bytes: u32,
    /// How often each endpoint's health is checked.
    pub health_interval: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            max_answer_header_bytes: 16 << 10,
            health_interval: Duration::from_secs(1),
        }
    }
}

/// The endpoints of one service.
pub struct EndpointPool {
    /// The gRPC service the pool calls, as its health check names it ("" for
    /// a whole process).
    service: String,
    targets: Vec<Target>,
    settings: PoolSettings,
    resolver: Resolver,
    /// The endpoints calls may go to now; replaced whole when discovery
    /// changes it, so a pick reads one consistent set.
    endpoints: RwLock<Arc<[Arc<Endpoint>]>>,
    /// Why discovery found no endpoint, while that is so.
    discovery_problem: std::sync::Mutex<Option<String>>,
    /// Set once every name has had its first answer (at once when there are
    /// none), so the first calls wait for it instead of finding no endpoint.
    discovered: tokio::sync::watch::Sender<bool>,
    /// Woken when a connection to an endpoint fails: its name is resolved
    /// again at once instead of at the next refresh.
    resolve_now: Arc<Notify>,
    /// Woken when endpoints join, so they are checked at once.
    check_now: Arc<Notify>,
    // State of the cheap generator behind the random choices.
    seed: AtomicU64,
}

/// One URL given for a service.
struct Target {
    /// Scheme and authority as given: the authority calls carry.
    origin: Uri,
    host: TargetHost,
    port: u16,
}

enum TargetHost {
    Address(IpAddr),
    Name(String),
}

/// Why a call got no usable answer from an endpoint. Only the first two say
/// something of the endpoint: one bad answer must not take it out of
/// rotation for everyone (a caller could otherwise eject it at will).
#[derive(Debug)]
pub enum BackendError {
    /// No connection could be made: refused or timed out.
    Connect(String),
    /// The connection closed under the call.
    ConnectionLost(CallError),
    /// This call's answer was unusable (a reset stream, a header block over
    /// the limit); the connection serves other calls on.
    Answer(CallError),
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
    /// Where the endpoint listens.
    address: SocketAddr,
    /// Scheme and authority its calls carry (the URL as given, so a name
    /// stays the name).
    origin: Uri,
    connect_timeout: Duration,
    max_answer_header_bytes: u32,
    // The shared connections while they are open, each with the lane whose
    // calls use it (0: calls off any lane); replaced after it closes.
    connections: std::sync::Mutex<Vec<(usize, Client)>>,
    // Held while connecting, so concurrent calls wait for one connection.
    connecting: tokio::sync::Mutex<()>,
    // Health checks go over a connection of their own, through tonic's client.
    health_channel: Channel,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    /// The pool's: a failed connection asks for the names to be resolved again.
    resolve_now: Arc<Notify>,
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

/// How often an idle connection is pinged, and how long a pong may take
/// before the connection is given up as dead.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Endpoint {
    fn new(address: SocketAddr, origin: Uri, healthy: bool, pool: &EndpointPool) -> Arc<Self> {
        let health_channel = ChannelEndpoint::from_shared(format!("http://{address}"))
            .expect("a socket address makes a valid URI")
            .connect_timeout(pool.settings.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Arc::new(Self {
            address,
            origin,
            connect_timeout: pool.settings.connect_timeout,
            max_answer_header_bytes: pool.settings.max_answer_header_bytes,
            connections: std::sync::Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            health_channel,
            healthy: AtomicBool::new(healthy),
            in_flight: AtomicUsize::new(0),
            resolve_now: pool.resolve_now.clone(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends a call to `path` with `headers` over the endpoint's
    /// connection, connecting first when there is none.
    pub async fn send(
        &self,
        path: &PathAndQuery,
        headers: Arc<HeaderMap>,
        payload: Payload,
    ) -> Result<Response<Body>, BackendError> {
        let connection = self.connection().await.map_err(BackendError::Connect)?;
        // A lost connection is already closed to calls: the lane's next call connects anew.
        connection.send(path.clone(), headers, payload).await.map_err(|error| match error {
            CallError::ConnectionLost(_) => BackendError::ConnectionLost(error),
            CallError::Stream { .. } => BackendError::Answer(error),
        })
    }

    async fn connection(&self) -> Result<Client, String> {
        if let Some(connection) = self.open_connection() {
            return Ok(connection);
        }
        // Boxed: connecting is rare, and its state (a TCP connect) would
        // otherwise be room in every call's future.
        Box::pin(self.connect()).await
    }

    /// Opens the endpoint's connection, unless a concurrent call just did.
    async fn connect(&self) -> Result<Client, String> {
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open_connection() {
            return Ok(connection);
        }
        let address = self.address;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| format!("no connection to {address} within {:?}", self.connect_timeout))?
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        let _ = stream.set_nodelay(true);
        let settings = ClientSettings {
            max_header_list_size: self.max_answer_header_bytes,
            keep_alive_interval: KEEP_ALIVE_INTERVAL,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
        };
        let (connection, driver) = crate::http2::client::handshake(stream, &self.origin, settings);
        // Ends when the connection closes, or when no call and no endpoint
        // holds it any more (a drained endpoint's).
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::debug!(endpoint = %address, %error, "backend connection closed");
            }
        });
        let lane = crate::lanes::current();
        let mut connections = self.lock_connections();
        // The lane's old connection goes, and any other that has closed (a stopped lane's).
        connections.retain(|(of, open)| *of != lane && open.is_open());
        connections.push((lane, connection.clone()));
        Ok(connection)
    }

    /// The calling lane's connection to the endpoint, while it is open.
    fn open_connection(&self) -> Option<Client> {
        let lane = crate::lanes::current();
        let connections = self.lock_connections();
        let (_, open) = connections.iter().find(|(of, _)| *of == lane)?;
        open.is_open().then(|| open.clone())
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, Vec<(usize, Client)>> {
        self.connections.lock().expect("connection lock is not poisoned")
    }

    /// Takes the endpoint out until its health check passes again: a call
    /// could not reach it. Its name is resolved again at once, in case the
    /// address has gone.
    pub fn unreachable(&self) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.address, "endpoint unreachable; no calls until its health check passes");
        }
        self.resolve_now.notify_one();
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn check(&self, service: &str, timeout: Duration) -> bool {
        let request = HealthCheckRequest { service: service.to_owned() };
        let mut client = HealthClient::new(self.health_channel.clone());
        let answer = tokio::time::timeout(timeout, client.check(request)).await;
        matches!(answer, Ok(Ok(response)) if response.get_ref().status() == ServingStatus::Serving)
    }
}

impl EndpointPool {
    /// The pool of `service` over `urls`, each `http://host:port`; hosts
    /// that are names are resolved by [`EndpointPool::spawn_upkeep`].
    pub fn new(
        service: impl Into<String>,
        urls: &[String],
        settings: PoolSettings,
        resolver: Resolver,
    ) -> anyhow::Result<Arc<Self>> {
        let service = service.into();
        anyhow::ensure!(!urls.is_empty(), "{service} has no endpoint");
        let targets = urls.iter().map(|url| Target::parse(url, &service)).collect::<anyhow::Result<Vec<_>>>()?;
        let has_names = targets.iter().any(|target| matches!(target.host, TargetHost::Name(_)));
        let pool = Arc::new(Self {
            service,
            targets,
            settings,
            resolver,
            endpoints: RwLock::new(Arc::from([])),
            discovery_problem: std::sync::Mutex::new(None),
            discovered: tokio::sync::watch::Sender::new(!has_names),
            resolve_now: Arc::new(Notify::new()),
            check_now: Arc::new(Notify::new()),
            seed: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
        });
        pool.seed.fetch_xor(splitmix64(Arc::as_ptr(&pool) as u64), Ordering::Relaxed);
        // Fixed addresses are endpoints from the start, healthy until a check
        // or a call says otherwise, so the first calls are not refused.
        let fixed: Vec<Arc<Endpoint>> = pool
            .wanted(&HashMap::new())
            .into_iter()
            .map(|(address, target)| Endpoint::new(address, target.origin.clone(), true, &pool))
            .collect();
        *pool.endpoints.write().expect("endpoint set lock is not poisoned") = Arc::from(fixed);
        Ok(pool)
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn current(&self) -> Arc<[Arc<Endpoint>]> {
        self.endpoints.read().expect("endpoint set lock is not poisoned").clone()
    }

    /// The endpoint for the next call: of two healthy endpoints picked at
    /// random, the one with fewer calls in flight. `None` when none is healthy.
    pub fn pick(&self) -> Option<Lease> {
        let endpoints = self.current();
        let count = endpoints.len();
        let healthy = |at: usize| endpoints[at].healthy.load(Ordering::Relaxed).then_some(at);
        let chosen = match count {
            0 => return None,
            1 => healthy(0)?,
            _ => {
                let random = self.next_random();
                let first = (random % count as u64) as usize;
                let second = (first + 1 + ((random >> 32) % (count as u64 - 1)) as usize) % count;
                match (healthy(first), healthy(second)) {
                    (Some(a), Some(b)) => {
                        let load = |at: usize| endpoints[at].in_flight.load(Ordering::Relaxed);
                        if load(b) < load(a) { b } else { a }
                    }
                    (Some(one), None) | (None, Some(one)) => one,
                    // Both out: any healthy one will do.
                    (None, None) => (0..count).find_map(healthy)?,
                }
            }
        };
        let endpoint = endpoints[chosen].clone();
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Lease(endpoint))
    }

    /// As [`EndpointPool::pick`], first waiting (within the DNS timeout) for
    /// the names' first answer when it has not come yet.
    pub async fn pick_discovered(&self) -> Option<Lease> {
        if !*self.discovered.borrow() {
            let mut discovered = self.discovered.subscribe();
            let wait = self.resolver.lookup_timeout();
            let _ = tokio::time::timeout(wait, discovered.wait_for(|done| *done)).await;
        }
        self.pick()
    }

    pub fn healthy_endpoints(&self) -> usize {
        self.current().iter().filter(|endpoint| endpoint.is_healthy()).count()
    }

    pub fn endpoint_count(&self) -> usize {
        self.current().len()
    }

    /// The endpoints' addresses, and whether each is in rotation.
    pub fn endpoints(&self) -> Vec<(SocketAddr, bool)> {
        self.current().iter().map(|endpoint| (endpoint.address, endpoint.is_healthy())).collect()
    }

    /// Why a call finds no endpoint, for its UNAVAILABLE message.
    pub fn unavailable_reason(&self) -> String {
        match self.discovery_problem() {
            Some(problem) => format!("{} has no endpoint: {problem}", self.display_name()),
            None => format!("no endpoint of {} is healthy", self.display_name()),
        }
    }

    /// Why discovery found no endpoint, while that is so.
    pub fn discovery_problem(&self) -> Option<String> {
        self.discovery_problem.lock().expect("discovery lock is not poisoned").clone()
    }

    fn display_name(&self) -> &str {
        if self.service.is_empty() { "the service" } else { &self.service }
    }

    /// Choices need spread, not secrecy.
    fn next_random(&self) -> u64 {
        splitmix64(self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    /// Keeps the pool current until it is dropped: names resolved every
    /// refresh interval (and after a connection fails), every endpoint's
    /// health checked every health interval; with `health`, whether the
    /// service can be reached is reported there as a routed service.
    pub fn spawn_upkeep(self: &Arc<Self>, health: Option<Health>) -> tokio::task::JoinHandle<()> {
        let discovery = self.targets.iter().any(|target| matches!(target.host, TargetHost::Name(_)));
        let discovering = Self::discover(Arc::downgrade(self));
        let checking = Self::check_health(Arc::downgrade(self), health);
        tokio::spawn(async move {
            match discovery {
                true => tokio::join!(discovering, checking).1,
                false => checking.await,
            }
        })
    }

    async fn discover(pool: Weak<Self>) {
        let Some(interval) = pool.upgrade().map(|pool| pool.resolver.refresh_interval()) else { return };
        let mut last_answers: HashMap<usize, Vec<IpAddr>> = HashMap::new();
        loop {
            let Some(strong) = pool.upgrade() else { return };
            strong.resolve_once(&mut last_answers).await;
            let resolve_now = strong.resolve_now.clone();
            drop(strong);
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                // At most one extra resolution per interval, however many calls fail.
                () = resolve_now.notified() => tokio::time::sleep(interval / 5).await,
            }
        }
    }

    /// Resolves every name once and makes the endpoint set what the answers
    /// say; a name with no usable answer keeps its last addresses.
    async fn resolve_once(&self, last_answers: &mut HashMap<usize, Vec<IpAddr>>) {
        let mut problems = Vec::new();
        for (at, target) in self.targets.iter().enumerate() {
            let TargetHost::Name(name) = &target.host else { continue };
            match self.resolver.resolve(name).await {
                Resolution::Addresses(addresses) => {
                    last_answers.insert(at, addresses);
                }
                Resolution::NoAddresses(why) => {
                    if last_answers.insert(at, Vec::new()).is_none_or(|before| !before.is_empty()) {
                        tracing::warn!(service = %self.service, %why, "a service name has no address; its endpoints leave");
                    }
                    problems.push(why);
                }
                Resolution::Failed(why) => {
                    tracing::warn!(service = %self.service, %why, "no DNS answer; keeping the endpoints found last");
                    problems.push(why);
                }
            }
        }
        let first_answer = !*self.discovered.borrow();
        let current = self.current();
        let mut joined = Vec::new();
        let next: Vec<Arc<Endpoint>> = self
            .wanted(last_answers)
            .into_iter()
            .map(|(address, target)| {
                match current.iter().find(|endpoint| endpoint.address == address) {
                    Some(kept) => kept.clone(),
                    None => {
                        // The first answer's endpoints start in rotation, as
                        // fixed ones do; later ones only once a check passes.
                        let endpoint = Endpoint::new(address, target.origin.clone(), first_answer, self);
                        joined.push(address);
                        endpoint
                    }
                }
            })
            .collect();
        let left: Vec<SocketAddr> = current
            .iter()
            .filter(|endpoint| !next.iter().any(|kept| kept.address == endpoint.address))
            .map(|endpoint| endpoint.address)
            .collect();
        let has_endpoints = !next.is_empty();
        if !joined.is_empty() || !left.is_empty() {
            tracing::info!(service = %self.service, ?joined, ?left, endpoints = next.len(), "service endpoints changed");
            // Endpoints that left are dropped here; calls in flight hold
            // them (and their connection) until they finish.
            *self.endpoints.write().expect("endpoint set lock is not poisoned") = Arc::from(next);
            if !joined.is_empty() && !first_answer {
                self.check_now.notify_one();
            }
        }
        *self.discovery_problem.lock().expect("discovery lock is not poisoned") =
            (!has_endpoints).then(|| problems.join("; ")).filter(|problem| !problem.is_empty());
        // Calls stop waiting after the first attempt, whatever it found:
        // a name that does not resolve is answered UNAVAILABLE at once.
        if first_answer {
            self.discovered.send_replace(true);
        }
    }

    /// The addresses the endpoint set should hold, each once: every fixed
    /// address, and the last answer for each name (by target index).
    fn wanted(&self, last_answers: &HashMap<usize, Vec<IpAddr>>) -> Vec<(SocketAddr, &Target)> {
        let mut wanted: Vec<(SocketAddr, &Target)> = Vec::new();
        for (at, target) in self.targets.iter().enumerate() {
            match &target.host {
                TargetHost::Address(ip) => wanted.push((SocketAddr::new(*ip, target.port), target)),
                TargetHost::Name(_) => {
                    for ip in last_answers.get(&at).into_iter().flatten() {
                        wanted.push((SocketAddr::new(*ip, target.port), target));
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        wanted.retain(|(address, _)| seen.insert(*address));
        wanted
    }

    async fn check_health(pool: Weak<Self>, health: Option<Health>) {
        let Some(interval) = pool.upgrade().map(|pool| pool.settings.health_interval) else { return };
        // The first round waits an interval: endpoints start in rotation, and
        // in `serve all` a process's channels to itself exist before it
        // serves, so an immediate check could take them out for nothing.
        // Endpoints that join later are checked at once (`check_now`).
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let check_timeout = interval.max(Duration::from_millis(500));
        loop {
            // Reported before the first round too, so health and /metrics
            // know the service from the start.
            let Some(check_now) = pool.upgrade().map(|pool| pool.check_now.clone()) else { return };
            if let Some(pool) = pool.upgrade() {
                pool.report(health.as_ref()).await;
            }
            // Waits without holding the pool, so dropping the pool ends this task.
            tokio::select! {
                _ = ticker.tick() => {}
                () = check_now.notified() => {}
            }
            let Some(pool) = pool.upgrade() else { return };
            let endpoints = pool.current();
            let service = pool.service();
            let checks = endpoints.iter().map(|endpoint| async move {
                let serving = endpoint.check(service, check_timeout).await;
                (endpoint, serving)
            });
            for (endpoint, serving) in futures_util::future::join_all(checks).await {
                if endpoint.healthy.swap(serving, Ordering::Relaxed) != serving {
                    let (address, service) = (endpoint.address, &pool.service);
                    match serving {
                        true => tracing::info!(%address, service, "endpoint healthy; in rotation"),
                        false => tracing::warn!(%address, service, "endpoint failed its health check; out of rotation"),
                    }
                }
            }
        }
    }

    /// Exports the endpoint counts (what the "no healthy endpoint" alert and
    /// the dashboards watch) and, with `health`, whether the service can be
    /// reached.
    async fn report(&self, health: Option<&Health>) {
        let endpoints = self.current();
        let healthy = endpoints.iter().filter(|endpoint| endpoint.is_healthy()).count();
        let labels = |state: &'static str| [("grpc_service", self.service.clone()), ("state", state.to_owned())];
        metrics::gauge!("endpoint_pool_endpoints", &labels("healthy")).set(healthy as f64);
        metrics::gauge!("endpoint_pool_endpoints", &labels("unhealthy")).set((endpoints.len() - healthy) as f64);
        if let Some(health) = health {
            health.set_routed(&self.service, healthy > 0).await;
        }
    }
}

impl Target {
    fn parse(url: &str, service: &str) -> anyhow::Result<Self> {
        let invalid =
            |error: &dyn std::fmt::Display| anyhow::anyhow!("{url:?} is not a valid URL for {service}: {error}");
        let origin: Uri = url.parse().map_err(|error| invalid(&error))?;
        let authority = match (origin.scheme_str(), origin.authority()) {
            (Some("http"), Some(authority)) => authority.clone(),
            _ => return Err(invalid(&"use http://host:port (the mesh speaks cleartext HTTP/2 inside)")),
        };
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => TargetHost::Address(ip),
            Err(_) => TargetHost::Name(host.to_owned()),
        };
        let origin = Uri::builder().scheme("http").authority(authority).path_and_query("/").build()?;
        Ok(Self { origin, host, port })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn pool(endpoints: usize) -> Arc<EndpointPool> {
        let urls: Vec<String> = (0..endpoints).map(|at| format!("http://127.0.0.1:{}", 1 + at)).collect();
        EndpointPool::new("test.Service", &urls, PoolSettings::default(), Resolver::new(&DiscoveryConfig::default()))
            .unwrap()
    }

    #[tokio::test]
    async fn calls_spread_over_healthy_endpoints_and_avoid_busy_ones() {
        let pool = pool(3);
        let endpoints = pool.current();
        let mut picked = [0usize; 3];
        for _ in 0..300 {
            let lease = pool.pick().unwrap();
            let at = endpoints.iter().position(|e| Arc::ptr_eq(e, &lease.0)).unwrap();
            picked[at] += 1;
        }
        assert!(picked.iter().all(|&count| count > 50), "spread over all three: {picked:?}");

        // Hold calls on endpoint 0: of any pair including it, the other wins.
        let busy: Vec<Lease> = (0..10)
            .map(|_| {
                endpoints[0].in_flight.fetch_add(1, Ordering::Relaxed);
                Lease(endpoints[0].clone())
            })
            .collect();
        for _ in 0..100 {
            assert!(!Arc::ptr_eq(&pool.pick().unwrap().0, &endpoints[0]), "the busy endpoint loses every pair");
        }
        drop(busy);
        assert_eq!(endpoints[0].in_flight.load(Ordering::Relaxed), 0, "leases count down when dropped");

        endpoints[1].unreachable();
        endpoints[2].unreachable();
        assert_eq!(pool.healthy_endpoints(), 1);
        for _ in 0..20 {
            assert!(Arc::ptr_eq(&pool.pick().unwrap().0, &endpoints[0]), "only the healthy one");
        }
        endpoints[0].unreachable();
        assert!(pool.pick().is_none(), "none healthy: no endpoint");
    }

    /// A backend that answers every call OK, counting the connections it accepts.
    async fn counting_backend() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut connection = h2::server::handshake(socket).await.unwrap();
                    while let Some(Ok((_, mut respond))) = connection.accept().await {
                        let mut answer = respond.send_response(Response::new(()), false).unwrap();
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        answer.send_trailers(trailers).unwrap();
                    }
                });
            }
        });
        (address, accepted)
    }

    #[tokio::test]
    async fn each_lane_calls_over_a_connection_of_its_own() {
        let (address, accepted) = counting_backend().await;
        let urls = [format!("http://{address}")];
        let pool = EndpointPool::new("s", &urls, PoolSettings::default(), Resolver::new(&DiscoveryConfig::default()));
        let pool = pool.unwrap();
        let call = |pool: Arc<EndpointPool>| async move {
            let lease = pool.pick().unwrap();
            let path = PathAndQuery::from_static("/s/M");
            let answer = lease.endpoint().send(&path, Arc::default(), Payload::Message(Bytes::new())).await;
            answer.unwrap().status()
        };
        let lanes = crate::lanes::Lanes::start(std::num::NonZeroUsize::new(2).unwrap(), "endpoint-test").unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
        // Both waiting when the second is spawned, so each goes to a lane of its own.
        for _ in 0..2 {
            let (pool, report, mut released) = (pool.clone(), report.clone(), released.clone());
            lanes.spawn(async move {
                let _ = released.wait_for(|go| *go).await;
                for _ in 0..3 {
                    report.send((crate::lanes::current(), call(pool.clone()).await)).unwrap();
                }
            });
        }
        release.send(true).unwrap();
        let mut calls_per_lane = std::collections::BTreeMap::new();
        for _ in 0..6 {
            let (lane, status) = reports.recv().await.unwrap();
            assert_eq!(status, http::StatusCode::OK);
            *calls_per_lane.entry(lane).or_insert(0) += 1;
        }
        assert_eq!(calls_per_lane.values().collect::<Vec<_>>(), [&3, &3], "{calls_per_lane:?}");
        assert!(!calls_per_lane.contains_key(&0));
        assert_eq!(accepted.load(Ordering::Relaxed), 2, "three calls on each of two lanes: a connection per lane");

        // Calls off the lanes have a connection of their own too, kept from call to call.
        for _ in 0..2 {
            assert_eq!(call(pool.clone()).await, http::StatusCode::OK);
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 3);

        // Stopped lanes take their connections with them: none is left open for a later lane.
        drop(lanes);
        let endpoint = pool.current()[0].clone();
        let lanes_with_open_connections = || -> Vec<usize> {
            endpoint.lock_connections().iter().filter(|(_, open)| open.is_open()).map(|(lane, _)| *lane).collect()
        };
        for _ in 0..200 {
            if lanes_with_open_connections().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(lanes_with_open_connections(), [0], "only the connection of calls off the lanes is open");
    }

    #[tokio::test]
    async fn upkeep_ends_when_the_pool_is_dropped() {
        let discovery = DiscoveryConfig { dns_refresh_interval: Duration::from_millis(50), ..Default::default() };
        let urls = ["http://127.0.0.1:1".to_owned(), "http://wizdata.invalid:1".to_owned()];
        let pool = EndpointPool::new("s", &urls, PoolSettings::default(), Resolver::new(&discovery)).unwrap();
        let upkeep = pool.spawn_upkeep(None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(pool);
        tokio::time::timeout(Duration::from_secs(10), upkeep).await.expect("the upkeep ends").unwrap();
    }

    #[tokio::test]
    async fn urls_name_addresses_or_names_and_nothing_else() {
        let settings = PoolSettings::default;
        let resolver = || Resolver::new(&DiscoveryConfig::default());
        let pool = EndpointPool::new("s", &["http://[::1]:7".into()], settings(), resolver()).unwrap();
        assert_eq!(pool.endpoints(), vec![("[::1]:7".parse().unwrap(), true)]);
        let named = EndpointPool::new("s", &["http://registry.wizdata:50051".into()], settings(), resolver()).unwrap();
        assert_eq!(named.endpoint_count(), 0, "a name's endpoints come from its answers");
        assert!(!*named.discovered.borrow());
        for bad in ["https://a:1", "a:1", "http://", "ftp://a"] {
            let error = EndpointPool::new("s", &[bad.into()], settings(), resolver()).err().expect(bad);
            assert!(error.to_string().contains("not a valid URL for s"), "{error}");
        }
        assert!(EndpointPool::new("s", &[], settings(), resolver()).is_err());
    }
}

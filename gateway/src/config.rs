//! The gateway's settings. Environment first, each also a flag.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use wizdata_common::config::parse_duration;
use wizdata_common::connections::ConnectionLimits;

/// How the gateway listens, where it routes, and what it allows.
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayConfig {
    /// Address the gateway listens on: gRPC, gRPC-Web and the HTTP probes
    /// (/healthz, /readyz, /metrics) share it.
    #[arg(long, env = "WIZDATA_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    pub gateway_addr: SocketAddr,

    /// Backends by service, `;`-separated: `registry=http://a:50051,http://b:50051`.
    /// A service is named by its role (registry, market-data, indicator,
    /// auth, streaming) or its full name. Services not listed use
    /// --default-backend.
    #[arg(long = "backend", env = "WIZDATA_GATEWAY_BACKENDS", value_delimiter = ';')]
    pub backends: Vec<BackendRoute>,

    /// Endpoints (comma-separated) of every service not given its own
    /// --backend. Unset in `serve all` means this process.
    #[arg(long, env = "WIZDATA_GATEWAY_DEFAULT_BACKEND", value_delimiter = ',')]
    pub default_backend: Vec<String>,

    /// Browser origins allowed to call through the gateway (CORS),
    /// comma-separated, or `*` for any. Pages served from the gateway's own
    /// address are always allowed.
    #[arg(long, env = "WIZDATA_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// The built dashboard (`make web` writes web/dist), served at `/`.
    /// Without it the gateway serves every API and `/` says how to build it.
    #[arg(long, env = "WIZDATA_DASHBOARD_DIR", default_value = "web/dist")]
    pub dashboard_dir: PathBuf,

    /// Calls per subject without credentials (keyed by client address):
    /// `COUNT/PERIOD`, optionally with ` burst N` (default: COUNT).
    #[arg(long, env = "WIZDATA_RATE_LIMIT_ANONYMOUS", default_value = "60/1m")]
    pub rate_limit_anonymous: Quota,

    /// Calls per subject of the standard tier.
    #[arg(long, env = "WIZDATA_RATE_LIMIT_STANDARD", default_value = "200/1m")]
    pub rate_limit_standard: Quota,

    /// Calls per subject of the premium tier.
    #[arg(long, env = "WIZDATA_RATE_LIMIT_PREMIUM", default_value = "1000/1m")]
    pub rate_limit_premium: Quota,

    /// Calls per subject of the internal tier (the mesh's own clients).
    #[arg(long, env = "WIZDATA_RATE_LIMIT_INTERNAL", default_value = "100000/1m")]
    pub rate_limit_internal: Quota,

    /// Calls per subject to any one service, whatever the tier.
    #[arg(long, env = "WIZDATA_RATE_LIMIT_PER_SERVICE", default_value = "1000/1m")]
    pub rate_limit_per_service: Quota,

    /// Concurrent streaming calls per subject, per gateway.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_STREAMS_PER_SUBJECT", default_value_t = 16)]
    pub gateway_max_streams_per_subject: usize,

    /// How long a rate-limit decision may wait on Redis before the gateway
    /// decides locally.
    #[arg(long, env = "WIZDATA_RATE_LIMIT_REDIS_TIMEOUT", default_value = "50ms", value_parser = parse_duration)]
    pub rate_limit_redis_timeout: Duration,

    /// After Redis fails a decision, how long the gateway decides locally
    /// before asking Redis again.
    #[arg(long, env = "WIZDATA_RATE_LIMIT_LOCAL_FOR", default_value = "5s", value_parser = parse_duration)]
    pub rate_limit_local_for: Duration,

    /// Longest deadline a unary call may have; calls without `grpc-timeout`
    /// get this one. Streaming calls keep the deadline they send.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_DEADLINE", default_value = "30s", value_parser = parse_duration)]
    pub max_deadline: Duration,

    /// Extra attempts of a read (an RPC marked NO_SIDE_EFFECTS) that failed
    /// UNAVAILABLE.
    #[arg(long, env = "WIZDATA_GATEWAY_RETRIES", default_value_t = 2)]
    pub retries: u32,

    /// Retries may add at most this percentage to the calls sent, so a
    /// struggling backend is not buried under retries.
    #[arg(long, env = "WIZDATA_GATEWAY_RETRY_BUDGET_PERCENT", default_value_t = 20.0)]
    pub retry_budget_percent: f32,

    /// Consecutive failures (UNAVAILABLE, unreachable) that open a
    /// backend's circuit: calls then fail at once for --breaker-cooldown.
    #[arg(long, env = "WIZDATA_GATEWAY_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How long an open circuit fails calls before one is let through to try.
    #[arg(long, env = "WIZDATA_GATEWAY_BREAKER_COOLDOWN", default_value = "5s", value_parser = parse_duration)]
    pub breaker_cooldown: Duration,

    /// How often each backend endpoint's health is checked; failing
    /// endpoints get no calls until they pass again.
    #[arg(long, env = "WIZDATA_GATEWAY_HEALTH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// How long connecting to a backend endpoint may take.
    #[arg(long, env = "WIZDATA_GATEWAY_CONNECT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Largest request header block, in bytes.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Largest header (or trailer) block accepted from a backend, in bytes.
    /// A larger one fails that call INTERNAL; it says nothing of the
    /// endpoint's health.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_ANSWER_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_answer_header_bytes: u32,

    /// How long a client may take to send its request headers, and a unary
    /// request's body; also how long a new connection may take to start its
    /// first call (slow and silent clients hold no connection forever).
    #[arg(long, env = "WIZDATA_GATEWAY_CLIENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub client_timeout: Duration,

    /// Connections with no call in flight and nothing received (not even a
    /// keep-alive ping) for this long are closed.
    #[arg(long, env = "WIZDATA_GATEWAY_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Connections the gateway holds open at once; more are closed as they
    /// arrive, so no caller can take every file descriptor.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_CONNECTIONS", default_value_t = 8192)]
    pub gateway_max_connections: usize,

    /// Connections open at once from one client address. Behind a load
    /// balancer that hides client addresses, raise it to the whole cap.
    #[arg(long, env = "WIZDATA_GATEWAY_MAX_CONNECTIONS_PER_PEER", default_value_t = 512)]
    pub gateway_max_connections_per_peer: usize,

    /// Threads serving the gateway's connections, each keeping its own
    /// connections to the backends; a client's connection and its calls
    /// stay on one. Default: one per core.
    #[arg(long, env = "WIZDATA_GATEWAY_THREADS")]
    pub gateway_threads: Option<NonZeroUsize>,
}

impl GatewayConfig {
    /// How many threads serve connections ([`wizdata_common::lanes`]).
    pub fn serving_threads(&self) -> NonZeroUsize {
        self.gateway_threads.unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }

    /// The listener's caps and timeouts.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            listener: "gateway",
            max_connections: self.gateway_max_connections,
            max_per_peer: self.gateway_max_connections_per_peer,
            handshake_timeout: self.client_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// Endpoints for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRoute {
    pub service: String,
    pub urls: Vec<String>,
}

impl FromStr for BackendRoute {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (service, urls) = text.split_once('=').ok_or_else(|| format!("{text:?}: use SERVICE=URL[,URL...]"))?;
        let urls: Vec<String> =
            urls.split(',').map(str::trim).filter(|url| !url.is_empty()).map(str::to_owned).collect();
        if urls.is_empty() {
            return Err(format!("{text:?}: no endpoint URL"));
        }
        Ok(Self { service: service.trim().to_owned(), urls })
    }
}

/// A rate: `count` calls per `period`, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    /// The steady spacing between calls (GCRA's emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.count
    }
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("{text:?}: use COUNT/PERIOD or COUNT/PERIOD burst N, e.g. 60/1m burst 10");
        let mut words = text.split_whitespace();
        let (count, period) = words.next().and_then(|rate| rate.split_once('/')).ok_or_else(usage)?;
        let count: u32 = count.parse().map_err(|_| usage())?;
        let period = parse_duration(period)?;
        let burst = match (words.next(), words.next(), words.next()) {
            (None, _, _) => count,
            (Some("burst"), Some(burst), None) => burst.parse().map_err(|_| usage())?,
            _ => return Err(usage()),
        };
        if count == 0 || burst == 0 || period.is_zero() {
            return Err(format!("{text:?}: count, burst and period must be above zero"));
        }
        if period / count < Duration::from_micros(1) {
            return Err(format!("{text:?}: more than one call per microsecond is not a limit"));
        }
        Ok(Self { count, period, burst })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_with_and_without_burst() {
        assert_eq!("60/1m".parse::<Quota>(), Ok(Quota { count: 60, period: Duration::from_secs(60), burst: 60 }));
        assert_eq!(
            "200/1m burst 20".parse::<Quota>(),
            Ok(Quota { count: 200, period: Duration::from_secs(60), burst: 20 })
        );
        assert_eq!("60/1m".parse::<Quota>().unwrap().interval(), Duration::from_secs(1));
        for bad in ["", "60", "0/1m", "60/0s", "60/1m burst", "60/1m burst 0", "60/1m bust 3", "x/1m", "60/soon"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn backend_routes_name_a_service_and_its_endpoints() {
        assert_eq!(
            "registry=http://a:1, http://b:2".parse::<BackendRoute>(),
            Ok(BackendRoute { service: "registry".into(), urls: vec!["http://a:1".into(), "http://b:2".into()] })
        );
        assert!("registry".parse::<BackendRoute>().is_err());
        assert!("registry=".parse::<BackendRoute>().is_err());
    }
}

//! Settings shared by every service. Environment first (12-factor): each
//! setting is also a command-line flag, documented in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// How a service's gRPC server listens and stops.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerConfig {
    /// Address the gRPC server listens on (port 0 picks a free port).
    /// Loopback by default, so a development machine exposes nothing; the
    /// image and the chart listen on all interfaces.
    #[arg(long, env = "WIZDATA_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Largest request message accepted, in bytes; larger ones are refused.
    #[arg(long, env = "WIZDATA_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest response message sent, in bytes; a larger answer fails
    /// RESOURCE_EXHAUSTED instead of being built. The largest answers the
    /// contract allows (a full BatchCompute) are about 100 MB.
    #[arg(long, env = "WIZDATA_MAX_RESPONSE_BYTES", default_value_t = 128 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// On SIGTERM, how long health reports NOT_SERVING before the listener
    /// closes, so load balancers stop routing here first.
    #[arg(long, env = "WIZDATA_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// On SIGTERM, how long in-flight calls may take to finish.
    #[arg(long, env = "WIZDATA_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Connections the gRPC port holds open at once; more are closed as they
    /// arrive, so no caller can take every file descriptor.
    #[arg(long, env = "WIZDATA_GRPC_MAX_CONNECTIONS", default_value_t = 4096)]
    pub grpc_max_connections: usize,

    /// Connections open at once from one peer address on the gRPC port.
    #[arg(long, env = "WIZDATA_GRPC_MAX_CONNECTIONS_PER_PEER", default_value_t = 512)]
    pub grpc_max_connections_per_peer: usize,

    /// How long a new connection to the gRPC port may take to start its
    /// first call before it is closed.
    #[arg(long, env = "WIZDATA_GRPC_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub grpc_handshake_timeout: Duration,

    /// How long a connection to the gRPC port may stay open with no call in
    /// flight and nothing received (keep-alive pings keep it).
    #[arg(long, env = "WIZDATA_GRPC_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub grpc_idle_timeout: Duration,

    /// Key that signs page tokens, so a tampered token is refused. Every
    /// replica of a service needs the same key; unset means a random key per
    /// process (tokens then do not survive a restart).
    #[arg(long, env = "WIZDATA_PAGE_TOKEN_KEY", hide_env_values = true)]
    pub page_token_key: Option<SecretString>,
}

impl ServerConfig {
    /// The gRPC listener's caps and timeouts.
    pub fn connection_limits(&self) -> crate::connections::ConnectionLimits {
        crate::connections::ConnectionLimits {
            listener: "grpc",
            max_connections: self.grpc_max_connections,
            max_per_peer: self.grpc_max_connections_per_peer,
            handshake_timeout: self.grpc_handshake_timeout,
            idle_timeout: self.grpc_idle_timeout,
        }
    }
}

/// Where a service keeps its tables.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL URL (postgres://user:pass@host/db). Unset means an embedded
    /// SQLite file under --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Directory for embedded state (the SQLite database).
    #[arg(long, env = "WIZDATA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Most connections in the pool.
    #[arg(long, env = "WIZDATA_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// How long to wait for a connection before the call fails UNAVAILABLE.
    #[arg(long, env = "WIZDATA_DB_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub db_timeout: Duration,

    /// How often each service checks its database; its health turns
    /// NOT_SERVING when the check fails and SERVING when it passes again.
    #[arg(long, env = "WIZDATA_DB_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub db_health_interval: Duration,
}

/// Where caches and the event bus live. Unset means in-process: fine for one
/// replica, while several replicas need a shared Redis.
#[derive(clap::Args, Debug, Clone)]
pub struct RedisConfig {
    /// Redis URL (redis://[:password@]host:port[/db]) for caches and the event
    /// bus. Unset means an in-memory cache and an in-process bus.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<SecretString>,

    /// Prefix of every Redis key and channel, so several deployments (or
    /// tests) can share one Redis.
    #[arg(long, env = "WIZDATA_REDIS_PREFIX", default_value = "wizdata:")]
    pub redis_prefix: String,

    /// How long a Redis command may take before the caller gives up on Redis
    /// and falls back (to the database, or to dropping a bus event).
    #[arg(long, env = "WIZDATA_REDIS_TIMEOUT", default_value = "250ms", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// How often Redis is probed; health reports it as "dependency/redis".
    #[arg(long, env = "WIZDATA_REDIS_HEALTH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub redis_health_interval: Duration,
}

/// Where services find the services they call, and how long they wait on
/// them: one group for every role, so each setting has one flag.
#[derive(clap::Args, Debug, Clone)]
pub struct NeighbourConfig {
    /// The registry that symbols are checked against (by market data and
    /// streaming). Unset in `serve all` means this process; required when
    /// serving market-data or streaming alone.
    #[arg(long, env = "WIZDATA_REGISTRY_URL")]
    pub registry_url: Option<String>,

    /// How long a symbol lookup in the registry may take.
    #[arg(long, env = "WIZDATA_REGISTRY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub registry_timeout: Duration,

    /// How long the registry's answer about a symbol is trusted.
    #[arg(long, env = "WIZDATA_SYMBOL_CACHE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub symbol_cache_ttl: Duration,

    /// The market data service candles (and streaming's snapshots) are
    /// fetched from. Unset in `serve all` means this process; required when
    /// serving indicator or streaming alone.
    #[arg(long, env = "WIZDATA_MARKET_DATA_URL")]
    pub market_data_url: Option<String>,

    /// How long fetching from market data may take when the caller set no
    /// deadline (a caller's deadline is always passed on).
    #[arg(long, env = "WIZDATA_MARKET_DATA_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub market_data_timeout: Duration,
}

/// How every service checks who is calling (see `auth`).
#[derive(clap::Args, Debug, Clone)]
pub struct AuthConfig {
    /// The auth service: its public keys verify tokens, and it exchanges API
    /// keys for tokens. Unset in `serve all` (or for the auth role) means
    /// this process.
    #[arg(long, env = "WIZDATA_AUTH_URL")]
    pub auth_url: Option<String>,

    /// Scopes of calls that carry no credentials, comma-separated; empty for
    /// none. Authenticated callers hold these too.
    #[arg(
        long,
        env = "WIZDATA_ANONYMOUS_SCOPES",
        default_value = "marketdata:read,registry:read,indicator:read,streaming:read",
        value_delimiter = ','
    )]
    pub anonymous_scopes: Vec<String>,

    /// Clock skew tolerated when checking a token's expiry and issue time.
    #[arg(long, env = "WIZDATA_TOKEN_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub token_leeway: Duration,

    /// How long a call to the auth service (public keys, API key exchange)
    /// may take before the caller is answered UNAVAILABLE.
    #[arg(long, env = "WIZDATA_AUTH_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub auth_timeout: Duration,
}

impl AuthConfig {
    /// The anonymous scopes, without the empty entries an empty setting gives.
    pub fn anonymous_scopes(&self) -> Vec<String> {
        self.anonymous_scopes
            .iter()
            .map(|scope| scope.trim())
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// How a process logs.
#[derive(clap::Args, Debug, Clone)]
pub struct TelemetryConfig {
    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// Log format: json (one object per line, for collectors) or pretty.
    #[arg(long, env = "WIZDATA_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,

    /// OTLP (gRPC) endpoint that receives the spans of every call, e.g.
    /// http://jaeger:4317; unset means no export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Parses human durations such as "500ms", "2s" or "1m".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{text:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        database: DatabaseConfig,
    }

    #[test]
    fn database_url_is_redacted_in_debug_output() {
        let cli = Cli::parse_from(["test", "--database-url", "postgres://u:hunter2@db/prod"]);
        let debug = format!("{:?}", cli.database);
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(cli.database.database_url.unwrap().expose_secret(), "postgres://u:hunter2@db/prod");
    }

    #[test]
    fn durations_accept_human_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
    }
}

//! The process's Redis connection, through fred, shared by the caches and the
//! event bus. Redis is optional at run time: every command has a short
//! timeout, and while Redis is known to be down callers skip it at once and
//! fall back (the database for reads, nothing for bus events) instead of
//! waiting on every call. A watcher probes it, flips `dependency/redis` in
//! health and logs each change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ReconnectPolicy};
use secrecy::{ExposeSecret, SecretString};

use crate::config::RedisConfig;
use crate::health::{Health, Reports};

/// How long startup waits for the first connection before running degraded.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(2);

/// A connected (or reconnecting) Redis client with the deployment's key prefix.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    // Kept to build the subscriber connection with the same settings.
    builder: Arc<fred::types::Builder>,
    prefix: Arc<str>,
    up: Arc<AtomicBool>,
    health_interval: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).field("up", &self.is_up()).finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to `url`. An unreachable Redis is not fatal: the client keeps
    /// reconnecting in the background and the process starts degraded. A
    /// malformed URL is fatal; the error never repeats the URL (it may hold a
    /// password).
    pub async fn connect(config: &RedisConfig, url: &SecretString) -> anyhow::Result<Self> {
        let fred_config = Config::from_url(url.expose_secret())
            .map_err(|_| anyhow::anyhow!("REDIS_URL is not a valid redis:// URL"))?;
        let mut builder = fred::types::Builder::from_config(fred_config);
        builder
            .with_performance_config(|performance| performance.default_command_timeout = config.redis_timeout)
            .with_connection_config(|connection| {
                connection.connection_timeout = config.redis_timeout.max(Duration::from_secs(1));
                connection.internal_command_timeout = config.redis_timeout.max(Duration::from_secs(1));
                // A command that failed with the connection is not replayed
                // later: its caller has already fallen back.
                connection.max_command_attempts = 1;
                connection.tcp.nodelay = Some(true);
            })
            // Keep trying forever, backing off from 100 ms to 2 s.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder.build().map_err(|error| anyhow::anyhow!("cannot build the Redis client: {error}"))?;
        client.connect();
        let connected = matches!(tokio::time::timeout(FIRST_CONNECT_WAIT, client.wait_for_connect()).await, Ok(Ok(())));
        if connected {
            tracing::info!("Redis connected");
        } else {
            tracing::warn!("Redis unreachable at startup; running degraded and reconnecting in the background");
        }
        Ok(Self {
            client,
            builder: Arc::new(builder),
            prefix: config.redis_prefix.as_str().into(),
            up: Arc::new(AtomicBool::new(connected)),
            health_interval: config.redis_health_interval,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A separate connection for SUBSCRIBE (a subscribed connection can run
    /// no other commands), resubscribing after every reconnect.
    pub async fn subscriber(&self) -> anyhow::Result<SubscriberClient> {
        let subscriber = self
            .builder
            .build_subscriber_client()
            .map_err(|error| anyhow::anyhow!("cannot build the Redis subscriber: {error}"))?;
        subscriber.connect();
        let _ = tokio::time::timeout(FIRST_CONNECT_WAIT, subscriber.wait_for_connect()).await;
        subscriber.manage_subscriptions();
        Ok(subscriber)
    }

    /// `name` under this deployment's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// False while Redis is known to be unreachable; callers then skip it.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records a failed command, so later calls skip Redis until the watcher
    /// sees it answer again.
    pub fn command_failed(&self, error: &fred::error::Error) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "Redis command failed; falling back until Redis answers again");
        }
    }

    /// Probes Redis with PING and reports it as `dependency/redis`.
    pub fn watch(&self, health: Health) -> tokio::task::JoinHandle<()> {
        let redis = self.clone();
        crate::health::watch(health, "redis", Reports::Dependency, self.health_interval, move || {
            let redis = redis.clone();
            async move {
                let reachable = redis.client.ping::<String>(None).await.is_ok();
                redis.up.store(reachable, Ordering::Relaxed);
                reachable
            }
        })
    }
}

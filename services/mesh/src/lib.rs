//! Assembles WizData services into one process: every service on one gRPC
//! port (`wizdata serve all`) or a single role per process, as Kubernetes
//! runs it. The end-to-end tests build the mesh through this same code.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::auth::layer::AuthLayer;
use wizdata_common::auth::verifier::Verifier;
use wizdata_common::bus::Bus;
use wizdata_common::cache::Cache;
use wizdata_common::config::{AuthConfig, DatabaseConfig, RedisConfig, ServerConfig, TelemetryConfig};
use wizdata_common::db;
use wizdata_common::health::Health;
use wizdata_common::metrics::{MetricsConfig, MetricsServer};
use wizdata_common::pagination::PageTokens;
use wizdata_common::redis::Redis;
use wizdata_common::server::{GrpcServer, Services};
use wizdata_gateway::{Gateway, GatewayConfig, GatewayDeps};
use wizdata_indicator::IndicatorConfig;
use wizdata_market_data::MarketDataConfig;
use wizdata_market_data::simulator::SimulatorConfig;

/// Which services a process runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every service on one port, on embedded defaults.
    All,
    Registry,
    MarketData,
    Indicator,
    Auth,
    Streaming,
    /// The ingress: gRPC and gRPC-Web in front of the other roles.
    Gateway,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The service to run, or `all`.
    #[arg(value_enum)]
    pub role: Role,
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub auth_service: wizdata_auth::AuthServiceConfig,
    #[command(flatten)]
    pub market_data: MarketDataConfig,
    #[command(flatten)]
    pub indicator: IndicatorConfig,
    #[command(flatten)]
    pub streaming: wizdata_streaming::StreamingConfig,
    #[command(flatten)]
    pub gateway: GatewayConfig,
    /// With `all`: run the gateway in-process too, in front of the services.
    #[arg(long, env = "WIZDATA_WITH_GATEWAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub with_gateway: bool,
    /// With `all`: run the simulated feed in-process, so quotes move and
    /// candles fill on a fresh machine.
    #[arg(long, env = "WIZDATA_SIMULATED_FEED", default_value_t = true, action = clap::ArgAction::Set)]
    pub simulated_feed: bool,
    #[command(flatten)]
    pub feed: SimulatorConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub metrics: MetricsConfig,
}

/// The internal key the in-process simulated feed runs as.
const SIMULATED_FEED: &str = "simulated-feed";
const SIMULATED_FEED_SCOPES: &[&str] = &["marketdata:read", "marketdata:write", "registry:read"];

/// A bound mesh process, ready to serve.
pub struct Mesh {
    server: Option<GrpcServer>,
    gateway: Option<Gateway>,
    metrics: MetricsServer,
    bus: Option<Bus>,
    background: Vec<JoinHandle<()>>,
    // Tells long-lived streams to end when the process stops, so their
    // clients reconnect elsewhere instead of holding up the drain.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// What the gateway takes from the process's settings.
fn gateway_deps(
    args: &ServeArgs,
    verifier: Verifier,
    redis: Option<Redis>,
    this_process: Option<String>,
) -> GatewayDeps {
    GatewayDeps {
        verifier,
        redis,
        default_backend: this_process,
        max_message_bytes: args.server.max_message_bytes,
        shutdown_delay: args.server.shutdown_delay,
        drain_timeout: args.server.drain_timeout,
    }
}

/// A channel to a neighbouring service, connected on first use and again
/// after failures.
pub fn channel_to(url: &str, connect_timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| anyhow::anyhow!("{url:?} is not a valid service URL: {error}"))?;
    Ok(endpoint.connect_timeout(connect_timeout).tcp_nodelay(true).connect_lazy())
}

impl Mesh {
    /// Binds the listener, connects and migrates storage, and mounts the
    /// role's services.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let metrics = MetricsServer::bind(&args.metrics).await?;
        if args.role == Role::Gateway {
            return Self::gateway_alone(args, metrics).await;
        }
        let runs = |role: Role| args.role == Role::All || args.role == role;
        let max_message = args.server.max_message_bytes;
        let page_tokens = PageTokens::new(args.server.page_token_key.as_ref());

        let server = GrpcServer::bind(&args.server).await?;
        // In `serve all` the services call each other through this port.
        let this_process = format!("http://127.0.0.1:{}", server.port());
        let db = match runs(Role::Registry) || runs(Role::MarketData) || runs(Role::Auth) {
            true => Some(db::connect(&args.database).await?),
            false => None,
        };
        let redis =
            match (&args.redis.redis_url, runs(Role::MarketData) || runs(Role::Indicator) || runs(Role::Streaming)) {
                (Some(url), true) => Some(Redis::connect(&args.redis, url).await?),
                _ => None,
            };

        // In `serve all` a neighbour left unset is this process.
        let neighbour = |url: &Option<String>, flag: &str| match (url, args.role) {
            (Some(url), _) => Ok(url.clone()),
            (None, Role::All) => Ok(this_process.clone()),
            (None, role) => Err(anyhow::anyhow!("{flag} is required to serve {role:?} alone")),
        };
        let auth_url = match (&args.auth.auth_url, args.role) {
            (None, Role::Auth) => this_process.clone(),
            (url, _) => neighbour(url, "--auth-url (WIZDATA_AUTH_URL)")?,
        };
        let verifier = Verifier::new(channel_to(&auth_url, args.auth.auth_timeout)?, &args.auth);
        let auth_layer = AuthLayer::new(verifier.clone())?;

        let mut services = Services::default();
        let mut background = Vec::new();
        // One bus per process: market data publishes on it, streaming reads it.
        let bus = match runs(Role::MarketData) || runs(Role::Streaming) {
            true => Some(Bus::new(redis.as_ref()).await?),
            false => None,
        };
        let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
        let mut database_users = Vec::new();
        if runs(Role::Registry) {
            let db = db.clone().expect("connected for the registry");
            db::migrate::<wizdata_registry::Migrator>(&db).await?;
            services = services.mount(
                wizdata_registry::service(db, page_tokens.clone())
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            );
            database_users.push(wizdata_registry::SERVICE_NAME);
        }
        if runs(Role::MarketData) {
            let db = db.clone().expect("connected for market data");
            db::migrate::<wizdata_market_data::Migrator>(&db).await?;
            let registry_url = neighbour(&args.market_data.registry_url, "--registry-url (WIZDATA_REGISTRY_URL)")?;
            let registry = channel_to(&registry_url, args.market_data.registry_timeout)?;
            let (service, tasks) = wizdata_market_data::service(
                db,
                Cache::new(redis.as_ref()),
                bus.clone().expect("a bus for market data"),
                registry,
                page_tokens.clone(),
                &args.market_data,
            );
            services =
                services.mount(service.max_decoding_message_size(max_message).max_encoding_message_size(max_message));
            background.extend(tasks);
            database_users.push(wizdata_market_data::SERVICE_NAME);
        }
        if runs(Role::Indicator) {
            let market_data_url =
                neighbour(&args.indicator.market_data_url, "--market-data-url (WIZDATA_MARKET_DATA_URL)")?;
            let market_data = channel_to(&market_data_url, args.indicator.market_data_timeout)?;
            services = services.mount(
                wizdata_indicator::service(market_data, Cache::new(redis.as_ref()), &args.indicator)
                    .max_decoding_message_size(max_message),
            );
        }
        if runs(Role::Auth) {
            let db = db.clone().expect("connected for auth");
            db::migrate::<wizdata_auth::Migrator>(&db).await?;
            let (service, key_reload) = wizdata_auth::service(db, page_tokens.clone(), &args.auth_service).await?;
            services = services.mount(service.max_decoding_message_size(max_message));
            background.push(key_reload);
            database_users.push(wizdata_auth::SERVICE_NAME);
        }
        if runs(Role::Streaming) {
            let registry_url = neighbour(&args.market_data.registry_url, "--registry-url (WIZDATA_REGISTRY_URL)")?;
            let market_data_url =
                neighbour(&args.indicator.market_data_url, "--market-data-url (WIZDATA_MARKET_DATA_URL)")?;
            let service = wizdata_streaming::service(
                bus.clone().expect("a bus for streaming"),
                channel_to(&registry_url, args.market_data.registry_timeout)?,
                channel_to(&market_data_url, args.indicator.market_data_timeout)?,
                (args.market_data.symbol_cache_ttl, args.market_data.registry_timeout),
                stopping_seen,
                &args.streaming,
            );
            services = services.mount(service.max_decoding_message_size(max_message));
        }

        let server = server.serve(services, auth_layer).await;
        if let Some(db) = &db {
            for service in database_users {
                background.push(db::watch(db.clone(), server.health(), service, args.database.db_health_interval));
            }
        }
        if let Some(redis) = &redis {
            background.push(redis.watch(server.health()));
        }
        if args.role == Role::All && args.simulated_feed {
            let db = db.as_ref().expect("connected in serve all");
            let key = wizdata_auth::provision_internal_key(db, SIMULATED_FEED, SIMULATED_FEED_SCOPES).await?;
            let channel = Credentials::bearer(&key)?.on(channel_to(&this_process, Duration::from_secs(5))?);
            let feed = args.feed.clone();
            background.push(tokio::spawn(async move {
                if let Err(error) = wizdata_market_data::simulator::run(channel, feed, std::future::pending()).await {
                    tracing::error!(%error, "the simulated feed stopped");
                }
            }));
        }
        let gateway = match args.role == Role::All && args.with_gateway {
            true => Some(Gateway::build(&args.gateway, gateway_deps(args, verifier, redis, Some(this_process))).await?),
            false => None,
        };
        Ok(Self { server: Some(server), gateway, metrics, bus, background, stopping })
    }

    /// The gateway role: no service of its own, only the ingress.
    async fn gateway_alone(args: &ServeArgs, metrics: MetricsServer) -> anyhow::Result<Self> {
        let auth_url =
            args.auth.auth_url.clone().ok_or_else(|| {
                anyhow::anyhow!("--auth-url (WIZDATA_AUTH_URL) is required to serve the gateway alone")
            })?;
        let verifier = Verifier::new(channel_to(&auth_url, args.auth.auth_timeout)?, &args.auth);
        let redis = match &args.redis.redis_url {
            Some(url) => Some(Redis::connect(&args.redis, url).await?),
            None => None,
        };
        let gateway = Gateway::build(&args.gateway, gateway_deps(args, verifier, redis, None)).await?;
        let (stopping, _) = tokio::sync::watch::channel(false);
        Ok(Self { server: None, gateway: Some(gateway), metrics, bus: None, background: Vec::new(), stopping })
    }

    /// The gRPC port of the services, or the gateway's when it runs alone.
    pub fn port(&self) -> u16 {
        match (&self.server, &self.gateway) {
            (Some(server), _) => server.port(),
            (None, Some(gateway)) => gateway.port(),
            (None, None) => unreachable!("a mesh serves something"),
        }
    }

    /// The port of the Prometheus endpoint.
    pub fn metrics_port(&self) -> u16 {
        self.metrics.port()
    }

    /// The gateway's port, when this process runs it.
    pub fn gateway_port(&self) -> Option<u16> {
        self.gateway.as_ref().map(Gateway::port)
    }

    /// The health of the services, or of the gateway when it runs alone.
    pub fn health(&self) -> Health {
        match (&self.server, &self.gateway) {
            (Some(server), _) => server.health(),
            (None, Some(gateway)) => gateway.health(),
            (None, None) => unreachable!("a mesh serves something"),
        }
    }

    /// The gateway's health, when this process runs it.
    pub fn gateway_health(&self) -> Option<Health> {
        self.gateway.as_ref().map(Gateway::health)
    }

    /// The bus market data publishes on and streaming reads, when this
    /// process serves either.
    pub fn bus(&self) -> Option<Bus> {
        self.bus.clone()
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stopping = self.stopping;
        let metrics = self.metrics.spawn();
        let mut stopped = stopping.subscribe();
        let mut stopped_too = stopping.subscribe();
        let server = async move {
            match self.server {
                Some(server) => {
                    server
                        .run_until(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await
                }
                None => Ok(()),
            }
        };
        let gateway = async move {
            match self.gateway {
                Some(gateway) => {
                    gateway
                        .run_until(async move {
                            let _ = stopped_too.wait_for(|stop| *stop).await;
                        })
                        .await
                }
                None => Ok(()),
            }
        };
        let stop = async move {
            stop.await;
            let _ = stopping.send(true);
        };
        let (_, server, gateway) = tokio::join!(stop, server, gateway);
        for task in self.background {
            task.abort();
        }
        metrics.abort();
        server.and(gateway)
    }
}

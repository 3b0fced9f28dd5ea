//! Assembles WizData services into one process: every service on one gRPC
//! port (`wizdata serve all`) or a single role per process, as Kubernetes
//! runs it. The end-to-end tests build the mesh through this same code.
//!
//! A process is built in three steps: [`Plan::resolve`] turns the settings
//! into what will run and refuses contradictions before anything binds;
//! [`Connections::open`] reaches the databases, Redis and the bus the plan
//! needs; [`Mesh::build`] binds, mounts every service through [`mount`] and
//! starts the background work.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::auth::layer::AuthLayer;
use wizdata_common::auth::verifier::Verifier;
use wizdata_common::bus::Bus;
use wizdata_common::cache::Cache;
use wizdata_common::config::{AuthConfig, DatabaseConfig, NeighbourConfig, RedisConfig, ServerConfig, TelemetryConfig};
use wizdata_common::db;
use wizdata_common::endpoints::{DiscoveryConfig, EndpointPool, PoolSettings, Resolver, ServiceChannel};
use wizdata_common::health::Health;
use wizdata_common::metrics::{MetricsConfig, MetricsServer};
use wizdata_common::pagination::PageTokens;
use wizdata_common::redis::Redis;
use wizdata_common::server::{GrpcServer, Services};
use wizdata_common::symbols::SymbolDirectory;
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
    pub neighbours: NeighbourConfig,
    #[command(flatten)]
    pub discovery: DiscoveryConfig,
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
    /// Threads that serve the services' calls (one Tokio worker each; the
    /// gateway's connections have threads of their own, --gateway-threads);
    /// unset means one per core. One thread answers a lone caller soonest,
    /// since no step of a call then waits for another thread to wake; more
    /// threads take more calls at once on more cores (BENCHMARKS.md, the
    /// gateway's threads).
    #[arg(long, env = "WIZDATA_WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
    /// With `all`: run the gateway in-process too, in front of the services.
    #[arg(long, env = "WIZDATA_WITH_GATEWAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub with_gateway: bool,
    /// With `all`: run the simulated feed in-process, so quotes move and
    /// candles fill on a fresh machine.
    #[arg(long, env = "WIZDATA_SIMULATED_FEED", default_value_t = true, action = clap::ArgAction::Set)]
    pub simulated_feed: bool,
    #[command(flatten)]
    pub feed: SimulatorConfig,
    /// With `all`: real feeds to run in-process, comma-separated (binance,
    /// coinbase, kraken, coingecko, alphavantage), each set by its own
    /// flags; none by default (they reach the internet).
    #[arg(long, env = "WIZDATA_FEEDS", value_delimiter = ',')]
    pub feeds: Vec<wizdata_feeds::Provider>,
    #[command(flatten)]
    pub providers: wizdata_feeds::FeedsConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub metrics: MetricsConfig,
}

/// The internal key the in-process simulated feed runs as.
const SIMULATED_FEED: &str = "simulated-feed";
const SIMULATED_FEED_SCOPES: &[&str] = &["marketdata:read", "marketdata:write", "registry:read"];
/// The internal key in-process real feeds run as (one for all of them:
/// provisioning a key revokes the earlier ones of its name).
const REAL_FEEDS: &str = "real-feeds";

/// One of the services a process can mount on its gRPC port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshService {
    Registry,
    MarketData,
    Indicator,
    Auth,
    Streaming,
}

impl MeshService {
    pub const ALL: [Self; 5] = [Self::Registry, Self::MarketData, Self::Indicator, Self::Auth, Self::Streaming];

    /// The role that runs this service alone.
    fn role(self) -> Role {
        match self {
            Self::Registry => Role::Registry,
            Self::MarketData => Role::MarketData,
            Self::Indicator => Role::Indicator,
            Self::Auth => Role::Auth,
            Self::Streaming => Role::Streaming,
        }
    }
}

/// Where a neighbouring service is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Neighbour {
    /// This process's own gRPC port (`serve all`, or auth verifying itself).
    ThisProcess,
    At(String),
}

impl Neighbour {
    fn url(&self, this_process: &str) -> String {
        match self {
            Self::ThisProcess => this_process.to_owned(),
            Self::At(url) => url.clone(),
        }
    }
}

/// What one process runs, resolved from its settings and checked as a whole
/// before anything binds or connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The services mounted on the gRPC port; empty for the gateway alone.
    pub services: Vec<MeshService>,
    /// Whether the gateway runs in this process.
    pub gateway: bool,
    /// The auth service every call is verified against.
    pub auth: Neighbour,
    /// The registry, for the services that check symbols.
    pub registry: Option<Neighbour>,
    /// Market data, for the services that read candles or quotes.
    pub market_data: Option<Neighbour>,
    pub simulated_feed: bool,
    /// Real feeds run in-process (`serve all` only).
    pub feeds: Vec<wizdata_feeds::Provider>,
}

impl Plan {
    /// The plan for `args`; a lone role missing a neighbour it needs is
    /// refused here, with the flag that names it.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let all = args.role == Role::All;
        let services: Vec<MeshService> =
            MeshService::ALL.into_iter().filter(|service| all || service.role() == args.role).collect();
        let serves = |service: MeshService| services.contains(&service);
        let neighbour = |url: &Option<String>, flag: &str| match url {
            Some(url) => Ok(Neighbour::At(url.clone())),
            None if all => Ok(Neighbour::ThisProcess),
            None => Err(anyhow::anyhow!("{flag} is required to serve {} alone", role_name(args.role))),
        };
        let auth = match (&args.auth.auth_url, args.role) {
            (None, Role::Auth) => Neighbour::ThisProcess,
            (url, _) => neighbour(url, "--auth-url (WIZDATA_AUTH_URL)")?,
        };
        let registry = match serves(MeshService::MarketData) || serves(MeshService::Streaming) {
            true => Some(neighbour(&args.neighbours.registry_url, "--registry-url (WIZDATA_REGISTRY_URL)")?),
            false => None,
        };
        let market_data = match serves(MeshService::Indicator) || serves(MeshService::Streaming) {
            true => Some(neighbour(&args.neighbours.market_data_url, "--market-data-url (WIZDATA_MARKET_DATA_URL)")?),
            false => None,
        };
        if !all && !args.feeds.is_empty() {
            anyhow::bail!("--feeds (WIZDATA_FEEDS) runs feeds inside serve all; alone, run `wizdata feed <provider>`");
        }
        Ok(Self {
            gateway: args.role == Role::Gateway || (all && args.with_gateway),
            simulated_feed: all && args.simulated_feed,
            feeds: if all { args.feeds.clone() } else { Vec::new() },
            services,
            auth,
            registry,
            market_data,
        })
    }

    fn serves(&self, service: MeshService) -> bool {
        self.services.contains(&service)
    }

    /// The services that keep tables of their own.
    fn database_users(&self) -> Vec<&'static str> {
        self.services
            .iter()
            .filter_map(|service| match service {
                MeshService::Registry => Some(wizdata_registry::SERVICE_NAME),
                MeshService::MarketData => Some(wizdata_market_data::SERVICE_NAME),
                MeshService::Auth => Some(wizdata_auth::SERVICE_NAME),
                MeshService::Indicator | MeshService::Streaming => None,
            })
            .collect()
    }

    /// Market data publishes on the bus, streaming reads it.
    fn needs_bus(&self) -> bool {
        self.serves(MeshService::MarketData) || self.serves(MeshService::Streaming)
    }

    /// Caches, the bus and the gateway's shared rate limits live in Redis.
    fn uses_redis(&self) -> bool {
        self.gateway
            || self.serves(MeshService::MarketData)
            || self.serves(MeshService::Indicator)
            || self.serves(MeshService::Streaming)
    }
}

/// The name a role has on the command line.
fn role_name(role: Role) -> String {
    clap::ValueEnum::to_possible_value(&role).map_or_else(|| format!("{role:?}"), |value| value.get_name().to_owned())
}

/// The storage a plan needs, reached and ready.
pub struct Connections {
    pub db: Option<sea_orm::DatabaseConnection>,
    pub redis: Option<Redis>,
    /// One bus per process: market data publishes on it, streaming reads it.
    pub bus: Option<Bus>,
    /// Resolves the names in neighbours' and backends' URLs, for every
    /// channel and the gateway alike.
    pub resolver: Resolver,
}

impl Connections {
    pub async fn open(plan: &Plan, args: &ServeArgs) -> anyhow::Result<Self> {
        let db = match plan.database_users().is_empty() {
            false => Some(db::connect(&args.database).await?),
            true => None,
        };
        let redis = match (&args.redis.redis_url, plan.uses_redis()) {
            (Some(url), true) => Some(Redis::connect(&args.redis, url).await?),
            _ => None,
        };
        let bus = match plan.needs_bus() {
            true => Some(Bus::new(redis.as_ref()).await?),
            false => None,
        };
        Ok(Self { db, redis, bus, resolver: Resolver::new(&args.discovery) })
    }
}

/// A generated server's message limits, so every service is mounted with
/// the same ones.
pub trait MessageLimits {
    fn with_message_limits(self, max_request_bytes: usize, max_response_bytes: usize) -> Self;
}

macro_rules! message_limits {
    ($($server:ty),* $(,)?) => {$(
        impl MessageLimits for $server {
            fn with_message_limits(self, max_request_bytes: usize, max_response_bytes: usize) -> Self {
                self.max_decoding_message_size(max_request_bytes).max_encoding_message_size(max_response_bytes)
            }
        }
    )*};
}

message_limits!(
    wizdata::registry::v1::registry_service_server::RegistryServiceServer<wizdata_registry::Registry>,
    wizdata::marketdata::v1::market_data_service_server::MarketDataServiceServer<wizdata_market_data::MarketData>,
    wizdata::indicator::v1::indicator_service_server::IndicatorServiceServer<wizdata_indicator::Indicators>,
    wizdata::auth::v1::auth_service_server::AuthServiceServer<wizdata_auth::Auth>,
    wizdata::streaming::v1::streaming_service_server::StreamingServiceServer<wizdata_streaming::Streamer>,
);

/// A service with methods answered encoded: their limits, and its generated
/// server's.
impl<Methods, Generated: MessageLimits> MessageLimits for wizdata_common::grpc::EncodedRoutes<Methods, Generated> {
    fn with_message_limits(self, max_request_bytes: usize, max_response_bytes: usize) -> Self {
        self.with_limits(max_request_bytes, max_response_bytes, |generated| {
            generated.with_message_limits(max_request_bytes, max_response_bytes)
        })
    }
}

/// Adds `service` to `services` with the process's message limits.
pub fn mount<S>(services: Services, service: S, server: &ServerConfig) -> Services
where
    S: MessageLimits
        + tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    services.mount(service.with_message_limits(server.max_message_bytes, server.max_response_bytes))
}

/// A channel to `service` (its gRPC name, or "" for a whole process) at
/// `url`: over every address the URL's host resolves to, health-checked and
/// kept current by the same pool the gateway uses; connected on first use
/// and again after failures.
pub fn channel_to(
    url: &str,
    service: &str,
    connect_timeout: Duration,
    resolver: &Resolver,
) -> anyhow::Result<ServiceChannel> {
    let settings = PoolSettings { connect_timeout, ..PoolSettings::default() };
    Ok(ServiceChannel::new(EndpointPool::new(service, &[url.to_owned()], settings, resolver.clone())?))
}

/// The gRPC names the services' channels check the health of.
const REGISTRY: &str = wizdata::registry::v1::registry_service_server::SERVICE_NAME;
const MARKET_DATA: &str = wizdata::marketdata::v1::market_data_service_server::SERVICE_NAME;
const AUTH: &str = wizdata::auth::v1::auth_service_server::SERVICE_NAME;

/// The services of a process, serving on their gRPC port.
struct ServicesProcess {
    server: GrpcServer,
    bus: Option<Bus>,
    background: Vec<JoinHandle<()>>,
}

/// What a process serves: its type says which of the three shapes it has.
// One per process, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Serving {
    /// `serve all`: every service, and the gateway in front of them.
    ServicesAndGateway(ServicesProcess, Gateway),
    /// One role, or `serve all --with-gateway false`.
    ServicesOnly(ServicesProcess),
    /// `serve gateway`: the ingress alone.
    GatewayOnly(Gateway),
}

/// A bound mesh process, ready to serve.
pub struct Mesh {
    serving: Serving,
    metrics: MetricsServer,
    // Tells long-lived streams to end when the process stops, so their
    // clients reconnect elsewhere instead of holding up the drain.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Mesh {
    /// Resolves the plan, connects storage, binds the listeners and mounts
    /// the role's services.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let plan = Plan::resolve(args)?;
        let metrics = MetricsServer::bind(&args.metrics).await?;
        let connections = Connections::open(&plan, args).await?;
        let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
        let server = match plan.services.is_empty() {
            true => None,
            false => Some(GrpcServer::bind(&args.server).await?),
        };
        // In `serve all` the services call each other through this port.
        let this_process = server.as_ref().map(|server| format!("http://127.0.0.1:{}", server.port()));
        let auth_url = plan.auth.url(this_process.as_deref().unwrap_or_default());
        // One verifier for the services and the gateway: one cache of keys and tokens.
        let resolver = &connections.resolver;
        let verifier = Verifier::new(channel_to(&auth_url, AUTH, args.auth.auth_timeout, resolver)?, &args.auth);
        let services = match (server, &this_process) {
            (Some(server), Some(this_process)) => Some(
                Self::serve_services(server, this_process, &plan, args, &connections, &verifier, stopping_seen).await?,
            ),
            _ => None,
        };
        let gateway = match plan.gateway {
            true => {
                let deps = GatewayDeps {
                    verifier,
                    redis: connections.redis.clone(),
                    default_backend: this_process,
                    resolver: resolver.clone(),
                    max_message_bytes: args.server.max_message_bytes,
                    shutdown_delay: args.server.shutdown_delay,
                    drain_timeout: args.server.drain_timeout,
                };
                Some(Gateway::build(&args.gateway, deps).await?)
            }
            false => None,
        };
        let serving = match (services, gateway) {
            (Some(services), Some(gateway)) => Serving::ServicesAndGateway(services, gateway),
            (Some(services), None) => Serving::ServicesOnly(services),
            (None, Some(gateway)) => Serving::GatewayOnly(gateway),
            (None, None) => anyhow::bail!("{} serves nothing", role_name(args.role)),
        };
        Ok(Self { serving, metrics, stopping })
    }

    /// Mounts the plan's services on `server` and starts their background
    /// work; `this_process` is the server's own URL.
    async fn serve_services(
        server: GrpcServer,
        this_process: &str,
        plan: &Plan,
        args: &ServeArgs,
        connections: &Connections,
        verifier: &Verifier,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<ServicesProcess> {
        let neighbours = &args.neighbours;
        let resolver = &connections.resolver;
        let url_of = |neighbour: &Option<Neighbour>| {
            neighbour.as_ref().expect("resolved for the services that call it").url(this_process)
        };
        let symbols = || -> anyhow::Result<SymbolDirectory> {
            let registry = channel_to(&url_of(&plan.registry), REGISTRY, neighbours.registry_timeout, resolver)?;
            Ok(SymbolDirectory::new(registry, neighbours.symbol_cache_ttl, neighbours.registry_timeout))
        };
        let market_data =
            || channel_to(&url_of(&plan.market_data), MARKET_DATA, neighbours.market_data_timeout, resolver);
        let db = || connections.db.clone().expect("connected for the services that keep tables");
        let bus = || connections.bus.clone().expect("a bus for the services that publish or read events");
        let page_tokens = PageTokens::new(args.server.page_token_key.as_ref());

        let mut services = Services::default();
        let mut background = Vec::new();
        for service in &plan.services {
            services = match service {
                MeshService::Registry => {
                    db::migrate::<wizdata_registry::Migrator>(&db()).await?;
                    mount(services, wizdata_registry::service(db(), page_tokens.clone()), &args.server)
                }
                MeshService::MarketData => {
                    db::migrate::<wizdata_market_data::Migrator>(&db()).await?;
                    let cache = Cache::new(connections.redis.as_ref());
                    let (service, tasks) = wizdata_market_data::service(
                        db(),
                        cache,
                        bus(),
                        symbols()?,
                        page_tokens.clone(),
                        &args.market_data,
                    );
                    background.extend(tasks);
                    mount(services, service, &args.server)
                }
                MeshService::Indicator => {
                    let cache = Cache::new(connections.redis.as_ref());
                    let service = wizdata_indicator::service(
                        market_data()?,
                        neighbours.market_data_timeout,
                        cache,
                        &args.indicator,
                    );
                    mount(services, service, &args.server)
                }
                MeshService::Auth => {
                    db::migrate::<wizdata_auth::Migrator>(&db()).await?;
                    let (service, key_reload) =
                        wizdata_auth::service(db(), page_tokens.clone(), &args.auth_service).await?;
                    background.push(key_reload);
                    mount(services, service, &args.server)
                }
                MeshService::Streaming => {
                    let service = wizdata_streaming::service(
                        bus(),
                        symbols()?,
                        market_data()?,
                        stopping.clone(),
                        &args.streaming,
                    );
                    mount(services, service, &args.server)
                }
            };
        }

        let server = server.serve(services, AuthLayer::new(verifier.clone())?).await;
        if let Some(db) = &connections.db {
            for service in plan.database_users() {
                background.push(db::watch(db.clone(), server.health(), service, args.database.db_health_interval));
            }
        }
        if let Some(redis) = &connections.redis {
            background.push(redis.watch(server.health()));
        }
        if plan.simulated_feed {
            background.push(Self::simulated_feed(&db(), this_process, resolver, &args.feed).await?);
        }
        if !plan.feeds.is_empty() {
            background.extend(Self::real_feeds(&db(), this_process, resolver, &plan.feeds, &args.providers).await?);
            background.push(Self::report_feeds(server.health(), &plan.feeds).await);
        }
        Ok(ServicesProcess { server, bus: connections.bus.clone(), background })
    }

    /// The simulated feed, ingesting through this process's port with an
    /// internal key provisioned now (earlier ones revoked).
    async fn simulated_feed(
        db: &sea_orm::DatabaseConnection,
        this_process: &str,
        resolver: &Resolver,
        feed: &SimulatorConfig,
    ) -> anyhow::Result<JoinHandle<()>> {
        let key = wizdata_auth::provision_internal_key(db, SIMULATED_FEED, SIMULATED_FEED_SCOPES).await?;
        let channel =
            Credentials::bearer(&key)?.on(channel_to(this_process, MARKET_DATA, Duration::from_secs(5), resolver)?);
        let feed = feed.clone();
        Ok(tokio::spawn(async move {
            if let Err(error) = wizdata_market_data::simulator::run(channel, feed, std::future::pending()).await {
                tracing::error!(%error, "the simulated feed stopped");
            }
        }))
    }

    /// The configured real feeds, ingesting through this process's port as
    /// one internal key; a feed that stops (a rejected provider key) is
    /// logged and the others go on.
    async fn real_feeds(
        db: &sea_orm::DatabaseConnection,
        this_process: &str,
        resolver: &Resolver,
        providers: &[wizdata_feeds::Provider],
        config: &wizdata_feeds::FeedsConfig,
    ) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let key = wizdata_auth::provision_internal_key(db, REAL_FEEDS, SIMULATED_FEED_SCOPES).await?;
        let mut tasks = Vec::with_capacity(providers.len());
        for &provider in providers {
            let channel =
                Credentials::bearer(&key)?.on(channel_to(this_process, MARKET_DATA, Duration::from_secs(5), resolver)?);
            let config = config.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(error) = wizdata_feeds::run(provider, &config, channel, std::future::pending()).await {
                    tracing::error!(?provider, %error, "a feed stopped");
                }
            }));
        }
        Ok(tasks)
    }

    /// Keeps grpc.health's `feed/<provider>` in step with each feed's
    /// connection; each reports NOT_SERVING until its feed first connects.
    async fn report_feeds(health: Health, providers: &[wizdata_feeds::Provider]) -> JoinHandle<()> {
        for provider in providers {
            health.set_feed(provider.label(), false).await;
        }
        let mut connections = wizdata_feeds::connections();
        tokio::spawn(async move {
            loop {
                let now: Vec<(&'static str, bool)> = connections
                    .borrow_and_update()
                    .iter()
                    .map(|(provider, connected)| (*provider, *connected))
                    .collect();
                for (provider, connected) in now {
                    health.set_feed(provider, connected).await;
                }
                if connections.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    fn services(&self) -> Option<&ServicesProcess> {
        match &self.serving {
            Serving::ServicesAndGateway(services, _) | Serving::ServicesOnly(services) => Some(services),
            Serving::GatewayOnly(_) => None,
        }
    }

    fn gateway(&self) -> Option<&Gateway> {
        match &self.serving {
            Serving::ServicesAndGateway(_, gateway) | Serving::GatewayOnly(gateway) => Some(gateway),
            Serving::ServicesOnly(_) => None,
        }
    }

    /// The gRPC port of the services, or the gateway's when it runs alone.
    pub fn port(&self) -> u16 {
        match &self.serving {
            Serving::ServicesAndGateway(services, _) | Serving::ServicesOnly(services) => services.server.port(),
            Serving::GatewayOnly(gateway) => gateway.port(),
        }
    }

    /// The port of the Prometheus endpoint.
    pub fn metrics_port(&self) -> u16 {
        self.metrics.port()
    }

    /// The gateway's port, when this process runs it.
    pub fn gateway_port(&self) -> Option<u16> {
        self.gateway().map(Gateway::port)
    }

    /// The health of the services, or of the gateway when it runs alone.
    pub fn health(&self) -> Health {
        match &self.serving {
            Serving::ServicesAndGateway(services, _) | Serving::ServicesOnly(services) => services.server.health(),
            Serving::GatewayOnly(gateway) => gateway.health(),
        }
    }

    /// The gateway's health, when this process runs it.
    pub fn gateway_health(&self) -> Option<Health> {
        self.gateway().map(Gateway::health)
    }

    /// The bus market data publishes on and streaming reads, when this
    /// process serves either.
    pub fn bus(&self) -> Option<Bus> {
        self.services().and_then(|services| services.bus.clone())
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self { serving, metrics, stopping } = self;
        let metrics = metrics.spawn();
        let until_stopping = || {
            let mut stopped = stopping.subscribe();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let (services, gateway) = match serving {
            Serving::ServicesAndGateway(services, gateway) => (Some(services), Some(gateway)),
            Serving::ServicesOnly(services) => (Some(services), None),
            Serving::GatewayOnly(gateway) => (None, Some(gateway)),
        };
        let (server, background) = match services {
            Some(ServicesProcess { server, background, .. }) => (Some(server), background),
            None => (None, Vec::new()),
        };
        let server = async {
            match server {
                Some(server) => server.run_until(until_stopping()).await,
                None => Ok(()),
            }
        };
        let gateway = async {
            match gateway {
                Some(gateway) => gateway.run_until(until_stopping()).await,
                None => Ok(()),
            }
        };
        let stop = async {
            stop.await;
            let _ = stopping.send(true);
        };
        let (_, server, gateway) = tokio::join!(stop, server, gateway);
        for task in background {
            task.abort();
        }
        metrics.abort();
        server.and(gateway)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn plan(argv: &[&str]) -> anyhow::Result<Plan> {
        let args = Cli::try_parse_from(std::iter::once("wizdata").chain(argv.iter().copied()))?.serve;
        Plan::resolve(&args)
    }

    fn refusal(argv: &[&str]) -> String {
        plan(argv).expect_err("the plan is refused").to_string()
    }

    #[test]
    fn the_gateway_serves_on_a_thread_per_core_unless_told_and_never_on_none() {
        let threads = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("wizdata").chain(argv.iter().copied()))
                .map(|cli| cli.serve.gateway.serving_threads().get())
        };
        assert_eq!(threads(&["gateway", "--gateway-threads", "3"]).unwrap(), 3);
        assert_eq!(threads(&["gateway"]).unwrap(), std::thread::available_parallelism().unwrap().get());
        let none = threads(&["gateway", "--gateway-threads", "0"]).expect_err("no thread is refused").to_string();
        assert!(none.contains("--gateway-threads") && none.contains("'0'"), "{none}");
    }

    #[test]
    fn serve_all_runs_every_service_and_calls_itself() {
        let all = plan(&["all"]).unwrap();
        assert_eq!(all.services.len(), 5);
        assert!(all.gateway && all.simulated_feed);
        assert_eq!(
            (all.auth, all.registry, all.market_data),
            (Neighbour::ThisProcess, Some(Neighbour::ThisProcess), Some(Neighbour::ThisProcess))
        );
        assert!(all.feeds.is_empty(), "real feeds reach the internet: none unless asked");
        let quiet = plan(&["all", "--with-gateway", "false", "--simulated-feed", "false"]).unwrap();
        assert!(!quiet.gateway && !quiet.simulated_feed);
        let feeding = plan(&["all", "--feeds", "binance,coingecko"]).unwrap();
        assert_eq!(feeding.feeds, [wizdata_feeds::Provider::Binance, wizdata_feeds::Provider::Coingecko]);
        let alone =
            refusal(&["market-data", "--registry-url", "http://r:1", "--auth-url", "http://a:1", "--feeds", "kraken"]);
        assert!(alone.contains("wizdata feed <provider>"), "{alone}");
        let elsewhere = plan(&["all", "--registry-url", "http://registry:50051"]).unwrap();
        assert_eq!(elsewhere.registry, Some(Neighbour::At("http://registry:50051".into())));
    }

    #[test]
    fn a_lone_role_without_a_neighbour_it_calls_is_refused_naming_the_flag() {
        let auth = ["--auth-url", "http://auth:50051"];
        assert_eq!(
            refusal(&["market-data", auth[0], auth[1]]),
            "--registry-url (WIZDATA_REGISTRY_URL) is required to serve market-data alone"
        );
        assert_eq!(
            refusal(&["indicator", auth[0], auth[1]]),
            "--market-data-url (WIZDATA_MARKET_DATA_URL) is required to serve indicator alone"
        );
        assert_eq!(
            refusal(&["streaming", auth[0], auth[1], "--registry-url", "http://registry:50051"]),
            "--market-data-url (WIZDATA_MARKET_DATA_URL) is required to serve streaming alone"
        );
        assert_eq!(refusal(&["registry"]), "--auth-url (WIZDATA_AUTH_URL) is required to serve registry alone");
        assert_eq!(refusal(&["gateway"]), "--auth-url (WIZDATA_AUTH_URL) is required to serve gateway alone");
    }

    #[test]
    fn a_lone_role_needs_only_its_own_neighbours() {
        let registry = plan(&["registry", "--auth-url", "http://auth:50051"]).unwrap();
        assert_eq!(
            (registry.services, registry.registry, registry.market_data),
            (vec![MeshService::Registry], None, None)
        );
        assert!(!registry.gateway && !registry.simulated_feed, "only serve all runs the gateway and the feed");
        let auth = plan(&["auth"]).unwrap();
        assert_eq!(auth.auth, Neighbour::ThisProcess, "auth verifies tokens itself");
        let gateway = plan(&["gateway", "--auth-url", "http://auth:50051"]).unwrap();
        assert!(gateway.services.is_empty() && gateway.gateway);
    }
}

//! The end-to-end suites' shared harness: the mesh started in-process on
//! free ports, over real sockets, on a fresh database (SQLite, or PostgreSQL
//! when WIZDATA_TEST_DATABASE_URL is set) and, for `serve all`, on Redis when
//! WIZDATA_TEST_REDIS_URL is set; the fixtures every area's tests build on.

pub mod dns;
pub mod fake_provider;
pub mod fixtures;
pub mod grpc_web;
pub mod http;
pub mod prometheus;
pub mod raw_h2;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use wizdata::auth::v1::Tier;
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata_common::auth::access::AccessRules;
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::bus::Bus;
use wizdata_common::config::DatabaseConfig;
pub use wizdata_common::testing::{TestDatabase, TestRedis};
use wizdata_mesh::{Mesh, Role, ServeArgs};

pub use fixtures::*;

/// A test client's channel: tonic's own, as any Rust client's, with the
/// credentials its calls carry.
pub type ClientChannel = tonic::service::interceptor::InterceptedService<Channel, Credentials>;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A running mesh process, stopped when dropped.
pub struct TestMesh {
    pub port: u16,
    /// The in-process gateway's port (`serve all`, or the gateway role).
    pub gateway_port: Option<u16>,
    /// The Prometheus endpoint's port.
    pub metrics_port: u16,
    pub health: wizdata_common::health::Health,
    pub bus: Option<Bus>,
    /// This mesh's own key prefix, when it runs on Redis.
    pub redis: Option<TestRedis>,
    /// A key with every scope, tier internal, when this mesh serves auth.
    pub admin_key: Option<SecretString>,
    database: Arc<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// How a test mesh is started: its role, database, Redis and extra flags.
pub struct MeshBuilder {
    role: String,
    database: Option<Arc<TestDatabase>>,
    redis: Option<TestRedis>,
    redis_from_env: bool,
    database_url: Option<String>,
    flags: Vec<String>,
}

impl MeshBuilder {
    /// Adds or overrides flags of `wizdata serve`.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags.extend(flags.iter().map(|flag| (*flag).to_owned()));
        self
    }

    /// Shares a database with another mesh (a replica, a restart).
    pub fn database(mut self, database: &Arc<TestDatabase>) -> Self {
        self.database = Some(database.clone());
        self
    }

    /// Reaches the database at `url` (e.g. through a proxy a test cuts).
    pub fn database_url(mut self, url: String) -> Self {
        self.database_url = Some(url);
        self
    }

    /// Runs on Redis when WIZDATA_TEST_REDIS_URL is set, under a key prefix
    /// of this mesh's own.
    pub fn redis_from_env(mut self) -> Self {
        self.redis_from_env = true;
        self
    }

    /// Runs on this Redis (under its prefix), or none.
    pub fn redis(mut self, redis: Option<TestRedis>) -> Self {
        self.redis = redis;
        self.redis_from_env = false;
        self
    }

    pub async fn start(self) -> TestMesh {
        let database = match self.database {
            Some(database) => database,
            None => Arc::new(TestDatabase::new().await),
        };
        let redis = match self.redis_from_env {
            true => TestRedis::from_env().await,
            false => self.redis,
        };
        let mut flags: Vec<String> = redis.as_ref().map(TestRedis::args).unwrap_or_default();
        flags.extend(self.flags);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut config = database.config.clone();
        if let Some(url) = self.database_url {
            config.database_url = Some(url.into());
        }
        let mut mesh = TestMesh::start(serve_args(&self.role, &config, &flags), database).await;
        mesh.redis = redis;
        mesh
    }
}

/// Serve arguments for a test: loopback port 0, quick health checks, and the
/// given database; `extra` adds or overrides flags.
fn serve_args(role: &str, database: &DatabaseConfig, extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "test",
        role,
        "--grpc-addr",
        "127.0.0.1:0",
        "--gateway-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--db-health-interval",
        "500ms",
        "--drain-timeout",
        "5s",
        "--simulated-feed",
        "false",
    ];
    argv.extend_from_slice(extra);
    let mut args = Cli::parse_from(argv).serve;
    args.database = DatabaseConfig { db_health_interval: args.database.db_health_interval, ..database.clone() };
    args
}

impl TestMesh {
    /// `serve all` on a fresh database, and on Redis (under a prefix of its
    /// own) when WIZDATA_TEST_REDIS_URL is set.
    pub async fn all() -> Self {
        Self::all_with(&[]).await
    }

    /// `serve all` as [`TestMesh::all`], with extra flags.
    pub async fn all_with(flags: &[&str]) -> Self {
        Self::serve("all").redis_from_env().flags(flags).start().await
    }

    /// One role (or `all`) on a fresh database and no Redis, unless told otherwise.
    pub fn serve(role: &str) -> MeshBuilder {
        MeshBuilder {
            role: role.to_owned(),
            database: None,
            redis: None,
            redis_from_env: false,
            database_url: None,
            flags: Vec::new(),
        }
    }

    async fn start(args: ServeArgs, database: Arc<TestDatabase>) -> Self {
        let mesh = Mesh::build(&args).await.expect("mesh builds");
        let admin_key = match args.role {
            Role::All | Role::Auth => Some(
                create_key(
                    &args.database,
                    &AccessRules::contract().scopes().into_iter().collect::<Vec<_>>(),
                    Tier::Internal,
                )
                .await,
            ),
            _ => None,
        };
        let port = mesh.port();
        let gateway_port = mesh.gateway_port();
        let metrics_port = mesh.metrics_port();
        let health = mesh.health();
        let bus = mesh.bus();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mesh.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            port,
            gateway_port,
            metrics_port,
            health,
            bus,
            redis: None,
            admin_key,
            database,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The database this mesh runs on, to share with another mesh.
    pub fn database(&self) -> &Arc<TestDatabase> {
        &self.database
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port.expect("this mesh runs the gateway"))
    }

    /// The gateway's `/readyz` answer: readiness, rate-limit mode, and per
    /// backend its endpoints, healthy ones and whether its circuit is open.
    pub async fn gateway_readiness(&self) -> serde_json::Value {
        use http_body_util::BodyExt;
        let client = grpc_web::GrpcWebClient::new(
            self.gateway_port.expect("this mesh runs the gateway"),
            grpc_web::Encoding::Binary,
        );
        let answer = client.send("GET", "/readyz", "", bytes::Bytes::new(), &[]).await;
        let body = answer.into_body().collect().await.expect("a /readyz body").to_bytes();
        serde_json::from_slice(&body).expect("/readyz is JSON")
    }

    /// A native gRPC channel through the gateway, with `credentials`.
    pub async fn gateway_channel_as(&self, credentials: Credentials) -> ClientChannel {
        let channel =
            Channel::from_shared(self.gateway_url()).unwrap().connect().await.expect("connect to the gateway");
        credentials.on(channel)
    }

    /// A channel whose calls carry the admin key (when this mesh serves
    /// auth), so tests that set up data are allowed to write.
    pub async fn channel(&self) -> ClientChannel {
        self.channel_as(self.admin_credentials()).await
    }

    /// A channel whose calls carry no credentials.
    pub async fn anonymous_channel(&self) -> ClientChannel {
        self.channel_as(Credentials::none()).await
    }

    pub async fn channel_as(&self, credentials: Credentials) -> ClientChannel {
        credentials.on(Channel::from_shared(self.url()).unwrap().connect().await.expect("connect to the mesh"))
    }

    pub fn admin_credentials(&self) -> Credentials {
        Credentials::from_optional(self.admin_key.as_ref()).unwrap()
    }

    /// Clients of each service, calling directly as the admin.
    pub async fn registry(&self) -> RegistryServiceClient<ClientChannel> {
        RegistryServiceClient::new(self.channel().await)
    }

    pub async fn market_data(&self) -> MarketDataServiceClient<ClientChannel> {
        MarketDataServiceClient::new(self.channel().await)
    }

    pub async fn indicators(&self) -> IndicatorServiceClient<ClientChannel> {
        IndicatorServiceClient::new(self.channel().await)
    }

    pub async fn auth(&self) -> AuthServiceClient<ClientChannel> {
        AuthServiceClient::new(self.channel().await)
    }

    pub async fn streaming(&self) -> StreamingServiceClient<ClientChannel> {
        StreamingServiceClient::new(self.channel().await)
    }

    /// A new API key with `scopes` and `tier`, made directly in this mesh's database.
    pub async fn key_with(&self, scopes: &[&str], tier: Tier) -> SecretString {
        create_key(&self.database.config, scopes, tier).await
    }

    /// A new API key acting as `owner` (a subject of its own).
    pub async fn key_for(&self, owner: &str, scopes: &[&str], tier: Tier) -> SecretString {
        create_key_for(&self.database.config, owner, scopes, tier).await
    }

    /// Stops the mesh gracefully and returns how `run_until` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.expect("mesh task does not panic")
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The health a mesh reports for `service` ("" for the whole process).
/// Waits up to `within` for `condition` to hold, checking every 50 ms;
/// true when it did.
pub async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn health_of(mesh: &TestMesh, service: &str) -> Result<ServingStatus, tonic::Status> {
    health_at(&mesh.url(), service).await
}

/// The status `service` reports at the server (or gateway) at `url`.
pub async fn health_at(url: &str, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await?;
    Ok(response.into_inner().status())
}

/// Polls until `service` reports `wanted`; false if it does not within `within`.
pub async fn wait_for_health(mesh: &TestMesh, service: &str, wanted: ServingStatus, within: Duration) -> bool {
    wait_for_health_at(&mesh.url(), service, wanted, within).await
}

/// Polls the server (or gateway) at `url` until `service` reports `wanted`.
pub async fn wait_for_health_at(url: &str, service: &str, wanted: ServingStatus, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if health_at(url, service).await.ok() == Some(wanted) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Registers ORCL, the symbol of the sample history (orcl-1995-2014.csv).
pub async fn register_orcl(mesh: &TestMesh) {
    use wizdata::registry::v1::{CreateSymbolRequest, Symbol};
    let mut registry = wizdata::registry::v1::registry_service_client::RegistryServiceClient::new(mesh.channel().await);
    let orcl = Symbol {
        ticker: "ORCL".into(),
        name: "Oracle Corporation".into(),
        exchange: "NYSE".into(),
        asset_class: wizdata::r#type::v1::AssetClass::Equity as i32,
        currency: "USD".into(),
        streamable: true,
        ..Default::default()
    };
    registry.create_symbol(CreateSymbolRequest { symbol: Some(orcl) }).await.unwrap();
}

/// Creates an API key in the auth tables of `database`, as `wizdata keys create` does.
pub async fn create_key(database: &DatabaseConfig, scopes: &[&str], tier: Tier) -> SecretString {
    create_key_for(database, "test-admin", scopes, tier).await
}

/// A new API key acting as `owner`, made directly in the database.
pub async fn create_key_for(database: &DatabaseConfig, owner: &str, scopes: &[&str], tier: Tier) -> SecretString {
    let db = wizdata_common::db::connect(database).await.expect("connect to the test database");
    let key = wizdata_auth::NewApiKey {
        name: format!("test key {}", scopes.join(" ")),
        owner: owner.into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        tier,
        expire_time: None,
    };
    let (_, secret) = wizdata_auth::keys::create(&db, key).await.expect("create a key");
    db.close().await.ok();
    secret
}

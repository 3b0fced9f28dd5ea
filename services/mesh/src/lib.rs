//! Assembles WizData services into one process: every service on one gRPC
//! port (`wizdata serve all`) or a single role per process, as Kubernetes
//! runs it. The end-to-end tests build the mesh through this same code.

use std::future::Future;

use tokio::task::JoinHandle;
use wizdata_common::config::{DatabaseConfig, ServerConfig, TelemetryConfig};
use wizdata_common::db;
use wizdata_common::health::Health;
use wizdata_common::pagination::PageTokens;
use wizdata_common::server::{GrpcServer, Services};
use wizdata_registry::RegistryConfig;

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
    pub registry: RegistryConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

/// A bound mesh process, ready to serve.
pub struct Mesh {
    server: GrpcServer,
    background: Vec<JoinHandle<()>>,
}

impl Mesh {
    /// Connects and migrates storage, mounts the role's services and binds
    /// the listener.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        let runs = |role: Role| args.role == Role::All || args.role == role;
        let max_message = args.server.max_message_bytes;
        let page_tokens = PageTokens::new(args.server.page_token_key.as_ref());

        let mut services = Services::default();
        let mut registry_db = None;
        if runs(Role::Registry) {
            let db = db::connect(&args.database).await?;
            db::migrate::<wizdata_registry::Migrator>(&db).await?;
            services = services.mount(
                wizdata_registry::service(db.clone(), page_tokens.clone())
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            );
            registry_db = Some(db);
        }
        if runs(Role::MarketData) {
            services = services.mount(wizdata_market_data::service().max_decoding_message_size(max_message));
        }
        if runs(Role::Indicator) {
            services = services.mount(wizdata_indicator::service().max_decoding_message_size(max_message));
        }
        if runs(Role::Auth) {
            services = services.mount(wizdata_auth::service().max_decoding_message_size(max_message));
        }
        if runs(Role::Streaming) {
            services = services.mount(wizdata_streaming::service().max_decoding_message_size(max_message));
        }

        let server = GrpcServer::bind(&args.server, services).await?;
        let mut background = Vec::new();
        if let Some(db) = registry_db {
            background.push(db::watch(
                db,
                server.health(),
                wizdata_registry::SERVICE_NAME,
                args.registry.db_health_interval,
            ));
        }
        Ok(Self { server, background })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn health(&self) -> Health {
        self.server.health()
    }

    /// Serves until `stop` resolves, then shuts down gracefully.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let result = self.server.run_until(stop).await;
        for task in self.background {
            task.abort();
        }
        result
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(wizdata_common::server::shutdown_signal()).await
    }
}

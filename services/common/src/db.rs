//! The database a service keeps its tables in: embedded SQLite by default,
//! PostgreSQL when DATABASE_URL is set. Each service runs its own migrations,
//! recorded in its own migration table.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};
use sea_orm_migration::MigratorTrait;
use secrecy::ExposeSecret;

use crate::config::DatabaseConfig;
use crate::error::ApiError;
use crate::health::{Health, Reports};

/// Opens the pool. The URL never appears in errors or logs: it may carry a
/// password.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let url = match &config.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|error| anyhow::anyhow!("cannot create data dir {}: {error}", config.data_dir.display()))?;
            format!("sqlite://{}?mode=rwc", config.data_dir.join("wizdata.sqlite").display())
        }
    };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(config.db_max_connections)
        .min_connections(1)
        .connect_timeout(config.db_timeout)
        .acquire_timeout(config.db_timeout)
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .map_err(|error| anyhow::anyhow!("cannot connect to the database: {}", redact(&error)))?;
    if db.get_database_backend() == DbBackend::Sqlite {
        // WAL lets readers proceed while one writer commits; the setting is
        // stored in the file, so once is enough.
        db.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    }
    tracing::info!(backend = ?db.get_database_backend(), "database connected");
    Ok(db)
}

/// Applies the service's pending migrations.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> anyhow::Result<()> {
    M::up(db, None).await.map_err(|error| anyhow::anyhow!("migrations failed: {}", redact(&error)))
}

/// Keeps `service`'s health in step with the database: NOT_SERVING within
/// one `interval` (plus the connection timeout) of the database becoming
/// unreachable, SERVING again within one `interval` of its return.
pub fn watch(
    db: DatabaseConnection,
    health: Health,
    service: &'static str,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    crate::health::watch(health, "database", Reports::Service(service), interval, move || {
        let db = db.clone();
        async move {
            record_pool_state(&db, service);
            db.ping().await.is_ok()
        }
    })
}

/// `db_pool_connections{service, state="idle"|"in_use"}`, from the pool.
fn record_pool_state(db: &DatabaseConnection, service: &'static str) {
    let (size, idle) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        _ => return,
    };
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "idle").set(idle as f64);
    metrics::gauge!("db_pool_connections", "service" => service, "state" => "in_use")
        .set(size.saturating_sub(idle) as f64);
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        if is_connection_error(&error) {
            tracing::warn!(error = %redact(&error), "database unavailable");
            ApiError::unavailable("the database is unavailable; retry later")
        } else {
            tracing::error!(error = %redact(&error), "database error");
            ApiError::internal("internal database error")
        }
    }
}

fn is_connection_error(error: &DbErr) -> bool {
    matches!(error, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) || error.to_string().contains("connection")
}

/// The error's text with anything that looks like a connection URL removed.
fn redact(error: &DbErr) -> String {
    error
        .to_string()
        .split_whitespace()
        .map(|word| if word.contains("://") { "[url redacted]" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

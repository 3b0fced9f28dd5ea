//! The symbol registry: exchanges and the symbols the platform covers,
//! backed by SQLite or PostgreSQL through sea-orm.

mod entity;
pub mod migration;
mod seed;
mod service;
mod validate;

use sea_orm::DatabaseConnection;
use wizdata::registry::v1::registry_service_server::RegistryServiceServer;
use wizdata_common::pagination::PageTokens;

pub use migration::Migrator;
pub use service::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Registry};

/// The full gRPC name, as health checks and reflection know it.
pub const SERVICE_NAME: &str = wizdata::registry::v1::registry_service_server::SERVICE_NAME;

/// The registry's gRPC service over an already migrated database.
pub fn service(db: DatabaseConnection, page_tokens: PageTokens) -> RegistryServiceServer<Registry> {
    RegistryServiceServer::new(Registry::new(db, page_tokens))
}

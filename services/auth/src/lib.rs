//! The auth service: users (Argon2id passwords, throttled logins), API keys
//! (secrets shown once, stored hashed), and short-lived Ed25519-signed
//! tokens that every service verifies locally (`wizdata_common::auth`).

mod entity;
pub mod keys;
mod migration;
mod passwords;
mod service;
mod signing;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use wizdata::auth::v1::Tier;
use wizdata::auth::v1::auth_service_server::AuthServiceServer;
use wizdata_common::config::parse_duration;
use wizdata_common::pagination::PageTokens;

pub use keys::NewApiKey;
pub use migration::Migrator;
pub use service::Auth;

pub const SERVICE_NAME: &str = wizdata::auth::v1::auth_service_server::SERVICE_NAME;

/// How the auth service issues tokens and throttles logins.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthServiceConfig {
    /// How long issued access tokens live. Services verify tokens locally,
    /// so this is also how long a revoked API key's last token keeps working.
    #[arg(long, env = "WIZDATA_TOKEN_TTL", default_value = "5m", value_parser = parse_token_ttl)]
    pub token_ttl: Duration,

    /// Failed logins for one username before attempts are throttled.
    #[arg(long, env = "WIZDATA_LOGIN_FREE_ATTEMPTS", default_value_t = 5)]
    pub login_free_attempts: u32,

    /// Wait after the first throttled failure; each further failure doubles it.
    #[arg(long, env = "WIZDATA_LOGIN_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub login_backoff: Duration,

    /// Longest wait a throttled username is given.
    #[arg(long, env = "WIZDATA_LOGIN_MAX_BACKOFF", default_value = "15m", value_parser = parse_duration)]
    pub login_max_backoff: Duration,
}

fn parse_token_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    match ttl {
        ttl if ttl < Duration::from_secs(1) => Err("tokens must live at least 1s".into()),
        ttl if ttl > Duration::from_secs(24 * 3600) => Err("tokens must live at most 24h".into()),
        ttl => Ok(ttl),
    }
}

/// The auth service on `db` (migrated), and the task that picks up other
/// replicas' key rotations.
pub async fn service(
    db: DatabaseConnection,
    page_tokens: PageTokens,
    config: &AuthServiceConfig,
) -> anyhow::Result<(AuthServiceServer<Auth>, JoinHandle<()>)> {
    let keys = Arc::new(signing::SigningKeys::load(db.clone(), config.token_ttl).await?);
    let reload = tokio::spawn({
        let keys = keys.clone();
        async move {
            let mut ticks = tokio::time::interval(signing::RELOAD_INTERVAL);
            loop {
                ticks.tick().await;
                if let Err(error) = keys.prune().await {
                    tracing::warn!(%error, "cannot delete expired signing keys");
                }
                if let Err(error) = keys.reload().await {
                    tracing::warn!(%error, "cannot reload signing keys");
                }
            }
        }
    });
    let auth = Auth {
        db,
        keys,
        passwords: passwords::Passwords::new().await?,
        throttle: Arc::new(throttle::LoginThrottle::new(
            config.login_free_attempts,
            config.login_backoff,
            config.login_max_backoff,
        )),
        page_tokens,
        token_ttl: config.token_ttl,
    };
    Ok((AuthServiceServer::new(auth), reload))
}

/// Creates a key for a service of the mesh itself (tier internal), revoking
/// the keys an earlier start made for it.
pub async fn provision_internal_key(
    db: &DatabaseConnection,
    service: &str,
    scopes: &[&str],
) -> anyhow::Result<SecretString> {
    let owner = format!("service:{service}");
    keys::revoke_named(db, &owner, service).await?;
    let (_, secret) = keys::create(
        db,
        NewApiKey {
            name: service.to_owned(),
            owner,
            scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
            tier: Tier::Internal,
            expire_time: None,
        },
    )
    .await?;
    Ok(secret)
}

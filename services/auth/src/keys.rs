//! API keys: a secret shown once, stored only as its SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use wizdata::auth::v1::Tier;
use wizdata_common::auth::{API_KEY_PREFIX, tier_claim};
use wizdata_common::ids::{hex, random_id};

use crate::entity::api_key;

/// What a new key may do.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub owner: String,
    pub scopes: Vec<String>,
    pub tier: Tier,
    pub expire_time: Option<DateTime<Utc>>,
}

/// Stores a new key and returns it with its secret, which exists nowhere else.
pub async fn create(db: &impl ConnectionTrait, key: NewApiKey) -> Result<(api_key::Model, SecretString), DbErr> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| DbErr::Custom(format!("no randomness for an API key: {error}")))?;
    let secret = SecretString::from(format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)));
    let model = api_key::Model {
        key_id: random_id("key_", 8),
        secret_hash: secret_hash(&secret),
        name: key.name,
        owner: key.owner,
        scopes: key.scopes.join(" "),
        tier: tier_claim(key.tier).to_owned(),
        create_time: Utc::now(),
        expire_time: key.expire_time,
        revoke_time: None,
    };
    api_key::Entity::insert(model.clone().into_active_model()).exec_without_returning(db).await?;
    Ok((model, secret))
}

/// The key a secret belongs to, revoked and expired ones included.
pub async fn find_by_secret(db: &impl ConnectionTrait, secret: &SecretString) -> Result<Option<api_key::Model>, DbErr> {
    api_key::Entity::find().filter(api_key::Column::SecretHash.eq(secret_hash(secret))).one(db).await
}

/// Revokes every live key of `owner` named `name`, so a key provisioned at
/// each start (the simulated feed's) does not leave live keys behind.
pub async fn revoke_named(db: &impl ConnectionTrait, owner: &str, name: &str) -> Result<u64, DbErr> {
    let result = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokeTime, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(api_key::Column::Owner.eq(owner))
        .filter(api_key::Column::Name.eq(name))
        .filter(api_key::Column::RevokeTime.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

fn secret_hash(secret: &SecretString) -> String {
    hex(&Sha256::digest(secret.expose_secret().as_bytes()))
}

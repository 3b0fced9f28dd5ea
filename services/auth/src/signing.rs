//! The signing keys: persisted in the database so every auth replica signs
//! with the same key and tokens survive restarts. Rotation adds a key that
//! takes over signing; the previous one stays published until every token
//! it signed has expired, then it is deleted.

use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter, TransactionTrait};
use wizdata::auth::v1::Jwk;
use wizdata_common::auth::token::{self, Claims};
use wizdata_common::ids::random_id;

use crate::entity::signing_key;

/// How often a replica rereads the keys, to pick up another replica's rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

pub struct SigningKeys {
    db: DatabaseConnection,
    // A retired key stays published this long: its last token's lifetime,
    // plus the time other replicas may sign with it before they reload,
    // plus verifiers' clock leeway.
    retention: chrono::Duration,
    ring: RwLock<Ring>,
}

struct Ring {
    active_kid: String,
    active: SigningKey,
    published: Vec<Jwk>,
}

impl SigningKeys {
    /// Loads the keys, creating the first one on a fresh database.
    pub async fn load(db: DatabaseConnection, token_ttl: Duration) -> Result<Self, DbErr> {
        let retention = chrono::Duration::from_std(token_ttl + RELOAD_INTERVAL + Duration::from_secs(60))
            .expect("token lifetimes are far below chrono's range");
        let ring = current_ring(&db, retention).await?;
        Ok(Self { db, retention, ring: RwLock::new(ring) })
    }

    /// Deletes retired keys whose last token has expired.
    pub async fn prune(&self) -> Result<(), DbErr> {
        let cutoff = Utc::now() - self.retention;
        signing_key::Entity::delete_many().filter(signing_key::Column::RetireTime.lt(cutoff)).exec(&self.db).await?;
        Ok(())
    }

    /// Rereads the keys: another replica may have rotated. Read-only, so the
    /// public GetJwks can call it.
    pub async fn reload(&self) -> Result<(), DbErr> {
        let ring = current_ring(&self.db, self.retention).await?;
        *self.ring.write().expect("key ring lock is not poisoned") = ring;
        Ok(())
    }

    /// Adds a key that takes over signing and retires the others.
    pub async fn rotate(&self) -> Result<(String, DateTime<Utc>), DbErr> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetireTime, sea_orm::sea_query::Expr::value(now))
            .filter(signing_key::Column::RetireTime.is_null())
            .exec(&txn)
            .await?;
        let created = insert_key(&txn).await?;
        txn.commit().await?;
        self.reload().await?;
        Ok((created.kid, created.create_time))
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let ring = self.ring.read().expect("key ring lock is not poisoned");
        token::sign(claims, &ring.active_kid, &ring.active)
    }

    /// Every key a token may currently be signed with.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.ring.read().expect("key ring lock is not poisoned").published.clone()
    }
}

/// The keys as stored, with a new one when none is left to sign with (a
/// fresh database, or a rotation that raced a deletion).
async fn current_ring(db: &DatabaseConnection, retention: chrono::Duration) -> Result<Ring, DbErr> {
    if let Some(ring) = read_ring(db, retention).await? {
        return Ok(ring);
    }
    insert_key(db).await?;
    Ok(read_ring(db, retention).await?.expect("a key was just created"))
}

async fn insert_key(db: &impl sea_orm::ConnectionTrait) -> Result<signing_key::Model, DbErr> {
    let model = signing_key::Model {
        kid: random_id("sig_", 8),
        // 32 random bytes: an Ed25519 seed.
        private_key: random_id("", 32),
        create_time: Utc::now(),
        retire_time: None,
    };
    signing_key::Entity::insert(model.clone().into_active_model()).exec_without_returning(db).await?;
    Ok(model)
}

/// The newest unretired key signs; every key within retention is published.
async fn read_ring(db: &DatabaseConnection, retention: chrono::Duration) -> Result<Option<Ring>, DbErr> {
    let now = Utc::now();
    let mut keys = signing_key::Entity::find().all(db).await?;
    keys.retain(|key| key.retire_time.is_none_or(|retired| retired + retention > now));
    keys.sort_by(|a, b| (a.create_time, &a.kid).cmp(&(b.create_time, &b.kid)));
    let parsed: Vec<(signing_key::Model, SigningKey)> = keys
        .into_iter()
        .map(|key| {
            let seed = parse_seed(&key.private_key)
                .ok_or_else(|| DbErr::Custom(format!("signing key {} is not a 32-byte hex seed", key.kid)))?;
            Ok((key, SigningKey::from_bytes(&seed)))
        })
        .collect::<Result<_, DbErr>>()?;
    let published = parsed.iter().map(|(key, signing)| token::jwk(&key.kid, &signing.verifying_key())).collect();
    Ok(parsed.into_iter().rev().find(|(key, _)| key.retire_time.is_none()).map(|(key, signing)| Ring {
        active_kid: key.kid,
        active: signing,
        published,
    }))
}

fn parse_seed(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (index, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(seed)
}

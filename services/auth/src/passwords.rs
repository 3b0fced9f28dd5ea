//! Argon2id password hashing, off the async runtime and bounded in
//! concurrency (each hash takes ~19 MiB), with a constant-work path for
//! unknown users so a wrong password answers the same, in about the same
//! time, whether or not the user exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use wizdata_common::ids::random_id;

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    // A hash of a random password, verified against when the user does not
    // exist, so both paths cost one Argon2id verification.
    decoy_hash: String,
    permits: Semaphore,
    verifications: AtomicU64,
}

impl Passwords {
    pub async fn new() -> anyhow::Result<Self> {
        let decoy_hash = hash_blocking(SecretString::from(random_id("", 32)))?;
        let parallelism = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            inner: Arc::new(Inner {
                decoy_hash,
                permits: Semaphore::new(parallelism * 2),
                verifications: AtomicU64::new(0),
            }),
        })
    }

    /// The Argon2id PHC string of `password`, with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let _permit = self.inner.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_blocking(password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown
    /// user) a decoy is verified instead and the answer is false.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.inner.permits.acquire().await?;
        let user_exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.inner.decoy_hash.clone());
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let matches = tokio::task::spawn_blocking(move || {
            let parsed =
                PasswordHash::new(&stored).map_err(|error| anyhow::anyhow!("stored hash is unreadable: {error}"))?;
            anyhow::Ok(Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
        })
        .await??;
        Ok(matches && user_exists)
    }

    /// How many Argon2id verifications ran: each login attempt costs exactly
    /// one, whether or not its user exists.
    #[cfg(test)]
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }
}

fn hash_blocking(password: SecretString) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| anyhow::anyhow!("salt: {error}"))?;
    // Argon2::default() is Argon2id with the OWASP-recommended cost (19 MiB, 2 passes).
    let hash = Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_hash_only() {
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash(SecretString::from("correct horse battery")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(passwords.verify(SecretString::from("correct horse battery"), Some(hash.clone())).await.unwrap());
        assert!(!passwords.verify(SecretString::from("wrong horse battery"), Some(hash)).await.unwrap());
        let before = passwords.verifications();
        assert!(!passwords.verify(SecretString::from("anything at all"), None).await.unwrap());
        assert_eq!(passwords.verifications(), before + 1, "an unknown user costs one verification too");
    }
}

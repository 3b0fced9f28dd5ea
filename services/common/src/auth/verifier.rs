//! Verifies credentials locally: tokens against the auth service's published
//! keys (fetched once, again when a token names a key not yet seen, and every
//! few minutes), API keys by exchanging them once for a token that is cached
//! until shortly before it expires. No call costs a network hop once warm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::endpoints::ServiceChannel;
use ed25519_dalek::VerifyingKey;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::auth::v1::{ExchangeApiKeyRequest, GetJwksRequest};

use super::token::{self, MAX_TOKEN_BYTES, TokenError};
use super::{API_KEY_PREFIX, Caller, ERROR_DOMAIN};
use crate::config::AuthConfig;
use crate::error::{ApiError, ErrorCode};

/// Least time between two fetches of the published keys by one verifier.
const KEY_FETCH_GAP: Duration = Duration::from_millis(100);
/// Published keys are fetched again this often, so retired keys drop out.
const KEYS_MAX_AGE: Duration = Duration::from_secs(300);
/// An exchanged token is used until this long before it expires.
const EXCHANGED_TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// Most credentials remembered as verified, per kind.
const MAX_VERIFIED: usize = 10_000;

/// Verifies the credentials of incoming calls. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    auth: AuthServiceClient<ServiceChannel>,
    timeout: Duration,
    leeway_seconds: i64,
    anonymous: Caller,
    keys: RwLock<PublishedKeys>,
    // Held while fetching, so concurrent misses wait for one fetch; holds
    // when the last fetch began.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    // A token's signature is checked once (about 50 us), not on every call.
    verified_tokens: VerifiedCallers,
    exchanged_keys: VerifiedCallers,
}

#[derive(Default)]
struct PublishedKeys {
    by_kid: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
}

/// Callers whose credentials were verified, by the SHA-256 of the credential,
/// until it must be checked again. Only verified credentials get in, so
/// forgeries cannot crowd out genuine entries.
#[derive(Default)]
pub struct VerifiedCallers {
    entries: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl VerifiedCallers {
    pub fn get(&self, credential: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let entries = self.entries.lock().expect("verified callers lock is not poisoned");
        entries.get(&digest).filter(|(_, use_until)| *use_until > Instant::now()).map(|(caller, _)| caller.clone())
    }

    pub fn insert(&self, credential: &str, caller: Caller, use_for: Duration) {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut entries = self.entries.lock().expect("verified callers lock is not poisoned");
        if entries.len() >= MAX_VERIFIED {
            let now = Instant::now();
            entries.retain(|_, (_, use_until)| *use_until > now);
            if entries.len() >= MAX_VERIFIED {
                entries.clear();
            }
        }
        entries.insert(digest, (caller, Instant::now() + use_for));
    }
}

/// The credential a call presents.
enum Credential<'a> {
    None,
    Token(&'a str),
    ApiKey(&'a str),
}

impl Verifier {
    /// Verifies against the auth service reached through `auth`.
    pub fn new(auth: ServiceChannel, config: &AuthConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                auth: AuthServiceClient::new(auth),
                timeout: config.auth_timeout,
                leeway_seconds: config.token_leeway.as_secs() as i64,
                anonymous: Caller::anonymous(&config.anonymous_scopes()),
                keys: RwLock::default(),
                fetching: tokio::sync::Mutex::new(None),
                verified_tokens: VerifiedCallers::default(),
                exchanged_keys: VerifiedCallers::default(),
            }),
        }
    }

    /// The caller behind a call's headers: anonymous without credentials,
    /// UNAUTHENTICATED for bad ones, UNAVAILABLE when they cannot be checked.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match credential_of(headers)? {
            Credential::None => Ok(self.inner.anonymous.clone()),
            Credential::Token(token) => self.verify_token(token).await,
            Credential::ApiKey(key) => self.exchange(key).await,
        }
    }

    /// The scopes calls without credentials hold.
    pub fn anonymous(&self) -> &Caller {
        &self.inner.anonymous
    }

    /// Verifies an access token the auth service issued.
    pub async fn verify_token(&self, token: &str) -> Result<Caller, ApiError> {
        if token.len() <= MAX_TOKEN_BYTES
            && let Some(caller) = self.inner.verified_tokens.get(token)
        {
            return Ok(caller);
        }
        let unverified = token::parse(token).map_err(rejected)?;
        let key = self.key(unverified.kid()).await?.ok_or_else(|| rejected(TokenError::UnknownKey))?;
        let now = chrono::Utc::now();
        let claims = unverified.verify(&key, now.timestamp(), self.inner.leeway_seconds).map_err(rejected)?;
        // Good until the moment verification would call it expired.
        let expires_ms = claims.exp.saturating_add(self.inner.leeway_seconds).saturating_mul(1000);
        let valid_for = Duration::from_millis(expires_ms.saturating_sub(now.timestamp_millis()).max(0) as u64);
        let caller = Caller::from_claims(claims, token);
        self.inner.verified_tokens.insert(token, caller.clone(), valid_for);
        Ok(caller)
    }

    async fn key(&self, kid: &str) -> Result<Option<VerifyingKey>, ApiError> {
        if let Some(key) = self.cached_key(kid) {
            return Ok(Some(key));
        }
        // Boxed: a rare path (see `exchange`).
        let fetched = Box::pin(self.fetch_keys(kid)).await;
        let keys = self.inner.keys.read().expect("key cache lock is not poisoned");
        match (keys.by_kid.get(kid), fetched) {
            (Some(key), _) => Ok(Some(*key)),
            // Never fetched: the token may well be good, but nothing here can tell.
            (None, Err(error)) if keys.fetched_at.is_none() => Err(error),
            (None, _) => Ok(None),
        }
    }

    /// The key `kid` names, if known from a fetch that is not too old.
    fn cached_key(&self, kid: &str) -> Option<VerifyingKey> {
        let keys = self.inner.keys.read().expect("key cache lock is not poisoned");
        let fresh = keys.fetched_at.is_some_and(|at| at.elapsed() < KEYS_MAX_AGE);
        keys.by_kid.get(kid).filter(|_| fresh).copied()
    }

    /// Fetches the published keys. Fetches are serialised and spaced, so a
    /// flood of forged key ids waits in line instead of flooding the auth
    /// service, while a genuinely new key (a rotation) is found after at most
    /// one gap.
    async fn fetch_keys(&self, kid: &str) -> Result<(), ApiError> {
        let mut last_attempt = self.inner.fetching.lock().await;
        // Another caller may have fetched what this one needs while it waited.
        if self.cached_key(kid).is_some() {
            return Ok(());
        }
        if let Some(since) = last_attempt.map(|at| at.elapsed()) {
            tokio::time::sleep(KEY_FETCH_GAP.saturating_sub(since)).await;
        }
        *last_attempt = Some(Instant::now());
        let mut request = tonic::Request::new(GetJwksRequest {});
        request.set_timeout(self.inner.timeout);
        let response = self.inner.auth.clone().get_jwks(request).await.map_err(|status| {
            tracing::warn!(code = ?status.code(), message = status.message(), "cannot fetch the auth service's public keys");
            ApiError::unavailable("cannot verify the token: the auth service's public keys are unavailable")
        })?;
        let by_kid = response
            .into_inner()
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone(), token::verifying_key(jwk)?)))
            .collect();
        *self.inner.keys.write().expect("key cache lock is not poisoned") =
            PublishedKeys { by_kid, fetched_at: Some(Instant::now()) };
        Ok(())
    }

    /// The caller an API key stands for, exchanging it for a token when no
    /// cached token is fresh. Keys are cached by their SHA-256 only.
    async fn exchange(&self, api_key: &str) -> Result<Caller, ApiError> {
        if let Some(caller) = self.inner.exchanged_keys.get(api_key) {
            return Ok(caller);
        }
        // Boxed, as every rare path of a call is: a future holds room for its
        // largest path, and a gRPC call's state would make every call's
        // future kilobytes larger, all copied as each call starts (BENCHMARKS.md).
        Box::pin(self.exchange_with_auth(api_key)).await
    }

    /// Exchanges an API key the cache does not hold with the auth service.
    async fn exchange_with_auth(&self, api_key: &str) -> Result<Caller, ApiError> {
        let mut request = tonic::Request::new(ExchangeApiKeyRequest { api_key: api_key.to_owned() });
        request.set_timeout(self.inner.timeout);
        let response = match self.inner.auth.clone().exchange_api_key(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::InvalidArgument) => {
                return Err(ApiError::from(status));
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "cannot exchange an API key");
                return Err(ApiError::unavailable("cannot check the API key: the auth service is unavailable"));
            }
        };
        let caller = self.verify_token(&response.access_token).await?;
        let lifetime = caller.expires_at.unwrap_or_default() - chrono::Utc::now().timestamp();
        let use_for = Duration::from_secs(lifetime.max(0) as u64).saturating_sub(EXCHANGED_TOKEN_MARGIN);
        self.inner.exchanged_keys.insert(api_key, caller.clone(), use_for);
        Ok(caller)
    }
}

/// UNAUTHENTICATED for a refused token, with the reason in an ErrorInfo.
fn rejected(error: TokenError) -> ApiError {
    unauthenticated(error.reason(), error.to_string())
}

/// UNAUTHENTICATED with a machine-readable reason.
pub fn unauthenticated(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message).with_error_info(reason, ERROR_DOMAIN, [])
}

fn malformed(message: &str) -> ApiError {
    unauthenticated("CREDENTIALS_MALFORMED", message)
}

/// Finds the one credential a call carries: `authorization: Bearer <token
/// or API key>` or `x-api-key: <API key>`.
fn credential_of(headers: &HeaderMap) -> Result<Credential<'_>, ApiError> {
    let authorization = headers.get(http::header::AUTHORIZATION);
    let api_key = headers.get("x-api-key");
    let value = match (authorization, api_key) {
        (None, None) => return Ok(Credential::None),
        (Some(_), Some(_)) => {
            return Err(malformed("send one credential: an authorization header or x-api-key, not both"));
        }
        (Some(value), None) | (None, Some(value)) => value,
    };
    if value.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(rejected(TokenError::TooLarge));
    }
    let text = value.to_str().map_err(|_| malformed("the credential header must be printable ASCII"))?;
    if authorization.is_none() {
        return match text.trim() {
            key if key.starts_with(API_KEY_PREFIX) && !key.contains(char::is_whitespace) => Ok(Credential::ApiKey(key)),
            _ => Err(malformed("x-api-key must hold a WizData API key (wiz_...)")),
        };
    }
    let usage = "use `authorization: Bearer <token or API key>`";
    let (scheme, credential) = text.trim().split_once(' ').ok_or_else(|| malformed(usage))?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() || credential.contains(char::is_whitespace) {
        return Err(malformed(usage));
    }
    Ok(match credential.starts_with(API_KEY_PREFIX) {
        true => Credential::ApiKey(credential),
        false => Credential::Token(credential),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    fn reason(result: Result<Credential<'_>, ApiError>) -> String {
        let status = tonic::Status::from(result.err().expect("refused"));
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        use tonic_types::StatusExt;
        status.get_details_error_info().expect("error info").reason
    }

    #[test]
    fn verified_callers_are_remembered_only_for_as_long_as_given() {
        let verified = VerifiedCallers::default();
        verified.insert("token-a", Caller::anonymous(&["registry:read".into()]), Duration::from_secs(60));
        verified.insert("token-b", Caller::anonymous(&[]), Duration::ZERO);
        assert_eq!(
            verified.get("token-a").map(|caller| caller.scopes.to_vec()),
            Some(vec!["registry:read".to_owned()])
        );
        assert!(verified.get("token-b").is_none(), "expired entries are not served");
        assert!(verified.get("token-c").is_none());
    }

    #[test]
    fn credentials_are_found_in_either_header() {
        assert!(matches!(credential_of(&headers(&[])), Ok(Credential::None)));
        assert!(matches!(
            credential_of(&headers(&[("authorization", "Bearer a.b.c")])),
            Ok(Credential::Token("a.b.c"))
        ));
        assert!(matches!(
            credential_of(&headers(&[("authorization", "bearer wiz_k")])),
            Ok(Credential::ApiKey("wiz_k"))
        ));
        assert!(matches!(credential_of(&headers(&[("x-api-key", "wiz_k")])), Ok(Credential::ApiKey("wiz_k"))));
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "a.b.c"] {
            assert_eq!(reason(credential_of(&headers(&[("authorization", bad)]))), "CREDENTIALS_MALFORMED", "{bad}");
        }
        assert_eq!(reason(credential_of(&headers(&[("x-api-key", "not-a-key")]))), "CREDENTIALS_MALFORMED");
        let both = headers(&[("authorization", "Bearer a.b.c"), ("x-api-key", "wiz_k")]);
        assert_eq!(reason(credential_of(&both)), "CREDENTIALS_MALFORMED");
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(reason(credential_of(&headers(&[("authorization", &huge)]))), "TOKEN_TOO_LARGE");
    }
}

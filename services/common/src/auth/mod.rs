//! Authentication and authorization, enforced by every service.
//!
//! Each server's tower stack runs [`layer::AuthLayer`]: it verifies the
//! caller's bearer token locally against the auth service's published keys
//! (cached by [`verifier::Verifier`]; an API key is exchanged once for a
//! token and the token cached), reads the scope the RPC needs from the
//! contract ([`access::AccessRules`]) and answers UNAUTHENTICATED or
//! PERMISSION_DENIED with details before the service sees the call. The
//! service finds the verified [`Caller`] in the request's extensions.

pub mod access;
pub mod credentials;
pub mod layer;
pub mod token;
pub mod verifier;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use wizdata::auth::v1::Tier;

/// The ErrorInfo domain of authentication and authorization failures.
pub const ERROR_DOMAIN: &str = "auth.wizdata";
/// The subject of calls without credentials.
pub const ANONYMOUS_SUBJECT: &str = "anonymous";
/// The prefix of every API key secret, so a key is recognisable in a
/// `Bearer` header (and by secret scanners).
pub const API_KEY_PREFIX: &str = "wiz_";

/// Who is calling, as verified by the auth layer.
#[derive(Clone, Debug)]
pub struct Caller {
    pub subject: String,
    /// The scopes the credentials carry (sorted, without duplicates);
    /// shared, as a call's caller is cloned on every call.
    pub scopes: Arc<[String]>,
    pub tier: Tier,
    /// True when the call carried no credentials.
    pub anonymous: bool,
    /// When the credentials expire, in seconds since the epoch.
    pub expires_at: Option<i64>,
    /// The API key the credentials came from, if any.
    pub key_id: Option<String>,
    /// The verified token, passed on when this call makes calls of its own.
    token: Option<SecretString>,
}

impl Caller {
    pub fn anonymous(scopes: &[String]) -> Self {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        Self {
            subject: ANONYMOUS_SUBJECT.into(),
            scopes: scopes.into(),
            tier: Tier::Anonymous,
            anonymous: true,
            expires_at: None,
            key_id: None,
            token: None,
        }
    }

    fn from_claims(claims: token::Claims, token: &str) -> Self {
        let mut scopes: Vec<String> = claims.scopes().map(str::to_owned).collect();
        scopes.sort();
        scopes.dedup();
        Self {
            subject: claims.sub,
            scopes: scopes.into(),
            tier: tier_from_claim(&claims.tier),
            anonymous: false,
            expires_at: Some(claims.exp),
            key_id: claims.key_id,
            token: Some(SecretString::from(token.to_owned())),
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.binary_search_by(|held| held.as_str().cmp(scope)).is_ok()
    }

    /// Makes `request` (a call this service makes while serving the caller)
    /// carry the caller's credentials, so the next service sees the same
    /// subject and scopes, and the trace context, so it joins the trace.
    pub fn forward<T>(&self, request: &mut tonic::Request<T>) {
        let mut trace = http::HeaderMap::new();
        crate::telemetry::inject_trace_context(&mut trace);
        for (name, value) in &trace {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::AsciiMetadataKey::from_bytes(name.as_ref()),
                tonic::metadata::AsciiMetadataValue::try_from(value.as_bytes()),
            ) {
                request.metadata_mut().insert(key, value);
            }
        }
        if let Some(header) = self.authorization()
            && let Ok(mut value) = tonic::metadata::AsciiMetadataValue::try_from(header.as_bytes())
        {
            value.set_sensitive(true);
            request.metadata_mut().insert("authorization", value);
        }
    }

    /// `Bearer <the verified token>`, marked sensitive, for calls made as
    /// this caller; `None` for anonymous callers.
    pub fn authorization(&self) -> Option<http::HeaderValue> {
        let token = self.token.as_ref()?;
        let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose_secret())).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The caller of a request the auth layer let through.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }

    /// The caller to act for while serving `request`: the one the auth layer
    /// verified, or (outside a server) an anonymous caller with no scopes.
    pub fn serving<T>(request: &tonic::Request<T>) -> Self {
        Self::of(request).cloned().unwrap_or_else(|| Self::anonymous(&[]))
    }
}

/// The address of the client behind a call: its peer, or, when the peer is
/// a trusted proxy (the gateway), the client address the proxy appended to
/// `x-forwarded-for`. Anonymous callers are told apart by it.
pub fn client_address<T>(
    request: &tonic::Request<T>,
    trusted_proxies: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = request.remote_addr()?.ip();
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    // The last entry is the one the trusted proxy added; earlier ones are
    // whatever the client claimed.
    let forwarded = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|value| value.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// A tier as tokens name it.
pub fn tier_claim(tier: Tier) -> &'static str {
    match tier {
        Tier::Unspecified | Tier::Anonymous => "anonymous",
        Tier::Standard => "standard",
        Tier::Premium => "premium",
        Tier::Internal => "internal",
    }
}

/// The tier of a name as tokens (and the command line) spell it.
pub fn tier_named(name: &str) -> Option<Tier> {
    match name {
        "anonymous" => Some(Tier::Anonymous),
        "standard" => Some(Tier::Standard),
        "premium" => Some(Tier::Premium),
        "internal" => Some(Tier::Internal),
        _ => None,
    }
}

/// The tier a token names; anything unknown gets the least.
pub fn tier_from_claim(claim: &str) -> Tier {
    tier_named(claim).unwrap_or(Tier::Anonymous)
}

/// Tiers by privilege: anonymous < standard < premium < internal.
pub fn tier_rank(tier: Tier) -> u8 {
    match tier {
        Tier::Unspecified | Tier::Anonymous => 0,
        Tier::Standard => 1,
        Tier::Premium => 2,
        Tier::Internal => 3,
    }
}

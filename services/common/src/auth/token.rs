//! Access tokens: compact JWS (RFC 7515) signed with Ed25519 (`EdDSA`,
//! RFC 8037), carrying subject, scopes, tier and expiry.
//!
//! Hand-written over ed25519-dalek rather than a general JWT crate, whose
//! Ed25519 support comes with RSA and ECDSA stacks this mesh never uses.
//! What keeps it safe is how little it accepts: exactly one algorithm (so
//! `alg: none` and HS256-with-the-public-key forgeries are refused before
//! any key is touched), a key id naming a published key, strict signature
//! verification, no `crit` extensions, and a size cap checked first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use wizdata::auth::v1::Jwk;

/// The one signature algorithm tokens may name.
pub const ALGORITHM: &str = "EdDSA";
/// The `iss` of every token the auth service issues.
pub const ISSUER: &str = "wizdata-auth";
/// Longest credential accepted. Tokens the auth service issues are well
/// under 1 KiB; anything larger is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// What a token asserts about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The subject: `user:<name>`, or whoever owns the API key.
    pub sub: String,
    /// Space-separated scopes, as in RFC 8693.
    pub scope: String,
    /// Rate-limit tier: anonymous, standard, premium or internal.
    pub tier: String,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Expires at, in seconds since the epoch.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The API key the token was exchanged for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Claims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }
}

/// Why a token was refused. Messages never quote the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    TooLarge,
    Malformed(&'static str),
    AlgorithmRejected,
    UnknownKey,
    BadSignature,
    WrongIssuer,
    Expired,
    NotYetValid,
}

impl TokenError {
    /// A stable machine-readable reason (google.rpc.ErrorInfo).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "TOKEN_TOO_LARGE",
            Self::Malformed(_) => "TOKEN_MALFORMED",
            Self::AlgorithmRejected => "TOKEN_ALGORITHM_REJECTED",
            Self::UnknownKey => "TOKEN_SIGNING_KEY_UNKNOWN",
            Self::BadSignature => "TOKEN_SIGNATURE_INVALID",
            Self::WrongIssuer => "TOKEN_ISSUER_INVALID",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the token is larger than {MAX_TOKEN_BYTES} bytes"),
            Self::Malformed(why) => write!(f, "the token is malformed: {why}"),
            Self::AlgorithmRejected => write!(f, "the token must be signed with {ALGORITHM}"),
            Self::UnknownKey => f.write_str("the token names a signing key the auth service does not publish"),
            Self::BadSignature => f.write_str("the token's signature does not verify"),
            Self::WrongIssuer => write!(f, "the token was not issued by {ISSUER}"),
            Self::Expired => f.write_str("the token has expired; get a new one"),
            Self::NotYetValid => f.write_str("the token was issued in the future; check the clocks"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Signs `claims` with `key`, naming it `kid` so verifiers pick its public half.
pub fn sign(claims: &Claims, kid: &str, key: &SigningKey) -> String {
    let header = serde_json::json!({ "alg": ALGORITHM, "typ": "JWT", "kid": kid });
    let claims = serde_json::to_vec(claims).expect("claims serialise to JSON");
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A token whose shape and header were checked, not yet its signature.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: Signature,
}

/// Checks a token's size, shape and header; the key id it names is then
/// looked up and handed to [`UnverifiedToken::verify`].
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three base64url parts separated by dots"));
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed("the header is not base64url"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| TokenError::Malformed("the header is not a JSON object"))?;
    if header.get("alg").and_then(|alg| alg.as_str()) != Some(ALGORITHM) {
        return Err(TokenError::AlgorithmRejected);
    }
    if header.contains_key("crit") {
        return Err(TokenError::Malformed("critical header extensions are not supported"));
    }
    let kid = header
        .get("kid")
        .and_then(|kid| kid.as_str())
        .ok_or(TokenError::Malformed("the header names no key id (kid)"))?
        .to_owned();
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(TokenError::Malformed("the signature is not 64 base64url-encoded bytes"))?;
    let signing_input = &token[..token.rfind('.').expect("three parts were found")];
    Ok(UnverifiedToken { kid, signing_input, payload, signature: Signature::from_bytes(&signature) })
}

impl UnverifiedToken<'_> {
    /// The id of the key the token claims to be signed with.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies the signature with `key`, then the claims at `now` (seconds
    /// since the epoch), tolerating `leeway_seconds` of clock skew.
    pub fn verify(self, key: &VerifyingKey, now: i64, leeway_seconds: i64) -> Result<Claims, TokenError> {
        key.verify_strict(self.signing_input.as_bytes(), &self.signature).map_err(|_| TokenError::BadSignature)?;
        let payload =
            URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed("the payload lacks required claims"))?;
        if claims.iss != ISSUER {
            return Err(TokenError::WrongIssuer);
        }
        if now >= claims.exp.saturating_add(leeway_seconds) {
            return Err(TokenError::Expired);
        }
        if claims.iat > now.saturating_add(leeway_seconds) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// The public half of a signing key as a JWK (RFC 8037).
pub fn jwk(kid: &str, key: &VerifyingKey) -> Jwk {
    Jwk {
        kid: kid.to_owned(),
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        alg: ALGORITHM.into(),
        r#use: "sig".into(),
    }
}

/// The verifying key a JWK publishes, if it is an Ed25519 signing key.
pub fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != ALGORITHM || jwk.r#use != "sig" {
        return None;
    }
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&jwk.x).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims(iat: i64, exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "user:ada".into(),
            scope: "marketdata:read registry:write".into(),
            tier: "standard".into(),
            iat,
            exp,
            jti: "t1".into(),
            key_id: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_and_no_other() {
        let token = sign(&claims(100, 200), "k1", &key(1));
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.kid(), "k1");
        let verified = parsed.verify(&key(1).verifying_key(), 150, 0).unwrap();
        assert_eq!(verified.scopes().collect::<Vec<_>>(), ["marketdata:read", "registry:write"]);
        assert_eq!(parse(&token).unwrap().verify(&key(2).verifying_key(), 150, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_and_issue_time_honour_the_leeway() {
        let token = sign(&claims(100, 200), "k1", &key(1));
        let public = key(1).verifying_key();
        assert_eq!(parse(&token).unwrap().verify(&public, 200, 0), Err(TokenError::Expired));
        assert!(parse(&token).unwrap().verify(&public, 200, 5).is_ok());
        assert_eq!(parse(&token).unwrap().verify(&public, 90, 0), Err(TokenError::NotYetValid));
    }

    #[test]
    fn the_header_is_checked_before_any_key_is_used() {
        let none =
            format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(parse(&none).unwrap_err(), TokenError::AlgorithmRejected);
        assert_eq!(parse("a.b").unwrap_err().reason(), "TOKEN_MALFORMED");
        assert_eq!(parse(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(), TokenError::TooLarge);
    }

    #[test]
    fn jwks_round_trip_the_public_key() {
        let public = key(3).verifying_key();
        assert_eq!(verifying_key(&jwk("k3", &public)), Some(public));
        assert_eq!(verifying_key(&Jwk { kty: "oct".into(), ..jwk("k3", &public) }), None);
    }
}

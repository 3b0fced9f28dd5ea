//! Page sizes and signed page tokens, shared by every List RPC.
//!
//! A page token carries the cursor (the sort key of the last row returned)
//! and a fingerprint of the request's filters, signed with HMAC-SHA256.
//! Keyset cursors make a page walk stable while rows are added; the
//! signature turns a tampered token into a clear INVALID_ARGUMENT instead of
//! a silent jump, and the fingerprint refuses a token replayed against other
//! filters.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

const TOKEN_VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const SIGNATURE_LEN: usize = 16;

/// The page size to use for a request's `page_size`: `default` for 0, an
/// INVALID_ARGUMENT for negative values or values above `max`.
pub fn page_size(requested: i32, default: u32, max: u32) -> Result<u32, String> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(format!("must not be negative (got {n})")),
        n if n as u32 > max => Err(format!("must be at most {max} (got {n})")),
        n => Ok(n as u32),
    }
}

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens { key: [REDACTED] }")
    }
}

impl PageTokens {
    /// Tokens signed with `secret`, or with a random per-process key.
    pub fn new(secret: Option<&SecretString>) -> Self {
        let key = match secret {
            Some(secret) => Sha256::digest(secret.expose_secret().as_bytes()).into(),
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).expect("the OS random number generator is available");
                key
            }
        };
        Self { key }
    }

    /// A token that resumes after `cursor` (the sort key of the last row
    /// returned) for a request with these `filters` (any stable encoding of
    /// every filter field).
    pub fn encode(&self, filters: &[u8], cursor: &str) -> String {
        let mut payload = Vec::with_capacity(1 + FINGERPRINT_LEN + cursor.len() + SIGNATURE_LEN);
        payload.push(TOKEN_VERSION);
        payload.extend_from_slice(&fingerprint(filters));
        payload.extend_from_slice(cursor.as_bytes());
        let signature = self.sign(&payload);
        payload.extend_from_slice(&signature);
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// The cursor in `token`, or `None` for the first page (empty token).
    /// Errors are INVALID_ARGUMENT on the `page_token` field.
    pub fn decode(&self, token: &str, filters: &[u8]) -> Result<Option<String>, ApiError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = |why: &str| ApiError::invalid_field("page_token", why);
        let not_ours = || invalid("is not a page token this service issued");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| not_ours())?;
        if bytes.len() < 1 + FINGERPRINT_LEN + SIGNATURE_LEN || bytes[0] != TOKEN_VERSION {
            return Err(not_ours());
        }
        let (payload, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        if !self.verify(payload, signature) {
            return Err(invalid("was modified or issued by another deployment"));
        }
        if payload[1..1 + FINGERPRINT_LEN] != fingerprint(filters) {
            return Err(invalid("belongs to a request with other filters; repeat the first page's filters"));
        }
        let cursor = std::str::from_utf8(&payload[1 + FINGERPRINT_LEN..]).map_err(|_| not_ours())?;
        Ok(Some(cursor.to_owned()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    fn sign(&self, payload: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut mac = self.mac();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        full[..SIGNATURE_LEN].try_into().expect("SHA-256 output is 32 bytes")
    }

    fn verify(&self, payload: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(payload);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(signature).is_ok()
    }
}

fn fingerprint(filters: &[u8]) -> [u8; FINGERPRINT_LEN] {
    Sha256::digest(filters)[..FINGERPRINT_LEN].try_into().expect("digest is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(Some(&SecretString::from("test key")))
    }

    fn field_of(error: ApiError) -> String {
        let status = tonic::Status::from(error);
        use tonic_types::StatusExt;
        status.get_details_bad_request().unwrap().field_violations[0].field.clone()
    }

    #[test]
    fn round_trips_the_cursor() {
        let token = tokens().encode(b"exchange=JSE", "NPN");
        assert_eq!(tokens().decode(&token, b"exchange=JSE").unwrap().as_deref(), Some("NPN"));
        assert_eq!(tokens().decode("", b"exchange=JSE").unwrap(), None);
    }

    #[test]
    fn refuses_tampered_tokens() {
        let token = tokens().encode(b"", "NPN");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let cursor_at = 1 + FINGERPRINT_LEN;
        bytes[cursor_at] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(field_of(tokens().decode(&tampered, b"").unwrap_err()), "page_token");
        assert!(tokens().decode("not base64!", b"").is_err());
        assert!(tokens().decode("AAAA", b"").is_err());
    }

    #[test]
    fn refuses_tokens_from_other_filters_or_keys() {
        let token = tokens().encode(b"exchange=JSE", "NPN");
        let error = tokens().decode(&token, b"exchange=NASDAQ").unwrap_err();
        assert!(error.message().contains("other filters"), "{}", error.message());
        let stranger = PageTokens::new(Some(&SecretString::from("other key")));
        assert!(stranger.decode(&token, b"exchange=JSE").is_err());
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(page_size(0, 50, 1000), Ok(50));
        assert_eq!(page_size(1000, 50, 1000), Ok(1000));
        assert!(page_size(-1, 50, 1000).is_err());
        assert!(page_size(1001, 50, 1000).is_err());
    }
}

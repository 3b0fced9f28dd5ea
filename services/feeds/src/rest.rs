//! A provider's REST API: GET with a deadline, statuses typed into
//! [`FeedError`]. URLs may carry an API key, so no error here names one.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::FeedError;

/// Waited after a 429 that does not say how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Rest {
    client: reqwest::Client,
    base: String,
}

impl Rest {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        Self::with_key_header(base, timeout, None)
    }

    /// A client that sends an API key in header `name` on every call; the
    /// value is marked sensitive, so no debug output of a request shows it.
    pub fn with_key_header(
        base: &str,
        timeout: Duration,
        key: Option<(&'static str, &secrecy::SecretString)>,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        crate::install_tls_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some((name, key)) = key {
            let mut value = reqwest::header::HeaderValue::from_str(key.expose_secret())
                .map_err(|_| anyhow::anyhow!("the API key is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let client =
            reqwest::Client::builder().timeout(timeout).user_agent("wizdata-feeds").default_headers(headers).build()?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned() })
    }

    /// GETs `path_and_query` under the base URL and parses the JSON answer.
    pub async fn get_json(&self, path_and_query: &str) -> Result<serde_json::Value, FeedError> {
        let url = format!("{}{path_and_query}", self.base);
        let response =
            self.client.get(&url).send().await.map_err(|error| FeedError::Connect(error.without_url().to_string()))?;
        let status = response.status().as_u16();
        let retry = retry_after(response.headers());
        let body = response.bytes().await.map_err(|error| FeedError::Closed(Some(error.without_url().to_string())))?;
        match status {
            200..=299 => serde_json::from_slice(&body)
                .map_err(|error| FeedError::Protocol(format!("the answer is not JSON: {error}"))),
            429 | 418 => Err(FeedError::RateLimited(retry)),
            401 | 403 => Err(FeedError::Unauthorized(error_message(&body))),
            _ => Err(FeedError::Http { status, message: error_message(&body) }),
        }
    }
}

/// The provider's own words from an error body: its `msg`, `message` or
/// `error` field when the body is JSON, else the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        for field in ["msg", "message", "error"] {
            if let Some(text) = json.get(field).and_then(|value| value.as_str()) {
                return text.to_owned();
            }
        }
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// A 429's Retry-After in seconds, or the default wait.
pub fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_read_in_the_providers_words() {
        assert_eq!(error_message(br#"{"code":-1121,"msg":"Invalid symbol."}"#), "Invalid symbol.");
        assert_eq!(error_message(br#"{"message":"Unauthorized."}"#), "Unauthorized.");
        assert_eq!(error_message(b"<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
        assert_eq!(error_message(&[b'x'; 500]).len(), 200, "a long body is cut");
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_defaults_to_a_minute() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), DEFAULT_RETRY_AFTER);
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(7));
        headers.insert(reqwest::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), DEFAULT_RETRY_AFTER, "a date is not trusted to this clock");
    }
}

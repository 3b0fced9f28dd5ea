//! A call's deadline, taken from the caller's `grpc-timeout` and passed on to
//! the calls it makes, so work done for a caller who has given up stops
//! everywhere at once.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::{ApiError, ErrorCode};

/// Named once: a name built from text is parsed again at every lookup.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// When a call must be answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

impl Deadline {
    /// The caller's deadline, or `otherwise` from now when it set none (or
    /// set one that cannot be read).
    pub fn of<T>(request: &tonic::Request<T>, otherwise: Duration) -> Self {
        Self::after(grpc_timeout_in(request.metadata().as_ref()).unwrap_or(otherwise))
    }

    pub fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// The time left, or DEADLINE_EXCEEDED when none is.
    pub fn remaining(&self) -> Result<Duration, ApiError> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ApiError::new(ErrorCode::DeadlineExceeded, "the call's deadline passed"));
        }
        Ok(left)
    }

    /// `message` as an outgoing request carrying the time left.
    pub fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ApiError> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.remaining()?);
        Ok(request)
    }

    pub fn has_passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// The timeout the `grpc-timeout` header in `headers` asks for, if it has
/// one that can be read.
pub fn grpc_timeout_in(headers: &HeaderMap) -> Option<Duration> {
    headers.get(GRPC_TIMEOUT).and_then(|value| parse_grpc_timeout(value.to_str().ok()?))
}

/// `timeout` as a `grpc-timeout` value, to pass a deadline on.
pub fn grpc_timeout_value(timeout: Duration) -> HeaderValue {
    // Milliseconds fit 8 digits up to 27 hours; beyond that, seconds.
    match u64::try_from(timeout.as_millis().max(1)) {
        Ok(millis) if millis < 100_000_000 => digits_and_unit(millis, b'm'),
        _ => digits_and_unit(timeout.as_secs().min(99_999_999), b'S'),
    }
}

/// `amount` (at most eight digits) then `unit`. Written by hand: this is
/// on every call the gateway forwards, and `format!` cost several times more.
fn digits_and_unit(amount: u64, unit: u8) -> HeaderValue {
    let mut text = [0u8; 9];
    let mut start = text.len() - 1;
    text[start] = unit;
    let mut rest = amount;
    loop {
        start -= 1;
        text[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[start..]).expect("digits and a unit are a valid header value")
}

/// A `grpc-timeout` value: at most eight digits and a unit
/// (Hours, Minutes, Seconds, milliseconds, microseconds, nanoseconds).
pub fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_grpc_timeout_unit_and_rejects_malformed_ones() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "S", "5", "123456789S", "-1S", "1.5S", "5s", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn deadlines_are_passed_on_in_units_the_header_can_hold() {
        for timeout in [Duration::from_millis(1500), Duration::from_secs(200_000)] {
            let encoded = grpc_timeout_value(timeout);
            assert_eq!(parse_grpc_timeout(encoded.to_str().unwrap()), Some(timeout), "{encoded:?}");
        }
        assert_eq!(grpc_timeout_value(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout_value(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout_value(Duration::ZERO), "1m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(10)), "10m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(99_999_999)), "99999999m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(100_000_000)), "100000S");
        assert_eq!(grpc_timeout_value(Duration::MAX), "99999999S", "at most eight digits");
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_timeout_in(&headers), None);
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("250m"));
        assert_eq!(grpc_timeout_in(&headers), Some(Duration::from_millis(250)));
        headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(grpc_timeout_in(&headers), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_callers_deadline_is_passed_on_shrinking_as_time_goes_by() {
        let mut incoming = tonic::Request::new(());
        incoming.set_timeout(Duration::from_millis(800));
        let deadline = Deadline::of(&incoming, Duration::from_secs(60));
        tokio::time::advance(Duration::from_millis(300)).await;

        let outgoing = deadline.request(()).unwrap();
        assert_eq!(grpc_timeout_in(outgoing.metadata().as_ref()), Some(Duration::from_millis(500)));

        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(deadline.has_passed());
        assert_eq!(deadline.request(()).unwrap_err().code(), ErrorCode::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_caller_deadline_the_fallback_applies() {
        let deadline = Deadline::of(&tonic::Request::new(()), Duration::from_secs(5));
        assert_eq!(deadline.remaining().unwrap(), Duration::from_secs(5));
    }
}

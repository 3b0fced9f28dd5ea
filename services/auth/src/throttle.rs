//! Login throttling per username: a few free failures, then each further
//! failure doubles the wait before the next attempt is heard. Keyed by the
//! name asked for, so unknown users are throttled exactly like real ones.
//!
//! Kept per auth replica: with N replicas behind a balancer a guesser gets at
//! most N times the attempts, still exponentially slowed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Names remembered at once; beyond this, names whose wait is over are forgotten.
const MAX_TRACKED: usize = 100_000;

pub struct LoginThrottle {
    free_attempts: u32,
    backoff: Duration,
    max_backoff: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl LoginThrottle {
    pub fn new(free_attempts: u32, backoff: Duration, max_backoff: Duration) -> Self {
        Self { free_attempts, backoff, max_backoff, failures: Mutex::default() }
    }

    /// `Err(wait)` while `username` must wait before trying again.
    pub fn check(&self, username: &str) -> Result<(), Duration> {
        let failures = self.failures.lock().expect("throttle lock is not poisoned");
        let Some(entry) = failures.get(username) else { return Ok(()) };
        let ready_at = entry.last + self.wait_after(entry.count);
        match ready_at.checked_duration_since(Instant::now()) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, username: &str) {
        let mut failures = self.failures.lock().expect("throttle lock is not poisoned");
        if failures.len() >= MAX_TRACKED {
            let now = Instant::now();
            failures.retain(|_, entry| now.duration_since(entry.last) < self.max_backoff);
        }
        let entry = failures.entry(username.to_owned()).or_insert(Failures { count: 0, last: Instant::now() });
        entry.count = entry.count.saturating_add(1);
        entry.last = Instant::now();
    }

    pub fn succeeded(&self, username: &str) {
        self.failures.lock().expect("throttle lock is not poisoned").remove(username);
    }

    /// The wait after `count` consecutive failures.
    fn wait_after(&self, count: u32) -> Duration {
        if count < self.free_attempts {
            return Duration::ZERO;
        }
        let doublings = (count - self.free_attempts).min(30);
        self.backoff.saturating_mul(1 << doublings).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_beyond_the_free_ones_double_the_wait_up_to_the_cap() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(throttle.wait_after(2), Duration::ZERO);
        assert_eq!(throttle.wait_after(3), Duration::from_secs(1));
        assert_eq!(throttle.wait_after(4), Duration::from_secs(2));
        assert_eq!(throttle.wait_after(6), Duration::from_secs(5));
        assert_eq!(throttle.wait_after(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_throttled_name_waits_and_a_success_forgets_it() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(60), Duration::from_secs(600));
        throttle.failed("ada");
        assert!(throttle.check("ada").is_ok());
        throttle.failed("ada");
        let wait = throttle.check("ada").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(throttle.check("bob").is_ok(), "other names are not affected");
        throttle.succeeded("ada");
        assert!(throttle.check("ada").is_ok());
    }
}

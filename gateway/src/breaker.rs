//! A circuit breaker: after enough consecutive failures, stop trying for a
//! while and fail (or fall back) at once instead of waiting on every call;
//! then let one call through to see whether the other side is back.
//!
//! Lock-free: one counter and one deadline, so the check costs a few atomic
//! loads on the hot path.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Breaker {
    failures_to_open: u32,
    cooldown: Duration,
    consecutive_failures: AtomicU32,
    // Microseconds since `epoch` until which calls are refused; 0 when closed.
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            cooldown,
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether a call may go through. While open, no; once the cooldown has
    /// passed, exactly one caller gets yes (the trial) and the rest keep
    /// getting no until the trial's outcome is recorded.
    pub fn allows(&self) -> bool {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return true;
        }
        let now = self.now();
        if now < open_until {
            return false;
        }
        // The trial: whoever moves the deadline on first.
        let next = now + self.cooldown.as_micros() as u64;
        self.open_until.compare_exchange(open_until, next, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Release);
        }
    }

    /// Records a failure; returns true when this one opened the circuit.
    pub fn record_failure(&self) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures < self.failures_to_open {
            return false;
        }
        let until = (self.now() + self.cooldown.as_micros() as u64).max(1);
        self.open_until.swap(until, Ordering::AcqRel) == 0
    }

    /// True while calls are being refused (or only a trial is let through).
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// How long until the next trial.
    pub fn retry_after(&self) -> Duration {
        let open_until = self.open_until.load(Ordering::Acquire);
        Duration::from_micros(open_until.saturating_sub(self.now()))
    }

    fn now(&self) -> u64 {
        // Never 0, which means closed.
        self.epoch.elapsed().as_micros() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_lets_one_trial_through_after_the_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        assert!(breaker.allows());
        assert!(!breaker.record_failure());
        breaker.record_success();
        assert!(!breaker.record_failure() && !breaker.record_failure());
        assert!(breaker.allows(), "a success in between resets the count");
        assert!(breaker.record_failure(), "the third failure in a row opens it");
        assert!(breaker.is_open());
        assert!(!breaker.allows());
        assert!(breaker.retry_after() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows(), "one trial after the cooldown");
        assert!(!breaker.allows(), "only one");
        breaker.record_failure();
        assert!(!breaker.allows(), "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allows());
        breaker.record_success();
        assert!(!breaker.is_open());
        assert!(breaker.allows() && breaker.allows(), "closed again: everyone goes through");
    }
}

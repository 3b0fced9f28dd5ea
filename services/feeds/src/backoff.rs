//! Reconnect delays that double from `base` up to `max`, each with half of
//! it random, so many feeds cut at once do not return in step.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: StdRng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, attempt: 0, rng: StdRng::from_os_rng() }
    }

    /// The delay before the next attempt: between half and all of
    /// `base * 2^attempts`, capped at `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(self.rng.random::<f64>())
    }

    /// After a healthy connection, the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_their_jitter_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for ceiling_ms in [100, 200, 400, 800, 1000, 1000] {
            let delay = backoff.next_delay().as_millis();
            assert!(
                (ceiling_ms / 2..=ceiling_ms).contains(&delay),
                "{delay} ms within [{}, {ceiling_ms}]",
                ceiling_ms / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}

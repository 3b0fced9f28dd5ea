//! The gateway's counters, served as Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ratelimit::Mode;

/// Cheap to clone; every clone counts into the same totals.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    // [allowed, limited] x [redis, local]
    rate_limit: [[AtomicU64; 2]; 2],
    retries: AtomicU64,
    retries_refused_by_budget: AtomicU64,
    breaker_rejections: AtomicU64,
    no_healthy_endpoint: AtomicU64,
}

impl Metrics {
    pub fn rate_limit_decision(&self, allowed: bool, mode: Mode) {
        let outcome = usize::from(!allowed);
        let mode = usize::from(mode == Mode::Local);
        self.inner.rate_limit[outcome][mode].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retry(&self, sent: bool) {
        match sent {
            true => &self.inner.retries,
            false => &self.inner.retries_refused_by_budget,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub fn breaker_rejection(&self) {
        self.inner.breaker_rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn no_healthy_endpoint(&self) {
        self.inner.no_healthy_endpoint.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition; `mode` is the rate limiter's mode now.
    pub fn render(&self, mode: Mode) -> String {
        let counters = &self.inner;
        let mut text = String::new();
        text.push_str(
            "# HELP gateway_rate_limit_decisions_total Rate-limit decisions by outcome and by who decided.\n",
        );
        text.push_str("# TYPE gateway_rate_limit_decisions_total counter\n");
        for (outcome_at, outcome) in ["allowed", "limited"].iter().enumerate() {
            for (mode_at, mode) in [Mode::Shared, Mode::Local].iter().enumerate() {
                let count = counters.rate_limit[outcome_at][mode_at].load(Ordering::Relaxed);
                let _ = writeln!(
                    text,
                    "gateway_rate_limit_decisions_total{{outcome=\"{outcome}\",mode=\"{}\"}} {count}",
                    mode.as_str()
                );
            }
        }
        text.push_str("# HELP gateway_rate_limit_mode Who decides rate limits now: 1 for the current mode.\n");
        text.push_str("# TYPE gateway_rate_limit_mode gauge\n");
        for candidate in [Mode::Shared, Mode::Local] {
            let _ = writeln!(
                text,
                "gateway_rate_limit_mode{{mode=\"{}\"}} {}",
                candidate.as_str(),
                u8::from(candidate == mode)
            );
        }
        let singles = [
            ("gateway_retries_total", "Reads sent again after UNAVAILABLE.", &counters.retries),
            ("gateway_retries_refused_total", "Retries the retry budget refused.", &counters.retries_refused_by_budget),
            (
                "gateway_breaker_rejections_total",
                "Calls failed at once by an open backend circuit.",
                &counters.breaker_rejections,
            ),
            (
                "gateway_no_healthy_endpoint_total",
                "Calls failed at once because no endpoint of the backend was healthy.",
                &counters.no_healthy_endpoint,
            ),
        ];
        for (name, help, counter) in singles {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        text
    }
}

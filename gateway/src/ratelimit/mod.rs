//! Distributed rate limits: GCRA with its state in Redis, so every gateway
//! replica holds a subject to one limit, decided in one round trip (a Lua
//! script run by EVALSHA).
//!
//! Each call counts against two limits at once: its subject's tier limit and
//! its subject's limit for the one service called. When Redis is slow or
//! down, the gateway decides locally (governor, same algorithm) within
//! --rate-limit-redis-timeout, and a circuit breaker keeps it local for
//! --rate-limit-local-for before Redis is asked again: a Redis outage costs
//! one short wait, not one per call. The local limiters see every call even
//! while Redis decides, so falling back hands out no fresh bursts.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use fred::types::scripts::Script;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::HashMapStateStore;
use wizdata::auth::v1::Tier;
use wizdata_common::auth::tier_claim;
use wizdata_common::redis::Redis;

use crate::breaker::Breaker;
use crate::config::{GatewayConfig, Quota};
pub use crate::rate_limit_mode::Mode;

const GCRA: &str = include_str!("gcra.lua");

/// The answer for one call, with what the `ratelimit-*` headers report: the
/// limit closest to refusing.
#[derive(Clone, Copy, Debug)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the limit is back to its full burst.
    pub reset_after: Duration,
    /// Until a refused call would be allowed; zero when allowed.
    pub retry_after: Duration,
    pub mode: Mode,
    /// Which limit decided: `tier` or `service`.
    pub scope: &'static str,
}

/// Subjects' states, looked up on every call: hashed with foldhash, seeded
/// per process (its quality variant: callers choose the keys).
type SubjectStates = HashMapStateStore<String, foldhash::quality::RandomState>;

type LocalLimiter = governor::RateLimiter<String, SubjectStates, DefaultClock, StateInformationMiddleware>;

/// One limit: its quota and its local stand-in.
struct Limit {
    quota: Quota,
    local: LocalLimiter,
}

impl Limit {
    fn new(quota: Quota) -> Self {
        let burst = NonZeroU32::new(quota.burst).expect("quotas are validated non-zero");
        let governor_quota = governor::Quota::with_period(quota.interval())
            .expect("quota intervals are validated non-zero")
            .allow_burst(burst);
        let local = LocalLimiter::new(governor_quota, SubjectStates::default(), DefaultClock::default());
        Self { quota, local }
    }

    fn check_locally(&self, key: &String) -> Verdict {
        match self.local.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.quota.burst.saturating_sub(remaining);
                Verdict {
                    allowed: true,
                    remaining,
                    reset_after: self.quota.interval() * used,
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(DefaultClock::default().now());
                Verdict {
                    allowed: false,
                    remaining: 0,
                    reset_after: self.quota.interval() * self.quota.burst,
                    retry_after,
                }
            }
        }
    }
}

/// One limit's answer.
#[derive(Clone, Copy, Debug)]
struct Verdict {
    allowed: bool,
    remaining: u32,
    reset_after: Duration,
    retry_after: Duration,
}

/// Decides whether each call may go ahead. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Option<Redis>,
    script: Script,
    redis_timeout: Duration,
    breaker: Breaker,
    tiers: foldhash::HashMap<Tier, Limit>,
    per_service: Limit,
}

impl RateLimiter {
    pub fn new(config: &GatewayConfig, redis: Option<Redis>) -> Self {
        let tiers = [
            (Tier::Anonymous, config.rate_limit_anonymous),
            (Tier::Standard, config.rate_limit_standard),
            (Tier::Premium, config.rate_limit_premium),
            (Tier::Internal, config.rate_limit_internal),
        ]
        .into_iter()
        .map(|(tier, quota)| (tier, Limit::new(quota)))
        .collect();
        Self {
            inner: Arc::new(Inner {
                redis,
                script: Script::from_lua(GCRA),
                redis_timeout: config.rate_limit_redis_timeout,
                breaker: Breaker::new(1, config.rate_limit_local_for),
                tiers,
                per_service: Limit::new(config.rate_limit_per_service),
            }),
        }
    }

    /// Who decides right now.
    pub fn mode(&self) -> Mode {
        match &self.inner.redis {
            Some(_) if !self.inner.breaker.is_open() => Mode::Shared,
            _ => Mode::Local,
        }
    }

    /// Drops the local state of subjects whose limits are full again, so
    /// memory follows the callers seen lately, not all callers ever.
    pub fn forget_idle_subjects(&self) {
        for limit in self.inner.tiers.values().chain([&self.inner.per_service]) {
            limit.local.retain_recent();
            limit.local.shrink_to_fit();
        }
    }

    /// Counts one call of `subject` (of `tier`) to `service`.
    pub async fn check(&self, subject: &str, tier: Tier, service: &str) -> Decision {
        let inner = &self.inner;
        let tier_limit = inner.tiers.get(&tier).unwrap_or(&inner.tiers[&Tier::Anonymous]);
        // Joined, not formatted: this runs on every call.
        let tier_key = [tier_claim(tier), ":", subject].concat();
        let service_key = [service, ":", subject].concat();
        let local = [tier_limit.check_locally(&tier_key), inner.per_service.check_locally(&service_key)];
        let limits = [tier_limit, &inner.per_service];

        let decision = match &inner.redis {
            Some(redis) if inner.breaker.allows() => {
                // Boxed: the Redis call's state would otherwise make every call's
                // future kilobytes larger, Redis or not (BENCHMARKS.md).
                match Box::pin(self.check_shared(redis, &tier_key, &service_key, &limits)).await {
                    Ok(shared) => {
                        if inner.breaker.is_open() {
                            tracing::info!("Redis answers again; rate limits are shared across gateways again");
                        }
                        inner.breaker.record_success();
                        decide(&limits, shared, Mode::Shared)
                    }
                    Err(error) => {
                        if inner.breaker.record_failure() {
                            tracing::warn!(
                                %error,
                                local_for = ?inner.breaker.retry_after(),
                                "Redis failed a rate-limit decision; deciding locally for a while"
                            );
                        }
                        decide(&limits, local, Mode::Local)
                    }
                }
            }
            _ => decide(&limits, local, Mode::Local),
        };
        crate::metrics::rate_limit_decision(decision.allowed, decision.mode);
        decision
    }

    async fn check_shared(
        &self,
        redis: &Redis,
        tier_key: &str,
        service_key: &str,
        limits: &[&Limit; 2],
    ) -> Result<[Verdict; 2], String> {
        let keys = vec![redis.key(&format!("ratelimit:{tier_key}")), redis.key(&format!("ratelimit:{service_key}"))];
        let args: Vec<i64> = limits
            .iter()
            .flat_map(|limit| [limit.quota.interval().as_micros() as i64, i64::from(limit.quota.burst)])
            .collect();
        let call = self.inner.script.evalsha_with_reload::<Vec<i64>, _, _>(redis.client(), keys, args);
        let answer = tokio::time::timeout(self.inner.redis_timeout, call)
            .await
            .map_err(|_| format!("no answer within {:?}", self.inner.redis_timeout))?
            .map_err(|error| error.to_string())?;
        let verdict = |at: usize| -> Result<Verdict, String> {
            let fields = answer.get(at * 4..at * 4 + 4).ok_or_else(|| format!("short answer {answer:?}"))?;
            Ok(Verdict {
                allowed: fields[0] == 1,
                remaining: fields[1].clamp(0, i64::from(u32::MAX)) as u32,
                reset_after: Duration::from_micros(fields[2].max(0) as u64),
                retry_after: Duration::from_micros(fields[3].max(0) as u64),
            })
        };
        Ok([verdict(0)?, verdict(1)?])
    }
}

/// The decision of both limits: refused if either refuses (reporting the
/// one that refused longest), else reporting the one closest to refusing.
fn decide(limits: &[&Limit; 2], verdicts: [Verdict; 2], mode: Mode) -> Decision {
    const SCOPES: [&str; 2] = ["tier", "service"];
    let allowed = verdicts.iter().all(|verdict| verdict.allowed);
    let binding = if allowed {
        (0..2).min_by_key(|&at| verdicts[at].remaining).unwrap_or(0)
    } else {
        (0..2).filter(|&at| !verdicts[at].allowed).max_by_key(|&at| verdicts[at].retry_after).unwrap_or(0)
    };
    let verdict = verdicts[binding];
    Decision {
        allowed,
        limit: limits[binding].quota.count,
        remaining: verdict.remaining,
        reset_after: verdict.reset_after,
        retry_after: verdict.retry_after,
        mode,
        scope: SCOPES[binding],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(text: &str) -> Limit {
        Limit::new(text.parse().unwrap())
    }

    #[test]
    fn local_limits_allow_the_burst_then_space_calls_by_the_interval() {
        let limit = limit("60/1m burst 3");
        let remaining: Vec<u32> = (0..3).map(|_| limit.check_locally(&"a".to_owned()).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limit.check_locally(&"a".to_owned());
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_millis(900) && refused.retry_after <= Duration::from_secs(1));
        assert!(limit.check_locally(&"b".to_owned()).allowed, "each key has its own limit");
    }

    #[test]
    fn the_limit_closest_to_refusing_is_reported() {
        let limits = [&limit("60/1m"), &limit("1000/1m")];
        let verdict = |allowed, remaining, retry_ms| Verdict {
            allowed,
            remaining,
            reset_after: Duration::from_secs(1),
            retry_after: Duration::from_millis(retry_ms),
        };
        let decision = decide(&limits, [verdict(true, 5, 0), verdict(true, 900, 0)], Mode::Shared);
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining, decision.scope), (60, 5, "tier"));
        let decision = decide(&limits, [verdict(true, 5, 0), verdict(false, 0, 700)], Mode::Local);
        assert!(!decision.allowed);
        assert_eq!(
            (decision.limit, decision.scope, decision.retry_after),
            (1000, "service", Duration::from_millis(700))
        );
    }
}

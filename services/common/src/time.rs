//! Time as the services use it: the wall clock, protobuf Timestamps, chrono
//! and nanoseconds since the epoch (as ticks and bars are stored), and the
//! connections' timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// The wall clock in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

/// The wall clock as a Timestamp.
pub fn now_timestamp() -> Timestamp {
    timestamp_from_ns(now_ns())
}

pub fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

/// `None` for a timestamp outside what chrono (and SQL) can represent, or with
/// nanos out of range.
pub fn from_timestamp(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok().filter(|nanos| *nanos < 1_000_000_000)?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

pub fn timestamp_from_ns(ns: i64) -> Timestamp {
    Timestamp { seconds: ns.div_euclid(NANOS_PER_SECOND), nanos: ns.rem_euclid(NANOS_PER_SECOND) as i32 }
}

/// Nanoseconds since the epoch; `None` when the timestamp is malformed or
/// outside 1970..2262 (what an i64 of nanoseconds holds).
pub fn ns_from_timestamp(timestamp: &Timestamp) -> Option<i64> {
    if !(0..NANOS_PER_SECOND as i32).contains(&timestamp.nanos) || timestamp.seconds < 0 {
        return None;
    }
    timestamp.seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(i64::from(timestamp.nanos))
}

/// A connection's timer (an idle check, a keep-alive ping), polled on
/// every turn of the connection's task but looked at only when it can
/// matter: once armed, the timer keeps the task's waker, and polling it
/// again before it fires would only cost time (960 instructions a call at
/// the gateway for the idle check alone).
pub struct Alarm {
    timer: Pin<Box<tokio::time::Sleep>>,
    /// Polled since it was last set, so it will wake the task.
    armed: bool,
}

impl Alarm {
    pub fn at(deadline: tokio::time::Instant) -> Self {
        Self { timer: Box::pin(tokio::time::sleep_until(deadline)), armed: false }
    }

    pub fn after(duration: Duration) -> Self {
        Self::at(tokio::time::Instant::now() + duration)
    }

    pub fn deadline(&self) -> tokio::time::Instant {
        self.timer.deadline()
    }

    /// Ready once the deadline has passed; until then, the first poll
    /// arms the alarm and the rest return at once.
    ///
    /// It is armed whatever is left of the task's cooperative budget: a
    /// poll Tokio refused for want of budget would leave the timer
    /// unregistered, and it would never fire.
    pub fn poll_rang(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed && !self.timer.is_elapsed() {
            return Poll::Pending;
        }
        self.armed = true;
        Pin::new(&mut tokio::task::coop::unconstrained(self.timer.as_mut())).poll(cx)
    }

    /// Moves the deadline; the next poll arms the alarm again, so it wakes
    /// whichever task polls it then.
    pub fn set(&mut self, deadline: tokio::time::Instant) {
        self.timer.as_mut().reset(deadline);
        self.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `alarm` once, as a connection's turn does: whether it rang.
    async fn rings(alarm: &mut Alarm) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(alarm.poll_rang(cx).is_ready())).await
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_is_armed_even_when_the_tasks_budget_is_spent() {
        let mut alarm = Alarm::after(Duration::from_secs(1));
        std::future::poll_fn(|cx| {
            // Spend the task's budget, as a busy connection's turn can.
            let mut spending = std::pin::pin!(async {
                loop {
                    tokio::task::coop::consume_budget().await;
                }
            });
            assert!(spending.as_mut().poll(cx).is_pending(), "the budget ran out");
            assert!(alarm.poll_rang(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // Not polled again: armed, it fires when its time comes.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(alarm.timer.is_elapsed());
        assert!(rings(&mut alarm).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_rings_at_its_deadline_and_again_once_set_again() {
        let mut alarm = Alarm::after(Duration::from_secs(1));
        assert!(!rings(&mut alarm).await);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!rings(&mut alarm).await);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(rings(&mut alarm).await);

        // Set again after ringing, it is armed by the next poll: the task
        // that polls it then, before the deadline, is the one woken at it.
        alarm.set(tokio::time::Instant::now() + Duration::from_secs(5));
        assert_eq!(alarm.deadline(), tokio::time::Instant::now() + Duration::from_secs(5));
        let woken = tokio::spawn(async move {
            std::future::poll_fn(|cx| alarm.poll_rang(cx)).await;
            tokio::time::Instant::now()
        });
        let set_at = tokio::time::Instant::now();
        let rang_at = tokio::time::timeout(Duration::from_secs(60), woken)
            .await
            .expect("the alarm woke its task")
            .expect("the task ends");
        assert_eq!(rang_at - set_at, Duration::from_secs(5));
    }

    #[test]
    fn round_trips_and_rejects_bad_nanos() {
        let now = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(from_timestamp(&to_timestamp(now)), Some(now));
        assert_eq!(from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    #[test]
    fn timestamps_round_trip_through_nanoseconds() {
        let timestamp = Timestamp { seconds: 1_700_000_000, nanos: 123 };
        assert_eq!(timestamp_from_ns(ns_from_timestamp(&timestamp).unwrap()), timestamp);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: -1, nanos: 0 }), None);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }
}

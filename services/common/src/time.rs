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

/// Polls `timer` whatever is left of the task's cooperative budget. The
/// connections poll their timers only until they are armed (a poll on
/// every turn would only cost time): a poll refused for want of budget
/// would leave such a timer unregistered, and it would never fire.
pub fn poll_timer(timer: Pin<&mut tokio::time::Sleep>, cx: &mut Context<'_>) -> Poll<()> {
    Pin::new(&mut tokio::task::coop::unconstrained(timer)).poll(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_timer_is_armed_even_when_the_tasks_budget_is_spent() {
        let mut timer = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        std::future::poll_fn(|cx| {
            // Spend the task's budget, as a busy connection's turn can.
            let mut spending = std::pin::pin!(async {
                loop {
                    tokio::task::coop::consume_budget().await;
                }
            });
            assert!(spending.as_mut().poll(cx).is_pending(), "the budget ran out");
            assert!(poll_timer(timer.as_mut(), cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // Not polled again: armed, it fires when its time comes.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(timer.is_elapsed());
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

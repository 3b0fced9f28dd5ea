//! Stored rows to contract messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;
use wizdata::r#type::v1::{Candle, Interval, Quote};

use crate::entity::{NEVER, candle, quote};
use crate::interval::{NANOS_PER_SECOND, width_seconds};
use crate::store::BarRow;

pub fn now_ns() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
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

/// A stored bar; `closed` once the wall clock has passed its end.
pub fn candle(row: &BarRow, interval: Interval, now_ns: i64) -> Candle {
    let width = width_seconds(interval).unwrap_or(0);
    Candle {
        open_time: Some(Timestamp { seconds: row.open_time, nanos: 0 }),
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
        volume: row.volume,
        trade_count: u64::try_from(row.trade_count).unwrap_or(0),
        closed: (row.open_time + width).saturating_mul(NANOS_PER_SECOND) <= now_ns,
    }
}

/// A quote from its stored parts and the symbol's latest daily bars (latest
/// first): the day's open, high, low and volume come from the latest, the
/// previous close from the one before. `stale` is left for the reader.
pub fn quote(row: &quote::Model, days: &[candle::Model]) -> Quote {
    let today = days.first();
    let previous_close = days.get(1).map_or(0.0, |day| day.close);
    let has_trade = row.last_trade_ns != NEVER;
    let (change, change_percent) = if has_trade && previous_close > 0.0 {
        let change = row.last_price - previous_close;
        (change, change / previous_close * 100.0)
    } else {
        (0.0, 0.0)
    };
    let update_ns = row.last_trade_ns.max(row.book_ns);
    Quote {
        symbol: row.symbol.clone(),
        last_price: row.last_price,
        last_size: row.last_size,
        bid: row.bid,
        bid_size: row.bid_size,
        ask: row.ask,
        ask_size: row.ask_size,
        day_open: today.map_or(0.0, |day| day.open),
        day_high: today.map_or(0.0, |day| day.high),
        day_low: today.map_or(0.0, |day| day.low),
        day_volume: today.map_or(0.0, |day| day.volume),
        previous_close,
        change,
        change_percent,
        update_time: (update_ns != NEVER).then(|| timestamp_from_ns(update_ns)),
        stale: false,
    }
}

/// Flags `quote` stale when its last update is older than `staleness`.
pub fn mark_stale(quote: &mut Quote, staleness: Duration, now_ns: i64) {
    let updated = quote.update_time.as_ref().and_then(ns_from_timestamp).unwrap_or(i64::MIN);
    let bound = i64::try_from(staleness.as_nanos()).unwrap_or(i64::MAX);
    quote.stale = now_ns.saturating_sub(updated) > bound;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_nanoseconds() {
        let timestamp = Timestamp { seconds: 1_700_000_000, nanos: 123 };
        assert_eq!(timestamp_from_ns(ns_from_timestamp(&timestamp).unwrap()), timestamp);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: -1, nanos: 0 }), None);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(ns_from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }
}

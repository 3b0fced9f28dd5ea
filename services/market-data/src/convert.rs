//! Stored rows to contract messages.

use std::time::Duration;

use prost_types::Timestamp;
use wizdata::marketdata::v1::{CandleEvent, MarketDataEvent, market_data_event};
use wizdata::r#type::v1::{Candle, Interval, Quote};
use wizdata_common::time::{ns_from_timestamp, timestamp_from_ns};

use crate::entity::{BarRow, NEVER, candle, quote};
use crate::interval::bar_is_closed;

/// A stored bar; `closed` once the wall clock has passed its end.
pub fn candle(row: &BarRow, interval: Interval, now_ns: i64) -> Candle {
    Candle {
        open_time: Some(Timestamp { seconds: row.open_time, nanos: 0 }),
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
        volume: row.volume,
        trade_count: u64::try_from(row.trade_count).unwrap_or(0),
        closed: bar_is_closed(interval, row.open_time, now_ns),
    }
}

/// The bus event announcing a stored bar as it is at `now_ns`.
pub fn candle_event(row: &candle::Model, interval: Interval, now_ns: i64) -> MarketDataEvent {
    MarketDataEvent {
        symbol: row.symbol.clone(),
        event_time: Some(timestamp_from_ns(row.last_trade_ns)),
        kind: Some(market_data_event::Kind::Candle(CandleEvent {
            interval: interval as i32,
            candle: Some(candle(&row.into(), interval, now_ns)),
        })),
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

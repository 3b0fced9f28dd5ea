//! Candle intervals: their widths, their short codes ("1m" ... "1d", as
//! stored and as used in bus topics), UTC bar boundaries and when a bar is
//! closed.

use wizdata::r#type::v1::Interval;

use crate::time::NANOS_PER_SECOND;

/// Every interval trades are aggregated into.
pub const INTERVALS: [Interval; 5] =
    [Interval::OneMinute, Interval::FiveMinutes, Interval::FifteenMinutes, Interval::OneHour, Interval::OneDay];

/// The bar width in seconds; `None` for UNSPECIFIED.
pub fn width_seconds(interval: Interval) -> Option<i64> {
    match interval {
        Interval::Unspecified => None,
        Interval::OneMinute => Some(60),
        Interval::FiveMinutes => Some(5 * 60),
        Interval::FifteenMinutes => Some(15 * 60),
        Interval::OneHour => Some(60 * 60),
        Interval::OneDay => Some(24 * 60 * 60),
    }
}

/// The short code, e.g. "5m".
pub fn code(interval: Interval) -> &'static str {
    match interval {
        Interval::Unspecified => "unspecified",
        Interval::OneMinute => "1m",
        Interval::FiveMinutes => "5m",
        Interval::FifteenMinutes => "15m",
        Interval::OneHour => "1h",
        Interval::OneDay => "1d",
    }
}

/// The interval for a short code or proto name ("1d", "ONE_DAY",
/// "INTERVAL_ONE_DAY"), as command-line users type it.
pub fn parse(text: &str) -> Option<Interval> {
    let upper = text.trim().to_ascii_uppercase();
    INTERVALS.into_iter().find(|interval| {
        code(*interval).eq_ignore_ascii_case(&upper)
            || interval.as_str_name() == upper
            || interval.as_str_name().strip_prefix("INTERVAL_") == Some(upper.as_str())
    })
}

/// The interval of a request's enum value: `Err` describes what is wrong.
pub fn from_request(value: i32) -> Result<Interval, String> {
    match Interval::try_from(value) {
        Ok(Interval::Unspecified) => Err("is required: one of 1m, 5m, 15m, 1h, 1d".into()),
        Ok(interval) => Ok(interval),
        Err(_) => Err(format!("{value} is not a known interval")),
    }
}

/// The open time (seconds since the epoch) of the bar holding `time_ns`.
pub fn bar_open_seconds(width_seconds: i64, time_ns: i64) -> i64 {
    time_ns.div_euclid(NANOS_PER_SECOND).div_euclid(width_seconds) * width_seconds
}

/// Whether the `interval` bar opening at `open_seconds` is closed at
/// `now_ns`: once the clock has reached its end, no trade can still fall in
/// it except a late one.
pub fn bar_is_closed(interval: Interval, open_seconds: i64, now_ns: i64) -> bool {
    let width = width_seconds(interval).unwrap_or(0);
    open_seconds.saturating_add(width).saturating_mul(NANOS_PER_SECOND) <= now_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_open_on_utc_boundaries() {
        // 2024-03-05T13:47:31.5Z
        let time_ns = 1_709_646_451_500_000_000;
        assert_eq!(bar_open_seconds(60, time_ns), 1_709_646_420);
        assert_eq!(bar_open_seconds(300, time_ns), 1_709_646_300);
        assert_eq!(bar_open_seconds(900, time_ns), 1_709_646_300);
        assert_eq!(bar_open_seconds(3600, time_ns), 1_709_643_600);
        assert_eq!(bar_open_seconds(86_400, time_ns), 1_709_596_800);
        // Exactly on a boundary belongs to the bar it opens.
        assert_eq!(bar_open_seconds(60, 1_709_646_420 * NANOS_PER_SECOND), 1_709_646_420);
    }

    #[test]
    fn a_bar_closes_when_the_clock_reaches_its_end() {
        let open = 1_709_646_420;
        let end_ns = (open + 60) * NANOS_PER_SECOND;
        assert!(!bar_is_closed(Interval::OneMinute, open, end_ns - 1));
        assert!(bar_is_closed(Interval::OneMinute, open, end_ns));
        assert!(!bar_is_closed(Interval::OneDay, open, end_ns), "a day is longer than a minute");
    }

    #[test]
    fn codes_and_names_parse() {
        assert_eq!(parse("1d"), Some(Interval::OneDay));
        assert_eq!(parse("15M"), Some(Interval::FifteenMinutes));
        assert_eq!(parse("INTERVAL_ONE_HOUR"), Some(Interval::OneHour));
        assert_eq!(parse("one_minute"), Some(Interval::OneMinute));
        assert_eq!(parse("2h"), None);
        assert!(from_request(0).is_err());
        assert!(from_request(42).is_err());
    }
}

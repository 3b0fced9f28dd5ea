//! CSV history (`wizdata import candles`, ImportCandles' source): any bytes
//! must give candles or errors by line, and every candle accepted must be a
//! real bar (low <= open, close <= high, volume >= 0), each bar once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wizdata::r#type::v1::Interval;
use wizdata_market_data::history::parse_candles;

fuzz_target!(|input: &[u8]| {
    let Ok(candles) = parse_candles(input, Interval::OneDay) else { return };
    let mut seen = std::collections::HashSet::new();
    for candle in &candles {
        assert!(candle.low <= candle.open && candle.open <= candle.high, "{candle:?}");
        assert!(candle.low <= candle.close && candle.close <= candle.high, "{candle:?}");
        assert!(candle.volume >= 0.0, "{candle:?}");
        let time = candle.open_time.as_ref().expect("a bar has a time").seconds;
        assert!(seen.insert(time), "one bar per time: {candle:?}");
    }
});

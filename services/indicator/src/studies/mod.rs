//! Technical indicators as incremental state machines ("studies"): push one
//! bar, get the new values once the study is past its lookback. The batch
//! path runs the same machines over a series, so live updates (streaming)
//! and batch results can never disagree.
//!
//! Every study reproduces TA-Lib (default compatibility, no unstable period):
//! the same lookback, the same seeding (EMA from the SMA of its first period,
//! Wilder smoothing for RSI, ATR and ADX), and the same order of floating
//! point operations where it matters, so values agree to the last bits.

mod directional;
mod moving;
mod oscillators;
mod volatility;
mod window;

pub use directional::{Adx, DirectionalIndex, Side};
pub use moving::{MaType, MovingAverage, Sma};
pub use oscillators::{Cci, Macd, Obv, Rsi, Stoch, WillR};
pub use volatility::{Atr, Bbands};

/// One input bar.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bar {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

pub trait Study: Send {
    /// Bars consumed before the first value: TA-Lib's lookback.
    fn lookback(&self) -> usize;

    /// Feeds the next bar. Once past the lookback, writes one value per
    /// output into `out` and returns true.
    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool;
}

/// TA-Lib's TA_IS_ZERO: near-zero denominators give 0, not a huge ratio.
pub(crate) fn is_zero(value: f64) -> bool {
    -0.00000001 < value && value < 0.00000001
}

/// TA-Lib's TRUE_RANGE.
pub(crate) fn true_range(high: f64, low: f64, previous_close: f64) -> f64 {
    let mut greatest = high - low;
    let to_high = (previous_close - high).abs();
    if to_high > greatest {
        greatest = to_high;
    }
    let to_low = (previous_close - low).abs();
    if to_low > greatest {
        greatest = to_low;
    }
    greatest
}

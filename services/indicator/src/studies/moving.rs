//! Moving averages over a stream of values: the building blocks of most
//! other studies, and studies of the close themselves.

use super::window::Window;
use super::{Bar, Study};

/// TA-Lib's MA types this engine offers (TA-Lib's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaType {
    Sma = 0,
    Ema = 1,
    Wma = 2,
}

impl MaType {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Sma),
            1 => Some(Self::Ema),
            2 => Some(Self::Wma),
            _ => None,
        }
    }
}

/// Simple moving average, summed as TA-Lib does (a running total from which
/// the oldest value leaves after each output).
#[derive(Clone, Debug)]
pub struct Sma {
    period: usize,
    window: Window,
    total: f64,
}

impl Sma {
    pub fn new(period: usize) -> Self {
        Self { period, window: Window::new(period), total: 0.0 }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    pub fn next(&mut self, value: f64) -> Option<f64> {
        self.window.push(value);
        self.total += value;
        if !self.window.is_full() {
            return None;
        }
        let average = self.total / self.period as f64;
        self.total -= self.window.oldest().expect("a full window has an oldest value");
        Some(average)
    }
}

/// Exponential moving average seeded with the SMA of its first period.
#[derive(Clone, Debug)]
pub struct Ema {
    period: usize,
    k: f64,
    seen: usize,
    seed_total: f64,
    value: f64,
}

impl Ema {
    pub fn new(period: usize) -> Self {
        Self { period, k: 2.0 / (period as f64 + 1.0), seen: 0, seed_total: 0.0, value: 0.0 }
    }

    /// Starts from an already computed seed (MACD seeds its fast EMA late).
    pub fn seeded(period: usize, seed: f64) -> Self {
        let mut ema = Self::new(period);
        ema.seen = period;
        ema.value = seed;
        ema
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    pub fn next(&mut self, value: f64) -> Option<f64> {
        self.seen += 1;
        if self.seen < self.period {
            self.seed_total += value;
            return None;
        }
        if self.seen == self.period {
            self.seed_total += value;
            self.value = self.seed_total / self.period as f64;
        } else {
            self.value = ((value - self.value) * self.k) + self.value;
        }
        Some(self.value)
    }
}

/// Weighted moving average (weights 1..period, newest heaviest), with
/// TA-Lib's running sums.
#[derive(Clone, Debug)]
pub struct Wma {
    period: usize,
    divider: f64,
    window: Window,
    seen: usize,
    period_sum: f64,
    period_sub: f64,
    trailing: f64,
}

impl Wma {
    pub fn new(period: usize) -> Self {
        Self {
            period,
            divider: (period * (period + 1)) as f64 / 2.0,
            window: Window::new(period),
            seen: 0,
            period_sum: 0.0,
            period_sub: 0.0,
            trailing: 0.0,
        }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    pub fn next(&mut self, value: f64) -> Option<f64> {
        self.seen += 1;
        self.window.push(value);
        if self.seen < self.period {
            self.period_sub += value;
            self.period_sum += value * self.seen as f64;
            return None;
        }
        self.period_sub += value;
        self.period_sub -= self.trailing;
        self.period_sum += value * self.period as f64;
        self.trailing = self.window.oldest().expect("a full window has an oldest value");
        let average = self.period_sum / self.divider;
        self.period_sum -= self.period_sub;
        Some(average)
    }
}

/// A moving average of a chosen type.
#[derive(Clone, Debug)]
pub enum MovingAverage {
    Sma(Sma),
    Ema(Ema),
    Wma(Wma),
}

impl MovingAverage {
    pub fn new(kind: MaType, period: usize) -> Self {
        // TA-Lib's moving averages of period 1 copy their input exactly.
        if period == 1 {
            return Self::Sma(Sma::new(1));
        }
        match kind {
            MaType::Sma => Self::Sma(Sma::new(period)),
            MaType::Ema => Self::Ema(Ema::new(period)),
            MaType::Wma => Self::Wma(Wma::new(period)),
        }
    }

    pub fn lookback(&self) -> usize {
        match self {
            Self::Sma(ma) => ma.lookback(),
            Self::Ema(ma) => ma.lookback(),
            Self::Wma(ma) => ma.lookback(),
        }
    }

    pub fn next(&mut self, value: f64) -> Option<f64> {
        match self {
            Self::Sma(ma) => ma.next(value),
            Self::Ema(ma) => ma.next(value),
            Self::Wma(ma) => ma.next(value),
        }
    }
}

/// A moving average of the close, as a study.
impl Study for MovingAverage {
    fn lookback(&self) -> usize {
        MovingAverage::lookback(self)
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        match MovingAverage::next(self, bar.close) {
            Some(value) => {
                out[0] = value;
                true
            }
            None => false,
        }
    }
}

//! Moving averages over a stream of values: the building blocks of most
//! other studies, and studies of the close themselves.

use super::window::Window;
use super::{Bar, Bars, Study, kernels};

/// TA-Lib's MA types this engine offers (TA-Lib's numbering; 7, MAMA, is
/// not offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaType {
    Sma = 0,
    Ema = 1,
    Wma = 2,
    Dema = 3,
    Tema = 4,
    Trima = 5,
    Kama = 6,
    T3 = 8,
}

impl MaType {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Sma),
            1 => Some(Self::Ema),
            2 => Some(Self::Wma),
            3 => Some(Self::Dema),
            4 => Some(Self::Tema),
            5 => Some(Self::Trima),
            6 => Some(Self::Kama),
            8 => Some(Self::T3),
            _ => None,
        }
    }
}

/// Simple moving average over a running total of the window's older values:
/// each bar's window sum is that total plus the entering value, and the
/// total then moves on by the entering value less the leaving one, computed
/// first. So the chain from bar to bar is one add, where TA-Lib's (add the
/// entering value, then subtract the leaving one) is two; the sums differ
/// from TA-Lib's in the last bits only. The mean multiplies by the period's
/// reciprocal (as Tulip does) rather than dividing: a division a bar was
/// the batch kernel's bound. [`kernels::sma`] does the same operations.
#[derive(Clone, Debug)]
pub struct Sma {
    period: usize,
    reciprocal: f64,
    window: Window,
    total: f64,
}

impl Sma {
    pub fn new(period: usize) -> Self {
        Self { period, reciprocal: 1.0 / period as f64, window: Window::new(period), total: 0.0 }
    }

    pub fn lookback(&self) -> usize {
        self.period - 1
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        self.window.push(value);
        if !self.window.is_full() {
            self.total += value;
            return None;
        }
        let sum = self.total + value;
        self.total += value - self.window.oldest().expect("a full window has an oldest value");
        Some(sum * self.reciprocal)
    }
}

/// Exponential moving average seeded with the SMA of its first period, then
/// `average * (1 - k) + value * k` as one fused multiply-add: the chain from
/// bar to bar is that one operation (TA-Lib's `(value - average) * k +
/// average` is three), and a fused operation rounds once, so the batch
/// kernels that use this recursion (MACD's) give the same bits on any
/// machine. The values differ from TA-Lib's in the last bits only.
#[derive(Clone, Debug)]
pub struct Ema {
    period: usize,
    k: f64,
    keep: f64,
    seen: usize,
    seed_total: f64,
    value: f64,
}

impl Ema {
    pub fn new(period: usize) -> Self {
        let k = 2.0 / (period as f64 + 1.0);
        Self { period, k, keep: 1.0 - k, seen: 0, seed_total: 0.0, value: 0.0 }
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

    #[inline]
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
            self.value = self.value.mul_add(self.keep, value * self.k);
        }
        Some(self.value)
    }
}

/// Weighted moving average (weights 1..period, newest heaviest), with
/// TA-Lib's running sums (the plain sum of the window, and the weighted one
/// from which that plain sum is taken each bar as every weight drops by
/// one), each moved on by one add a bar: what it gains and loses is
/// computed first, as [`Sma`] does. [`kernels::wma`] does the same
/// operations.
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

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        self.seen += 1;
        self.window.push(value);
        if self.seen < self.period {
            self.period_sub += value;
            self.period_sum += value * self.seen as f64;
            return None;
        }
        let weighted = value * self.period as f64;
        self.period_sub += value - self.trailing;
        self.trailing = self.window.oldest().expect("a full window has an oldest value");
        let average = (self.period_sum + weighted) / self.divider;
        self.period_sum += weighted - self.period_sub;
        Some(average)
    }
}

/// Double EMA: 2 x EMA - EMA of the EMA.
#[derive(Clone, Debug)]
pub struct Dema {
    first: Ema,
    second: Ema,
}

impl Dema {
    pub fn new(period: usize) -> Self {
        Self { first: Ema::new(period), second: Ema::new(period) }
    }

    pub fn lookback(&self) -> usize {
        self.first.lookback() * 2
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        let first = self.first.next(value)?;
        let second = self.second.next(first)?;
        Some((2.0 * first) - second)
    }
}

/// Triple EMA: 3 x EMA - 3 x EMA of the EMA + EMA of that.
#[derive(Clone, Debug)]
pub struct Tema {
    first: Ema,
    second: Ema,
    third: Ema,
}

impl Tema {
    pub fn new(period: usize) -> Self {
        Self { first: Ema::new(period), second: Ema::new(period), third: Ema::new(period) }
    }

    pub fn lookback(&self) -> usize {
        self.first.lookback() * 3
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        let first = self.first.next(value)?;
        let second = self.second.next(first)?;
        let third = self.third.next(second)?;
        Some((3.0 * first) - (3.0 * second) + third)
    }
}

/// Triangular moving average: weights rising 1, 2, ... to the middle and
/// falling back to 1, computed as an SMA of an SMA (spans (n+1)/2 and
/// (n+1)/2 for odd n, n/2 and n/2+1 for even n), the same weights.
#[derive(Clone, Debug)]
pub struct Trima {
    inner: Sma,
    outer: Sma,
}

impl Trima {
    pub fn new(period: usize) -> Self {
        let half = period / 2;
        let (inner, outer) = if period % 2 == 1 { (half + 1, half + 1) } else { (half, half + 1) };
        Self { inner: Sma::new(inner), outer: Sma::new(outer) }
    }

    pub fn lookback(&self) -> usize {
        self.inner.lookback() + self.outer.lookback()
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        let inner = self.inner.next(value)?;
        self.outer.next(inner)
    }
}

/// Kaufman's adaptive moving average: the efficiency ratio of the last
/// `period` changes picks a smoothing between EMA(2) and EMA(30). Seeded
/// with the value before its first output, and with TA-Lib's rule that a
/// net change at least the path length (or a path of zero) is fully
/// efficient.
#[derive(Clone, Debug)]
pub struct Kama {
    period: usize,
    /// The last period + 1 values.
    window: Window,
    path: f64,
    previous: Option<f64>,
    value: Option<f64>,
}

impl Kama {
    const FASTEST: f64 = 2.0 / 3.0;
    const SLOWEST: f64 = 2.0 / 31.0;

    pub fn new(period: usize) -> Self {
        Self { period, window: Window::new(period + 1), path: 0.0, previous: None, value: None }
    }

    pub fn lookback(&self) -> usize {
        self.period
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        if let Some(previous) = self.previous {
            self.path += (value - previous).abs();
        }
        let seed = self.previous.replace(value);
        self.window.push(value);
        if !self.window.is_full() {
            return None;
        }
        let first = self.window.oldest().expect("a full window has an oldest value");
        let net = value - first;
        let ratio = if self.path <= net || super::is_zero(self.path) { 1.0 } else { (net / self.path).abs() };
        let smoothing = (ratio * (Self::FASTEST - Self::SLOWEST)) + Self::SLOWEST;
        let smoothing = smoothing * smoothing;
        let before = self.value.or(seed).expect("a full window has a value before the newest");
        let kama = ((value - before) * smoothing) + before;
        self.value = Some(kama);
        // The change out of the oldest value leaves the path with it.
        let second = self.window.get(1).expect("a full window has a second value");
        self.path -= (second - first).abs();
        Some(kama)
    }
}

/// Tillson's T3: six chained EMAs (each seeded with the mean of its first
/// `period` inputs) combined with volume factor 0.7, as TA-Lib's MA does.
#[derive(Clone, Debug)]
pub struct T3 {
    period: usize,
    k: f64,
    stages: [f64; 6],
    /// Inputs seen by each stage, and the running total of its seed.
    seen: [usize; 6],
    seed_totals: [f64; 6],
    coefficients: [f64; 4],
}

impl T3 {
    pub const VOLUME_FACTOR: f64 = 0.7;

    pub fn new(period: usize) -> Self {
        let v = Self::VOLUME_FACTOR;
        let squared = v * v;
        let c1 = -(squared * v);
        let c2 = 3.0 * (squared - c1);
        let c3 = (-6.0 * squared) - (3.0 * (v - c1));
        let c4 = 1.0 + (3.0 * v) - c1 + (3.0 * squared);
        Self {
            period,
            k: 2.0 / (period as f64 + 1.0),
            stages: [0.0; 6],
            seen: [0; 6],
            seed_totals: [0.0; 6],
            coefficients: [c1, c2, c3, c4],
        }
    }

    pub fn lookback(&self) -> usize {
        6 * (self.period - 1)
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        let mut input = value;
        for stage in 0..6 {
            self.seen[stage] += 1;
            if self.seen[stage] < self.period {
                self.seed_totals[stage] += input;
                return None;
            }
            if self.seen[stage] == self.period {
                self.seed_totals[stage] += input;
                self.stages[stage] = self.seed_totals[stage] / self.period as f64;
            } else {
                self.stages[stage] = (self.k * input) + ((1.0 - self.k) * self.stages[stage]);
            }
            input = self.stages[stage];
        }
        let [c1, c2, c3, c4] = self.coefficients;
        let [_, _, e3, e4, e5, e6] = self.stages;
        Some((c1 * e6) + (c2 * e5) + (c3 * e4) + (c4 * e3))
    }
}

/// A moving average of a chosen type.
#[derive(Clone, Debug)]
pub enum MovingAverage {
    Sma(Sma),
    Ema(Ema),
    Wma(Wma),
    Dema(Dema),
    Tema(Tema),
    Trima(Trima),
    Kama(Kama),
    T3(T3),
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
            MaType::Dema => Self::Dema(Dema::new(period)),
            MaType::Tema => Self::Tema(Tema::new(period)),
            MaType::Trima => Self::Trima(Trima::new(period)),
            MaType::Kama => Self::Kama(Kama::new(period)),
            MaType::T3 => Self::T3(T3::new(period)),
        }
    }

    pub fn lookback(&self) -> usize {
        match self {
            Self::Sma(ma) => ma.lookback(),
            Self::Ema(ma) => ma.lookback(),
            Self::Wma(ma) => ma.lookback(),
            Self::Dema(ma) => ma.lookback(),
            Self::Tema(ma) => ma.lookback(),
            Self::Trima(ma) => ma.lookback(),
            Self::Kama(ma) => ma.lookback(),
            Self::T3(ma) => ma.lookback(),
        }
    }

    /// The average over a whole series of `values` from this fresh
    /// average: the index of its first value and the values, through the
    /// batch kernel of its type where there is one.
    pub fn series_of(&self, values: &[f64]) -> kernels::Series {
        match self {
            Self::Sma(ma) => kernels::sma(values, ma.period),
            Self::Ema(ma) => kernels::ema(values, ma.period),
            Self::Wma(ma) => kernels::wma(values, ma.period),
            other => {
                let mut average = other.clone();
                let begin = average.lookback().min(values.len());
                (begin, values.iter().filter_map(|value| average.next(*value)).collect())
            }
        }
    }

    #[inline]
    pub fn next(&mut self, value: f64) -> Option<f64> {
        match self {
            Self::Sma(ma) => ma.next(value),
            Self::Ema(ma) => ma.next(value),
            Self::Wma(ma) => ma.next(value),
            Self::Dema(ma) => ma.next(value),
            Self::Tema(ma) => ma.next(value),
            Self::Trima(ma) => ma.next(value),
            Self::Kama(ma) => ma.next(value),
            Self::T3(ma) => ma.next(value),
        }
    }
}

/// Moving averages of the close, as studies. Each type is a study of its
/// own (not only through [`MovingAverage`]), so its series loop is compiled
/// for it alone, with `next` inlined.
macro_rules! average_of_the_close {
    ($($average:ty $(=> $kernel:path)?),*) => {$(
        impl Study for $average {
            fn lookback(&self) -> usize {
                <$average>::lookback(self)
            }

            #[inline]
            fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
                match <$average>::next(self, bar.close) {
                    Some(value) => {
                        out[0] = value;
                        true
                    }
                    None => false,
                }
            }

            $(fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
                let (begin, values) = $kernel(&bars.close, self.period);
                (begin, vec![values])
            })?
        }
    )*};
}

average_of_the_close!(Sma => kernels::sma, Ema => kernels::ema, Wma => kernels::wma, MovingAverage);

#[cfg(test)]
mod tests {
    use super::*;

    fn series(kind: MaType, period: usize, values: &[f64]) -> Vec<Option<f64>> {
        let mut average = MovingAverage::new(kind, period);
        values.iter().map(|value| average.next(*value)).collect()
    }

    #[test]
    fn trima_weighs_the_middle_most() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        // Even period 4: weights 1, 2, 2, 1 over 6.
        assert_eq!(series(MaType::Trima, 4, &values)[3..], [Some(15.0 / 6.0), Some(21.0 / 6.0), Some(27.0 / 6.0)]);
        // Odd period 5: weights 1, 2, 3, 2, 1 over 9.
        assert_eq!(series(MaType::Trima, 5, &values)[4..], [Some(27.0 / 9.0), Some(36.0 / 9.0)]);
        assert_eq!(MovingAverage::new(MaType::Trima, 5).lookback(), 4);
    }

    #[test]
    fn lookbacks_follow_talib() {
        let lookback = |kind, period| MovingAverage::new(kind, period).lookback();
        assert_eq!(lookback(MaType::Dema, 10), 18);
        assert_eq!(lookback(MaType::Tema, 10), 27);
        assert_eq!(lookback(MaType::Kama, 10), 10);
        assert_eq!(lookback(MaType::T3, 5), 24);
        for kind in [MaType::Dema, MaType::Tema, MaType::Trima, MaType::Kama, MaType::T3] {
            assert_eq!(lookback(kind, 1), 0, "period 1 copies the input");
        }
    }

    #[test]
    fn derived_averages_of_a_constant_are_the_constant() {
        let values = [7.0; 40];
        for kind in [MaType::Dema, MaType::Tema, MaType::Trima, MaType::Kama, MaType::T3] {
            let average = MovingAverage::new(kind, 4);
            let outputs = series(kind, 4, &values);
            assert!(outputs[..average.lookback()].iter().all(Option::is_none), "{kind:?}");
            for value in outputs[average.lookback()..].iter() {
                assert!((value.unwrap() - 7.0).abs() < 1e-12, "{kind:?}: {value:?}");
            }
        }
    }

    #[test]
    fn kama_moves_fastest_on_a_straight_trend() {
        // A straight rise is fully efficient: smoothing (2/3)^2 of each step.
        let values = [1.0, 2.0, 3.0, 4.0];
        let outputs = series(MaType::Kama, 2, &values);
        let smoothing = (2.0f64 / 3.0).powi(2);
        let first = 2.0 + (3.0 - 2.0) * smoothing;
        let expected = [first, first + (4.0 - first) * smoothing];
        assert_eq!(outputs[..2], [None, None]);
        for (output, expected) in outputs[2..].iter().zip(expected) {
            assert!((output.unwrap() - expected).abs() < 1e-12, "{output:?} vs {expected}");
        }
    }
}

//! Momentum oscillators and on-balance volume.

use super::moving::{Ema, MaType, MovingAverage};
use super::window::{Extremes, Window};
use super::{Bar, Bars, Study, is_zero, kernels};

/// Relative Strength Index with Wilder's smoothing; the first averages are
/// plain means of the first `period` changes.
#[derive(Clone, Debug)]
pub struct Rsi {
    period: usize,
    changes: usize,
    previous: Option<f64>,
    gain: f64,
    loss: f64,
}

impl Rsi {
    pub fn new(period: usize) -> Self {
        Self { period, changes: 0, previous: None, gain: 0.0, loss: 0.0 }
    }

    fn value(&self) -> f64 {
        let total = self.gain + self.loss;
        if is_zero(total) { 0.0 } else { 100.0 * (self.gain / total) }
    }
}

impl Study for Rsi {
    fn lookback(&self) -> usize {
        self.period
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some(previous) = self.previous.replace(bar.close) else { return false };
        let change = bar.close - previous;
        let period = self.period as f64;
        self.changes += 1;
        if self.changes <= self.period {
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            if self.changes < self.period {
                return false;
            }
            self.loss /= period;
            self.gain /= period;
        } else {
            self.loss *= period - 1.0;
            self.gain *= period - 1.0;
            if change < 0.0 {
                self.loss -= change;
            } else {
                self.gain += change;
            }
            self.loss /= period;
            self.gain /= period;
        }
        out[0] = self.value();
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::rsi(&bars.close, self.period);
        (begin, vec![values])
    }
}

/// MACD: fast EMA minus slow EMA, its signal EMA, and their difference. As
/// in TA-Lib, the fast EMA is seeded where the slow one first has a value,
/// with the mean of the `fast` closes ending there.
#[derive(Clone, Debug)]
pub struct Macd {
    fast_period: usize,
    slow_period: usize,
    signal_period: usize,
    seen: usize,
    recent: Window,
    fast: Option<Ema>,
    slow: Ema,
    signal: Ema,
}

impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        // TA-Lib swaps periods given the wrong way round.
        let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
        Self {
            fast_period: fast,
            slow_period: slow,
            signal_period: signal,
            seen: 0,
            recent: Window::new(fast),
            fast: None,
            slow: Ema::new(slow),
            signal: Ema::new(signal),
        }
    }
}

impl Study for Macd {
    fn lookback(&self) -> usize {
        (self.slow_period - 1) + (self.signal_period - 1)
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        self.seen += 1;
        let slow = self.slow.next(bar.close);
        let fast = match &mut self.fast {
            Some(fast) => fast.next(bar.close),
            None => {
                self.recent.push(bar.close);
                if self.seen < self.slow_period {
                    return false;
                }
                let total: f64 = self.recent.iter().sum();
                let seed = total / self.fast_period as f64;
                self.fast = Some(Ema::seeded(self.fast_period, seed));
                Some(seed)
            }
        };
        let (Some(fast), Some(slow)) = (fast, slow) else { return false };
        let macd = fast - slow;
        let Some(signal) = self.signal.next(macd) else { return false };
        out[0] = macd;
        out[1] = signal;
        out[2] = macd - signal;
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, outputs) = kernels::macd(&bars.close, self.fast_period, self.slow_period, self.signal_period);
        (begin, outputs.into())
    }
}

/// Stochastic: %K over `fast_k` bars, smoothed into slow %K, and its
/// average, slow %D.
#[derive(Clone, Debug)]
pub struct Stoch {
    fast_k: usize,
    extremes: Extremes,
    slow_k: MovingAverage,
    slow_d: MovingAverage,
}

impl Stoch {
    pub fn new(fast_k: usize, slow_k: usize, slow_k_type: MaType, slow_d: usize, slow_d_type: MaType) -> Self {
        Self {
            fast_k,
            extremes: Extremes::new(fast_k),
            slow_k: MovingAverage::new(slow_k_type, slow_k),
            slow_d: MovingAverage::new(slow_d_type, slow_d),
        }
    }
}

impl Study for Stoch {
    fn lookback(&self) -> usize {
        (self.fast_k - 1) + self.slow_k.lookback() + self.slow_d.lookback()
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some((highest, lowest)) = self.extremes.push(bar.high, bar.low) else { return false };
        let range = (highest - lowest) / 100.0;
        let fast_k = if range != 0.0 { (bar.close - lowest) / range } else { 0.0 };
        let Some(slow_k) = self.slow_k.next(fast_k) else { return false };
        let Some(slow_d) = self.slow_d.next(slow_k) else { return false };
        out[0] = slow_k;
        out[1] = slow_d;
        true
    }

    /// Raw %K in one pass over the windows, then each smoothing over the
    /// whole series before it.
    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let fast_k = kernels::fast_k(&bars.high, &bars.low, &bars.close, self.fast_k);
        let (k_begin, slow_k) = self.slow_k.series_of(&fast_k);
        let (d_begin, slow_d) = self.slow_d.series_of(&slow_k);
        let begin = ((self.fast_k - 1) + k_begin + d_begin).min(bars.len());
        let slow_k = slow_k[d_begin..].to_vec();
        (begin, vec![slow_k, slow_d])
    }
}

/// Williams' %R over `period` bars.
#[derive(Clone, Debug)]
pub struct WillR {
    period: usize,
    extremes: Extremes,
}

impl WillR {
    pub fn new(period: usize) -> Self {
        Self { period, extremes: Extremes::new(period) }
    }
}

impl Study for WillR {
    fn lookback(&self) -> usize {
        self.period - 1
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some((highest, lowest)) = self.extremes.push(bar.high, bar.low) else { return false };
        let range = (highest - lowest) / -100.0;
        out[0] = if range != 0.0 { (highest - bar.close) / range } else { 0.0 };
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::willr(&bars.high, &bars.low, &bars.close, self.period);
        (begin, vec![values])
    }
}

/// Commodity Channel Index over `period` typical prices.
#[derive(Clone, Debug)]
pub struct Cci {
    period: usize,
    typical: Window,
}

impl Cci {
    pub fn new(period: usize) -> Self {
        Self { period, typical: Window::new(period) }
    }
}

impl Study for Cci {
    fn lookback(&self) -> usize {
        self.period - 1
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let typical = (bar.high + bar.low + bar.close) / 3.0;
        self.typical.push(typical);
        if !self.typical.is_full() {
            return false;
        }
        let period = self.period as f64;
        let average = self.typical.iter().sum::<f64>() / period;
        let deviation: f64 = self.typical.iter().map(|value| (value - average).abs()).sum();
        let distance = typical - average;
        // TA-Lib treats near-zero (1e-8) distances and deviations as zero.
        out[0] =
            if !is_zero(distance) && !is_zero(deviation) { distance / (0.015 * (deviation / period)) } else { 0.0 };
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::cci(&bars.high, &bars.low, &bars.close, self.period);
        (begin, vec![values])
    }
}

/// On-balance volume, starting from the first bar's volume.
#[derive(Clone, Debug, Default)]
pub struct Obv {
    previous_close: Option<f64>,
    total: f64,
}

impl Study for Obv {
    fn lookback(&self) -> usize {
        0
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        match self.previous_close {
            None => self.total = bar.volume,
            Some(previous) if bar.close > previous => self.total += bar.volume,
            Some(previous) if bar.close < previous => self.total -= bar.volume,
            Some(_) => {}
        }
        self.previous_close = Some(bar.close);
        out[0] = self.total;
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::obv(&bars.close, &bars.volume);
        (begin, vec![values])
    }
}

//! Directional movement: +DI, -DI and ADX, with Wilder's smoothing as TA-Lib
//! runs it, but for the order of its operations (see [`Smoothed`]).

use super::{Bar, Bars, Study, by_machine, is_zero, kernels, true_range};

/// One bar's directional movement against the bar before.
struct Movement {
    plus: f64,
    minus: f64,
    range: f64,
}

/// The previous bar, and the movement of each new bar against it.
#[derive(Clone, Debug, Default)]
struct Tracker {
    previous: Option<(f64, f64, f64)>,
}

impl Tracker {
    fn next(&mut self, bar: &Bar) -> Option<Movement> {
        let (high, low, close) = self.previous.replace((bar.high, bar.low, bar.close))?;
        let up = bar.high - high;
        let down = low - bar.low;
        let (plus, minus) = if down > 0.0 && up < down {
            (0.0, down)
        } else if up > 0.0 && up > down {
            (up, 0.0)
        } else {
            (0.0, 0.0)
        };
        Some(Movement { plus, minus, range: true_range(bar.high, bar.low, close) })
    }
}

/// Wilder-smoothed +DM, -DM and true range: summed over the first
/// `period - 1` movements, then `x * (1 - 1/period) + new` per movement as
/// one fused multiply-add, where TA-Lib's `x - x/period + new` is a
/// division and two adds on the chain from bar to bar. The sums differ from
/// TA-Lib's in the last bits; [`kernels::adx`] and
/// [`kernels::directional_index`] do the same operations, to the bit.
#[derive(Clone, Debug)]
struct Smoothed {
    period: usize,
    keep: f64,
    movements: usize,
    plus: f64,
    minus: f64,
    range: f64,
}

impl Smoothed {
    fn new(period: usize) -> Self {
        Self { period, keep: 1.0 - 1.0 / period as f64, movements: 0, plus: 0.0, minus: 0.0, range: 0.0 }
    }

    /// True once the sums are smoothed (from the `period`-th movement on).
    fn add(&mut self, movement: &Movement) -> bool {
        self.movements += 1;
        if self.movements < self.period {
            self.plus += movement.plus;
            self.minus += movement.minus;
            self.range += movement.range;
            return false;
        }
        self.plus = self.plus.mul_add(self.keep, movement.plus);
        self.minus = self.minus.mul_add(self.keep, movement.minus);
        self.range = self.range.mul_add(self.keep, movement.range);
        true
    }

    /// (+DI, -DI), or `None` when the range is (nearly) zero.
    fn indices(&self) -> Option<(f64, f64)> {
        (!is_zero(self.range)).then(|| (100.0 * (self.plus / self.range), 100.0 * (self.minus / self.range)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Plus,
    Minus,
}

/// +DI or -DI.
#[derive(Clone, Debug)]
pub struct DirectionalIndex {
    side: Side,
    period: usize,
    tracker: Tracker,
    smoothed: Smoothed,
}

impl DirectionalIndex {
    pub fn new(side: Side, period: usize) -> Self {
        Self { side, period, tracker: Tracker::default(), smoothed: Smoothed::new(period) }
    }
}

impl Study for DirectionalIndex {
    fn lookback(&self) -> usize {
        self.period
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some(movement) = self.tracker.next(bar) else { return false };
        if self.period == 1 {
            // TA-Lib's period 1: the raw movement over the raw range.
            let directional = if self.side == Side::Plus { movement.plus } else { movement.minus };
            out[0] = if is_zero(movement.range) { 0.0 } else { directional / movement.range };
            return true;
        }
        if !self.smoothed.add(&movement) {
            return false;
        }
        out[0] = match (self.smoothed.indices(), self.side) {
            (None, _) => 0.0,
            (Some((plus, _)), Side::Plus) => plus,
            (Some((_, minus)), Side::Minus) => minus,
        };
        true
    }

    fn series(&self, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>) {
        if self.period == 1 {
            return by_machine(self.clone(), bars, outputs);
        }
        let plus_side = self.side == Side::Plus;
        let (begin, values) = kernels::directional_index(&bars.high, &bars.low, &bars.close, self.period, plus_side);
        (begin, vec![values])
    }
}

/// Average Directional Index: the mean of the first `period` DX values, then
/// Wilder's smoothing.
#[derive(Clone, Debug)]
pub struct Adx {
    period: usize,
    tracker: Tracker,
    smoothed: Smoothed,
    dx_seen: usize,
    dx_total: f64,
    value: f64,
}

impl Adx {
    pub fn new(period: usize) -> Self {
        Self {
            period,
            tracker: Tracker::default(),
            smoothed: Smoothed::new(period),
            dx_seen: 0,
            dx_total: 0.0,
            value: 0.0,
        }
    }

    /// DX of the current smoothed sums; `None` where TA-Lib skips it.
    fn dx(&self) -> Option<f64> {
        let (plus, minus) = self.smoothed.indices()?;
        let total = minus + plus;
        (!is_zero(total)).then(|| 100.0 * ((minus - plus).abs() / total))
    }
}

impl Study for Adx {
    fn lookback(&self) -> usize {
        2 * self.period - 1
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some(movement) = self.tracker.next(bar) else { return false };
        if !self.smoothed.add(&movement) {
            return false;
        }
        let period = self.period as f64;
        self.dx_seen += 1;
        if self.dx_seen <= self.period {
            if let Some(dx) = self.dx() {
                self.dx_total += dx;
            }
            if self.dx_seen < self.period {
                return false;
            }
            self.value = self.dx_total / period;
        } else if let Some(dx) = self.dx() {
            self.value = ((self.value * (period - 1.0)) + dx) / period;
        }
        out[0] = self.value;
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::adx(&bars.high, &bars.low, &bars.close, self.period);
        (begin, vec![values])
    }
}

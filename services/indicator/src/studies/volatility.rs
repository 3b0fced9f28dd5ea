//! Volatility: Bollinger Bands and Average True Range.

use super::moving::{MaType, MovingAverage, Sma};
use super::{Bar, Bars, Study, by_machine, kernels, true_range};

/// Bollinger Bands: a moving average of the close and bands `deviations_up`
/// and `deviations_down` population standard deviations away. The variance
/// is the mean of squares minus the square of the mean (TA-Lib's way); below
/// 1e-8 it counts as zero.
#[derive(Clone, Debug)]
pub struct Bbands {
    period: usize,
    deviations_up: f64,
    deviations_down: f64,
    middle: MovingAverage,
    /// For non-SMA middles, TA-Lib takes the deviation around the SMA.
    sma: Option<Sma>,
    /// The mean of the squared closes, kept as the mean of the closes is
    /// (so the kernel's running totals are the same bits).
    mean_square: Sma,
}

impl Bbands {
    pub fn new(period: usize, deviations_up: f64, deviations_down: f64, kind: MaType) -> Self {
        Self {
            period,
            deviations_up,
            deviations_down,
            middle: MovingAverage::new(kind, period),
            sma: (kind != MaType::Sma).then(|| Sma::new(period)),
            mean_square: Sma::new(period),
        }
    }
}

impl Study for Bbands {
    fn lookback(&self) -> usize {
        self.middle.lookback()
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let middle = self.middle.next(bar.close);
        let mean = match &mut self.sma {
            Some(sma) => sma.next(bar.close),
            None => middle,
        };
        // The deviation runs on its own window from the period-th bar on,
        // even while a slower middle average is still warming up.
        let mean_square = self.mean_square.next(bar.close * bar.close);
        let deviation = mean.zip(mean_square).map(|(mean, mean_square)| {
            let variance = mean_square - mean * mean;
            if variance < 0.00000001 { 0.0 } else { variance.sqrt() }
        });
        let (Some(middle), Some(deviation)) = (middle, deviation) else { return false };
        out[0] = middle + deviation * self.deviations_up;
        out[1] = middle;
        out[2] = middle - deviation * self.deviations_down;
        true
    }

    /// Around an SMA (the default) the three bands come from one fused
    /// pass; around other averages, from the machine.
    fn series(&self, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>) {
        match (&self.middle, &self.sma) {
            (MovingAverage::Sma(_), None) => {
                let (begin, bands) =
                    kernels::bbands_sma(&bars.close, self.period, self.deviations_up, self.deviations_down);
                (begin, bands.into())
            }
            _ => by_machine(self.clone(), bars, outputs),
        }
    }
}

/// Average True Range: the mean of the first `period` true ranges, then
/// Wilder's smoothing.
#[derive(Clone, Debug)]
pub struct Atr {
    period: usize,
    previous_close: Option<f64>,
    first: Sma,
    value: Option<f64>,
}

impl Atr {
    pub fn new(period: usize) -> Self {
        Self { period, previous_close: None, first: Sma::new(period), value: None }
    }
}

impl Study for Atr {
    fn lookback(&self) -> usize {
        self.period
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        let Some(previous_close) = self.previous_close.replace(bar.close) else { return false };
        let range = true_range(bar.high, bar.low, previous_close);
        let value = match self.value {
            None => match self.first.next(range) {
                Some(first) => first,
                None => return false,
            },
            Some(previous) => {
                let period = self.period as f64;
                ((previous * (period - 1.0)) + range) / period
            }
        };
        self.value = Some(value);
        out[0] = value;
        true
    }

    fn series(&self, bars: &Bars, _outputs: usize) -> (usize, Vec<Vec<f64>>) {
        let (begin, values) = kernels::atr(&bars.high, &bars.low, &bars.close, self.period);
        (begin, vec![values])
    }
}

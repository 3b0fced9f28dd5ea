//! Technical indicators as incremental state machines ("studies"): push one
//! bar, get the new values once the study is past its lookback. The batch
//! path runs a whole series through a study's batch kernel where it has one
//! (`kernels`: plain array loops doing the same operations in the same
//! order), else through the machine itself; a property test holds kernel
//! and machine to the same values, so live updates (streaming) and batch
//! results can never disagree.
//!
//! Every study reproduces TA-Lib (default compatibility, no unstable period):
//! the same lookback, the same seeding (EMA from the SMA of its first period,
//! Wilder smoothing for RSI, ATR and ADX), and the same order of floating
//! point operations where it matters, so values agree to the last bits.

mod directional;
pub mod kernels;
mod moving;
mod oscillators;
mod volatility;
mod window;

pub use directional::{Adx, DirectionalIndex, Side};
pub use moving::{Ema, MaType, MovingAverage, Sma, Wma};
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

/// A series of bars by column, as the batch path feeds them: a study's loop
/// reads only the columns it uses, which over a million bars is most of
/// the cost.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bars {
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

impl Bars {
    pub fn with_capacity(capacity: usize) -> Self {
        let column = || Vec::with_capacity(capacity);
        Self { open: column(), high: column(), low: column(), close: column(), volume: column() }
    }

    pub fn push(&mut self, bar: Bar) {
        self.open.push(bar.open);
        self.high.push(bar.high);
        self.low.push(bar.low);
        self.close.push(bar.close);
        self.volume.push(bar.volume);
    }

    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Bar> + '_ {
        (0..self.len()).map(|index| Bar {
            open: self.open[index],
            high: self.high[index],
            low: self.low[index],
            close: self.close[index],
            volume: self.volume[index],
        })
    }
}

impl FromIterator<Bar> for Bars {
    fn from_iter<I: IntoIterator<Item = Bar>>(bars: I) -> Self {
        let bars = bars.into_iter();
        let mut columns = Self::with_capacity(bars.size_hint().0);
        for bar in bars {
            columns.push(bar);
        }
        columns
    }
}

/// An indicator as a state machine: push one bar, get its values. The
/// streaming service pushes live bars; the RPCs run whole series through
/// the same machine ([`AnyStudy::series`]).
pub trait Study: Send + Clone + 'static {
    /// Bars consumed before the first value: TA-Lib's lookback.
    fn lookback(&self) -> usize;

    /// Feeds the next bar. Once past the lookback, writes one value per
    /// output into `out` and returns true.
    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool;

    /// A whole series from this (fresh) study: the index of the first bar
    /// with values (the number of bars when none has), and the values, one
    /// series per output. Studies with a batch kernel answer with it; the
    /// rest run their machine bar by bar.
    fn series(&self, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>) {
        by_machine(self.clone(), bars, outputs)
    }
}

/// A study of any type, behind a pointer, as the catalog builds them.
pub trait AnyStudy: Send {
    fn lookback(&self) -> usize;

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool;

    /// A whole series from this fresh study ([`Study::series`]).
    fn series(&self, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>);

    /// A copy in the same state: a live indicator steps a copy through the
    /// open bar and keeps the original at the last closed one.
    fn boxed_clone(&self) -> Box<dyn AnyStudy>;
}

impl<S: Study> AnyStudy for S {
    fn lookback(&self) -> usize {
        Study::lookback(self)
    }

    fn next(&mut self, bar: &Bar, out: &mut [f64]) -> bool {
        Study::next(self, bar, out)
    }

    fn series(&self, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>) {
        Study::series(self, bars, outputs)
    }

    fn boxed_clone(&self) -> Box<dyn AnyStudy> {
        Box::new(self.clone())
    }
}

/// A series through the state machine, bar by bar: the batch path of
/// studies without a kernel, and the reference the kernels are tested
/// against. Compiled for each study on its own, with `next` inlined, on a
/// local copy of the state: kept in registers rather than stored and reloaded
/// through `self` on every bar, which would lengthen each study's
/// dependency chain.
///
/// A study has values for every bar past its lookback and none before
/// (TA-Lib's contract), so each output is allocated once at its final
/// length and filled in order.
pub(crate) fn by_machine<S: Study>(mut study: S, bars: &Bars, outputs: usize) -> (usize, Vec<Vec<f64>>) {
    assert!(outputs <= MAX_OUTPUTS, "a study has at most {MAX_OUTPUTS} outputs");
    let count = bars.len();
    let begin = Study::lookback(&study).min(count);
    let mut series: Vec<Vec<f64>> = (0..outputs).map(|_| Vec::with_capacity(count - begin)).collect();
    let mut values = [0.0; MAX_OUTPUTS];
    // Equal lengths up front, so the loops index without bounds checks
    // and drop the loads of columns `next` does not read.
    let (open, high, low, close, volume) =
        (&bars.open[..count], &bars.high[..count], &bars.low[..count], &bars.close[..count], &bars.volume[..count]);
    // Macros rather than closures: a closure called per bar was left
    // out of line, costing more than most studies' own work.
    macro_rules! bar {
        ($index:expr) => {
            Bar {
                open: open[$index],
                high: high[$index],
                low: low[$index],
                close: close[$index],
                volume: volume[$index],
            }
        };
    }
    macro_rules! step {
        ($index:expr) => {{
            let ready = Study::next(&mut study, &bar!($index), &mut values[..outputs]);
            debug_assert!(ready, "no value past the lookback");
            values
        }};
    }
    for index in 0..begin {
        let warm = Study::next(&mut study, &bar!(index), &mut values[..outputs]);
        debug_assert!(!warm, "a value before the lookback");
    }
    match series.as_mut_slice() {
        [first] => {
            for index in begin..count {
                first.push(step!(index)[0]);
            }
        }
        [first, second] => {
            for index in begin..count {
                let [a, b, _] = step!(index);
                first.push(a);
                second.push(b);
            }
        }
        [first, second, third] => {
            for index in begin..count {
                let [a, b, c] = step!(index);
                first.push(a);
                second.push(b);
                third.push(c);
            }
        }
        _ => unreachable!("1 to {MAX_OUTPUTS} outputs"),
    }
    (begin, series)
}

/// The most outputs any study has (BBANDS: upper, middle, lower).
pub const MAX_OUTPUTS: usize = 3;

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

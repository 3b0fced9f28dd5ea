//! Batch kernels: a whole series in one plain array loop, for the batch
//! RPCs (ComputeSeries, ComputeIndicators, BatchCompute). No `Option`, no
//! ring buffer and no phase branch per bar: the warm-up is its own loop,
//! windows read the input slice itself, and outputs are written in place.
//!
//! Most kernels perform their study's floating-point operations in the
//! same order as the state machine, so the two give the same bits. Those
//! orders are TA-Lib's where that costs nothing, and differ from TA-Lib's in
//! the last bits where it made a bar's dependency chain shorter: running
//! totals move on by one add a bar (what enters less what leaves, computed
//! off the chain), EMA is one fused multiply-add a bar, and means multiply by
//! the period's reciprocal. The kernels that differ from their machine do so
//! in the last bits only:
//! - the recursive smoothings of EMA, Wilder's RSI and ATR are reassociated,
//!   `average * (1 - weight) + value * weight`, and EMA and ATR go further:
//!   one multiply and one add per four bars (`smooth_in_place`); the
//!   recursion damps such differences rather than adding them up;
//! - WILLR divides once a bar where the machine divides twice.
//!
//! The property test below holds every kernel to its machine within 1e-12
//! relative over random bars and parameters, and the TA-Lib oracle holds
//! both within 1e-9.

use std::ops::Range;

use super::{is_zero, true_range};

/// Defines `pub fn $name`, which runs `$body` (an `#[inline(always)]` fn)
/// compiled for FMA and AVX2 where the processor has them (x86-64 only has
/// them as extensions), and compiled for the baseline elsewhere. Both give
/// the same bits: Rust never fuses or reorders floating-point operations on
/// its own, so wider vectors only do the same operations more at a time,
/// and `mul_add` rounds once whether it is one instruction or the C
/// library's `fma`.
macro_rules! fused_and_wide {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $type:ty),* $(,)?) -> $output:ty = $body:ident;) => {
        $(#[$doc])*
        pub fn $name($($arg: $type),*) -> $output {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "fma,avx2")]
                fn wide($($arg: $type),*) -> $output {
                    $body($($arg),*)
                }
                // SAFETY: the processor has just said it runs these instructions.
                return unsafe { wide($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

/// The values of a series from its first bar with a value: `(begin, values)`.
pub type Series = (usize, Vec<f64>);

/// An output of `count - begin` values, written by index.
fn output(count: usize, begin: usize) -> Vec<f64> {
    vec![0.0; count - begin]
}

/// Room for `count - begin` values, written in order: no pass zeroing
/// memory that is about to be written (for a million bars, as long as the
/// cheapest kernels take).
fn output_room(count: usize, begin: usize) -> Vec<f64> {
    Vec::with_capacity(count - begin)
}

/// Bars per chunk where a kernel works in two steps (a loop carrying the
/// recursion, then one the compiler vectorises): the chunk's buffers stay
/// in the first-level cache between the two, and the outputs are written
/// once, in order.
const CHUNK: usize = 256;

/// Positions `0..count` cut into chunks of at most [`CHUNK`].
fn chunks(count: usize) -> impl Iterator<Item = Range<usize>> {
    (0..count).step_by(CHUNK).map(move |start| start..(start + CHUNK).min(count))
}

/// Appends the smoothing of `count` inputs to `out`, a chunk at a time:
/// the chunk's inputs (`inputs` of their positions) are weighted and
/// appended in a loop the compiler vectorises, then smoothed where they
/// lie, while still in the first-level cache.
#[inline(always)]
fn extend_smoothed<Inputs: Iterator<Item = f64>>(
    out: &mut Vec<f64>,
    count: usize,
    mut average: f64,
    (keep, weight): (f64, f64),
    mut inputs: impl FnMut(Range<usize>) -> Inputs,
) {
    for at in chunks(count) {
        let start = out.len();
        out.extend(inputs(at).map(|value| value * weight));
        average = smooth_in_place(&mut out[start..], average, keep);
    }
}

/// Simple moving average: [`Sma`](super::Sma)'s running total of the
/// window's older values, moved on by one add a bar, and its reciprocal.
pub fn sma(values: &[f64], period: usize) -> Series {
    let count = values.len();
    let begin = (period - 1).min(count);
    let mut out = output_room(count, begin);
    let reciprocal = 1.0 / period as f64;
    let mut total = 0.0;
    for value in &values[..begin] {
        total += value;
    }
    out.extend(values[begin..].iter().zip(values).map(|(entering, leaving)| {
        let sum = total + entering;
        total += entering - leaving;
        sum * reciprocal
    }));
    (begin, out)
}

/// Exponential moving average seeded with the mean of its first period.
pub fn ema(values: &[f64], period: usize) -> Series {
    let count = values.len();
    let begin = (period - 1).min(count);
    let mut out = output_room(count, begin);
    if begin == count {
        return (begin, out);
    }
    let mut seed = 0.0;
    for value in &values[..period] {
        seed += value;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let keep = 1.0 - k;
    let average = seed / period as f64;
    out.push(average);
    let inputs = &values[period..];
    extend_smoothed(&mut out, inputs.len(), average, (keep, k), |at| inputs[at].iter().copied());
    (begin, out)
}

/// Replaces each weighted input (`input * weight`) with `average =
/// average * keep + input * weight`, the recursion of EMA and of Wilder's
/// smoothing, four bars per step: each step's inputs are folded among
/// themselves first (independent of the average, so the processor runs
/// them ahead), then joined to the average with `keep`'s powers. The chain
/// from one step's average to the next is one multiply and one add for
/// four bars instead of for each. Returns the last average.
#[inline(always)]
fn smooth_in_place(weighted: &mut [f64], mut average: f64, keep: f64) -> f64 {
    let (keep2, keep3, keep4) = (keep * keep, keep * keep * keep, keep * keep * keep * keep);
    let mut steps = weighted.chunks_exact_mut(4);
    for step in &mut steps {
        let first = step[0];
        let second = first * keep + step[1];
        let third = second * keep + step[2];
        let fourth = third * keep + step[3];
        step[0] = average * keep + first;
        step[1] = average * keep2 + second;
        step[2] = average * keep3 + third;
        step[3] = average * keep4 + fourth;
        average = step[3];
    }
    for slot in steps.into_remainder() {
        average = average * keep + *slot;
        *slot = average;
    }
    average
}

/// Weighted moving average (weights 1..period, newest heaviest) with
/// [`Wma`](super::Wma)'s running sums, each moved on by one add a bar.
pub fn wma(values: &[f64], period: usize) -> Series {
    let count = values.len();
    let begin = (period - 1).min(count);
    let mut out = output_room(count, begin);
    let divider = (period * (period + 1)) as f64 / 2.0;
    let weight = period as f64;
    let (mut period_sum, mut period_sub, mut trailing) = (0.0, 0.0, 0.0);
    for (index, value) in values[..begin].iter().enumerate() {
        period_sub += value;
        period_sum += value * (index + 1) as f64;
    }
    out.extend(values[begin..].iter().zip(values).map(|(value, oldest)| {
        let weighted = value * weight;
        period_sub += value - trailing;
        trailing = *oldest;
        let average = (period_sum + weighted) / divider;
        period_sum += weighted - period_sub;
        average
    }));
    (begin, out)
}

/// Relative Strength Index: the first averages are plain means of the
/// first `period` changes, then Wilder's smoothing.
pub fn rsi(close: &[f64], period: usize) -> Series {
    let count = close.len();
    let begin = period.min(count);
    let mut out = output(count, begin);
    if begin == count {
        return (begin, out);
    }
    let divisor = period as f64;
    let (mut gain, mut loss) = (0.0, 0.0);
    for pair in close[..=period].windows(2) {
        let change = pair[1] - pair[0];
        if change < 0.0 {
            loss -= change;
        } else {
            gain += change;
        }
    }
    loss /= divisor;
    gain /= divisor;
    out[0] = strength(gain, loss);
    let (keep, weight) = ((divisor - 1.0) / divisor, 1.0 / divisor);
    for (slot, pair) in out[1..].iter_mut().zip(close[period..].windows(2)) {
        let change = pair[1] - pair[0];
        // Both sides every bar, one of them zero: no branch to mispredict.
        loss = loss * keep + (-change).max(0.0) * weight;
        gain = gain * keep + change.max(0.0) * weight;
        *slot = strength(gain, loss);
    }
    (begin, out)
}

#[inline(always)]
fn strength(gain: f64, loss: f64) -> f64 {
    let total = gain + loss;
    if super::is_zero(total) { 0.0 } else { 100.0 * (gain / total) }
}

fused_and_wide! {
/// Average True Range: the mean of the first `period` true ranges, then
/// Wilder's smoothing.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series = atr_body;
}

#[inline(always)]
fn atr_body(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series {
    let count = close.len();
    let begin = period.min(count);
    let mut out = output_room(count, begin);
    if begin == count {
        return (begin, out);
    }
    let range = |index: usize| true_range(high[index], low[index], close[index - 1]);
    // The first value is the SMA of the first `period` ranges, summed as the SMA sums.
    let mut total = 0.0;
    for index in 1..=period {
        total += range(index);
    }
    let divisor = period as f64;
    let value = total / divisor;
    out.push(value);
    // Each chunk's true ranges in a loop the compiler vectorises, then
    // smoothed where they lie.
    let (high, low, previous_close) = (&high[period + 1..count], &low[period + 1..count], &close[period..count - 1]);
    let weights = ((divisor - 1.0) / divisor, 1.0 / divisor);
    extend_smoothed(&mut out, count - period - 1, value, weights, |at| {
        let bars = high[at.clone()].iter().zip(&low[at.clone()]).zip(&previous_close[at]);
        bars.map(|((high, low), previous_close)| true_range(*high, *low, *previous_close))
    });
    (begin, out)
}

/// One bar's +DM, -DM and true range against the bar before, branch-free:
/// the larger of the up and down moves counts when it is positive.
#[inline(always)]
fn movement(high: &[f64], low: &[f64], close: &[f64], index: usize) -> (f64, f64, f64) {
    let up = high[index] - high[index - 1];
    let down = low[index - 1] - low[index];
    let plus = if up > down && up > 0.0 { up } else { 0.0 };
    let minus = if down > up && down > 0.0 { down } else { 0.0 };
    (plus, minus, true_range(high[index], low[index], close[index - 1]))
}

/// Wilder's smoothing of +DM, -DM and true range as the machine runs it:
/// the first `period - 1` movements summed, then `x * (1 - 1/period) + new`
/// fused (the machine's operations: the DIs divide one smoothed sum by
/// another, and DX subtracts the DIs, so these sums must be the machine's to
/// the bit). Calls `each`
/// with the bar's index and the smoothed sums from the `period`-th movement
/// on. Periods of 1 are the machines' (raw movements, no smoothing).
#[inline(always)]
fn for_each_smoothed(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
    mut each: impl FnMut(usize, f64, f64, f64),
) {
    let count = close.len();
    let (high, low, close) = (&high[..count], &low[..count], &close[..count]);
    let (mut plus, mut minus, mut range) = (0.0, 0.0, 0.0);
    for index in 1..period.min(count) {
        let (p, m, r) = movement(high, low, close, index);
        plus += p;
        minus += m;
        range += r;
    }
    let keep = 1.0 - 1.0 / period as f64;
    for index in period.max(1)..count {
        let (p, m, r) = movement(high, low, close, index);
        plus = plus.mul_add(keep, p);
        minus = minus.mul_add(keep, m);
        range = range.mul_add(keep, r);
        each(index, plus, minus, range);
    }
}

fused_and_wide! {
/// +DI or -DI (period 2 or more): the smoothed movement over the smoothed
/// range, 0 where the range is (nearly) zero.
pub fn directional_index(high: &[f64], low: &[f64], close: &[f64], period: usize, plus_side: bool) -> Series
    = directional_index_body;
}

#[inline(always)]
fn directional_index_body(high: &[f64], low: &[f64], close: &[f64], period: usize, plus_side: bool) -> Series {
    let count = close.len();
    let begin = period.min(count);
    let mut out = output(count, begin);
    for_each_smoothed(high, low, close, period, |index, plus, minus, range| {
        let movement = if plus_side { plus } else { minus };
        out[index - period] = if is_zero(range) { 0.0 } else { 100.0 * (movement / range) };
    });
    (begin, out)
}

fused_and_wide! {
/// ADX: DX from the smoothed sums, the mean of its first `period` values,
/// then Wilder's smoothing; a bar whose DX is undefined (a zero range or
/// zero DIs) keeps the previous ADX, as TA-Lib does.
pub fn adx(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series = adx_body;
}

#[inline(always)]
fn adx_body(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series {
    let count = close.len();
    let lookback = 2 * period - 1;
    let begin = lookback.min(count);
    let mut out = output(count, begin);
    let divisor = period as f64;
    let (mut seen, mut total, mut value) = (0, 0.0, 0.0);
    for_each_smoothed(high, low, close, period, |index, plus, minus, range| {
        let dx = if is_zero(range) {
            None
        } else {
            let (plus, minus) = (100.0 * (plus / range), 100.0 * (minus / range));
            let sum = minus + plus;
            (!is_zero(sum)).then(|| 100.0 * ((minus - plus).abs() / sum))
        };
        seen += 1;
        if seen <= period {
            total += dx.unwrap_or(0.0);
            if seen < period {
                return;
            }
            value = total / divisor;
        } else if let Some(dx) = dx {
            value = ((value * (divisor - 1.0)) + dx) / divisor;
        }
        out[index - lookback] = value;
    });
    (begin, out)
}

/// On-balance volume, from the first bar's volume.
pub fn obv(close: &[f64], volume: &[f64]) -> Series {
    let count = close.len();
    let mut out = output(count, 0);
    let Some(&first) = volume.first() else { return (0, out) };
    let mut total = first;
    out[0] = total;
    // The direction picks what is added (a select, not a branch the
    // random walk of closes would mispredict half the time); adding 0.0
    // or -volume gives the bits the machine's += and -= give.
    for ((slot, pair), &volume) in out[1..].iter_mut().zip(close.windows(2)).zip(&volume[1..count]) {
        let change = if pair[1] > pair[0] { volume } else { 0.0 };
        let change = if pair[1] < pair[0] { -volume } else { change };
        total += change;
        *slot = total;
    }
    (0, out)
}

/// Bars per step of [`over_window_extremes`] (whole blocks, at least one):
/// its four buffers (32 KiB) stay in the first-level cache between its
/// passes.
const EXTREMES_CHUNK: usize = 1024;

/// `value(highest, lowest, close)` for each bar from the first full window
/// of `period` bars on, in order: what WILLR and STOCH's %K make of the
/// window extremes.
///
/// The extremes by van Herk and Gil-Werman's blocks: cut the series into
/// blocks of `period` bars. A window starts in one block and ends in the
/// same or the next, so its extreme is the better of its first bar's suffix
/// extreme (to the end of that block) and its last bar's prefix extreme
/// (from the start of its block). Three compares per bar and column, as
/// selects, whatever the data: the rescans TA-Lib does when an extreme
/// leaves the window are data-dependent branches that a random walk
/// mispredicts. Extremes are exact, so the values are the same bits.
///
/// A step scans the prefixes and suffixes of a run of blocks (and of the
/// block before, where the first windows start), then joins them and
/// makes the values in one loop over slices the compiler vectorises.
#[inline(always)]
fn over_window_extremes(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    period: usize,
    value: impl Fn(f64, f64, f64) -> f64,
) -> Vec<f64> {
    let count = close.len().min(high.len()).min(low.len());
    let mut out = output_room(count, (period - 1).min(count));
    if period == 0 || count < period {
        return out;
    }
    let higher = |a: f64, b: f64| if b > a { b } else { a };
    let lower = |a: f64, b: f64| if b < a { b } else { a };
    let blocks_per_step = (EXTREMES_CHUNK / period).max(1);
    let room = (blocks_per_step + 1) * period;
    let (mut high_prefix, mut low_prefix) = (vec![0.0; room], vec![0.0; room]);
    let (mut high_suffix, mut low_suffix) = (vec![0.0; room], vec![0.0; room]);
    let blocks = count.div_ceil(period);
    for first_block in (0..blocks).step_by(blocks_per_step) {
        // Bars `from..to` in the buffers, from the block before this step's.
        let from = first_block.saturating_sub(1) * period;
        let to = ((first_block + blocks_per_step) * period).min(count);
        for start in (from..to).step_by(period) {
            let block = start..(start + period).min(to);
            let slots = block.start - from..block.end - from;
            // The prefixes forwards and the suffixes backwards in one
            // loop: four independent chains of compares. The running
            // extremes are carried in locals: through the slices, each step
            // would wait on the store of the one before.
            let (mut prefix_high, mut prefix_low) = (high[block.start], low[block.start]);
            let (mut suffix_high, mut suffix_low) = (high[block.end - 1], low[block.end - 1]);
            let bars = high[block.clone()].iter().zip(&low[block]);
            let prefixes = high_prefix[slots.clone()].iter_mut().zip(&mut low_prefix[slots.clone()]).zip(bars.clone());
            let suffixes = high_suffix[slots.clone()].iter_mut().zip(&mut low_suffix[slots]).zip(bars).rev();
            for (
                ((prefix_high_slot, prefix_low_slot), (high, low)),
                ((suffix_high_slot, suffix_low_slot), (high_back, low_back)),
            ) in prefixes.zip(suffixes)
            {
                (prefix_high, prefix_low) = (higher(*high, prefix_high), lower(*low, prefix_low));
                (suffix_high, suffix_low) = (higher(*high_back, suffix_high), lower(*low_back, suffix_low));
                (*prefix_high_slot, *prefix_low_slot) = (prefix_high, prefix_low);
                (*suffix_high_slot, *suffix_low_slot) = (suffix_high, suffix_low);
            }
        }
        // The windows ending in this step's blocks, by their first bars'
        // suffixes and their last bars' prefixes.
        let ends = (first_block * period).max(period - 1)..to;
        let (starts, ends_at) =
            (ends.start + 1 - period - from..ends.end + 1 - period - from, ends.start - from..ends.end - from);
        let highest = high_suffix[starts.clone()]
            .iter()
            .zip(&high_prefix[ends_at.clone()])
            .map(|(suffix, prefix)| higher(*suffix, *prefix));
        let lowest =
            low_suffix[starts].iter().zip(&low_prefix[ends_at]).map(|(suffix, prefix)| lower(*suffix, *prefix));
        out.extend(
            highest.zip(lowest).zip(&close[ends]).map(|((highest, lowest), close)| value(highest, lowest, *close)),
        );
    }
    out
}

fused_and_wide! {
/// Williams' %R over `period` bars. One division a bar where the machine
/// makes two (the range over -100, then the distance over that): the same
/// value within an ulp or two.
pub fn willr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series = willr_body;
}

#[inline(always)]
fn willr_body(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series {
    let begin = (period - 1).min(close.len());
    let out = over_window_extremes(high, low, close, period, |highest, lowest, close| {
        let range = highest - lowest;
        if range != 0.0 { (highest - close) / range * -100.0 } else { 0.0 }
    });
    (begin, out)
}

/// Stochastic's raw %K over `fast_k` bars, from its first full window,
/// with the machine's two divisions: %K is smoothed next, and an average
/// kept as running sums (WMA's) turns a last-bit difference in its input
/// into a residue where the machine has exactly zero.
pub fn fast_k(high: &[f64], low: &[f64], close: &[f64], fast_k: usize) -> Vec<f64> {
    over_window_extremes(high, low, close, fast_k, |highest, lowest, close| {
        let range = (highest - lowest) / 100.0;
        if range != 0.0 { (close - lowest) / range } else { 0.0 }
    })
}

fused_and_wide! {
/// Bollinger Bands around an SMA middle, fused in one pass: the running
/// totals of the closes and of their squares as [`Sma`](super::Sma) keeps
/// them, the population deviation as the mean of squares minus the square
/// of the mean (TA-Lib's way, below 1e-8 counted as zero). Upper, middle,
/// lower.
pub fn bbands_sma(close: &[f64], period: usize, deviations_up: f64, deviations_down: f64) -> (usize, [Vec<f64>; 3])
    = bbands_sma_body;
}

#[inline(always)]
fn bbands_sma_body(close: &[f64], period: usize, deviations_up: f64, deviations_down: f64) -> (usize, [Vec<f64>; 3]) {
    let count = close.len();
    let begin = (period - 1).min(count);
    let mut outputs = [(); 3].map(|_| output_room(count, begin));
    // Multiplying by the period's reciprocal instead of dividing (as
    // Tulip does): two divisions a bar were most of the kernel's time.
    let reciprocal = 1.0 / period as f64;
    let (mut total, mut squares) = (0.0, 0.0);
    for value in &close[..begin] {
        squares += value * value;
        total += value;
    }
    let (entering, leaving) = (&close[begin..], &close[..count - begin]);
    let [upper, middle, lower] = &mut outputs;
    let (mut sums, mut square_sums, mut deviations) = ([0.0; CHUNK], [0.0; CHUNK], [0.0; CHUNK]);
    for chunk in chunks(count - begin) {
        let (sums, square_sums, deviations) =
            (&mut sums[..chunk.len()], &mut square_sums[..chunk.len()], &mut deviations[..chunk.len()]);
        // The running totals, two chains of one add a bar (what enters less
        // what leaves is computed off them), and each window's sums ...
        let bars = entering[chunk.clone()].iter().zip(&leaving[chunk.clone()]);
        for (((value, oldest), sum), square_sum) in bars.zip(sums.iter_mut()).zip(square_sums.iter_mut()) {
            let square = value * value;
            *sum = total + value;
            *square_sum = squares + square;
            total += value - oldest;
            squares += square - oldest * oldest;
        }
        // ... then, bar by bar independent, loops the compiler vectorises:
        // the means, the deviations and the outer bands.
        middle.extend(sums.iter().map(|sum| sum * reciprocal));
        let means = &middle[chunk];
        for ((deviation, square_sum), mean) in deviations.iter_mut().zip(square_sums.iter()).zip(means) {
            let variance = square_sum * reciprocal - mean * mean;
            *deviation = if variance < 0.00000001 { 0.0 } else { variance.sqrt() };
        }
        upper.extend(means.iter().zip(deviations.iter()).map(|(mean, deviation)| mean + deviation * deviations_up));
        lower.extend(means.iter().zip(deviations.iter()).map(|(mean, deviation)| mean - deviation * deviations_down));
    }
    (begin, outputs)
}

fused_and_wide! {
/// MACD, its signal and their difference in one pass: the slow EMA, the
/// fast EMA seeded where the slow one first has a value (with the mean of
/// the `fast` closes ending there, as TA-Lib does) and the signal EMA of
/// their difference run side by side, three independent chains of one
/// fused multiply-add a bar each. They are [`Ema`](super::Ema)'s
/// operations exactly: MACD subtracts two nearly equal averages, which
/// would magnify any difference between the two. MACD, signal, histogram.
pub fn macd(close: &[f64], fast: usize, slow: usize, signal: usize) -> (usize, [Vec<f64>; 3]) = macd_body;
}

#[inline(always)]
fn macd_body(close: &[f64], fast: usize, slow: usize, signal: usize) -> (usize, [Vec<f64>; 3]) {
    // TA-Lib swaps periods given the wrong way round.
    let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
    let count = close.len();
    let begin = ((slow - 1) + (signal - 1)).min(count);
    let mut outputs = [(); 3].map(|_| output_room(count, begin));
    if begin == count {
        return (begin, outputs);
    }
    let weights = |period: usize| {
        let k = 2.0 / (period as f64 + 1.0);
        (1.0 - k, k)
    };
    let ((keep_fast, k_fast), (keep_slow, k_slow), (keep_signal, k_signal)) =
        (weights(fast), weights(slow), weights(signal));
    let mut slow_average = close[..slow].iter().sum::<f64>() / slow as f64;
    let mut fast_average = close[slow - fast..slow].iter().sum::<f64>() / fast as f64;
    let mut line = fast_average - slow_average;
    let mut signal_total = line;
    for value in &close[slow..=begin] {
        slow_average = slow_average.mul_add(keep_slow, value * k_slow);
        fast_average = fast_average.mul_add(keep_fast, value * k_fast);
        line = fast_average - slow_average;
        signal_total += line;
    }
    let mut signal_average = signal_total / signal as f64;
    for (output, first) in outputs.iter_mut().zip([line, signal_average, line - signal_average]) {
        output.push(first);
    }
    let rest = &close[begin + 1..];
    let [lines, signals, histogram] = &mut outputs;
    let mut signal_buffer = [0.0; CHUNK];
    for chunk in chunks(rest.len()) {
        let chunk_signals = &mut signal_buffer[..chunk.len()];
        // The three chains, appending the lines and keeping the signals ...
        lines.extend(rest[chunk.clone()].iter().zip(chunk_signals.iter_mut()).map(|(value, signal_slot)| {
            slow_average = slow_average.mul_add(keep_slow, value * k_slow);
            fast_average = fast_average.mul_add(keep_fast, value * k_fast);
            let line = fast_average - slow_average;
            signal_average = signal_average.mul_add(keep_signal, line * k_signal);
            *signal_slot = signal_average;
            line
        }));
        // ... then the histogram, in a loop the compiler vectorises.
        let chunk = chunk.start + 1..chunk.end + 1;
        signals.extend_from_slice(chunk_signals);
        histogram.extend(lines[chunk].iter().zip(chunk_signals.iter()).map(|(line, signal)| line - signal));
    }
    (begin, outputs)
}

/// Windows whose sums [`cci`] runs side by side: each lane is one window,
/// summed in the window's own order (so the same bits as one at a time),
/// and sixteen lanes are enough independent chains to keep the adders busy.
const CCI_LANES: usize = 16;

/// Commodity Channel Index: the typical prices once, then each window's
/// mean and mean deviation straight from that slice, `CCI_LANES` windows
/// at a time.
pub fn cci(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Series {
    let count = close.len();
    let begin = (period - 1).min(count);
    let mut out = output_room(count, begin);
    let typical: Vec<f64> = high[..count]
        .iter()
        .zip(&low[..count])
        .zip(close)
        .map(|((high, low), close)| (high + low + close) / 3.0)
        .collect();
    let divisor = period as f64;
    // TA-Lib treats near-zero (1e-8) distances and deviations as zero.
    let index = |distance: f64, deviation: f64| {
        if !super::is_zero(distance) && !super::is_zero(deviation) {
            distance / (0.015 * (deviation / divisor))
        } else {
            0.0
        }
    };
    let windows = count - begin;
    let mut first = 0;
    while first + CCI_LANES <= windows {
        // Lane `lane` sums the window starting at `first + lane`; step `at`
        // adds each window's `at`-th value, a contiguous run of the slice.
        let mut sums = [0.0; CCI_LANES];
        for at in 0..period {
            let values = &typical[first + at..first + at + CCI_LANES];
            for (sum, value) in sums.iter_mut().zip(values) {
                *sum += value;
            }
        }
        let averages = sums.map(|sum| sum / divisor);
        let mut deviations = [0.0; CCI_LANES];
        for at in 0..period {
            let values = &typical[first + at..first + at + CCI_LANES];
            for ((deviation, value), average) in deviations.iter_mut().zip(values).zip(&averages) {
                *deviation += (value - average).abs();
            }
        }
        let newest = &typical[first + period - 1..first + period - 1 + CCI_LANES];
        out.extend(
            newest
                .iter()
                .zip(&averages)
                .zip(&deviations)
                .map(|((value, average), deviation)| index(value - average, *deviation)),
        );
        first += CCI_LANES;
    }
    for window in typical[first..].windows(period) {
        let average = window.iter().sum::<f64>() / divisor;
        let deviation: f64 = window.iter().map(|value| (value - average).abs()).sum();
        out.push(index(window[period - 1] - average, deviation));
    }
    (begin, out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{
        Adx, Atr, Bar, Bars, Bbands, Cci, DirectionalIndex, Ema, MaType, Macd, Obv, Rsi, Side, Sma, Stoch, Study,
        WillR, Wma, by_machine,
    };

    /// Random bars: a walk of closes with highs and lows around them, flat
    /// stretches included (they take the "no change" branches). Steps of
    /// 0.37, which binary fractions cannot hold, so sums round as real
    /// prices' do.
    fn bars() -> impl Strategy<Value = Bars> {
        proptest::collection::vec((-3i32..=3, 0.0f64..2.0, 0.0f64..2.0, 0.0f64..1e6), 0..300).prop_map(|steps| {
            let mut close = 100.0;
            steps
                .into_iter()
                .map(|(step, up, down, volume)| {
                    let open = close;
                    close += f64::from(step) * 0.37;
                    Bar { open, high: open.max(close) + up, low: open.min(close) - down, close, volume: volume.round() }
                })
                .collect()
        })
    }

    /// The kernel's series against the machine's, value by value, within
    /// 1e-12 relative (they do the same operations, so they agree exactly).
    fn agree(study: impl Study, bars: &Bars, outputs: usize) -> Result<(), TestCaseError> {
        let (kernel_begin, kernel) = study.series(bars, outputs);
        let (machine_begin, machine) = by_machine(study, bars, outputs);
        prop_assert_eq!(kernel_begin, machine_begin);
        prop_assert_eq!(kernel.len(), outputs);
        for (output, (kernel, machine)) in kernel.iter().zip(&machine).enumerate() {
            prop_assert_eq!(kernel.len(), machine.len(), "output {}", output);
            for (at, (kernel, machine)) in kernel.iter().zip(machine).enumerate() {
                let scale = kernel.abs().max(machine.abs()).max(f64::MIN_POSITIVE);
                prop_assert!(
                    (kernel - machine).abs() <= 1e-12 * scale,
                    "output {} value {}: {} vs {}",
                    output,
                    at,
                    kernel,
                    machine
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn every_kernel_agrees_with_its_state_machine(
            bars in bars(),
            period in 1usize..40,
            smoothing in (1usize..8, 1usize..8),
            deviations in (0.5f64..3.0, 0.5f64..3.0),
            average in prop_oneof![Just(MaType::Sma), Just(MaType::Ema), Just(MaType::Wma), Just(MaType::Kama)],
        ) {
            agree(Sma::new(period), &bars, 1)?;
            agree(Ema::new(period), &bars, 1)?;
            agree(Wma::new(period), &bars, 1)?;
            agree(Rsi::new(period), &bars, 1)?;
            agree(Atr::new(period), &bars, 1)?;
            agree(Obv::default(), &bars, 1)?;
            agree(WillR::new(period), &bars, 1)?;
            agree(Stoch::new(period, smoothing.0, average, smoothing.1, MaType::Sma), &bars, 2)?;
            agree(Stoch::new(period, smoothing.0, MaType::Sma, smoothing.1, average), &bars, 2)?;
            agree(Bbands::new(period, deviations.0, deviations.1, MaType::Sma), &bars, 3)?;
            agree(Bbands::new(period, deviations.0, deviations.1, average), &bars, 3)?;
            agree(Cci::new(period), &bars, 1)?;
            agree(Macd::new(smoothing.0, period, smoothing.1), &bars, 3)?;
            agree(Macd::new(period, smoothing.0, smoothing.1), &bars, 3)?;
            agree(DirectionalIndex::new(Side::Plus, period), &bars, 1)?;
            agree(DirectionalIndex::new(Side::Minus, period), &bars, 1)?;
            agree(Adx::new(period.max(2)), &bars, 1)?;
        }
    }
}

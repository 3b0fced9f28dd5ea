//! Fixed-size windows over the latest values.

use std::collections::VecDeque;

/// The latest `capacity` values, oldest first.
#[derive(Clone, Debug)]
pub struct Window {
    values: VecDeque<f64>,
    capacity: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Self { values: VecDeque::with_capacity(capacity + 1), capacity }
    }

    /// Adds `value`, dropping the oldest once full.
    pub fn push(&mut self, value: f64) {
        self.values.push_back(value);
        if self.values.len() > self.capacity {
            self.values.pop_front();
        }
    }

    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    pub fn oldest(&self) -> Option<f64> {
        self.values.front().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = &f64> {
        self.values.iter()
    }
}

/// Highest and lowest of the latest `period` values in O(1) amortised per
/// value (monotonic queues), so long periods stay cheap.
#[derive(Clone, Debug)]
pub struct Extremes {
    period: usize,
    seen: usize,
    highs: VecDeque<(usize, f64)>,
    lows: VecDeque<(usize, f64)>,
}

impl Extremes {
    pub fn new(period: usize) -> Self {
        Self { period, seen: 0, highs: VecDeque::new(), lows: VecDeque::new() }
    }

    /// Adds a bar's high and low; returns (highest, lowest) of the window
    /// once `period` bars have been seen.
    pub fn push(&mut self, high: f64, low: f64) -> Option<(f64, f64)> {
        let index = self.seen;
        self.seen += 1;
        // Ties keep the newest: the same extreme value, so the same result.
        while self.highs.back().is_some_and(|(_, value)| *value <= high) {
            self.highs.pop_back();
        }
        self.highs.push_back((index, high));
        while self.lows.back().is_some_and(|(_, value)| *value >= low) {
            self.lows.pop_back();
        }
        self.lows.push_back((index, low));
        let oldest_kept = (index + 1).saturating_sub(self.period);
        while self.highs.front().is_some_and(|(at, _)| *at < oldest_kept) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|(at, _)| *at < oldest_kept) {
            self.lows.pop_front();
        }
        (self.seen >= self.period).then(|| (self.highs[0].1, self.lows[0].1))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn extremes_match_a_scan_of_the_window(
            bars in proptest::collection::vec((0u8..50, 0u8..50), 1..200),
            period in 1usize..20,
        ) {
            let mut extremes = Extremes::new(period);
            for (index, (a, b)) in bars.iter().enumerate() {
                let (high, low) = (f64::from(*a.max(b)), f64::from(*a.min(b)));
                let got = extremes.push(high, low);
                if index + 1 < period {
                    prop_assert_eq!(got, None);
                } else {
                    let window = &bars[index + 1 - period..=index];
                    let highest = window.iter().map(|(a, b)| f64::from(*a.max(b))).fold(f64::MIN, f64::max);
                    let lowest = window.iter().map(|(a, b)| f64::from(*a.min(b))).fold(f64::MAX, f64::min);
                    prop_assert_eq!(got, Some((highest, lowest)));
                }
            }
        }
    }
}

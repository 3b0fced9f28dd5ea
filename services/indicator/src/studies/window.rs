//! Fixed-size windows over the latest values.

use std::collections::VecDeque;

/// The latest `capacity` values, oldest first, in a ring: pushing costs a
/// store, with no shifting and no allocation once full.
#[derive(Clone, Debug)]
pub struct Window {
    values: Vec<f64>,
    capacity: usize,
    /// Once full: where the oldest value is (and the next one goes).
    next: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Self { values: Vec::with_capacity(capacity), capacity, next: 0 }
    }

    /// Adds `value`, dropping the oldest once full.
    #[inline]
    pub fn push(&mut self, value: f64) {
        if self.values.len() < self.capacity {
            self.values.push(value);
            return;
        }
        self.values[self.next] = value;
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
        }
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    #[inline]
    pub fn oldest(&self) -> Option<f64> {
        self.values.get(self.next).copied()
    }

    /// The value `index` places after the oldest.
    pub fn get(&self, index: usize) -> Option<f64> {
        if index >= self.values.len() {
            return None;
        }
        let at = self.next + index;
        Some(self.values[if at >= self.values.len() { at - self.values.len() } else { at }])
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &f64> {
        self.values[self.next..].iter().chain(&self.values[..self.next])
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
        fn a_window_holds_the_latest_values_oldest_first(
            values in proptest::collection::vec(-1e6f64..1e6, 0..60),
            capacity in 1usize..10,
        ) {
            let mut window = Window::new(capacity);
            for (index, value) in values.iter().enumerate() {
                window.push(*value);
                let expected = &values[(index + 1).saturating_sub(capacity)..=index];
                prop_assert_eq!(window.iter().copied().collect::<Vec<_>>(), expected.to_vec());
                prop_assert_eq!(window.oldest(), expected.first().copied());
                prop_assert_eq!(window.is_full(), expected.len() == capacity);
                for (offset, value) in expected.iter().enumerate() {
                    prop_assert_eq!(window.get(offset), Some(*value));
                }
                prop_assert_eq!(window.get(expected.len()), None);
            }
        }

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

//! Live indicators: one indicator over one symbol's candles of one interval,
//! kept current as candle updates arrive. The study holds the state after
//! the last closed bar; the open bar is stepped through a copy of it, so
//! its provisional value never disturbs the final ones. A change to a bar
//! that had already closed cannot be undone in a state machine: it is
//! reported, and the owner reseeds from stored history.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use prost_types::Timestamp;
use wizdata::indicator::v1::IndicatorSpec;
use wizdata::streaming::v1::IndicatorUpdate;
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::ApiError;
use wizdata_common::auth::Caller;
use wizdata_common::deadline::Deadline;
use wizdata_common::endpoints::ServiceChannel;
use wizdata_common::time::now_timestamp;
use wizdata_indicator::Planned;
use wizdata_indicator::candles::CandleSource;
use wizdata_indicator::catalog::Configured;
use wizdata_indicator::studies::{AnyStudy, Bar, MAX_OUTPUTS};

/// Closed bars remembered to recognise a repeated announcement of one of
/// them (a close sent again, an update already in the seeded history), so
/// only a real change to a closed bar costs a reseed.
const REMEMBERED_CLOSED_BARS: usize = 64;

/// How long one seeding read of stored candles may take.
const SEED_TIMEOUT: Duration = Duration::from_secs(30);

/// An indicator with its parameters resolved: equal, hashed and ordered by
/// what it computes, so every way of asking for the same computation names
/// the same live indicator.
#[derive(Clone)]
pub struct LiveSpec(Arc<(Configured, IndicatorSpec)>);

impl LiveSpec {
    pub fn new(planned: Planned) -> Self {
        let canonical = planned.configured.canonical_spec();
        Self(Arc::new((planned.configured, canonical)))
    }

    /// e.g. "RSI(time_period=14)".
    pub fn identity(&self) -> &str {
        &self.0.0.identity
    }

    /// The indicator's canonical name with every parameter set.
    pub fn spec(&self) -> &IndicatorSpec {
        &self.0.1
    }

    fn study(&self) -> Box<dyn AnyStudy> {
        self.0.0.study()
    }

    fn outputs(&self) -> &'static [&'static str] {
        self.0.0.indicator.outputs
    }
}

impl PartialEq for LiveSpec {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for LiveSpec {}

impl Hash for LiveSpec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for LiveSpec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LiveSpec {
    fn cmp(&self, other: &Self) -> Ordering {
        self.identity().cmp(other.identity())
    }
}

impl std::fmt::Debug for LiveSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.identity())
    }
}

/// What a candle update did to a live indicator.
#[derive(Debug, PartialEq)]
pub enum Applied {
    /// New values to send (none when nothing changed, or while warming up
    /// on an open bar).
    Updates(Vec<IndicatorUpdate>),
    /// A bar that had closed changed (open at this time): the values from it
    /// on can only be had by reseeding from stored history.
    ClosedBarChanged(Timestamp),
}

pub struct LiveIndicator {
    spec: LiveSpec,
    interval: Interval,
    /// Fed every closed bar so far, in order.
    study: Box<dyn AnyStudy>,
    closed_bars: usize,
    /// The values at the last closed bar, once the study has any.
    last_closed_values: Option<[f64; MAX_OUTPUTS]>,
    /// The newest closed bars, oldest first.
    recent_closed: VecDeque<Candle>,
    open_bar: Option<Candle>,
}

impl LiveIndicator {
    /// The indicator over `history` (oldest first, as stored): its closed
    /// bars feed the study, a trailing open bar is held as the open one.
    pub fn seed(spec: LiveSpec, interval: Interval, history: Vec<Candle>) -> Self {
        let study = spec.study();
        let mut live = Self {
            spec,
            interval,
            study,
            closed_bars: 0,
            last_closed_values: None,
            recent_closed: VecDeque::with_capacity(REMEMBERED_CLOSED_BARS),
            open_bar: None,
        };
        for candle in history {
            if candle.closed {
                live.close(candle);
            } else {
                live.open_bar = Some(candle);
            }
        }
        live
    }

    /// The latest values: the open bar's provisional ones when a bar is
    /// open, else the last closed bar's; empty, with the bars still needed,
    /// while warming up.
    pub fn latest(&self) -> IndicatorUpdate {
        if let Some(open) = &self.open_bar
            && let Some(values) = self.provisional(open)
        {
            return self.update(open, &values, false);
        }
        match (self.recent_closed.back(), &self.last_closed_values) {
            (Some(bar), Some(values)) => self.update(bar, values, true),
            _ => IndicatorUpdate {
                interval: self.interval as i32,
                spec: Some(self.spec.spec().clone()),
                bars_needed: self.bars_needed(),
                ..Default::default()
            },
        }
    }

    /// Applies one candle update of this indicator's series.
    pub fn apply(&mut self, candle: Candle) -> Applied {
        let Some(time) = candle.open_time else { return Applied::Updates(Vec::new()) };
        if let Some(last) = self.recent_closed.back().and_then(|bar| bar.open_time)
            && opens_at_or_before(&time, &last)
        {
            let known = self.recent_closed.iter().find(|bar| bar.open_time == Some(time));
            return match known {
                Some(bar) if same_bar(bar, &candle) => Applied::Updates(Vec::new()),
                _ => Applied::ClosedBarChanged(time),
            };
        }
        let mut updates = Vec::new();
        // A newer bar means the held open bar has closed, whether or not
        // its close was announced yet.
        if let Some(open) = self.open_bar.take_if(|open| open.open_time.is_some_and(|held| opens_before(&held, &time)))
        {
            updates.push(self.close(Candle { closed: true, ..open }));
        }
        if candle.closed {
            self.open_bar = None;
            updates.push(self.close(candle));
        } else {
            if let Some(values) = self.provisional(&candle) {
                updates.push(self.update(&candle, &values, false));
            }
            self.open_bar = Some(candle);
        }
        Applied::Updates(updates)
    }

    /// Feeds a closed bar to the study; its final update.
    fn close(&mut self, candle: Candle) -> IndicatorUpdate {
        let mut values = [0.0; MAX_OUTPUTS];
        let outputs = self.spec.outputs().len();
        if self.study.next(&bar_of(&candle), &mut values[..outputs]) {
            self.last_closed_values = Some(values);
        }
        self.closed_bars += 1;
        if self.recent_closed.len() == REMEMBERED_CLOSED_BARS {
            self.recent_closed.pop_front();
        }
        let update = match self.last_closed_values {
            Some(values) => self.update(&candle, &values, true),
            None => IndicatorUpdate {
                interval: self.interval as i32,
                spec: Some(self.spec.spec().clone()),
                bar_time: candle.open_time,
                closed: true,
                bars_needed: self.bars_needed(),
                ..Default::default()
            },
        };
        self.recent_closed.push_back(candle);
        update
    }

    /// The values at `open` as if it closed now, from a copy of the study.
    fn provisional(&self, open: &Candle) -> Option<[f64; MAX_OUTPUTS]> {
        let mut values = [0.0; MAX_OUTPUTS];
        let outputs = self.spec.outputs().len();
        self.study.boxed_clone().next(&bar_of(open), &mut values[..outputs]).then_some(values)
    }

    /// Bars, counting a held open one, still needed before the first value.
    fn bars_needed(&self) -> u32 {
        let have = self.closed_bars + usize::from(self.open_bar.is_some());
        (self.study.lookback() + 1).saturating_sub(have) as u32
    }

    fn update(&self, bar: &Candle, values: &[f64; MAX_OUTPUTS], closed: bool) -> IndicatorUpdate {
        IndicatorUpdate {
            interval: self.interval as i32,
            spec: Some(self.spec.spec().clone()),
            bar_time: bar.open_time,
            closed,
            values: self.spec.outputs().iter().zip(values).map(|(name, value)| ((*name).to_owned(), *value)).collect(),
            bars_needed: 0,
            corrected_bar_time: None,
        }
    }
}

fn bar_of(candle: &Candle) -> Bar {
    Bar { open: candle.open, high: candle.high, low: candle.low, close: candle.close, volume: candle.volume }
}

/// The same bar with the same prices and volume: a repeat, not a change.
fn same_bar(a: &Candle, b: &Candle) -> bool {
    a.open_time == b.open_time && bar_of(a) == bar_of(b)
}

fn opens_before(a: &Timestamp, b: &Timestamp) -> bool {
    (a.seconds, a.nanos) < (b.seconds, b.nanos)
}

fn opens_at_or_before(a: &Timestamp, b: &Timestamp) -> bool {
    (a.seconds, a.nanos) <= (b.seconds, b.nanos)
}

/// Reads the stored history a live indicator is seeded from: the range an
/// unbounded ComputeIndicators reads, so both give the same values.
#[derive(Clone)]
pub struct Seeder {
    candles: CandleSource,
}

impl Seeder {
    pub fn new(market_data: ServiceChannel) -> Self {
        Self { candles: CandleSource::new(market_data) }
    }

    pub async fn seed(
        &self,
        symbol: &str,
        interval: Interval,
        spec: &LiveSpec,
        caller: &Caller,
    ) -> Result<LiveIndicator, ApiError> {
        let history = self
            .candles
            .fetch(symbol, interval, None, now_timestamp(), Deadline::after(SEED_TIMEOUT), caller)
            .await?
            .candles;
        Ok(LiveIndicator::seed(spec.clone(), interval, history))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use wizdata_common::FieldViolations;

    use super::*;

    fn spec(name: &str, parameters: &[(&str, f64)]) -> LiveSpec {
        let specs = [IndicatorSpec {
            name: name.into(),
            parameters: parameters.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect(),
        }];
        let mut violations = FieldViolations::default();
        let planned = wizdata_indicator::plan("indicators", &specs, &mut violations);
        violations.into_result().unwrap();
        LiveSpec::new(planned.into_iter().next().unwrap())
    }

    fn candle(minute: i64, close: f64, closed: bool) -> Candle {
        Candle {
            open_time: Some(Timestamp { seconds: 1_700_000_000 - 1_700_000_000 % 60 + minute * 60, nanos: 0 }),
            open: close - 0.5,
            high: close + 1.0,
            low: close - 1.0,
            close,
            volume: 10.0 + minute as f64,
            trade_count: 1,
            closed,
        }
    }

    fn closes(count: i64) -> Vec<Candle> {
        (0..count).map(|minute| candle(minute, 100.0 + ((minute * 7) % 11) as f64, true)).collect()
    }

    /// The values a batch run over `candles` gives at its last bar.
    fn batch_last(spec: &LiveSpec, candles: &[Candle]) -> HashMap<String, f64> {
        let bars = candles.iter().map(bar_of).collect();
        let outputs = spec.outputs();
        let (_, series) = spec.study().series(&bars, outputs.len());
        outputs.iter().zip(series).map(|(name, values)| ((*name).to_owned(), *values.last().unwrap())).collect()
    }

    fn updates(applied: Applied) -> Vec<IndicatorUpdate> {
        match applied {
            Applied::Updates(updates) => updates,
            other => panic!("expected updates, got {other:?}"),
        }
    }

    #[test]
    fn specs_asked_for_differently_are_one_live_indicator() {
        assert_eq!(spec("rsi", &[]), spec("RSI", &[("time_period", 14.0)]));
        assert_ne!(spec("RSI", &[]), spec("RSI", &[("time_period", 15.0)]));
        assert_eq!(spec("rsi", &[]).spec().parameters["time_period"], 14.0, "the spec names every parameter");
    }

    #[test]
    fn open_bars_give_provisional_values_and_closes_give_the_final_ones_of_a_batch_run() {
        let macd = spec("MACD", &[("fast_period", 3.0), ("slow_period", 5.0), ("signal_period", 2.0)]);
        let mut history = closes(20);
        let mut live = LiveIndicator::seed(macd.clone(), Interval::OneMinute, history.clone());
        let latest = live.latest();
        assert!(latest.closed);
        assert_eq!(latest.bar_time, history.last().unwrap().open_time);
        assert_eq!(latest.values, batch_last(&macd, &history));

        // Two updates of the open bar: each is the batch value with the bar as it stands.
        for close in [103.0, 97.5] {
            let open = candle(20, close, false);
            let sent = updates(live.apply(open));
            let expected = batch_last(&macd, &[history.clone(), vec![open]].concat());
            assert_eq!(sent.len(), 1);
            assert!(!sent[0].closed, "the open bar's value is provisional");
            assert_eq!(sent[0].values, expected);
            assert_eq!(live.latest().values, expected);
        }
        // The close: final, and the study moves on from it.
        let closed = candle(20, 99.0, true);
        let sent = updates(live.apply(closed));
        history.push(closed);
        assert_eq!(sent.len(), 1);
        assert!(sent[0].closed);
        assert_eq!(sent[0].values, batch_last(&macd, &history));
        // Its close announced again changes nothing.
        assert_eq!(live.apply(closed), Applied::Updates(Vec::new()));
    }

    #[test]
    fn a_newer_bar_closes_the_held_one_even_before_its_close_is_announced() {
        let ema = spec("EMA", &[("time_period", 3.0)]);
        let history = closes(10);
        let mut live = LiveIndicator::seed(ema.clone(), Interval::OneMinute, history.clone());
        updates(live.apply(candle(10, 120.0, false)));
        let sent = updates(live.apply(candle(11, 90.0, false)));
        assert_eq!(sent.len(), 2, "the held bar's final value, then the new bar's provisional one");
        let with_closed = [history.clone(), vec![candle(10, 120.0, true)]].concat();
        assert!(sent[0].closed);
        assert_eq!(sent[0].bar_time, candle(10, 0.0, true).open_time);
        assert_eq!(sent[0].values, batch_last(&ema, &with_closed));
        assert!(!sent[1].closed);
        assert_eq!(sent[1].values, batch_last(&ema, &[with_closed, vec![candle(11, 90.0, false)]].concat()));
        // The late announcement of bar 10's close, unchanged, is a repeat.
        assert_eq!(live.apply(candle(10, 120.0, true)), Applied::Updates(Vec::new()));
    }

    #[test]
    fn a_change_to_a_closed_bar_asks_for_a_reseed() {
        let sma = spec("SMA", &[("time_period", 4.0)]);
        let mut live = LiveIndicator::seed(sma, Interval::OneMinute, closes(10));
        let late = candle(6, 500.0, true);
        assert_eq!(live.apply(late), Applied::ClosedBarChanged(late.open_time.unwrap()));
        // Older than the bars remembered: any announcement is taken as a change.
        let mut long = LiveIndicator::seed(spec("SMA", &[]), Interval::OneMinute, closes(200));
        let old = closes(200)[3];
        assert_eq!(long.apply(old), Applied::ClosedBarChanged(old.open_time.unwrap()));
    }

    #[test]
    fn short_history_gives_no_values_and_says_how_many_bars_are_missing() {
        let rsi = spec("RSI", &[]);
        let mut live = LiveIndicator::seed(rsi, Interval::OneMinute, closes(5));
        let latest = live.latest();
        assert!(latest.values.is_empty());
        assert_eq!(latest.bars_needed, 15 - 5, "RSI(14) has its first value at the 15th bar");
        let sent = updates(live.apply(candle(5, 101.0, false)));
        assert!(sent.is_empty(), "no provisional value while warming up");
        assert_eq!(live.latest().bars_needed, 9, "the open bar counts");
        let sent = updates(live.apply(candle(5, 101.0, true)));
        assert_eq!((sent[0].closed, sent[0].bars_needed, sent[0].values.len()), (true, 9, 0));
    }
}

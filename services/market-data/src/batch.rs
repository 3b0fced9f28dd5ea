//! What ingest hands to the writer: accepted ticks, already folded into the
//! bars and quote parts they change, plus the trades in arrival order for
//! the bus.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use wizdata::r#type::v1::Interval;

use crate::bars::{BarState, LastTrade, QuoteState, TopOfBook};
use crate::interval::{INTERVALS, bar_open_seconds, width_seconds};

/// Identifies one bar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BarKey {
    pub symbol: Arc<str>,
    pub interval: Interval,
    /// Seconds since the epoch.
    pub open_time: i64,
}

#[derive(Clone, Debug)]
pub struct TradeEvent {
    pub symbol: Arc<str>,
    pub time_ns: i64,
    pub price: f64,
    pub size: f64,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub bars: HashMap<BarKey, BarState>,
    pub quotes: HashMap<Arc<str>, QuoteState>,
    pub trades: Vec<TradeEvent>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.bars.is_empty() && self.quotes.is_empty()
    }

    /// Adds a trade to the bar of every interval and to the quote.
    pub fn add_trade(&mut self, symbol: &Arc<str>, time_ns: i64, price: f64, size: f64) {
        let trade = BarState::from_trade(time_ns, price, size);
        for interval in INTERVALS {
            let width = width_seconds(interval).expect("aggregated intervals have widths");
            let key = BarKey { symbol: symbol.clone(), interval, open_time: bar_open_seconds(width, time_ns) };
            merge_into(&mut self.bars, key, &trade, BarState::merge);
        }
        let quote = QuoteState { last_trade: Some(LastTrade { time_ns, price, size }), top_of_book: None };
        merge_into(&mut self.quotes, symbol.clone(), &quote, QuoteState::merge);
        self.trades.push(TradeEvent { symbol: symbol.clone(), time_ns, price, size });
    }

    pub fn add_top_of_book(&mut self, symbol: &Arc<str>, book: TopOfBook) {
        let quote = QuoteState { last_trade: None, top_of_book: Some(book) };
        merge_into(&mut self.quotes, symbol.clone(), &quote, QuoteState::merge);
    }

    /// Folds a later batch in; trades keep their arrival order.
    pub fn absorb(&mut self, other: Batch) {
        for (key, bar) in other.bars {
            merge_into(&mut self.bars, key, &bar, BarState::merge);
        }
        for (symbol, quote) in other.quotes {
            merge_into(&mut self.quotes, symbol, &quote, QuoteState::merge);
        }
        self.trades.extend(other.trades);
    }
}

fn merge_into<K: std::hash::Hash + Eq, V: Clone>(map: &mut HashMap<K, V>, key: K, value: &V, merge: fn(&mut V, &V)) {
    match map.entry(key) {
        Entry::Occupied(mut entry) => merge(entry.get_mut(), value),
        Entry::Vacant(entry) => {
            entry.insert(value.clone());
        }
    }
}

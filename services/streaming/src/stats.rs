//! The counters GetStreamStats reports.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wizdata::streaming::v1::{GetStreamStatsResponse, SymbolStats};

#[derive(Default)]
pub struct Stats {
    events_in: AtomicU64,
    events_out: AtomicU64,
    events_dropped: AtomicU64,
    quotes_conflated: AtomicU64,
    connections: AtomicU64,
    live_indicators: AtomicU64,
    subscriptions: Mutex<HashMap<String, u64>>,
}

impl Stats {
    /// Counters that start at zero, exported at once so `rate()` and alerts
    /// see every series from the start.
    pub fn new() -> Self {
        for direction in ["in", "out"] {
            metrics::counter!("streaming_events_total", "direction" => direction).increment(0);
        }
        metrics::counter!("streaming_events_dropped_total").increment(0);
        metrics::counter!("streaming_quotes_conflated_total").increment(0);
        metrics::gauge!("streaming_connections").increment(0.0);
        metrics::gauge!("streaming_subscriptions").increment(0.0);
        metrics::gauge!("streaming_live_indicators").increment(0.0);
        Self::default()
    }

    pub fn event_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streaming_events_total", "direction" => "in").increment(1);
    }

    pub fn event_out(&self) {
        self.events_out.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streaming_events_total", "direction" => "out").increment(1);
    }

    pub fn event_dropped(&self) {
        self.events_dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streaming_events_dropped_total").increment(1);
    }

    pub fn quote_conflated(&self) {
        self.quotes_conflated.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("streaming_quotes_conflated_total").increment(1);
    }

    pub fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("streaming_connections").increment(1.0);
    }

    pub fn disconnected(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("streaming_connections").decrement(1.0);
    }

    pub fn live_indicator_started(&self) {
        self.live_indicators.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("streaming_live_indicators").increment(1.0);
    }

    pub fn live_indicator_stopped(&self) {
        self.live_indicators.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("streaming_live_indicators").decrement(1.0);
    }

    pub fn subscribed(&self, symbol: &str) {
        *self.subscriptions.lock().expect("stats lock is not poisoned").entry(symbol.to_owned()).or_default() += 1;
        metrics::gauge!("streaming_subscriptions").increment(1.0);
    }

    pub fn unsubscribed(&self, symbol: &str) {
        let mut subscriptions = self.subscriptions.lock().expect("stats lock is not poisoned");
        if let Some(count) = subscriptions.get_mut(symbol) {
            *count -= 1;
            metrics::gauge!("streaming_subscriptions").decrement(1.0);
            if *count == 0 {
                subscriptions.remove(symbol);
            }
        }
    }

    pub fn report(&self) -> GetStreamStatsResponse {
        let subscriptions = self.subscriptions.lock().expect("stats lock is not poisoned");
        let mut symbols: Vec<SymbolStats> = subscriptions
            .iter()
            .map(|(symbol, count)| SymbolStats { symbol: symbol.clone(), subscriptions: *count })
            .collect();
        symbols.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        GetStreamStatsResponse {
            connections: self.connections.load(Ordering::Relaxed),
            subscriptions: symbols.iter().map(|symbol| symbol.subscriptions).sum(),
            symbols,
            events_in: self.events_in.load(Ordering::Relaxed),
            events_out: self.events_out.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            quotes_conflated: self.quotes_conflated.load(Ordering::Relaxed),
            live_indicators: self.live_indicators.load(Ordering::Relaxed),
        }
    }
}

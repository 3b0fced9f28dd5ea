//! The one task per process that writes ticks to the database: group commit.
//! Ingest calls hand it batches and wait for its acknowledgement; it merges
//! everything queued into one transaction, so throughput grows with load
//! while a lone tick is still written at once. After each commit, in order,
//! it refreshes the quote cache, acknowledges (so an OK ingest is visible in
//! quotes), and hands the events to the bus publisher.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wizdata::marketdata::v1::{MarketDataEvent, Trade, market_data_event};
use wizdata::r#type::v1::{Interval, Quote};
use wizdata_common::bus::Bus;
use wizdata_common::{ApiError, ErrorCode};

use wizdata_common::time::{now_ns, timestamp_from_ns};

use crate::batch::{Batch, IdentifiedTrade, TradeEvent};
use crate::candle_cache::{CandleCache, announce_settled};
use crate::convert;
use crate::entity::candle;
use crate::events;
use crate::interval::{self, bar_is_closed};
use crate::quotes::QuoteCache;
use crate::store::Store;

/// Batches queued before ingest calls wait (back-pressure to the feeds).
const QUEUE: usize = 256;
/// Most batches merged into one transaction.
const MAX_GROUP: usize = 128;
/// Bus messages queued before the writer waits for the publisher.
const PUBLISH_QUEUE: usize = 1024;
/// How often bars whose time is up are announced closed.
const CLOSE_SWEEP: Duration = Duration::from_millis(500);
/// How often trade ids older than the dedupe window are forgotten.
const FORGET_SWEEP: Duration = Duration::from_secs(60);

/// A symbol's bars of one interval.
type SeriesKey = (Arc<str>, Interval);

/// Resolves once a batch is durably written, with its identified trades
/// that were not applied, being repeats.
pub type Ack = oneshot::Receiver<Result<Vec<IdentifiedTrade>, ApiError>>;
type AckSender = oneshot::Sender<Result<Vec<IdentifiedTrade>, ApiError>>;

enum Command {
    Write(Batch, AckSender),
    /// Re-read these symbols' quotes into the cache (after a cache miss, or
    /// an import that changed daily bars).
    Refresh(Vec<Arc<str>>),
}

#[derive(Clone)]
pub struct Writer {
    commands: mpsc::Sender<Command>,
}

impl Writer {
    /// Starts the writer; trade ids are remembered for `dedupe_window`.
    pub fn start(
        store: Store,
        quotes: QuoteCache,
        candles: CandleCache,
        bus: Bus,
        dedupe_window: Duration,
    ) -> (Self, Vec<JoinHandle<()>>) {
        // Exported at zero, so `rate()` and alerts see the series from the start.
        metrics::counter!("marketdata_commits_total").increment(0);
        metrics::counter!("marketdata_candles_written_total").increment(0);
        metrics::counter!("marketdata_trade_ids_forgotten_total").increment(0);
        let (commands, queue) = mpsc::channel(QUEUE);
        let (publish, to_publish) = mpsc::channel(PUBLISH_QUEUE);
        let dedupe_window_ns = i64::try_from(dedupe_window.as_nanos()).unwrap_or(i64::MAX);
        let worker = Worker { store, quotes, candles, publish, open_bars: OpenBars::default(), dedupe_window_ns };
        let tasks = vec![tokio::spawn(worker.run(queue)), tokio::spawn(publish_loop(bus, to_publish))];
        (Self { commands }, tasks)
    }

    /// Queues `batch`; the returned acknowledgement resolves once it is
    /// durably written (or failed).
    pub async fn submit(&self, batch: Batch) -> Result<Ack, ApiError> {
        let (ack, acked) = oneshot::channel();
        self.commands.send(Command::Write(batch, ack)).await.map_err(|_| stopped())?;
        Ok(acked)
    }

    /// Asks for these symbols' cached quotes to be re-read; best effort.
    pub fn refresh(&self, symbols: Vec<Arc<str>>) {
        if !symbols.is_empty() {
            let _ = self.commands.try_send(Command::Refresh(symbols));
        }
    }
}

fn stopped() -> ApiError {
    ApiError::unavailable("the market data writer is stopping; retry on another replica")
}

/// Waits for an acknowledgement: the batch's duplicates once written.
pub async fn acknowledged(ack: Ack) -> Result<Vec<IdentifiedTrade>, ApiError> {
    ack.await.unwrap_or_else(|_| Err(stopped()))
}

struct Worker {
    store: Store,
    quotes: QuoteCache,
    /// Settled bars this write changed are applied here before the write
    /// is acknowledged, and announced to the other replicas.
    candles: CandleCache,
    publish: mpsc::Sender<Vec<(String, Bytes)>>,
    /// The newest bar of each series still open by the wall clock: announced
    /// closed when its time is up.
    open_bars: OpenBars,
    /// Trade ids applied longer ago than this are forgotten.
    dedupe_window_ns: i64,
}

/// The newest bar of each series still open by the wall clock, kept to
/// announce its close once its time is up.
#[derive(Default)]
struct OpenBars(HashMap<SeriesKey, candle::Model>);

impl OpenBars {
    /// Follows a written bar: a newer open one is tracked; a closed one
    /// that is the tracked bar (a trade after its end, before the sweep)
    /// announced its own close with that trade in it, so the sweep must not
    /// announce it again from the state before the trade.
    fn written(&mut self, key: &SeriesKey, row: candle::Model, now: i64) {
        if !bar_is_closed(key.1, row.open_time, now) {
            if self.0.get(key).is_none_or(|open| open.open_time <= row.open_time) {
                self.0.insert(key.clone(), row);
            }
        } else if self.0.get(key).is_some_and(|open| open.open_time == row.open_time) {
            self.0.remove(key);
        }
    }

    /// The tracked bars whose time is up, no longer tracked.
    fn take_due(&mut self, now: i64) -> Vec<(SeriesKey, candle::Model)> {
        let due: Vec<SeriesKey> = self
            .0
            .iter()
            .filter(|((_, interval), row)| bar_is_closed(*interval, row.open_time, now))
            .map(|(key, _)| key.clone())
            .collect();
        due.into_iter().filter_map(|key| self.0.remove(&key).map(|row| (key, row))).collect()
    }
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut sweep = tokio::time::interval(CLOSE_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut forget = tokio::time::interval(FORGET_SWEEP);
        forget.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = queue.recv() => {
                    let Some(command) = command else { return };
                    let mut group = vec![command];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(command) => group.push(command),
                            Err(_) => break,
                        }
                    }
                    if let Err(unavailable) = self.apply(group).await {
                        // What queued while the database failed this write
                        // would wait out one more timeout for the same
                        // answer: each call waits on one failed attempt at
                        // most. None of it was written, so a retry is safe.
                        while let Ok(command) = queue.try_recv() {
                            if let Command::Write(_, ack) = command {
                                let _ = ack.send(Err(unavailable.clone()));
                            }
                        }
                    }
                }
                _ = sweep.tick() => self.close_due_bars().await,
                _ = forget.tick() => self.forget_old_trade_ids().await,
            }
        }
    }

    /// Writes a group in one transaction and acknowledges each part.
    /// `Err` when the database could not be reached.
    async fn apply(&mut self, group: Vec<Command>) -> Result<(), ApiError> {
        let mut batch = Batch::default();
        let parts = group.iter().filter_map(|command| match command {
            Command::Write(part, _) => Some(part),
            Command::Refresh(_) => None,
        });
        let (identified, trades) = parts.fold((0, 0), |(identified, trades), part| {
            (identified + part.identified.len(), trades + part.trades.len())
        });
        batch.identified.reserve(identified);
        batch.trades.reserve(trades);
        // Each part's acknowledgement, and where its identified trades start
        // in the merged batch's.
        let mut acks: Vec<(AckSender, usize)> = Vec::new();
        let mut refresh = BTreeSet::new();
        for command in group {
            match command {
                Command::Write(part, ack) => {
                    acks.push((ack, batch.identified.len()));
                    batch.absorb(part);
                }
                Command::Refresh(symbols) => refresh.extend(symbols),
            }
        }

        let mut messages = Vec::new();
        let mut changed = BTreeSet::new();
        let mut duplicates: Vec<Vec<IdentifiedTrade>> = acks.iter().map(|_| Vec::new()).collect();
        if !batch.is_empty() {
            let written = match self.store.write(&mut batch, now_ns()).await {
                Ok(written) => written,
                Err(error) => {
                    let error = ApiError::from(error);
                    for (ack, _) in acks {
                        let _ = ack.send(Err(error.clone()));
                    }
                    return match error.code() {
                        ErrorCode::Unavailable => Err(error),
                        _ => Ok(()),
                    };
                }
            };
            for (position, held) in written.duplicates {
                let part = acks.partition_point(|(_, first)| *first <= position) - 1;
                duplicates[part].push(held);
            }
            metrics::counter!("marketdata_commits_total").increment(1);
            metrics::counter!("marketdata_candles_written_total").increment(written.candles.len() as u64);
            messages.extend(announce_settled(&self.candles, &written.settled, &written.candles, now_ns()));
            changed.extend(written.quotes.iter().map(|row| Arc::<str>::from(row.symbol.as_str())));
            refresh.extend(changed.iter().cloned());
            messages.extend(trade_messages(std::mem::take(&mut batch.trades)));
            messages.extend(self.candle_messages(written.candles));
        }
        let quotes = self.read_quotes(&refresh).await;
        self.quotes.fill(&quotes).await;
        for ((ack, _), duplicates) in acks.into_iter().zip(duplicates) {
            let _ = ack.send(Ok(duplicates));
        }
        messages.extend(quotes.into_iter().filter(|quote| changed.contains(quote.symbol.as_str())).map(|quote| {
            let event = MarketDataEvent {
                symbol: quote.symbol.clone(),
                event_time: quote.update_time,
                kind: Some(market_data_event::Kind::Quote(quote)),
            };
            (events::quotes_topic(&event.symbol), events::encode(vec![event]))
        }));
        if !messages.is_empty() {
            let _ = self.publish.send(messages).await;
        }
        Ok(())
    }

    /// The quotes of `symbols` as now stored. A symbol whose read fails is
    /// left out: the cache keeps it unsynced, so readers use the database.
    /// The first failure ends the reading, so acknowledgements wait on one
    /// unreachable database at most once.
    async fn read_quotes(&self, symbols: &BTreeSet<Arc<str>>) -> Vec<Quote> {
        let mut quotes = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            match self.store.quote(symbol).await {
                Ok(Some(quote)) => quotes.push(quote),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%symbol, error = %ApiError::from(error), "cannot read quotes to cache");
                    break;
                }
            }
        }
        quotes
    }

    /// Candle events for the written bars, one message per series, oldest
    /// bar first; tracks the open ones so their close is announced.
    fn candle_messages(&mut self, mut rows: Vec<candle::Model>) -> Vec<(String, Bytes)> {
        let now = now_ns();
        rows.sort_by(|a, b| (&a.symbol, &a.interval, a.open_time).cmp(&(&b.symbol, &b.interval, b.open_time)));
        let mut series: Vec<(SeriesKey, Vec<MarketDataEvent>)> = Vec::new();
        for row in rows {
            let Some(interval) = interval::parse(&row.interval) else { continue };
            let symbol: Arc<str> = row.symbol.as_str().into();
            let event = convert::candle_event(&row, interval, now);
            let key = (symbol, interval);
            self.open_bars.written(&key, row, now);
            match series.last_mut() {
                Some((last, events)) if *last == key => events.push(event),
                _ => series.push((key, vec![event])),
            }
        }
        series
            .into_iter()
            .map(|((symbol, interval), events)| (events::candles_topic(&symbol, interval), events::encode(events)))
            .collect()
    }

    /// Forgets the trade ids older than the window; on failure, the next
    /// sweep tries again (until then, older repeats are still recognised).
    async fn forget_old_trade_ids(&self) {
        let cutoff = now_ns().saturating_sub(self.dedupe_window_ns);
        match self.store.forget_trade_ids(cutoff).await {
            Ok(forgotten) => metrics::counter!("marketdata_trade_ids_forgotten_total").increment(forgotten),
            Err(error) => tracing::warn!(error = %ApiError::from(error), "cannot forget old trade ids"),
        }
    }

    /// Announces, once, each tracked bar whose time is up.
    async fn close_due_bars(&mut self) {
        let now = now_ns();
        let due = self.open_bars.take_due(now);
        if due.is_empty() {
            return;
        }
        let messages = due
            .into_iter()
            .map(|((symbol, interval), row)| {
                let event = convert::candle_event(&row, interval, now);
                (events::candles_topic(&symbol, interval), events::encode(vec![event]))
            })
            .collect();
        let _ = self.publish.send(messages).await;
    }
}

/// One message per symbol with its trades in arrival order.
fn trade_messages(trades: Vec<TradeEvent>) -> Vec<(String, Bytes)> {
    // Per symbol, one event reused for each of its trades and appended to
    // the symbol's payload as it comes: a group holds up to hundreds of
    // thousands of trades, and no list of their events is ever built.
    let mut by_symbol: Vec<(MarketDataEvent, Vec<u8>)> = Vec::new();
    let mut index: foldhash::HashMap<Arc<str>, usize> = foldhash::HashMap::default();
    for trade in trades {
        let slot = *index.entry(trade.symbol.clone()).or_insert_with(|| {
            let event = MarketDataEvent { symbol: trade.symbol.to_string(), ..MarketDataEvent::default() };
            by_symbol.push((event, Vec::new()));
            by_symbol.len() - 1
        });
        let (event, payload) = &mut by_symbol[slot];
        event.event_time = Some(timestamp_from_ns(trade.time_ns));
        event.kind = Some(market_data_event::Kind::Trade(Trade {
            price: trade.price,
            size: trade.size,
            source: trade.source,
            trade_id: trade.trade_id,
        }));
        events::append(payload, event);
    }
    by_symbol.into_iter().map(|(event, payload)| (events::trades_topic(&event.symbol), payload.into())).collect()
}

/// Publishes in order; while the bus is down, events are dropped (the bus is
/// best effort, and subscribers see the gap) and the outage is logged once.
async fn publish_loop(bus: Bus, mut queue: mpsc::Receiver<Vec<(String, Bytes)>>) {
    let mut was_publishing = true;
    while let Some(messages) = queue.recv().await {
        let count = messages.len();
        let publishing = bus.publish(messages).await.is_ok();
        if publishing != was_publishing {
            if publishing {
                tracing::info!("publishing market events again");
            } else {
                tracing::warn!(dropped = count, "cannot publish market events; dropping them until the bus returns");
            }
            was_publishing = publishing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60;
    const SECOND_NS: i64 = 1_000_000_000;

    fn bar(open_time: i64, close: f64) -> candle::Model {
        candle::Model {
            symbol: "AAPL".into(),
            interval: "1m".into(),
            open_time,
            open: close,
            high: close,
            low: close,
            close,
            volume: 1.0,
            trade_count: 1,
            first_trade_ns: open_time * SECOND_NS,
            last_trade_ns: open_time * SECOND_NS,
        }
    }

    #[test]
    fn an_open_bar_is_announced_once_when_its_time_is_up() {
        let key: SeriesKey = ("AAPL".into(), Interval::OneMinute);
        let mut open = OpenBars::default();
        let during = (600 + 30) * SECOND_NS;
        open.written(&key, bar(600, 10.0), during);
        open.written(&key, bar(600, 11.0), during);
        assert!(open.take_due(during).is_empty(), "not before its end");
        let after = (600 + MINUTE + 1) * SECOND_NS;
        let due = open.take_due(after);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.close, 11.0, "announced as last written");
        assert!(open.take_due(after).is_empty(), "once");
    }

    #[test]
    fn a_trade_after_the_end_and_before_the_sweep_closes_the_bar_itself() {
        let key: SeriesKey = ("AAPL".into(), Interval::OneMinute);
        let mut open = OpenBars::default();
        open.written(&key, bar(600, 10.0), (600 + 30) * SECOND_NS);
        // Written after the bar's end: its event says closed, with this trade.
        let late = (600 + MINUTE) * SECOND_NS + 1;
        open.written(&key, bar(600, 12.0), late);
        assert!(open.take_due(late + SECOND_NS).is_empty(), "the sweep does not announce the older state again");
        // A late trade into an older bar leaves the tracked open one alone.
        open.written(&key, bar(660, 13.0), late);
        open.written(&key, bar(540, 9.0), late);
        assert_eq!(open.take_due((660 + MINUTE) * SECOND_NS).len(), 1);
    }
}

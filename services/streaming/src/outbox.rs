//! One subscriber's queue of outgoing items, bounded so a slow client costs
//! a fixed amount of memory and never slows the others.
//!
//! Quotes are conflated: a symbol's unsent quote is replaced by the newer
//! one. Trades and candle events beyond the bound are dropped, and the drops
//! of one symbol and channel in a row become one gap event, placed where the
//! dropped events would have been. A subscriber that leaves items waiting
//! for longer than `stuck_after` is closed.
//!
//! Command acknowledgements are never dropped: at most [`MAX_PENDING_ACKS`]
//! wait, and a Session's command reader waits for room before it reads the
//! next command, so a client that sends commands without reading answers is
//! slowed by HTTP/2 flow control instead of growing the server's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::{Channel, CommandAck, Gap, GapReason, MarketEvent};

use crate::encoded::SharedEvent;
use crate::hub::TopicKey;

use crate::stats::Stats;

/// What a subscriber is sent, in order.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A topic's event, shared with (and encoded once for) its other subscribers.
    Shared(Arc<SharedEvent>),
    /// An event of this subscriber's own: a snapshot, or a gap its queue made.
    Own(MarketEvent),
    Ack(CommandAck),
    /// The topic's state, as of this sequence number, is to be read afresh
    /// and sent as snapshot events (after the bus was interrupted).
    Resync(TopicKey, u64),
}

/// The outbox was closed: the subscriber was too slow, or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Whose drops one gap marker collects: a symbol and channel, and for
/// indicators the indicator (each is its own sequence of events).
pub type GapKey = (String, i32, String);

pub fn gap_key(event: &MarketEvent) -> GapKey {
    let indicator = match &event.payload {
        Some(Payload::Indicator(update)) => update.spec.as_ref(),
        Some(Payload::Gap(gap)) => gap.indicator.as_ref(),
        _ => None,
    };
    let indicator = indicator.map_or_else(String::new, |spec| {
        let mut parameters: Vec<_> = spec.parameters.iter().collect();
        parameters.sort_by(|a, b| a.0.cmp(b.0));
        format!("{}{parameters:?}", spec.name)
    });
    (event.symbol.clone(), event.channel, indicator)
}

/// Acknowledgements queued at most; the next command is read once one is sent.
pub const MAX_PENDING_ACKS: usize = 256;

pub struct Outbox {
    state: Mutex<State>,
    // The response stream waiting for something to send: woken by each push
    // (lighter than a Notify, whose waiter list is locked on every wait).
    ready: AtomicWaker,
    closing: Notify,
    // Woken when an acknowledgement leaves the queue, or the outbox closes.
    ack_room: Notify,
    capacity: usize,
    stuck_after: Duration,
}

#[derive(Default)]
struct State {
    // Sent before anything else: the state a subscription starts from.
    snapshots: VecDeque<Outgoing>,
    // The newest unsent quote per symbol, in the order symbols first waited.
    quotes: HashMap<String, Arc<SharedEvent>>,
    quote_order: VecDeque<String>,
    // Trades, candle events, gap markers and acknowledgements, in order.
    queue: VecDeque<Outgoing>,
    // Id of the next entry pushed onto `queue`; the front's id is
    // `next_id - queue.len()`.
    next_id: u64,
    events_queued: usize,
    acks_queued: usize,
    // The gap marker still collecting drops, per symbol and channel.
    open_gaps: HashMap<GapKey, u64>,
    // Since when items have waited without the subscriber taking any.
    waiting_since: Option<Instant>,
    closed: bool,
}

impl State {
    fn has_pending(&self) -> bool {
        !self.snapshots.is_empty() || !self.quote_order.is_empty() || !self.queue.is_empty()
    }
}

impl Outbox {
    pub fn new(capacity: usize, stuck_after: Duration) -> Self {
        Self {
            state: Mutex::default(),
            ready: AtomicWaker::new(),
            closing: Notify::new(),
            ack_room: Notify::new(),
            capacity,
            stuck_after,
        }
    }

    /// Queues a live event. `Err(Closed)` once the outbox is closed,
    /// including by this push when the subscriber has been stuck too long.
    pub fn push(&self, shared: &Arc<SharedEvent>, stats: &Stats) -> Result<(), Closed> {
        let event = &shared.event;
        let mut state = self.state.lock().expect("outbox lock is not poisoned");
        if state.closed {
            return Err(Closed);
        }
        let now = Instant::now();
        match state.waiting_since {
            Some(since) if state.has_pending() && now.duration_since(since) > self.stuck_after => {
                state.closed = true;
                drop(state);
                self.ready.wake();
                self.closing.notify_waiters();
                return Err(Closed);
            }
            Some(_) if state.has_pending() => {}
            _ => state.waiting_since = Some(now),
        }
        if event.channel == Channel::Quotes as i32 {
            let symbol = event.symbol.clone();
            if state.quotes.insert(symbol.clone(), shared.clone()).is_some() {
                stats.quote_conflated();
            } else {
                state.quote_order.push_back(symbol);
            }
        } else {
            // Computed once per event, not per subscriber.
            let key = &shared.gap_key;
            if state.events_queued < self.capacity {
                state.open_gaps.remove(key);
                state.events_queued += 1;
                state.push_queue(Outgoing::Shared(shared.clone()));
            } else {
                stats.event_dropped();
                let front_id = state.next_id - state.queue.len() as u64;
                let open = state.open_gaps.get(key).map(|id| (id - front_id) as usize);
                match open.and_then(|index| state.queue.get_mut(index)) {
                    Some(Outgoing::Own(MarketEvent {
                        payload: Some(Payload::Gap(gap)), sequence, event_time, ..
                    })) => {
                        gap.dropped += 1;
                        *sequence = event.sequence;
                        *event_time = event.event_time;
                    }
                    _ => {
                        let id = state.next_id;
                        state.open_gaps.insert(key.clone(), id);
                        let indicator = match &event.payload {
                            Some(Payload::Indicator(update)) => update.spec.clone(),
                            _ => None,
                        };
                        let gap = Gap { dropped: 1, reason: GapReason::SubscriberBehind as i32, indicator };
                        state.push_queue(Outgoing::Own(MarketEvent {
                            symbol: event.symbol.clone(),
                            channel: event.channel,
                            sequence: event.sequence,
                            event_time: event.event_time,
                            snapshot: false,
                            payload: Some(Payload::Gap(gap)),
                        }));
                    }
                }
            }
        }
        drop(state);
        self.ready.wake();
        Ok(())
    }

    /// Queues a snapshot event, sent before every live event.
    pub fn push_snapshot(&self, event: MarketEvent) {
        let mut state = self.state.lock().expect("outbox lock is not poisoned");
        state.snapshots.push_back(Outgoing::Own(event));
        drop(state);
        self.ready.wake();
    }

    /// Queues a resynchronisation of `key` after what is queued already.
    pub fn push_resync(&self, key: TopicKey, sequence: u64) -> Result<(), Closed> {
        let mut state = self.state.lock().expect("outbox lock is not poisoned");
        if state.closed {
            return Err(Closed);
        }
        state.push_queue(Outgoing::Resync(key, sequence));
        drop(state);
        self.ready.wake();
        Ok(())
    }

    /// Queues a command acknowledgement after what is queued already,
    /// waiting while [`MAX_PENDING_ACKS`] are unsent. `Err(Closed)` once the
    /// outbox is closed.
    pub async fn push_ack(&self, ack: CommandAck) -> Result<(), Closed> {
        loop {
            let room = self.ack_room.notified();
            tokio::pin!(room);
            // Registered before the check, so room made in between is not missed.
            room.as_mut().enable();
            {
                let mut state = self.state.lock().expect("outbox lock is not poisoned");
                if state.closed {
                    return Err(Closed);
                }
                if state.acks_queued < MAX_PENDING_ACKS {
                    state.acks_queued += 1;
                    state.push_queue(Outgoing::Ack(ack));
                    drop(state);
                    self.ready.wake();
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// The next item to send: snapshots, then quotes, then the rest.
    /// `Err(Closed)` once closed and drained of nothing more to say.
    pub fn take(&self) -> Result<Option<Outgoing>, Closed> {
        let mut state = self.state.lock().expect("outbox lock is not poisoned");
        if state.closed {
            return Err(Closed);
        }
        let item = if let Some(item) = state.snapshots.pop_front() {
            Some(item)
        } else if let Some(symbol) = state.quote_order.pop_front() {
            state.quotes.remove(&symbol).map(Outgoing::Shared)
        } else {
            let front_id = state.next_id - state.queue.len() as u64;
            let item = state.queue.pop_front();
            if let Some(Outgoing::Ack(_)) = &item {
                state.acks_queued -= 1;
                self.ack_room.notify_one();
            }
            match &item {
                // The queue's own events are the gaps it made.
                Some(Outgoing::Own(event)) => {
                    let key = gap_key(event);
                    if state.open_gaps.get(&key) == Some(&front_id) {
                        state.open_gaps.remove(&key);
                    }
                }
                Some(Outgoing::Shared(_)) => state.events_queued -= 1,
                _ => {}
            }
            item
        };
        state.waiting_since = state.has_pending().then(Instant::now);
        Ok(item)
    }

    /// Waits until something may have been queued (or the outbox closed).
    pub async fn ready(&self) {
        std::future::poll_fn(|context| {
            // Registered before the check, so a push in between is not missed.
            self.ready.register(context.waker());
            let state = self.state.lock().expect("outbox lock is not poisoned");
            if state.closed || state.has_pending() { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }

    /// Resolves once the outbox is closed.
    pub async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the check, so a close in between is not missed.
        notified.as_mut().enable();
        if self.state.lock().expect("outbox lock is not poisoned").closed {
            return;
        }
        notified.await;
    }

    pub fn close(&self) {
        self.state.lock().expect("outbox lock is not poisoned").closed = true;
        self.ready.wake();
        self.closing.notify_waiters();
        self.ack_room.notify_waiters();
    }
}

impl State {
    fn push_queue(&mut self, item: Outgoing) {
        self.queue.push_back(item);
        self.next_id += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn event(symbol: &str, channel: Channel, sequence: u64) -> Arc<SharedEvent> {
        let payload = match channel {
            Channel::Quotes => {
                Payload::Quote(wizdata::r#type::v1::Quote { last_price: sequence as f64, ..Default::default() })
            }
            _ => Payload::Trade(wizdata::streaming::v1::TradePrint {
                price: sequence as f64,
                size: 1.0,
                ..Default::default()
            }),
        };
        SharedEvent::new(MarketEvent {
            symbol: symbol.into(),
            channel: channel as i32,
            sequence,
            payload: Some(payload),
            ..Default::default()
        })
    }

    fn drain(outbox: &Outbox) -> Vec<(String, u64, String)> {
        let mut taken = Vec::new();
        while let Some(item) = outbox.take().unwrap() {
            let event = match item {
                Outgoing::Shared(shared) => shared.event.clone(),
                Outgoing::Own(event) => event,
                other => panic!("an event, not {other:?}"),
            };
            let kind = match event.payload.unwrap() {
                Payload::Gap(gap) => format!("gap {}", gap.dropped),
                Payload::Quote(_) => "quote".into(),
                _ => "trade".into(),
            };
            taken.push((event.symbol, event.sequence, kind));
        }
        taken
    }

    #[test]
    fn quotes_are_conflated_and_overflowing_trades_become_one_gap_in_place() {
        let stats = Stats::default();
        let outbox = Outbox::new(2, Duration::from_secs(60));
        for sequence in 1..=5 {
            outbox.push(&event("AAPL", Channel::Trades, sequence), &stats).unwrap();
            outbox.push(&event("AAPL", Channel::Quotes, sequence), &stats).unwrap();
        }
        let taken = drain(&outbox);
        let expected = [("AAPL", 5, "quote"), ("AAPL", 1, "trade"), ("AAPL", 2, "trade"), ("AAPL", 5, "gap 3")];
        assert_eq!(taken, expected.map(|(s, n, k)| (s.to_owned(), n, k.to_owned())));
        let stats = stats.report();
        assert_eq!((stats.events_dropped, stats.quotes_conflated), (3, 4));
    }

    #[test]
    fn after_a_gap_the_next_event_follows_it() {
        let stats = Stats::default();
        let outbox = Outbox::new(1, Duration::from_secs(60));
        outbox.push(&event("MSFT", Channel::Trades, 1), &stats).unwrap();
        outbox.push(&event("MSFT", Channel::Trades, 2), &stats).unwrap();
        assert!(matches!(outbox.take().unwrap(), Some(Outgoing::Shared(shared)) if shared.event.sequence == 1));
        outbox.push(&event("MSFT", Channel::Trades, 3), &stats).unwrap();
        outbox.push(&event("MSFT", Channel::Trades, 4), &stats).unwrap();
        let taken = drain(&outbox);
        let expected = [("MSFT", 2, "gap 1"), ("MSFT", 3, "trade"), ("MSFT", 4, "gap 1")];
        assert_eq!(taken, expected.map(|(s, n, k)| (s.to_owned(), n, k.to_owned())));
    }

    #[tokio::test]
    async fn acknowledgements_wait_for_room_and_none_is_lost() {
        let outbox = Arc::new(Outbox::new(4, Duration::from_secs(60)));
        let ack = |id: usize| CommandAck { command_id: id.to_string(), ..Default::default() };
        for id in 0..MAX_PENDING_ACKS {
            outbox.push_ack(ack(id)).await.unwrap();
        }
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push_ack(ack(MAX_PENDING_ACKS)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the next acknowledgement waits while the queue is full");
        let first = outbox.take().unwrap();
        assert!(matches!(first, Some(Outgoing::Ack(first)) if first == ack(0)));
        waiting.await.unwrap().expect("queued once one was sent");
        let mut ids = Vec::new();
        while let Some(Outgoing::Ack(ack)) = outbox.take().unwrap() {
            ids.push(ack.command_id.parse::<usize>().unwrap());
        }
        assert_eq!(ids, (1..=MAX_PENDING_ACKS).collect::<Vec<_>>(), "every acknowledgement, in order");

        for id in 0..MAX_PENDING_ACKS {
            outbox.push_ack(ack(id)).await.unwrap();
        }
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push_ack(ack(0)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox.close();
        assert_eq!(waiting.await.unwrap(), Err(Closed), "a closed outbox lets the waiting reader go");
    }

    #[test]
    fn a_subscriber_stuck_past_the_limit_is_closed() {
        let stats = Stats::default();
        let outbox = Outbox::new(4, Duration::ZERO);
        outbox.push(&event("AAPL", Channel::Trades, 1), &stats).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(outbox.push(&event("AAPL", Channel::Trades, 2), &stats), Err(Closed));
        assert!(matches!(outbox.take(), Err(Closed)));
    }
}

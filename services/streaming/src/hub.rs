//! Fan-out: one bus subscription per topic (symbol x channel, and interval
//! for candles) that this replica's subscribers need, created by the first
//! subscriber and dropped with the last. Each event read from the bus is
//! numbered (per topic, increasing by one) and pushed into every
//! subscriber's outbox; a subscriber's slowness stays in its own outbox.
//!
//! An indicator topic (symbol x interval x indicator) reads its series'
//! candle events and runs one live indicator (`live`) for all its
//! subscribers: seeded from stored history when the topic is created,
//! reseeded when a closed bar changes or the bus loses events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prost_types::Timestamp;
use wizdata::marketdata::v1::MarketDataEvent;
use wizdata::marketdata::v1::market_data_event::Kind;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::{CandleUpdate, Channel, Gap, GapReason, IndicatorUpdate, MarketEvent, TradePrint};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::ApiError;
use wizdata_common::auth::Caller;
use wizdata_common::bus::{Bus, Delivery, Subscription};
use wizdata_common::market_events;

use crate::encoded::SharedEvent;
use crate::live::{Applied, LiveIndicator, LiveSpec, Seeder};
use crate::outbox::Outbox;
use crate::stats::Stats;

/// Waits between failed attempts to seed a live indicator, doubling up to
/// the longest.
const SEED_RETRY_FIRST: Duration = Duration::from_millis(250);
const SEED_RETRY_LONGEST: Duration = Duration::from_secs(10);

/// One stream of events: a symbol's quotes, trades, or candles of one interval.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey {
    pub symbol: String,
    pub channel: Channel,
    /// `Unspecified` except for candles and indicators.
    pub interval: Interval,
    /// Set for indicators only.
    pub indicator: Option<LiveSpec>,
}

impl TopicKey {
    fn bus_topic(&self) -> String {
        match self.channel {
            Channel::Quotes => market_events::quotes_topic(&self.symbol),
            Channel::Trades => market_events::trades_topic(&self.symbol),
            Channel::Candles | Channel::Indicators | Channel::Unspecified => {
                market_events::candles_topic(&self.symbol, self.interval)
            }
        }
    }

    /// e.g. "AAPL CHANNEL_INDICATORS RSI(time_period=14)", for messages.
    pub fn describe(&self) -> String {
        match &self.indicator {
            Some(indicator) => format!("{} {} {}", self.symbol, self.channel.as_str_name(), indicator.identity()),
            None => format!("{} {}", self.symbol, self.channel.as_str_name()),
        }
    }
}

/// Identifies one subscriber (a Subscribe or Session call) in the hub.
pub type SubscriberId = u64;

pub struct Hub {
    bus: Bus,
    topics: Mutex<HashMap<TopicKey, Arc<Topic>>>,
    stats: Arc<Stats>,
    seeder: Seeder,
}

struct Topic {
    state: Mutex<TopicState>,
    // Reads the bus; aborted when the topic's last subscriber leaves.
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct TopicState {
    subscribers: HashMap<SubscriberId, Arc<Outbox>>,
    /// The number of the last event read from the bus.
    sequence: u64,
    /// An indicator topic's latest values, once seeded: the snapshot a new
    /// subscriber is sent.
    latest: Option<IndicatorUpdate>,
    /// Whose credentials an indicator topic reads stored history with: its
    /// newest subscriber's.
    seed_as: Option<Caller>,
}

impl Drop for Topic {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get_mut().expect("reader lock is not poisoned").take() {
            reader.abort();
        }
    }
}

impl Hub {
    pub fn new(bus: Bus, stats: Arc<Stats>, seeder: Seeder) -> Self {
        Self { bus, topics: Mutex::default(), stats, seeder }
    }

    /// Adds a subscriber to a topic and returns the number of the topic's
    /// last event: a snapshot taken now reflects it, live events follow it.
    /// An indicator topic queues its snapshot itself, now if it is seeded,
    /// else once it is; `caller` is who it reads stored history as.
    pub async fn join(
        &self,
        key: &TopicKey,
        id: SubscriberId,
        outbox: Arc<Outbox>,
        caller: &Caller,
    ) -> Result<u64, ApiError> {
        loop {
            {
                let topics = self.topics.lock().expect("hub lock is not poisoned");
                if let Some(topic) = topics.get(key) {
                    let mut state = topic.state.lock().expect("topic lock is not poisoned");
                    if key.indicator.is_some() {
                        state.seed_as = Some(caller.clone());
                        if let Some(latest) = &state.latest {
                            outbox.push_snapshot(indicator_event(key, state.sequence, latest.clone(), true));
                        }
                    }
                    if state.subscribers.insert(id, outbox).is_none() {
                        self.stats.subscribed(&key.symbol);
                    }
                    return Ok(state.sequence);
                }
            }
            // Subscribed before the topic is published here, so no event
            // between the snapshot and the first live one is missed.
            let subscription = self
                .bus
                .subscribe(&key.bus_topic())
                .await
                .map_err(|_| ApiError::unavailable("the event bus is unavailable; retry later"))?;
            let mut topics = self.topics.lock().expect("hub lock is not poisoned");
            if topics.contains_key(key) {
                continue;
            }
            let topic = Arc::new(Topic {
                state: Mutex::new(TopicState { seed_as: Some(caller.clone()), ..TopicState::default() }),
                reader: Mutex::new(None),
            });
            let (weak, stats) = (Arc::downgrade(&topic), self.stats.clone());
            let reader = match key.indicator.is_some() {
                true => {
                    stats.live_indicator_started();
                    tokio::spawn(read_indicator(key.clone(), subscription, weak, stats, self.seeder.clone()))
                }
                false => tokio::spawn(read(key.clone(), subscription, weak, stats)),
            };
            *topic.reader.lock().expect("reader lock is not poisoned") = Some(reader);
            topic.state.lock().expect("topic lock is not poisoned").subscribers.insert(id, outbox);
            self.stats.subscribed(&key.symbol);
            topics.insert(key.clone(), topic);
            return Ok(0);
        }
    }

    /// Removes a subscriber from a topic; the topic goes with its last
    /// subscriber. False when it was not subscribed.
    pub fn leave(&self, key: &TopicKey, id: SubscriberId) -> bool {
        let mut topics = self.topics.lock().expect("hub lock is not poisoned");
        let Some(topic) = topics.get(key) else { return false };
        let mut state = topic.state.lock().expect("topic lock is not poisoned");
        let removed = state.subscribers.remove(&id).is_some();
        if removed {
            self.stats.unsubscribed(&key.symbol);
        }
        if state.subscribers.is_empty() {
            drop(state);
            topics.remove(key);
            if key.indicator.is_some() {
                self.stats.live_indicator_stopped();
            }
        }
        removed
    }
}

/// Reads a topic's events from the bus and fans them out until the topic goes.
async fn read(key: TopicKey, mut subscription: Subscription, topic: Weak<Topic>, stats: Arc<Stats>) {
    while let Some(delivery) = subscription.recv().await {
        let events: Vec<MarketEvent> = match delivery {
            Delivery::Message(payload) => match market_events::decode(&payload) {
                Ok(events) => events.into_iter().filter_map(|event| market_event(&key, event)).collect(),
                Err(error) => {
                    tracing::warn!(%error, topic = key.bus_topic(), "undecodable bus message");
                    continue;
                }
            },
            // The bus lost messages: numbered as if delivered, so every
            // subscriber sees the jump, and told as a gap.
            Delivery::Lost(lost) => vec![gap(&key, lost, GapReason::ReplicaBehind)],
            // How many were lost is unknown: the gap takes one number, and
            // each subscriber is sent the topic's state afresh after it.
            Delivery::Interrupted => vec![gap(&key, 0, GapReason::BusInterrupted)],
        };
        let Some(topic) = topic.upgrade() else { return };
        fan_out(&key, &topic, events, &stats);
    }
}

/// Numbers `events` as the topic's next ones and queues them for every
/// subscriber; subscribers too slow to take them are let go.
fn fan_out(key: &TopicKey, topic: &Topic, events: Vec<MarketEvent>, stats: &Stats) {
    let mut state = topic.state.lock().expect("topic lock is not poisoned");
    for mut event in events {
        // Indicator topics send their own fresh state after an interruption.
        let resync = key.indicator.is_none()
            && matches!(&event.payload, Some(Payload::Gap(gap)) if gap.reason() == GapReason::BusInterrupted);
        state.sequence += match &event.payload {
            Some(Payload::Gap(gap)) => gap.dropped.max(1),
            _ => 1,
        };
        event.sequence = state.sequence;
        stats.event_in();
        let shared = SharedEvent::new(event);
        let mut closed = Vec::new();
        for (id, outbox) in &state.subscribers {
            let pushed = outbox.push(&shared, stats);
            if pushed.is_err() || (resync && outbox.push_resync(key.clone(), state.sequence).is_err()) {
                closed.push(*id);
            }
        }
        // Stuck subscribers stop receiving here; their call ends with a status.
        for id in closed {
            state.subscribers.remove(&id);
            stats.unsubscribed(&key.symbol);
        }
    }
}

/// Runs an indicator topic's live indicator: seeded from stored history,
/// then fed the series' candle events, until the topic goes.
async fn read_indicator(
    key: TopicKey,
    mut subscription: Subscription,
    topic: Weak<Topic>,
    stats: Arc<Stats>,
    seeder: Seeder,
) {
    // Subscribed before seeding: an update committed meanwhile waits in the
    // subscription and is applied on top (a repeat of a seeded bar is
    // recognised as one).
    let Some(mut live) = seed(&key, &topic, &seeder).await else { return };
    {
        let Some(topic) = topic.upgrade() else { return };
        let mut state = topic.state.lock().expect("topic lock is not poisoned");
        let latest = live.latest();
        for outbox in state.subscribers.values() {
            outbox.push_snapshot(indicator_event(&key, state.sequence, latest.clone(), true));
        }
        state.latest = Some(latest);
    }
    while let Some(delivery) = subscription.recv().await {
        let mut updates = Vec::new();
        let mut reseed = None;
        match delivery {
            Delivery::Message(payload) => match market_events::decode(&payload) {
                Ok(events) => {
                    for (event_time, candle) in events.into_iter().filter_map(|event| candle_of(&key, event)) {
                        match live.apply(candle) {
                            Applied::Updates(more) => {
                                updates.extend(more.into_iter().map(|update| (event_time, update)))
                            }
                            Applied::ClosedBarChanged(time) => reseed = Some(Reseed::Corrected(time)),
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, topic = key.bus_topic(), "undecodable bus message");
                    continue;
                }
            },
            Delivery::Lost(lost) => reseed = Some(Reseed::AfterGap(lost, GapReason::ReplicaBehind)),
            Delivery::Interrupted => reseed = Some(Reseed::AfterGap(0, GapReason::BusInterrupted)),
        }
        let mut events: Vec<MarketEvent> = updates
            .into_iter()
            .map(|(event_time, update)| MarketEvent { event_time, ..indicator_event(&key, 0, update, false) })
            .collect();
        if let Some(Reseed::AfterGap(lost, reason)) = reseed {
            events.push(gap(&key, lost, reason));
        }
        {
            let Some(topic) = topic.upgrade() else { return };
            fan_out(&key, &topic, events, &stats);
            topic.state.lock().expect("topic lock is not poisoned").latest = Some(live.latest());
        }
        let Some(reseed) = reseed else { continue };
        let Some(reseeded) = seed(&key, &topic, &seeder).await else { return };
        live = reseeded;
        let Some(topic) = topic.upgrade() else { return };
        let latest = live.latest();
        match reseed {
            // A new event, numbered, saying which bar changed.
            Reseed::Corrected(time) => {
                let correction = IndicatorUpdate { corrected_bar_time: Some(time), ..latest.clone() };
                fan_out(&key, &topic, vec![indicator_event(&key, 0, correction, false)], &stats);
            }
            // The state afresh after the gap, as other channels send it.
            Reseed::AfterGap(..) => {
                let state = topic.state.lock().expect("topic lock is not poisoned");
                let fresh = SharedEvent::new(indicator_event(&key, state.sequence, latest.clone(), true));
                for outbox in state.subscribers.values() {
                    // A closed outbox ends its call; the next fan-out lets it go.
                    let _ = outbox.push(&fresh, &stats);
                }
            }
        }
        topic.state.lock().expect("topic lock is not poisoned").latest = Some(latest);
    }
}

/// Why a live indicator is seeded again.
enum Reseed {
    /// A closed bar (open at this time) changed.
    Corrected(Timestamp),
    /// The bus lost events (how many, when known).
    AfterGap(u64, GapReason),
}

/// A live indicator seeded from stored history, read as the topic's newest
/// subscriber; retried with backoff while market data cannot serve. `None`
/// once the topic is gone.
async fn seed(key: &TopicKey, topic: &Weak<Topic>, seeder: &Seeder) -> Option<LiveIndicator> {
    let spec = key.indicator.as_ref().expect("indicator topics have an indicator");
    let mut wait = SEED_RETRY_FIRST;
    loop {
        let caller = {
            let topic = topic.upgrade()?;
            let state = topic.state.lock().expect("topic lock is not poisoned");
            state.seed_as.clone().unwrap_or_else(|| Caller::anonymous(&[]))
        };
        match seeder.seed(&key.symbol, key.interval, spec, &caller).await {
            Ok(live) => return Some(live),
            Err(error) => {
                tracing::warn!(%error, topic = key.describe(), retry_in = ?wait, "cannot seed a live indicator from stored candles");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(SEED_RETRY_LONGEST);
            }
        }
    }
}

/// The candle of `key`'s series a market data event carries, if any, with
/// the time of its latest trade.
fn candle_of(key: &TopicKey, event: MarketDataEvent) -> Option<(Option<Timestamp>, Candle)> {
    match event.kind? {
        Kind::Candle(candle) if candle.interval == key.interval as i32 => Some((event.event_time, candle.candle?)),
        _ => None,
    }
}

/// An indicator topic's event, stamped now (numbered when fanned out,
/// unless a snapshot).
fn indicator_event(key: &TopicKey, sequence: u64, update: IndicatorUpdate, snapshot: bool) -> MarketEvent {
    MarketEvent {
        symbol: key.symbol.clone(),
        channel: Channel::Indicators as i32,
        sequence,
        event_time: Some(wizdata_common::time::now_timestamp()),
        snapshot,
        payload: Some(Payload::Indicator(Box::new(update))),
    }
}

/// A gap in `key`'s events (numbered when fanned out).
fn gap(key: &TopicKey, dropped: u64, reason: GapReason) -> MarketEvent {
    MarketEvent {
        symbol: key.symbol.clone(),
        channel: key.channel as i32,
        payload: Some(Payload::Gap(Gap {
            dropped,
            reason: reason as i32,
            indicator: key.indicator.as_ref().map(|indicator| indicator.spec().clone()),
        })),
        ..Default::default()
    }
}

/// A market data event as the subscribers of `key` see it (without its number yet).
fn market_event(key: &TopicKey, event: MarketDataEvent) -> Option<MarketEvent> {
    let payload = match (key.channel, event.kind?) {
        (Channel::Quotes, Kind::Quote(quote)) => Payload::Quote(quote),
        (Channel::Trades, Kind::Trade(trade)) => Payload::Trade(TradePrint {
            price: trade.price,
            size: trade.size,
            source: trade.source,
            trade_id: trade.trade_id,
        }),
        (Channel::Candles, Kind::Candle(candle)) => {
            Payload::Candle(CandleUpdate { interval: candle.interval, candle: candle.candle })
        }
        _ => return None,
    };
    Some(MarketEvent {
        symbol: key.symbol.clone(),
        channel: key.channel as i32,
        sequence: 0,
        event_time: event.event_time,
        snapshot: false,
        payload: Some(payload),
    })
}

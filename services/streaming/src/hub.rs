//! Fan-out: one bus subscription per topic (symbol x channel, and interval
//! for candles) that this replica's subscribers need, created by the first
//! subscriber and dropped with the last. Each event read from the bus is
//! numbered (per topic, increasing by one) and pushed into every
//! subscriber's outbox; a subscriber's slowness stays in its own outbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use wizdata::marketdata::v1::MarketDataEvent;
use wizdata::marketdata::v1::market_data_event::Kind;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::{CandleUpdate, Channel, Gap, GapReason, MarketEvent, TradePrint};
use wizdata::r#type::v1::Interval;
use wizdata_common::ApiError;
use wizdata_common::bus::{Bus, Delivery};
use wizdata_common::market_events;

use crate::outbox::Outbox;
use crate::stats::Stats;

/// One stream of events: a symbol's quotes, trades, or candles of one interval.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey {
    pub symbol: String,
    pub channel: Channel,
    /// `Unspecified` except for candles.
    pub interval: Interval,
}

impl TopicKey {
    fn bus_topic(&self) -> String {
        match self.channel {
            Channel::Quotes => market_events::quotes_topic(&self.symbol),
            Channel::Trades => market_events::trades_topic(&self.symbol),
            Channel::Candles | Channel::Unspecified => market_events::candles_topic(&self.symbol, self.interval),
        }
    }
}

/// Identifies one subscriber (a Subscribe or Session call) in the hub.
pub type SubscriberId = u64;

pub struct Hub {
    bus: Bus,
    topics: Mutex<HashMap<TopicKey, Arc<Topic>>>,
    stats: Arc<Stats>,
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
}

impl Drop for Topic {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get_mut().expect("reader lock is not poisoned").take() {
            reader.abort();
        }
    }
}

impl Hub {
    pub fn new(bus: Bus, stats: Arc<Stats>) -> Self {
        Self { bus, topics: Mutex::default(), stats }
    }

    /// Adds a subscriber to a topic and returns the number of the topic's
    /// last event: a snapshot taken now reflects it, live events follow it.
    pub async fn join(&self, key: &TopicKey, id: SubscriberId, outbox: Arc<Outbox>) -> Result<u64, ApiError> {
        loop {
            {
                let topics = self.topics.lock().expect("hub lock is not poisoned");
                if let Some(topic) = topics.get(key) {
                    let mut state = topic.state.lock().expect("topic lock is not poisoned");
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
            let topic = Arc::new(Topic { state: Mutex::default(), reader: Mutex::new(None) });
            let reader = tokio::spawn(read(key.clone(), subscription, Arc::downgrade(&topic), self.stats.clone()));
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
        }
        removed
    }
}

/// Reads a topic's events from the bus and fans them out until the topic goes.
async fn read(
    key: TopicKey,
    mut subscription: wizdata_common::bus::Subscription,
    topic: Weak<Topic>,
    stats: Arc<Stats>,
) {
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
        let mut state = topic.state.lock().expect("topic lock is not poisoned");
        for mut event in events {
            let resync = matches!(&event.payload, Some(Payload::Gap(gap)) if gap.reason() == GapReason::BusInterrupted);
            state.sequence += match &event.payload {
                Some(Payload::Gap(gap)) => gap.dropped.max(1),
                _ => 1,
            };
            event.sequence = state.sequence;
            stats.event_in();
            let mut closed = Vec::new();
            for (id, outbox) in &state.subscribers {
                let pushed = outbox.push(event.clone(), &stats);
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
}

/// A gap in `key`'s events (numbered when fanned out).
fn gap(key: &TopicKey, dropped: u64, reason: GapReason) -> MarketEvent {
    MarketEvent {
        symbol: key.symbol.clone(),
        channel: key.channel as i32,
        payload: Some(Payload::Gap(Gap { dropped, reason: reason as i32 })),
        ..Default::default()
    }
}

/// A market data event as the subscribers of `key` see it (without its number yet).
fn market_event(key: &TopicKey, event: MarketDataEvent) -> Option<MarketEvent> {
    let payload = match (key.channel, event.kind?) {
        (Channel::Quotes, Kind::Quote(quote)) => Payload::Quote(quote),
        (Channel::Trades, Kind::Trade(trade)) => Payload::Trade(TradePrint { price: trade.price, size: trade.size }),
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

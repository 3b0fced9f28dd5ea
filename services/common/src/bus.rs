//! The event bus between the market data service and the streaming replicas:
//! Redis pub/sub when configured, an in-process broadcast otherwise.
//!
//! Either way, delivery inside a process goes through one local broadcast
//! channel per topic, created by its first subscriber and removed with its
//! last, so a process subscribes in Redis only to the topics its own clients
//! need. The bus is best effort, like Redis pub/sub itself: a subscriber too
//! slow for its channel's buffer learns how many messages it lost, and every
//! subscriber learns when the connection to Redis broke (whatever was
//! published meanwhile is gone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::interfaces::{EventInterface, PubsubInterface};
use tokio::sync::broadcast;

use crate::redis::Redis;

/// Messages a subscriber may fall behind by before it loses some.
const TOPIC_BUFFER: usize = 4096;

/// Redis is down: the messages were not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusUnavailable;

#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

/// What a topic's local channel carries.
#[derive(Clone)]
enum Published {
    Message(Bytes),
    /// The connection to Redis broke and is back.
    Interrupted,
}

struct Inner {
    topics: Mutex<HashMap<String, broadcast::Sender<Published>>>,
    redis: Option<(Redis, SubscriberClient)>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.redis.is_some() { "Bus::Redis" } else { "Bus::Local" })
    }
}

impl Bus {
    /// An in-process bus.
    pub fn local() -> Self {
        Self { inner: Arc::new(Inner { topics: Mutex::default(), redis: None }) }
    }

    /// A bus over Redis pub/sub, or in-process when `redis` is `None`.
    pub async fn new(redis: Option<&Redis>) -> anyhow::Result<Self> {
        let Some(redis) = redis else { return Ok(Self::local()) };
        let subscriber = redis.subscriber().await?;
        let inner = Arc::new(Inner { topics: Mutex::default(), redis: Some((redis.clone(), subscriber.clone())) });
        let mut messages = subscriber.message_rx();
        let dispatch_to = Arc::downgrade(&inner);
        let prefix = redis.prefix().to_owned();
        tokio::spawn(async move {
            loop {
                let message = match messages.recv().await {
                    Ok(message) => message,
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        tracing::warn!(lost, "bus dispatcher fell behind Redis; messages lost");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(inner) = dispatch_to.upgrade() else { return };
                let Some(topic) = message.channel.strip_prefix(prefix.as_str()) else { continue };
                let Some(payload) = message.value.as_bytes().map(Bytes::copy_from_slice) else { continue };
                let sender = inner.topics.lock().expect("bus lock is never poisoned").get(topic).cloned();
                if let Some(sender) = sender {
                    let _ = sender.send(Published::Message(payload));
                }
            }
        });
        // Redis does not keep what was published while this connection was
        // down: every topic's subscribers are told, so none mistakes the
        // silence for a quiet market.
        let mut reconnects = subscriber.reconnect_rx();
        let tell = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                match reconnects.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                let Some(inner) = tell.upgrade() else { return };
                let topics = inner.topics.lock().expect("bus lock is never poisoned");
                tracing::warn!(topics = topics.len(), "bus reconnected to Redis; subscribers are told of a gap");
                for sender in topics.values() {
                    let _ = sender.send(Published::Interrupted);
                }
            }
        });
        Ok(Self { inner })
    }

    /// Publishes each `(topic, payload)` in order, in one Redis round trip.
    pub async fn publish(&self, messages: Vec<(String, Bytes)>) -> Result<(), BusUnavailable> {
        match &self.inner.redis {
            None => {
                let topics = self.inner.topics.lock().expect("bus lock is never poisoned");
                for (topic, payload) in messages {
                    if let Some(sender) = topics.get(&topic) {
                        // No receiver left is not an error: nobody listens.
                        let _ = sender.send(Published::Message(payload));
                    }
                }
                Ok(())
            }
            Some((redis, _)) => {
                if !redis.is_up() {
                    return Err(BusUnavailable);
                }
                let pipeline = redis.client().pipeline();
                for (topic, payload) in messages {
                    let _: () = pipeline
                        .publish(redis.key(&topic), payload)
                        .await
                        .expect("queueing a pipelined command does not fail");
                }
                pipeline.all::<()>().await.map_err(|error| {
                    redis.command_failed(&error);
                    BusUnavailable
                })
            }
        }
    }

    /// Receives what is published on `topic` from now on.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, BusUnavailable> {
        let (receiver, first) = {
            let mut topics = self.inner.topics.lock().expect("bus lock is never poisoned");
            match topics.get(topic) {
                Some(sender) => (sender.subscribe(), false),
                None => {
                    let (sender, receiver) = broadcast::channel(TOPIC_BUFFER);
                    topics.insert(topic.to_owned(), sender);
                    (receiver, true)
                }
            }
        };
        let subscription =
            Subscription { topic: topic.to_owned(), receiver: Some(receiver), bus: Arc::downgrade(&self.inner) };
        if first && let Some((redis, subscriber)) = &self.inner.redis {
            // On a task of its own, so a caller that gives up mid-way cannot
            // cancel a SUBSCRIBE that later subscribers of the topic rely on;
            // the UNSUBSCRIBE of a dropped subscription queues behind it.
            let (channel, subscriber) = (redis.key(topic), subscriber.clone());
            let subscribed = tokio::spawn(async move { subscriber.subscribe(channel).await });
            match subscribed.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    redis.command_failed(&error);
                    return Err(BusUnavailable);
                }
                Err(_) => return Err(BusUnavailable),
            }
        }
        Ok(subscription)
    }
}

/// What a subscriber receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Message(Bytes),
    /// The subscriber fell behind and this many messages were lost.
    Lost(u64),
    /// The connection to the bus broke and is back; how many messages were
    /// lost is unknown.
    Interrupted,
}

/// One subscriber of one topic; unsubscribes (in Redis, when it was the last
/// one in this process) when dropped.
pub struct Subscription {
    topic: String,
    receiver: Option<broadcast::Receiver<Published>>,
    bus: Weak<Inner>,
}

impl Subscription {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next delivery, or `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        let receiver = self.receiver.as_mut()?;
        match receiver.recv().await {
            Ok(Published::Message(payload)) => Some(Delivery::Message(payload)),
            Ok(Published::Interrupted) => Some(Delivery::Interrupted),
            Err(broadcast::error::RecvError::Lagged(lost)) => Some(Delivery::Lost(lost)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let Some(inner) = self.bus.upgrade() else { return };
        let mut topics = inner.topics.lock().expect("bus lock is never poisoned");
        if topics.get(&self.topic).is_some_and(|sender| sender.receiver_count() == 0) {
            topics.remove(&self.topic);
            if let Some((redis, subscriber)) = &inner.redis
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let (channel, subscriber) = (redis.key(&self.topic), subscriber.clone());
                runtime.spawn(async move {
                    let _ = subscriber.unsubscribe(channel).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_to_every_subscriber_of_a_topic_only() {
        let bus = Bus::local();
        let mut first = bus.subscribe("a").await.unwrap();
        let mut second = bus.subscribe("a").await.unwrap();
        let mut other = bus.subscribe("b").await.unwrap();
        bus.publish(vec![("a".into(), Bytes::from_static(b"1")), ("a".into(), Bytes::from_static(b"2"))])
            .await
            .unwrap();
        for subscriber in [&mut first, &mut second] {
            assert_eq!(subscriber.recv().await, Some(Delivery::Message(Bytes::from_static(b"1"))));
            assert_eq!(subscriber.recv().await, Some(Delivery::Message(Bytes::from_static(b"2"))));
        }
        bus.publish(vec![("b".into(), Bytes::from_static(b"3"))]).await.unwrap();
        assert_eq!(other.recv().await, Some(Delivery::Message(Bytes::from_static(b"3"))));
    }

    #[tokio::test]
    async fn the_last_subscriber_leaving_removes_the_topic() {
        let bus = Bus::local();
        let first = bus.subscribe("a").await.unwrap();
        let second = bus.subscribe("a").await.unwrap();
        drop(first);
        assert!(bus.inner.topics.lock().unwrap().contains_key("a"));
        drop(second);
        assert!(!bus.inner.topics.lock().unwrap().contains_key("a"));
    }
}

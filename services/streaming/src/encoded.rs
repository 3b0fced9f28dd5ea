//! Encode once: an event fanned out to a topic's subscribers is shared by
//! all their outboxes and encoded the first time one of them sends it, as
//! a SubscribeResponse or a SessionResponse; every other subscriber sends
//! the same bytes. Events of one subscriber's own (snapshots, the gaps its
//! queue makes) and acknowledgements are encoded as they are sent.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::Message;
use wizdata::streaming::v1::{CommandAck, Heartbeat, MarketEvent};
pub use wizdata_common::grpc::Encoded;

use crate::outbox::{GapKey, gap_key};

/// The field numbers of the response oneofs (streaming_service.proto).
const SUBSCRIBE_EVENT: u32 = 1;
const SUBSCRIBE_HEARTBEAT: u32 = 2;
const SESSION_ACK: u32 = 1;
const SESSION_EVENT: u32 = 2;
const SESSION_HEARTBEAT: u32 = 3;

/// A topic's event as every subscriber sends it.
#[derive(Debug)]
pub struct SharedEvent {
    pub event: MarketEvent,
    /// Whose sequence it belongs to, for the outboxes' gap markers.
    pub gap_key: GapKey,
    as_subscribe: OnceLock<Bytes>,
    as_session: OnceLock<Bytes>,
}

impl SharedEvent {
    pub fn new(event: MarketEvent) -> Arc<Self> {
        Arc::new(Self { gap_key: gap_key(&event), event, as_subscribe: OnceLock::new(), as_session: OnceLock::new() })
    }
}

/// Which response message a call's items are encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeAs {
    Subscribe,
    Session,
}

impl EncodeAs {
    /// A shared event, encoded by the first subscriber to send it.
    pub fn shared(self, shared: &SharedEvent) -> Encoded {
        let (cell, tag) = match self {
            Self::Subscribe => (&shared.as_subscribe, SUBSCRIBE_EVENT),
            Self::Session => (&shared.as_session, SESSION_EVENT),
        };
        Encoded(cell.get_or_init(|| field(tag, &shared.event)).clone())
    }

    /// An event of this subscriber's own.
    pub fn event(self, event: &MarketEvent) -> Encoded {
        Encoded(field(if self == Self::Subscribe { SUBSCRIBE_EVENT } else { SESSION_EVENT }, event))
    }

    pub fn heartbeat(self, heartbeat: &Heartbeat) -> Encoded {
        Encoded(field(if self == Self::Subscribe { SUBSCRIBE_HEARTBEAT } else { SESSION_HEARTBEAT }, heartbeat))
    }

    /// Session only: Subscribe takes no commands.
    pub fn ack(self, ack: &CommandAck) -> Encoded {
        debug_assert_eq!(self, Self::Session, "Subscribe takes no commands");
        Encoded(field(SESSION_ACK, ack))
    }
}

/// A response whose only field is `message` under `tag` (a oneof member):
/// the response's whole encoding.
fn field(tag: u32, message: &impl Message) -> Bytes {
    let mut buffer = Vec::with_capacity(message.encoded_len() + 8);
    prost::encoding::message::encode(tag, message, &mut buffer);
    buffer.into()
}

#[cfg(test)]
mod tests {
    use wizdata::streaming::v1::market_event::Payload;
    use wizdata::streaming::v1::{
        Channel, SessionResponse, SubscribeResponse, TradePrint, session_response, subscribe_response,
    };

    use super::*;

    fn trade() -> MarketEvent {
        MarketEvent {
            symbol: "AAPL".into(),
            channel: Channel::Trades as i32,
            sequence: 7,
            payload: Some(Payload::Trade(TradePrint { price: 191.5, size: 3.0, ..Default::default() })),
            ..Default::default()
        }
    }

    #[test]
    fn encoded_responses_are_the_bytes_of_the_typed_ones() {
        let shared = SharedEvent::new(trade());
        let subscribe = SubscribeResponse { payload: Some(subscribe_response::Payload::Event(trade())) };
        assert_eq!(EncodeAs::Subscribe.shared(&shared).0, subscribe.encode_to_vec());
        let session = SessionResponse { payload: Some(session_response::Payload::Event(trade())) };
        assert_eq!(EncodeAs::Session.shared(&shared).0, session.encode_to_vec());
        assert_eq!(EncodeAs::Session.event(&trade()).0, session.encode_to_vec());
        let ack = CommandAck { command_id: "a".into(), code: 5, message: "no".into(), active_subscriptions: 2 };
        let acked = SessionResponse { payload: Some(session_response::Payload::Ack(ack.clone())) };
        assert_eq!(EncodeAs::Session.ack(&ack).0, acked.encode_to_vec());
        let beat = Heartbeat { time: Some(prost_types::Timestamp { seconds: 9, nanos: 1 }) };
        let beating = SubscribeResponse { payload: Some(subscribe_response::Payload::Heartbeat(beat)) };
        assert_eq!(EncodeAs::Subscribe.heartbeat(&beat).0, beating.encode_to_vec());
    }

    #[test]
    fn a_shared_event_is_encoded_once_and_its_bytes_shared() {
        let shared = SharedEvent::new(trade());
        let (first, second) = (EncodeAs::Subscribe.shared(&shared), EncodeAs::Subscribe.shared(&shared));
        assert_eq!(first.0.as_ptr(), second.0.as_ptr(), "the same bytes, not a second encoding");
        let mut framed = Vec::new();
        first.encode(&mut framed).unwrap();
        assert_eq!(framed, first.0, "written as they are");
    }
}

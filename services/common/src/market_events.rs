//! The bus topics market data publishes on, and their payloads
//! (`MarketDataEvents`, protobuf-encoded): what the streaming service
//! subscribes to.

use bytes::Bytes;
use prost::Message;
use wizdata::marketdata::v1::{MarketDataEvent, MarketDataEvents};
use wizdata::r#type::v1::Interval;

use crate::interval::code;

pub fn trades_topic(symbol: &str) -> String {
    format!("marketdata.trades.{symbol}")
}

pub fn quotes_topic(symbol: &str) -> String {
    format!("marketdata.quotes.{symbol}")
}

pub fn candles_topic(symbol: &str, interval: Interval) -> String {
    format!("marketdata.candles.{}.{symbol}", code(interval))
}

pub fn encode(events: Vec<MarketDataEvent>) -> Bytes {
    MarketDataEvents { events }.encode_to_vec().into()
}

/// Appends `event` to a payload as one more of its events: a repeated
/// field's encoding is its items' one after another, so a payload is built
/// as events come, without holding them in a list first.
pub fn append(payload: &mut Vec<u8>, event: &MarketDataEvent) {
    prost::encoding::message::encode(EVENTS_FIELD, event, payload);
}

/// `MarketDataEvents.events`' field number.
const EVENTS_FIELD: u32 = 1;

pub fn decode(payload: &[u8]) -> Result<Vec<MarketDataEvent>, prost::DecodeError> {
    MarketDataEvents::decode(payload).map(|batch| batch.events)
}

#[cfg(test)]
mod tests {
    use wizdata::marketdata::v1::market_data_event::Kind;
    use wizdata::marketdata::v1::{MarketDataEvent, Trade};

    use super::*;

    #[test]
    fn appended_events_are_the_encoded_list() {
        let events: Vec<MarketDataEvent> = (0..3)
            .map(|n| MarketDataEvent {
                symbol: "BTC/USDT".into(),
                event_time: Some(prost_types::Timestamp { seconds: 1_700_000_000 + n, nanos: 5 }),
                kind: Some(Kind::Trade(Trade {
                    price: 100.5 + n as f64,
                    size: 2.0,
                    source: "binance".into(),
                    trade_id: n.to_string(),
                })),
            })
            .collect();
        let mut payload = Vec::new();
        for event in &events {
            append(&mut payload, event);
        }
        assert_eq!(payload, encode(events.clone()).to_vec());
        assert_eq!(decode(&payload).unwrap(), events);
    }
}

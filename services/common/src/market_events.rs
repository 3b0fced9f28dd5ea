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

pub fn decode(payload: &[u8]) -> Result<Vec<MarketDataEvent>, prost::DecodeError> {
    MarketDataEvents::decode(payload).map(|batch| batch.events)
}

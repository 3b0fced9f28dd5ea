//! What every provider's parser shares: a message it skips says why and
//! of what kind (for `feed_messages_total`), and numbers and symbols are
//! read the same way.

use crate::stats::MessageKind;
use crate::symbols::SymbolMap;

/// A message that is skipped, with its kind for the metrics and why.
#[derive(Debug, PartialEq)]
pub struct Skipped {
    pub kind: MessageKind,
    pub why: String,
}

pub fn skipped(kind: MessageKind, why: impl Into<String>) -> Skipped {
    Skipped { kind, why: why.into() }
}

/// A price or size sent as a decimal string, as every provider here does.
pub fn number(field: &str, text: &str) -> Result<f64, Skipped> {
    text.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| skipped(MessageKind::Malformed, format!("{field} {text:?} is not a number")))
}

/// The registry symbol of the provider's `name`; data for a name the map
/// does not carry is skipped as unmapped.
pub fn registry_symbol(symbols: &SymbolMap, name: &str) -> Result<String, Skipped> {
    symbols
        .registry_symbol(name)
        .map(str::to_owned)
        .ok_or_else(|| skipped(MessageKind::Unmapped, format!("{name} is not in the symbol map")))
}

/// An RFC 3339 time (Coinbase's `time`, Kraken's `timestamp`) in ns since
/// the epoch.
pub fn rfc3339_ns(field: &str, text: &str) -> Result<i64, Skipped> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|time| time.timestamp_nanos_opt())
        .ok_or_else(|| skipped(MessageKind::Malformed, format!("{field} {text:?} is not an RFC 3339 time")))
}

//! A backend's binary answer written straight out as canonical proto3 JSON,
//! walking the wire format with the message's descriptor, so the answers of
//! REST and Connect JSON calls skip building a dynamic message first (for
//! 10,000 candles that build cost as much as writing the JSON).
//!
//! It writes what prost-reflect's serializer writes (the tests compare the
//! two on every kind of field); well-known types other than Timestamp, and
//! anything it cannot read, are left to prost-reflect.

use base64::Engine as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use super::json::Defaults;

/// The wire format could not be read as the descriptor says.
#[derive(Debug)]
pub struct Unreadable;

/// One field occurrence on the wire.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Writes the `desc` message encoded in `bytes` to `out` as JSON.
pub fn write(desc: &MessageDescriptor, bytes: &[u8], defaults: Defaults, out: &mut Vec<u8>) -> Result<(), Unreadable> {
    match desc.full_name() {
        "google.protobuf.Timestamp" => return timestamp(bytes, out),
        name if name.starts_with("google.protobuf.") => return by_prost_reflect(desc, bytes, defaults, out),
        _ => {}
    }
    let slots = scan(bytes)?;
    out.push(b'{');
    let mut first = true;
    for field in desc.fields() {
        let number = field.number();
        let present = slots.iter().any(|(at, _)| *at == number);
        if !present && (field.supports_presence() || defaults == Defaults::Omitted) {
            continue;
        }
        let start = out.len();
        if !first {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(field.json_name().as_bytes());
        out.extend_from_slice(b"\":");
        let written = if field.is_map() {
            map(&field, &slots, defaults, out)?
        } else if field.is_list() {
            list(&field, &slots, defaults, out)?
        } else {
            singular(&field, &slots, defaults, out)?
        };
        // A default value (when defaults are omitted) takes back its key.
        if !written {
            out.truncate(start);
            continue;
        }
        first = false;
    }
    out.push(b'}');
    Ok(())
}

/// Every field occurrence of a message, in wire order.
fn scan(mut bytes: &[u8]) -> Result<Vec<(u32, Slot<'_>)>, Unreadable> {
    let mut slots = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = u32::try_from(key >> 3).map_err(|_| Unreadable)?;
        let slot = match key & 7 {
            0 => Slot::Varint(varint(&mut bytes)?),
            1 => Slot::Fixed64(u64::from_le_bytes(fixed(&mut bytes)?)),
            2 => {
                let length = usize::try_from(varint(&mut bytes)?).map_err(|_| Unreadable)?;
                Slot::Bytes(take(&mut bytes, length)?)
            }
            5 => Slot::Fixed32(u32::from_le_bytes(fixed(&mut bytes)?)),
            _ => return Err(Unreadable),
        };
        slots.push((number, slot));
    }
    Ok(slots)
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> Result<&'a [u8], Unreadable> {
    if bytes.len() < length {
        return Err(Unreadable);
    }
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(taken)
}

/// The next `N` bytes (a fixed64 or fixed32 value).
fn fixed<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], Unreadable> {
    take(bytes, N)?.try_into().map_err(|_| Unreadable)
}

fn varint(bytes: &mut &[u8]) -> Result<u64, Unreadable> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(Unreadable)?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Unreadable)
}

/// A singular field: its last occurrence (a message: all of them merged, as
/// parsing their concatenation does), or its default. Whether a value was
/// written: a default one is not, when defaults are omitted.
fn singular(
    field: &FieldDescriptor,
    slots: &[(u32, Slot)],
    defaults: Defaults,
    out: &mut Vec<u8>,
) -> Result<bool, Unreadable> {
    let number = field.number();
    if let Kind::Message(message) = field.kind() {
        let parts: Vec<&[u8]> = slots
            .iter()
            .filter(|(at, _)| *at == number)
            .map(|(_, slot)| match slot {
                Slot::Bytes(bytes) => Ok(*bytes),
                _ => Err(Unreadable),
            })
            .collect::<Result<_, _>>()?;
        let joined;
        let bytes = match parts.as_slice() {
            [one] => *one,
            _ => {
                joined = parts.concat();
                &joined
            }
        };
        write(&message, bytes, defaults, out)?;
        return Ok(true);
    }
    let last = slots.iter().rev().find(|(at, _)| *at == number).map(|(_, slot)| *slot);
    let omit_default = defaults == Defaults::Omitted && !field.supports_presence();
    match last {
        Some(slot) => scalar(&field.kind(), slot, omit_default, out),
        None => scalar_default(&field.kind(), out).map(|()| true),
    }
}

/// A repeated field as an array; packed scalars unpacked.
fn list(
    field: &FieldDescriptor,
    slots: &[(u32, Slot)],
    defaults: Defaults,
    out: &mut Vec<u8>,
) -> Result<bool, Unreadable> {
    let number = field.number();
    let kind = field.kind();
    let start = out.len();
    out.push(b'[');
    let mut count = 0usize;
    for (_, slot) in slots.iter().filter(|(at, _)| *at == number) {
        match (&kind, slot) {
            (Kind::Message(message), Slot::Bytes(bytes)) => {
                comma(&mut count, out);
                write(message, bytes, defaults, out)?;
            }
            (Kind::String | Kind::Bytes, slot) => {
                comma(&mut count, out);
                scalar(&kind, *slot, false, out)?;
            }
            (_, Slot::Bytes(packed)) => {
                let mut packed = *packed;
                while !packed.is_empty() {
                    let slot = match wire_type_of(&kind) {
                        0 => Slot::Varint(varint(&mut packed)?),
                        1 => Slot::Fixed64(u64::from_le_bytes(fixed(&mut packed)?)),
                        _ => Slot::Fixed32(u32::from_le_bytes(fixed(&mut packed)?)),
                    };
                    comma(&mut count, out);
                    scalar(&kind, slot, false, out)?;
                }
            }
            (_, slot) => {
                comma(&mut count, out);
                scalar(&kind, *slot, false, out)?;
            }
        }
    }
    out.push(b']');
    if count == 0 && defaults == Defaults::Omitted {
        out.truncate(start);
        return Ok(false);
    }
    Ok(true)
}

/// A map field as an object, keys as strings; a later entry for a key wins.
fn map(
    field: &FieldDescriptor,
    slots: &[(u32, Slot)],
    defaults: Defaults,
    out: &mut Vec<u8>,
) -> Result<bool, Unreadable> {
    let Kind::Message(entry) = field.kind() else { return Err(Unreadable) };
    let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (_, slot) in slots.iter().filter(|(at, _)| *at == field.number()) {
        let Slot::Bytes(bytes) = slot else { return Err(Unreadable) };
        let inner = scan(bytes)?;
        let mut key = Vec::new();
        match inner.iter().rev().find(|(at, _)| *at == key_field.number()) {
            Some((_, slot)) => scalar(&key_field.kind(), *slot, false, &mut key)?,
            None => scalar_default(&key_field.kind(), &mut key).map(|()| true)?,
        };
        if !key.starts_with(b"\"") {
            key.insert(0, b'"');
            key.push(b'"');
        }
        let mut value = Vec::new();
        singular(&value_field, &inner, Defaults::Included, &mut value)?;
        match entries.iter_mut().find(|(known, _)| *known == key) {
            Some(existing) => existing.1 = value,
            None => entries.push((key, value)),
        }
    }
    if entries.is_empty() && defaults == Defaults::Omitted {
        return Ok(false);
    }
    out.push(b'{');
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    Ok(true)
}

fn comma(count: &mut usize, out: &mut Vec<u8>) {
    if *count > 0 {
        out.push(b',');
    }
    *count += 1;
}

fn wire_type_of(kind: &Kind) -> u8 {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
        _ => 0,
    }
}

/// One scalar value; with `omit_default`, nothing is written for the
/// default value and `false` is returned.
fn scalar(kind: &Kind, slot: Slot, omit_default: bool, out: &mut Vec<u8>) -> Result<bool, Unreadable> {
    use erased::Json;
    let zigzag = |raw: u64| ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    match (kind, slot) {
        (Kind::Double, Slot::Fixed64(bits)) => {
            let value = f64::from_bits(bits);
            if omit_default && value == 0.0 {
                return Ok(false);
            }
            float(value, out);
        }
        (Kind::Float, Slot::Fixed32(bits)) => {
            let value = f32::from_bits(bits);
            if omit_default && value == 0.0 {
                return Ok(false);
            }
            if value.is_finite() { value.write(out) } else { float(f64::from(value), out) }
        }
        (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Enum(_), _) => {
            let value = match (kind, slot) {
                (Kind::Sfixed32, Slot::Fixed32(bits)) => bits as i32,
                (Kind::Sint32, Slot::Varint(raw)) => zigzag(raw) as i32,
                (Kind::Int32 | Kind::Enum(_), Slot::Varint(raw)) => raw as i32,
                _ => return Err(Unreadable),
            };
            if omit_default && value == 0 {
                return Ok(false);
            }
            match kind {
                Kind::Enum(enumeration) => match enumeration.get_value(value) {
                    Some(known) => known.name().write(out),
                    None => value.write(out),
                },
                _ => value.write(out),
            }
        }
        (Kind::Uint32, Slot::Varint(raw)) => {
            if omit_default && raw as u32 == 0 {
                return Ok(false);
            }
            (raw as u32).write(out)
        }
        (Kind::Fixed32, Slot::Fixed32(value)) => {
            if omit_default && value == 0 {
                return Ok(false);
            }
            value.write(out)
        }
        (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, _) => {
            let value = match (kind, slot) {
                (Kind::Sfixed64, Slot::Fixed64(bits)) => bits as i64,
                (Kind::Sint64, Slot::Varint(raw)) => zigzag(raw),
                (Kind::Int64, Slot::Varint(raw)) => raw as i64,
                _ => return Err(Unreadable),
            };
            if omit_default && value == 0 {
                return Ok(false);
            }
            value.to_string().write(out)
        }
        (Kind::Uint64, Slot::Varint(value)) | (Kind::Fixed64, Slot::Fixed64(value)) => {
            if omit_default && value == 0 {
                return Ok(false);
            }
            value.to_string().write(out)
        }
        (Kind::Bool, Slot::Varint(raw)) => {
            if omit_default && raw == 0 {
                return Ok(false);
            }
            (raw != 0).write(out)
        }
        (Kind::String, Slot::Bytes(bytes)) => {
            if omit_default && bytes.is_empty() {
                return Ok(false);
            }
            std::str::from_utf8(bytes).map_err(|_| Unreadable)?.write(out)
        }
        (Kind::Bytes, Slot::Bytes(bytes)) => {
            if omit_default && bytes.is_empty() {
                return Ok(false);
            }
            base64::engine::general_purpose::STANDARD.encode(bytes).write(out)
        }
        _ => return Err(Unreadable),
    }
    Ok(true)
}

/// The default value of a scalar kind.
fn scalar_default(kind: &Kind, out: &mut Vec<u8>) -> Result<(), Unreadable> {
    match kind {
        Kind::Double | Kind::Float => out.extend_from_slice(b"0.0"),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => out.extend_from_slice(b"\"0\""),
        Kind::Bool => out.extend_from_slice(b"false"),
        Kind::String | Kind::Bytes => out.extend_from_slice(b"\"\""),
        Kind::Enum(enumeration) => {
            let name = enumeration.default_value().name().to_owned();
            erased::Json::write(&name.as_str(), out);
        }
        Kind::Message(_) => return Err(Unreadable),
        _ => out.push(b'0'),
    }
    Ok(())
}

/// A double as proto3 JSON writes it: a number, or one of its three strings.
fn float(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else {
        erased::Json::write(&value, out);
    }
}

/// A Timestamp as RFC 3339, as prost-reflect writes it.
fn timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Unreadable> {
    let mut stamp = prost_types::Timestamp::default();
    for (number, slot) in scan(bytes)? {
        match (number, slot) {
            (1, Slot::Varint(seconds)) => stamp.seconds = seconds as i64,
            (2, Slot::Varint(nanos)) => stamp.nanos = nanos as i32,
            (1 | 2, _) => return Err(Unreadable),
            _ => {}
        }
    }
    let mut check = stamp;
    check.normalize();
    // Outside what RFC 3339 can say (or not normalized): prost-reflect's error.
    if check != stamp
        || !(0..1_000_000_000).contains(&stamp.nanos)
        || !(-62_135_596_800..=253_402_300_799).contains(&stamp.seconds)
    {
        return Err(Unreadable);
    }
    rfc3339(stamp.seconds, stamp.nanos as u32, out);
    Ok(())
}

/// `seconds` and `nanos` since the epoch as RFC 3339 in UTC, the fraction
/// in 3, 6 or 9 digits as needed (as prost-types writes it), for a time
/// between the years 1 and 9999.
fn rfc3339(seconds: i64, nanos: u32, out: &mut Vec<u8>) {
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400) as u32);
    // Days to a civil date (Howard Hinnant's algorithm).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097) as u32;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = (i64::from(year_of_era) + era * 400 + i64::from(month <= 2)) as u32;
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    out.push(b'"');
    digits(out, year, 4);
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, of_day / 3600, 2);
    out.push(b':');
    digits(out, of_day / 60 % 60, 2);
    out.push(b':');
    digits(out, of_day % 60, 2);
    match nanos {
        0 => {}
        _ if nanos.is_multiple_of(1_000_000) => {
            out.push(b'.');
            digits(out, nanos / 1_000_000, 3);
        }
        _ if nanos.is_multiple_of(1_000) => {
            out.push(b'.');
            digits(out, nanos / 1_000, 6);
        }
        _ => {
            out.push(b'.');
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
}

fn by_prost_reflect(
    desc: &MessageDescriptor,
    bytes: &[u8],
    defaults: Defaults,
    out: &mut Vec<u8>,
) -> Result<(), Unreadable> {
    let message = DynamicMessage::decode(desc.clone(), bytes).map_err(|_| Unreadable)?;
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(defaults == Defaults::Omitted);
    message.serialize_with_options(&mut serde_json::Serializer::new(out), &options).map_err(|_| Unreadable)
}

/// serde_json's own formatting of a value, so numbers and strings come out
/// exactly as the serde path writes them.
mod erased {
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize + ?Sized> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            serde_json::to_writer(out, self).expect("a scalar serializes into memory");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::routes::Methods;

    /// What prost-reflect's serializer writes, and what this module writes,
    /// for `message` (full name `name`), in both default modes, as JSON values.
    fn both_ways(message: &impl Message, name: &str) {
        let desc = Methods::contract().pool().get_message_by_name(name).expect(name);
        let bytes = message.encode_to_vec();
        for defaults in [Defaults::Included, Defaults::Omitted] {
            let mut out = Vec::new();
            write(&desc, &bytes, defaults, &mut out).unwrap();
            let decoded = super::super::json::decode(desc.clone(), &bytes).unwrap();
            let expected = super::super::json::write_json(&decoded, defaults, 0).unwrap();
            if out == expected {
                continue;
            }
            // Maps come out in another order; the same values are all that can match.
            let [written, expected] = [&out, &expected].map(|text| {
                serde_json::from_slice::<serde_json::Value>(text)
                    .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(text)))
            });
            assert_eq!(written, expected, "{name} {defaults:?}: {}", String::from_utf8_lossy(&out));
        }
    }

    fn candle(open_time: i64, nanos: i32, price: f64, trades: u64, closed: bool) -> wizdata::r#type::v1::Candle {
        wizdata::r#type::v1::Candle {
            open_time: Some(prost_types::Timestamp { seconds: open_time, nanos }),
            open: price,
            high: price * 2.0,
            low: -price,
            close: price / 3.0,
            volume: 0.0,
            trade_count: trades,
            closed,
        }
    }

    #[test]
    fn every_kind_of_field_comes_out_as_prost_reflect_writes_it() {
        use wizdata::indicator::v1 as indicator;
        use wizdata::streaming::v1 as streaming;
        both_ways(
            &wizdata::marketdata::v1::GetCandlesResponse {
                symbol: "NPN \"quoted\" é \u{1}".into(),
                interval: 3,
                candles: vec![candle(1_700_000_000, 0, 1.5, 7, true), candle(0, 123_000_000, f64::NAN, 0, false)],
                next_page_token: String::new(),
                revision: u64::MAX,
            },
            "wizdata.marketdata.v1.GetCandlesResponse",
        );
        let spec = indicator::IndicatorSpec {
            name: "MACD".into(),
            parameters: [("fast".into(), 12.0), ("slow".into(), -0.0)].into(),
        };
        both_ways(
            &indicator::ComputeIndicatorsResponse {
                symbol: "AAPL".into(),
                interval: 99,
                times: vec![prost_types::Timestamp { seconds: 1, nanos: 1 }],
                results: vec![indicator::IndicatorResult {
                    spec: Some(spec),
                    lookback: 33,
                    begin_index: 0,
                    outputs: vec![indicator::OutputSeries {
                        name: "macd".into(),
                        values: vec![1.0, f64::INFINITY, -1e300, 0.1],
                    }],
                }],
            },
            "wizdata.indicator.v1.ComputeIndicatorsResponse",
        );
        both_ways(
            &indicator::BatchComputeResponse {
                results: vec![indicator::SymbolResult {
                    symbol: "X".into(),
                    response: None,
                    error_code: -5,
                    error_message: "no".into(),
                }],
            },
            "wizdata.indicator.v1.BatchComputeResponse",
        );
        let event = streaming::MarketEvent {
            symbol: "AAPL".into(),
            channel: 2,
            sequence: u64::MAX,
            event_time: None,
            snapshot: false,
            payload: Some(streaming::market_event::Payload::Trade(streaming::TradePrint {
                price: 0.0,
                size: 2.5,
                ..Default::default()
            })),
        };
        both_ways(
            &streaming::SubscribeResponse { payload: Some(streaming::subscribe_response::Payload::Event(event)) },
            "wizdata.streaming.v1.SubscribeResponse",
        );
        both_ways(
            &wizdata::registry::v1::ListSymbolsRequest {
                streamable: Some(false),
                asset_class: 2,
                ..Default::default()
            },
            "wizdata.registry.v1.ListSymbolsRequest",
        );
        both_ways(
            &wizdata::registry::v1::UpdateSymbolRequest {
                symbol: None,
                update_mask: Some(prost_types::FieldMask { paths: vec!["asset_class".into(), "name".into()] }),
            },
            "wizdata.registry.v1.UpdateSymbolRequest",
        );
        both_ways(&streaming::GetStreamStatsResponse::default(), "wizdata.streaming.v1.GetStreamStatsResponse");
    }

    #[test]
    fn bytes_that_are_not_the_message_are_refused_not_guessed() {
        let desc = Methods::contract().pool().get_message_by_name("wizdata.type.v1.Candle").unwrap();
        for bad in [&[0x0a, 0x05, 1][..], &[0xff; 11], &[0x0b], &[0x11, 0, 0]] {
            assert!(write(&desc, bad, Defaults::Included, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn random_candles_come_out_as_prost_reflect_writes_them(
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in prop_oneof![Just(0i32), (0i32..1000).prop_map(|n| n * 1_000_000), (0i32..1_000_000).prop_map(|n| n * 1000), 0i32..1_000_000_000],
            price in any::<f64>(),
            trades in any::<u64>(),
            closed in any::<bool>(),
            symbol in ".{0,12}",
        ) {
            let response = wizdata::marketdata::v1::GetCandlesResponse {
                symbol,
                interval: 1,
                candles: vec![candle(seconds, nanos, price, trades, closed)],
                next_page_token: "t".into(),
                revision: trades,
            };
            both_ways(&response, "wizdata.marketdata.v1.GetCandlesResponse");
        }
    }
}

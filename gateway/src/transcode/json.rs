//! Canonical proto3 JSON for the contract's messages, both ways, from the
//! embedded descriptor set (prost-reflect): no generated code per message,
//! so a new RPC speaks JSON the day it is added to a proto.

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::Status;
use wizdata_common::error::ApiError;

/// Whether JSON answers spell out fields at their default values. REST
/// clients expect `"volume": 0`; Connect follows protojson and omits them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defaults {
    Included,
    Omitted,
}

/// The binary encoding of the `desc` message written as JSON in `json`.
pub fn proto_from_json(desc: MessageDescriptor, json: &[u8]) -> Result<Bytes, Status> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), &mut deserializer, &DeserializeOptions::new())
        .and_then(|message| deserializer.end().map(|()| message))
        .map_err(|error| json_error(&desc, &error))?;
    Ok(message.encode_to_vec().into())
}

/// The binary encoding of the `desc` message given as a JSON value (as the
/// REST front end assembles it from path, query and body).
pub fn proto_from_value(desc: MessageDescriptor, value: serde_json::Value) -> Result<Bytes, Status> {
    let message = DynamicMessage::deserialize_with_options(desc.clone(), value, &DeserializeOptions::new())
        .map_err(|error| json_error(&desc, &error))?;
    Ok(message.encode_to_vec().into())
}

/// The `desc` message in `proto` (a backend's answer) as a JSON value.
pub fn value_from_proto(
    desc: MessageDescriptor,
    proto: &[u8],
    defaults: Defaults,
) -> Result<serde_json::Value, Status> {
    let message = decode(desc, proto)?;
    message
        .serialize_with_options(serde_json::value::Serializer, &serialize_options(defaults))
        .map_err(|error| Status::internal(format!("the answer could not be written as JSON: {error}")))
}

/// The `desc` message in `proto` (a backend's answer) as JSON text, written
/// straight from the wire; what that cannot read is decoded first, which
/// names the problem.
pub fn json_from_proto(desc: MessageDescriptor, proto: &[u8], defaults: Defaults) -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(proto.len() * 2 + 16);
    match super::wire_json::write(&desc, proto, defaults, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => write_json(&decode(desc, proto)?, defaults, proto.len() * 2 + 16),
    }
}

/// `message` as JSON text, its fields in the order the proto declares them.
pub fn write_json(message: &DynamicMessage, defaults: Defaults, capacity: usize) -> Result<Vec<u8>, Status> {
    let mut serializer = serde_json::Serializer::new(Vec::with_capacity(capacity));
    message
        .serialize_with_options(&mut serializer, &serialize_options(defaults))
        .map_err(|error| Status::internal(format!("the answer could not be written as JSON: {error}")))?;
    Ok(serializer.into_inner())
}

/// A backend's answer, decoded as `desc`.
pub fn decode(desc: MessageDescriptor, proto: &[u8]) -> Result<DynamicMessage, Status> {
    DynamicMessage::decode(desc.clone(), proto)
        .map_err(|error| Status::internal(format!("the backend's answer is not a valid {}: {error}", desc.full_name())))
}

fn serialize_options(defaults: Defaults) -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(defaults == Defaults::Omitted)
}

/// INVALID_ARGUMENT naming what was wrong, with a field violation for the
/// field when the error names one (an unknown field, a value of the wrong
/// type for a known one).
fn json_error(desc: &MessageDescriptor, error: &serde_json::Error) -> Status {
    let problem = error.to_string();
    let described = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("the request body is not valid JSON: {problem}")
        }
        _ => format!("the request does not fit {}: {problem}", desc.full_name()),
    };
    // prost-reflect names an unknown field "unrecognized field name 'x'".
    let field =
        problem.strip_prefix("unrecognized field name '").and_then(|rest| rest.split('\'').next()).unwrap_or("body");
    ApiError::invalid_field(field, described).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Methods;

    fn message(name: &str) -> MessageDescriptor {
        Methods::contract().pool().get_message_by_name(name).expect(name)
    }

    #[test]
    fn json_goes_to_the_binary_encoding_and_back() {
        let desc = message("wizdata.marketdata.v1.GetCandlesRequest");
        let json =
            br#"{"symbol":"NPN","interval":"INTERVAL_ONE_MINUTE","startTime":"2024-01-02T03:04:05Z","pageSize":"10"}"#;
        let proto = proto_from_json(desc.clone(), json).unwrap();
        let back = value_from_proto(desc.clone(), &proto, Defaults::Omitted).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"symbol": "NPN", "interval": "INTERVAL_ONE_MINUTE", "startTime": "2024-01-02T03:04:05Z", "pageSize": 10})
        );
        let with_defaults = value_from_proto(desc, &proto, Defaults::Included).unwrap();
        assert_eq!(with_defaults["pageToken"], "");
    }

    #[test]
    fn bad_json_is_invalid_argument_naming_the_problem() {
        let desc = message("wizdata.registry.v1.GetSymbolRequest");
        let unknown = proto_from_json(desc.clone(), br#"{"ticker":"NPN","color":"red"}"#).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        assert!(unknown.message().contains("'color'"), "{}", unknown.message());
        let details = tonic_types::StatusExt::get_details_bad_request(&unknown).expect("a field violation");
        assert_eq!(details.field_violations[0].field, "color");

        let malformed = proto_from_json(desc.clone(), br#"{"ticker":"#).unwrap_err();
        assert!(malformed.message().contains("not valid JSON"), "{}", malformed.message());
        let wrong_type = proto_from_json(desc, br#"{"ticker":5}"#).unwrap_err();
        assert!(wrong_type.message().contains("GetSymbolRequest"), "{}", wrong_type.message());
        let bad_enum =
            proto_from_json(message("wizdata.marketdata.v1.GetCandlesRequest"), br#"{"interval":"INTERVAL_2M"}"#)
                .unwrap_err();
        assert!(bad_enum.message().contains("INTERVAL_2M"), "{}", bad_enum.message());
        let trailing = proto_from_json(message("wizdata.registry.v1.GetSymbolRequest"), br#"{} {}"#).unwrap_err();
        assert_eq!(trailing.code(), tonic::Code::InvalidArgument);
    }
}

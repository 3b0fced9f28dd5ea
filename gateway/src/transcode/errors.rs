//! A gRPC status, with its rich details, as HTTP callers read it: Connect's
//! error JSON, or google.rpc.Status JSON for REST and SSE. Both carry the
//! HTTP status of the one table in `wizdata_common::error`.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Response, header};
use prost::Message as _;
use tonic::body::Body;
use tonic::{Code, Status};
use wizdata_common::error::http_status_of;

use super::json::{Defaults, value_from_proto};
use crate::routes::Methods;

/// Connect's error: `{"code": "not_found", "message": …, "details": [{"type",
/// "value", "debug"}]}`, each detail's value its binary encoding in
/// unpadded base64 and its `debug` the same as JSON.
pub fn connect_error_json(status: &Status) -> serde_json::Value {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), connect_code(status.code()).into());
    if !status.message().is_empty() {
        error.insert("message".into(), status.message().into());
    }
    let details: Vec<serde_json::Value> = details_of(status)
        .into_iter()
        .map(|any| {
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default().to_owned();
            let mut detail = serde_json::json!({
                "type": type_name,
                "value": base64::engine::general_purpose::STANDARD_NO_PAD.encode(&any.value),
            });
            if let Some(debug) = detail_as_json(&type_name, &any.value) {
                detail["debug"] = debug;
            }
            detail
        })
        .collect();
    if !details.is_empty() {
        error.insert("details".into(), details.into());
    }
    error.into()
}

/// google.rpc.Status as JSON: `{"code": 5, "message": …, "details": [{"@type":
/// "type.googleapis.com/google.rpc.ResourceInfo", …fields}]}`.
pub fn google_status_json(status: &Status) -> serde_json::Value {
    let details: Vec<serde_json::Value> = details_of(status)
        .into_iter()
        .map(|any| {
            let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
            match detail_as_json(type_name, &any.value) {
                Some(serde_json::Value::Object(mut fields)) => {
                    fields.insert("@type".into(), any.type_url.clone().into());
                    fields.into()
                }
                // A detail of a type outside the contract: its bytes, as
                // proto3 JSON writes an Any it cannot expand.
                _ => serde_json::json!({
                    "@type": any.type_url,
                    "value": base64::engine::general_purpose::STANDARD.encode(&any.value),
                }),
            }
        })
        .collect();
    serde_json::json!({"code": status.code() as i32, "message": status.message(), "details": details})
}

/// An HTTP answer carrying `body` (an error JSON) with the status `code` maps to.
pub fn error_response(code: Code, body: &serde_json::Value, headers: HeaderMap) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from(body.to_string()))));
    *response.status_mut() = http_status_of(code);
    *response.headers_mut() = headers;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Connect's name of a gRPC code.
pub fn connect_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The details a status carries in `grpc-status-details-bin`.
fn details_of(status: &Status) -> Vec<prost_types::Any> {
    if status.details().is_empty() {
        return Vec::new();
    }
    match tonic_types::pb::Status::decode(status.details()) {
        Ok(decoded) => decoded.details,
        Err(error) => {
            tracing::debug!(%error, "status details that are not a google.rpc.Status; left out");
            Vec::new()
        }
    }
}

fn detail_as_json(type_name: &str, value: &[u8]) -> Option<serde_json::Value> {
    let desc = Methods::contract().pool().get_message_by_name(type_name)?;
    value_from_proto(desc, value, Defaults::Omitted).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::StatusCode;
    use wizdata_common::error::ApiError;

    use super::*;

    #[test]
    fn rich_details_are_readable_in_both_error_shapes() {
        let status: Status = ApiError::not_found("symbol", "NOPE.XX").into();
        let connect = connect_error_json(&status);
        assert_eq!(connect["code"], "not_found");
        assert_eq!(connect["details"][0]["type"], "google.rpc.ResourceInfo");
        assert_eq!(connect["details"][0]["debug"]["resourceName"], "NOPE.XX");
        let value = connect["details"][0]["value"].as_str().unwrap();
        assert!(!value.ends_with('='), "unpadded base64: {value}");
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(value).unwrap();
        let info = tonic_types::pb::ResourceInfo::decode(decoded.as_slice()).unwrap();
        assert_eq!(info.resource_name, "NOPE.XX");

        let google = google_status_json(&status);
        assert_eq!(google["code"], 5);
        assert_eq!(google["details"][0]["@type"], "type.googleapis.com/google.rpc.ResourceInfo");
        assert_eq!(google["details"][0]["resourceName"], "NOPE.XX");
    }

    #[test]
    fn retry_info_keeps_its_delay() {
        let status: Status = ApiError::resource_exhausted("slow down", Duration::from_millis(1500)).into();
        assert_eq!(connect_error_json(&status)["details"][0]["debug"]["retryDelay"], "1.500s");
        assert_eq!(google_status_json(&status)["details"][0]["retryDelay"], "1.500s");
    }

    #[test]
    fn a_status_without_details_has_none() {
        let connect = connect_error_json(&Status::unauthenticated("who are you"));
        assert_eq!(connect, serde_json::json!({"code": "unauthenticated", "message": "who are you"}));
        assert_eq!(http_status_of(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
    }
}

//! The Connect protocol (connectrpc.com/docs/protocol) in front of the gRPC
//! pipeline: unary calls as POST (`application/json`, `application/proto`)
//! or, for RPCs without side effects, GET with the message in the query;
//! server streams as `application/connect+json` / `+proto` envelopes ending
//! with the end-of-stream message. Errors are Connect's error JSON.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use prost_reflect::MessageDescriptor;
use tonic::Status;
use tonic::body::Body;

use super::compression::{self, Encoding};
use super::errors::{connect_error_json, error_response};
use super::json::{Defaults, json_from_proto, proto_from_json};
use super::{BodyLimits, GrpcService, StreamAnswer, StreamItem, call_streaming, call_unary, grpc_request, media_type};
use crate::frames::{self, BodyPart, FramesError};
use crate::routes::Method;

const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("connect-protocol-version");
const TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
const STREAM_ENCODING: HeaderName = HeaderName::from_static("connect-content-encoding");
const STREAM_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("connect-accept-encoding");
const END_STREAM: u8 = 0b10;
const COMPRESSED: u8 = 0b01;

/// How messages are written: Connect's two codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn named(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "proto" => Some(Self::Proto),
            _ => None,
        }
    }
}

/// Which Connect call a request is, read from its method and content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Unary(Codec),
    UnaryGet,
    Streaming(Codec),
}

impl Call {
    /// The Connect call a request to an RPC path is, or `None` when it is
    /// not Connect (no content type of Connect's, not a GET).
    pub fn of(request: &Request<Body>) -> Option<Self> {
        if request.method() == http::Method::GET {
            return Some(Self::UnaryGet);
        }
        let media = media_type(request.headers())?;
        match media.strip_prefix("application/") {
            Some("json") => Some(Self::Unary(Codec::Json)),
            Some("proto") => Some(Self::Unary(Codec::Proto)),
            Some("connect+json") => Some(Self::Streaming(Codec::Json)),
            Some("connect+proto") => Some(Self::Streaming(Codec::Proto)),
            _ => None,
        }
    }
}

/// Answers Connect calls through the gRPC pipeline.
#[derive(Clone)]
pub struct Connect {
    pub grpc: GrpcService,
    pub limits: BodyLimits,
}

impl Connect {
    pub async fn handle(&self, request: Request<Body>, method: &'static Method, call: Call) -> Response<Body> {
        match call {
            Call::Streaming(codec) => self.streaming(request, method, codec).await,
            Call::Unary(codec) => self.unary_or_error(request, method, Some(codec)).await,
            Call::UnaryGet => self.unary_or_error(request, method, None).await,
        }
    }

    /// A unary call: POSTed in `codec`, or a GET (`None`) naming its codec
    /// in the query. A refusal is Connect's error JSON.
    async fn unary_or_error(
        &self,
        request: Request<Body>,
        method: &'static Method,
        posted: Option<Codec>,
    ) -> Response<Body> {
        match self.unary(request, method, posted).await {
            Ok(response) => response,
            Err((status, http_status)) => {
                let mut response = error_response(status.code(), &connect_error_json(&status), HeaderMap::new());
                if let Some(http_status) = http_status {
                    *response.status_mut() = http_status;
                }
                response
            }
        }
    }

    async fn unary(
        &self,
        request: Request<Body>,
        method: &'static Method,
        posted: Option<Codec>,
    ) -> Result<Response<Body>, (Status, Option<StatusCode>)> {
        let refuse = |status: Status| (status, None);
        if method.streams() {
            let status = Status::unimplemented(format!(
                "{} streams: call it with application/connect+json or application/connect+proto",
                method.path
            ));
            return Err((status, Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)));
        }
        let (parts, body) = request.into_parts();
        let (codec, message) = match posted {
            None => {
                if !method.no_side_effects {
                    let status = Status::unimplemented(format!(
                        "{} has side effects: it is called with POST; GET is for RPCs marked NO_SIDE_EFFECTS",
                        method.path
                    ));
                    return Err((status, Some(StatusCode::METHOD_NOT_ALLOWED)));
                }
                get_message(parts.uri.query().unwrap_or_default(), self.limits.max_message_bytes).map_err(refuse)?
            }
            Some(codec) => {
                check_protocol_version(&parts.headers).map_err(refuse)?;
                let encoding = Encoding::of(parts.headers.get(header::CONTENT_ENCODING)).map_err(refuse)?;
                let body = super::read_body(body, self.limits).await.map_err(refuse)?;
                (codec, encoding.decode(body, self.limits.max_message_bytes).map_err(refuse)?)
            }
        };
        let timeout = timeout_of(&parts.headers).map_err(refuse)?;
        let message = match codec {
            Codec::Json => proto_from_json(method.descriptor.input(), &message).map_err(refuse)?,
            Codec::Proto => message,
        };
        let answer =
            call_unary(&self.grpc, grpc_request(&parts, method, super::single_message(&message), timeout)).await;
        let mut headers = answer.headers;
        for (name, value) in &answer.trailers {
            if let Ok(name) = HeaderName::try_from(format!("trailer-{name}")) {
                headers.append(name, value.clone());
            }
        }
        let message = match answer.outcome {
            Ok(message) => message,
            Err(status) => return Ok(error_response(status.code(), &connect_error_json(&status), headers)),
        };
        let body = match codec {
            Codec::Json => {
                Bytes::from(json_from_proto(method.descriptor.output(), &message, Defaults::Omitted).map_err(refuse)?)
            }
            Codec::Proto => message,
        };
        let content_type = match codec {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        let body = compression::answer_body(body, parts.headers.get(header::ACCEPT_ENCODING), &mut headers);
        let mut response = Response::new(Body::new(http_body_util::Full::new(body)));
        *response.headers_mut() = headers;
        Ok(response)
    }

    /// A streaming call: HTTP 200 at once, then one envelope per message
    /// and the end-of-stream message, which carries any error. A stream of
    /// requests (client or bidirectional streaming; the latter needs
    /// HTTP/2) is translated envelope by envelope as it arrives.
    async fn streaming(&self, request: Request<Body>, method: &'static Method, codec: Codec) -> Response<Body> {
        let content_type = match codec {
            Codec::Json => HeaderValue::from_static("application/connect+json"),
            Codec::Proto => HeaderValue::from_static("application/connect+proto"),
        };
        let end_only = |status: Status, headers: HeaderMap| {
            let end = frames::encode_flagged(END_STREAM, end_of_stream(Some(&status), &HeaderMap::new()).as_bytes());
            streamed_response(content_type.clone(), headers, Body::new(http_body_util::Full::new(end)))
        };
        if !method.streams() {
            let status = Status::unimplemented(format!(
                "{} is unary: call it with application/json or application/proto",
                method.path
            ));
            let mut response = error_response(status.code(), &connect_error_json(&status), HeaderMap::new());
            *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return response;
        }
        let (parts, body) = request.into_parts();
        let checked = check_protocol_version(&parts.headers)
            .and_then(|()| Encoding::of(parts.headers.get(STREAM_ENCODING)))
            .and_then(|encoding| timeout_of(&parts.headers).map(|timeout| (encoding, timeout)));
        let (encoding, timeout) = match checked {
            Ok(checked) => checked,
            Err(status) => return end_only(status, HeaderMap::new()),
        };
        let reader =
            EnvelopeReader { codec, encoding, limit: self.limits.max_message_bytes, input: method.descriptor.input() };
        // Why the request stream was cut off, if it was: the caller's
        // mistake, which is what the call ends with.
        let request_failure = Arc::new(OnceLock::new());
        let body = match method.client_streaming {
            true => reader.into_grpc_stream(body, request_failure.clone()),
            false => match reader.read_one(body, self.limits).await {
                Ok(message) => super::single_message(&message),
                Err(status) => return end_only(status, HeaderMap::new()),
            },
        };
        let (headers, items) = match call_streaming(&self.grpc, grpc_request(&parts, method, body, timeout)).await {
            StreamAnswer::Refused(headers, status) => {
                return end_only(request_failure.get().cloned().unwrap_or(status), headers);
            }
            StreamAnswer::Streaming(headers, items) => (headers, items),
        };
        let output = method.descriptor.output();
        // Messages worth compressing go gzipped to a caller that accepts it.
        let gzip = compression::accepts_gzip(parts.headers.get(STREAM_ACCEPT_ENCODING));
        let mut headers = headers;
        if gzip {
            headers.insert(STREAM_ENCODING, HeaderValue::from_static("gzip"));
        }
        let envelopes = items.map(move |item| {
            let envelope = match item {
                StreamItem::Message(message) => match codec {
                    Codec::Proto => message_envelope(&message, gzip),
                    Codec::Json => match json_from_proto(output.clone(), &message, Defaults::Omitted) {
                        Ok(json) => message_envelope(&json, gzip),
                        Err(status) => frames::encode_flagged(
                            END_STREAM,
                            end_of_stream(Some(&status), &HeaderMap::new()).as_bytes(),
                        ),
                    },
                },
                StreamItem::End(status, trailers) => {
                    let error = request_failure.get().or((status.code() != tonic::Code::Ok).then_some(&status));
                    frames::encode_flagged(END_STREAM, end_of_stream(error, &trailers).as_bytes())
                }
            };
            Ok::<_, Status>(http_body::Frame::data(envelope))
        });
        streamed_response(content_type, headers, Body::new(http_body_util::StreamBody::new(envelopes)))
    }
}

/// Reads a Connect request's envelopes as the gRPC messages they carry.
#[derive(Clone)]
struct EnvelopeReader {
    codec: Codec,
    encoding: Encoding,
    limit: usize,
    input: MessageDescriptor,
}

impl EnvelopeReader {
    /// The one envelope of a server-streaming call, in binary.
    async fn read_one(&self, body: Body, limits: BodyLimits) -> Result<Bytes, Status> {
        let mut body = BytesMut::from(super::read_body(body, limits).await?);
        match frames::take_frame(&mut body, self.limit) {
            Ok(Some((flag, message))) if body.is_empty() => self.message(flag, message),
            Ok(Some(_)) => Err(Status::invalid_argument("a server-streaming call takes exactly one request message")),
            Ok(None) => Err(Status::invalid_argument("the request envelope is missing or cut short")),
            Err(error) => Err(error.to_status()),
        }
    }

    /// A stream of envelopes as a gRPC request body, translated as it
    /// arrives; a bad envelope ends the body with its status (kept in
    /// `failure`), which resets the call to the backend.
    fn into_grpc_stream(self, body: Body, failure: Arc<OnceLock<Status>>) -> Body {
        let limit = self.limit;
        let frames = frames::frames_of(body, limit)
            .filter_map(move |part| {
                let frame = match part {
                    Ok(BodyPart::Frame(flag, message)) => {
                        self.message(flag, message).map(|message| http_body::Frame::data(frames::encode(&message)))
                    }
                    // A client's trailers mean nothing to the call.
                    Ok(BodyPart::Trailers(_)) => return std::future::ready(None),
                    Err(FramesError::Frame(error)) => Err(error.to_status()),
                    Err(FramesError::CutShort) => {
                        Err(Status::invalid_argument("the request stream ends inside an envelope"))
                    }
                    Err(FramesError::Body(status)) => Err(status),
                };
                std::future::ready(Some(frame))
            })
            // The first bad envelope is the last thing sent.
            .scan(false, move |failed, frame| {
                if *failed {
                    return std::future::ready(None);
                }
                if let Err(status) = &frame {
                    *failed = true;
                    let _ = failure.set(status.clone());
                }
                std::future::ready(Some(frame))
            });
        Body::new(http_body_util::StreamBody::new(frames))
    }

    /// An envelope's message, inflated and in binary.
    fn message(&self, flag: u8, message: Bytes) -> Result<Bytes, Status> {
        let message = match flag {
            0 => message,
            COMPRESSED if self.encoding == Encoding::Gzip => compression::inflate(&message, self.limit)?,
            COMPRESSED => {
                return Err(Status::invalid_argument("a compressed envelope needs connect-content-encoding: gzip"));
            }
            flag => return Err(Status::invalid_argument(format!("bad envelope flag 0x{flag:02x} on a request"))),
        };
        match self.codec {
            Codec::Json => proto_from_json(self.input.clone(), &message),
            Codec::Proto => Ok(message),
        }
    }
}

/// One message's envelope, gzipped when the caller accepts it and it is
/// large enough to gain.
fn message_envelope(message: &[u8], gzip: bool) -> Bytes {
    match gzip && message.len() >= compression::MIN_GZIP_BYTES {
        true => frames::encode_flagged(COMPRESSED, &compression::gzip(message)),
        false => frames::encode(message),
    }
}

fn streamed_response(content_type: HeaderValue, mut headers: HeaderMap, body: Body) -> Response<Body> {
    headers.insert(header::CONTENT_TYPE, content_type);
    let mut response = Response::new(body);
    *response.headers_mut() = headers;
    response
}

/// The end-of-stream message: `{"error": …, "metadata": {name: [values]}}`.
fn end_of_stream(error: Option<&Status>, trailers: &HeaderMap) -> String {
    let mut end = serde_json::Map::new();
    if let Some(status) = error {
        end.insert("error".into(), connect_error_json(status));
    }
    let mut metadata = serde_json::Map::new();
    for name in trailers.keys() {
        let values: Vec<serde_json::Value> =
            trailers.get_all(name).iter().filter_map(|value| value.to_str().ok()).map(Into::into).collect();
        metadata.insert(name.as_str().to_owned(), values.into());
    }
    if !metadata.is_empty() {
        end.insert("metadata".into(), metadata.into());
    }
    serde_json::Value::Object(end).to_string()
}

/// `Connect-Protocol-Version`, when sent, must be 1.
fn check_protocol_version(headers: &HeaderMap) -> Result<(), Status> {
    match headers.get(PROTOCOL_VERSION) {
        None => Ok(()),
        Some(version) if version == "1" => Ok(()),
        Some(version) => Err(Status::invalid_argument(format!(
            "connect-protocol-version is {version:?}; this gateway speaks version 1"
        ))),
    }
}

/// `Connect-Timeout-Ms`: at most 10 digits, as the protocol says.
fn timeout_of(headers: &HeaderMap) -> Result<Option<Duration>, Status> {
    let Some(value) = headers.get(TIMEOUT_MS) else { return Ok(None) };
    let text = value.to_str().unwrap_or_default();
    match text.parse::<u64>() {
        Ok(millis) if !text.is_empty() && text.len() <= 10 => Ok(Some(Duration::from_millis(millis))),
        _ => Err(Status::invalid_argument(format!(
            "connect-timeout-ms is {value:?}; it takes a positive whole number of milliseconds, at most 10 digits"
        ))),
    }
}

/// The message of a GET: `message` (URL-encoded, base64 when `base64=1`),
/// its `encoding`, its `compression`, and `connect=v1`.
fn get_message(query: &str, limit: usize) -> Result<(Codec, Bytes), Status> {
    let (mut message, mut encoding, mut base64, mut compression, mut version) = (None, None, false, None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "message" => message = Some(value.into_owned()),
            "encoding" => encoding = Some(value.into_owned()),
            "base64" => base64 = value == "1",
            "compression" => compression = Some(value.into_owned()),
            "connect" => version = Some(value.into_owned()),
            _ => {}
        }
    }
    if let Some(version) = version.filter(|version| version != "v1") {
        return Err(Status::invalid_argument(format!("connect={version:?}; this gateway speaks v1")));
    }
    let encoding = encoding
        .ok_or_else(|| Status::invalid_argument("a Connect GET names its codec: encoding=json or encoding=proto"))?;
    let codec = Codec::named(&encoding)
        .ok_or_else(|| Status::invalid_argument(format!("encoding={encoding:?}; the gateway reads json or proto")))?;
    let message = message.unwrap_or_default();
    let bytes: Bytes = match base64 {
        true => {
            let trimmed = message.trim_end_matches('=');
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
                .map_err(|error| Status::invalid_argument(format!("message is not valid base64: {error}")))?
                .into()
        }
        false => message.into_bytes().into(),
    };
    let encoding = match compression.as_deref() {
        None | Some("identity") => Encoding::Identity,
        Some("gzip") => Encoding::Gzip,
        Some(other) => {
            return Err(Status::unimplemented(format!("compression={other:?}; the gateway accepts gzip or identity")));
        }
    };
    if bytes.len() > limit {
        return Err(Status::out_of_range(format!(
            "the message is over {limit} bytes; the gateway accepts at most {limit}"
        )));
    }
    let bytes = encoding.decode(bytes, limit)?;
    Ok((codec, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_messages_are_read_in_every_spelling() {
        let (codec, message) =
            get_message("message=%7B%22ticker%22%3A%22NPN%22%7D&encoding=json&connect=v1", 100).unwrap();
        assert_eq!((codec, &message[..]), (Codec::Json, &br#"{"ticker":"NPN"}"#[..]));
        let encoded = base64::engine::general_purpose::URL_SAFE.encode([0x0a, 0x03, b'N', b'P', b'N', 0xff]);
        let (codec, message) = get_message(&format!("message={encoded}&encoding=proto&base64=1"), 100).unwrap();
        assert_eq!((codec, &message[..]), (Codec::Proto, &[0x0a, 0x03, b'N', b'P', b'N', 0xff][..]));
        assert_eq!(get_message("message=x", 100).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(get_message("message=x&encoding=xml", 100).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(get_message("encoding=json&connect=v2", 100).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(get_message("encoding=json&compression=br", 100).unwrap_err().code(), tonic::Code::Unimplemented);
        assert_eq!(
            get_message("encoding=proto&base64=1&message=!!", 100).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn timeouts_and_versions_are_checked() {
        let with = |name: HeaderName, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(timeout_of(&with(TIMEOUT_MS, "1500")).unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(timeout_of(&HeaderMap::new()).unwrap(), None);
        assert!(timeout_of(&with(TIMEOUT_MS, "12345678901")).is_err(), "11 digits");
        assert!(timeout_of(&with(TIMEOUT_MS, "-5")).is_err());
        assert!(check_protocol_version(&with(PROTOCOL_VERSION, "1")).is_ok());
        assert!(check_protocol_version(&with(PROTOCOL_VERSION, "2")).is_err());
    }

    #[test]
    fn large_streamed_messages_are_gzipped_for_callers_that_accept_it() {
        let large = vec![b'x'; 4096];
        let envelope = message_envelope(&large, true);
        assert_eq!(envelope[0], COMPRESSED);
        assert!(envelope.len() < 200, "{}", envelope.len());
        assert_eq!(compression::inflate(&envelope[5..], 8192).unwrap(), large.as_slice());
        assert_eq!(message_envelope(b"small", true)[0], 0, "small ones go as they are");
        assert_eq!(message_envelope(&large, false)[0], 0);
    }

    #[test]
    fn the_end_of_stream_message_carries_error_and_metadata() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-served-by", HeaderValue::from_static("replica-1"));
        let end: serde_json::Value =
            serde_json::from_str(&end_of_stream(Some(&Status::not_found("gone")), &trailers)).unwrap();
        assert_eq!(
            end,
            serde_json::json!({"error": {"code": "not_found", "message": "gone"}, "metadata": {"x-served-by": ["replica-1"]}})
        );
        assert_eq!(end_of_stream(None, &HeaderMap::new()), "{}");
    }
}

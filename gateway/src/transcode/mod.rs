//! The protocols that are not gRPC, translated at the edge into the gRPC
//! call the proxy already takes, and its answer translated back, so every
//! protocol goes through the one pipeline (route, identity, rate limit,
//! stream slot, breaker, deadline, retry) and no service changes:
//!
//! - [`connect`]: the Connect protocol, unary (POST and GET) and server
//!   streaming, JSON or binary;
//! - [`rest`]: HTTP/JSON routes read from the contract's `google.api.http`
//!   annotations, with server streams as Server-Sent Events or NDJSON.
//!
//! JSON is canonical proto3 JSON from the embedded descriptor set ([`json`]).

pub mod compression;
pub mod connect;
pub mod errors;
pub mod json;
pub mod openapi;
pub mod rest;
pub mod wire_json;

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use wizdata_common::deadline::{GRPC_TIMEOUT, grpc_timeout_value};
use wizdata_common::grpc::grpc_status_in;

use crate::frames::{self, BodyPart, FramesError};
use crate::proxy::ClientAddr;
use crate::routes::Method;

/// The gRPC pipeline the translated calls enter: metrics, then the proxy.
pub type GrpcService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// What bounds a request body at the edge.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest message, before and after decompression.
    pub max_message_bytes: usize,
    /// How long a body may take to arrive.
    pub client_timeout: Duration,
}

/// Reads a whole request body of at most one message within the limits.
pub async fn read_body(body: Body, limits: BodyLimits) -> Result<Bytes, Status> {
    crate::proxy::read_whole(body, limits.max_message_bytes, limits.client_timeout).await
}

/// Headers of the HTTP protocols that mean nothing to a gRPC backend (or
/// would mislead it): they are not passed on as metadata. The connection's
/// own (Connection, Keep-Alive and the like) are HTTP/2's list, kept in one place.
fn is_protocol_header(name: &HeaderName) -> bool {
    const DROPPED: [HeaderName; 9] = [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::ACCEPT,
        header::ACCEPT_ENCODING,
        header::HOST,
        header::TE,
        header::COOKIE,
        header::ORIGIN,
    ];
    let name_text = name.as_str();
    DROPPED.contains(name)
        || wizdata_common::http2::is_connection_specific(name)
        || name_text.starts_with("connect-")
        || name_text.starts_with("grpc-")
        || name_text.starts_with("sec-")
        || name_text.starts_with("access-control-")
}

/// A gRPC request body of one message.
pub fn single_message(message: &[u8]) -> Body {
    Body::new(http_body_util::Full::new(frames::encode(message)))
}

/// The gRPC request for `method` carrying `body` (gRPC frames): the
/// caller's metadata (credentials, request id, trace context) and its
/// deadline, from the connection that received it.
pub fn grpc_request(
    incoming: &http::request::Parts,
    method: &Method,
    body: Body,
    timeout: Option<Duration>,
) -> Request<Body> {
    let mut headers = HeaderMap::with_capacity(incoming.headers.len() + 3);
    for (name, value) in &incoming.headers {
        if !is_protocol_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = timeout {
        headers.insert(GRPC_TIMEOUT, grpc_timeout_value(timeout));
    }
    let mut request = Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(method.path);
    *request.version_mut() = http::Version::HTTP_2;
    *request.headers_mut() = headers;
    if let Some(client) = incoming.extensions.get::<ClientAddr>() {
        request.extensions_mut().insert(client.clone());
    }
    request
}

/// A unary call's answer: the backend's (and the gateway's) headers, its
/// trailers, and the message or the status it failed with.
pub struct UnaryAnswer {
    pub headers: HeaderMap,
    pub trailers: HeaderMap,
    pub outcome: Result<Bytes, Status>,
}

/// Sends `request` through the pipeline: the answer's headers (less
/// gRPC's own) and its body, or the status of a trailers-only answer.
async fn send(grpc: &GrpcService, request: Request<Body>) -> (HeaderMap, Result<Body, Status>) {
    let Ok(response) = grpc.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let trailers_only = grpc_status_in(&headers)
        .is_some()
        .then(|| Status::from_header_map(&headers).unwrap_or_else(|| Status::unknown("no status")));
    strip_grpc(&mut headers);
    match trailers_only {
        Some(status) => (headers, Err(status)),
        None => (headers, Ok(body)),
    }
}

/// Sends `request` through the pipeline and reads its one answer.
pub async fn call_unary(grpc: &GrpcService, request: Request<Body>) -> UnaryAnswer {
    let (headers, body) = match send(grpc, request).await {
        (headers, Ok(body)) => (headers, body),
        (headers, Err(status)) => {
            let outcome =
                status_outcome(status).and_then(|()| Err(Status::internal("an OK answer without its message")));
            return UnaryAnswer { headers, trailers: HeaderMap::new(), outcome };
        }
    };
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(status) => return UnaryAnswer { headers, trailers: HeaderMap::new(), outcome: Err(broke_off(&status)) },
    };
    let mut trailers = collected.trailers().cloned().unwrap_or_default();
    let status = Status::from_header_map(&trailers)
        .unwrap_or_else(|| Status::internal("the backend's answer ended without a gRPC status"));
    strip_grpc(&mut trailers);
    let outcome = status_outcome(status).and_then(|()| {
        let mut data = BytesMut::from(collected.to_bytes());
        match frames::take_frame(&mut data, usize::MAX) {
            Ok(Some((0, message))) if data.is_empty() => Ok(message),
            _ => Err(Status::internal("the backend's answer is not one uncompressed gRPC message")),
        }
    });
    UnaryAnswer { headers, trailers, outcome }
}

fn status_outcome(status: Status) -> Result<(), Status> {
    if status.code() == Code::Ok { Ok(()) } else { Err(status) }
}

fn broke_off(error: &Status) -> Status {
    Status::unavailable(format!("the backend's answer broke off: {}", error.message()))
}

/// gRPC's own headers, which an HTTP caller reads in the protocol's shape.
fn strip_grpc(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("grpc-") || *name == header::CONTENT_TYPE)
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// One item of a streamed answer.
pub enum StreamItem {
    /// A message, in its binary encoding.
    Message(Bytes),
    /// The end: the status (OK or not) and the trailers.
    End(Status, HeaderMap),
}

/// A server-streaming call's answer: refused before its first message
/// (with the headers to answer with), or streaming.
pub enum StreamAnswer {
    Refused(HeaderMap, Status),
    Streaming(HeaderMap, std::pin::Pin<Box<dyn Stream<Item = StreamItem> + Send>>),
}

/// Sends `request` through the pipeline; its messages are read as the
/// caller reads them, so a slow caller slows the backend's stream (whose
/// conflation and stuck-subscriber policy then apply) instead of growing a
/// buffer here.
pub async fn call_streaming(grpc: &GrpcService, request: Request<Body>) -> StreamAnswer {
    let (headers, body) = match send(grpc, request).await {
        (headers, Ok(body)) => (headers, body),
        (headers, Err(status)) => return StreamAnswer::Refused(headers, status),
    };
    let not_plain = || Status::internal("the backend's stream carried a message that is not plain gRPC");
    let no_status = || Status::internal("the backend's stream ended without a gRPC status");
    let items = frames::frames_of(body, usize::MAX)
        .map(move |part| match part {
            Ok(BodyPart::Frame(0, message)) => StreamItem::Message(message),
            Ok(BodyPart::Frame(..)) | Err(FramesError::Frame(_) | FramesError::CutShort) => {
                StreamItem::End(not_plain(), HeaderMap::new())
            }
            Ok(BodyPart::Trailers(mut trailers)) => {
                let status = Status::from_header_map(&trailers).unwrap_or_else(no_status);
                strip_grpc(&mut trailers);
                StreamItem::End(status, trailers)
            }
            Err(FramesError::Body(status)) => StreamItem::End(broke_off(&status), HeaderMap::new()),
        })
        // A body that just stops has said nothing of how the call ended.
        .chain(futures_util::stream::once(async move { StreamItem::End(no_status(), HeaderMap::new()) }))
        // Nothing after the end.
        .scan(false, |ended, item| {
            let passed = (!*ended).then(|| {
                *ended = matches!(item, StreamItem::End(..));
                item
            });
            std::future::ready(passed)
        });
    StreamAnswer::Streaming(headers, Box::pin(items))
}

/// The media type of a request, without parameters, lower-cased.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_and_connection_headers_are_not_metadata() {
        let dropped = [
            "content-type",
            "te",
            "cookie",
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "connect-timeout-ms",
            "grpc-timeout",
            "sec-fetch-mode",
            "access-control-request-method",
        ];
        for name in dropped {
            assert!(is_protocol_header(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["authorization", "x-request-id", "traceparent", "x-api-key", "x-custom"] {
            assert!(!is_protocol_header(&HeaderName::from_static(name)), "{name}");
        }
    }
}

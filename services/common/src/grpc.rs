//! Reading gRPC off HTTP: which RPC a path names and which status an answer
//! carries. One reading for the call span, the metrics layer and the gateway.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tonic::Status;
use tonic::body::Body;

/// The service and method a gRPC request path names (`/pkg.Service/Method`).
pub fn rpc_of(path: &str) -> Option<(&str, &str)> {
    path.trim_start_matches('/').split_once('/')
}

/// The status code an answer carries in `headers`: its headers when it is
/// trailers-only, else its trailers.
pub fn grpc_status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(code))
}

/// Marks a header value that differs on every call (an id, a deadline, a
/// count), so HTTP/2 sends it as a literal instead of adding it to the
/// connection's header table: there it would never be matched again, would
/// push out entries that do repeat, and every later value of that name
/// would be compared with it.
pub fn per_call(mut value: http::HeaderValue) -> http::HeaderValue {
    value.set_sensitive(true);
    value
}

/// What a call holds until its response body is done: an endpoint lease,
/// a stream slot, the connection's call mark.
pub type Hold = Box<dyn Send + Sync>;

/// A response body that keeps what its call holds until it is dropped.
pub struct HoldingBody {
    body: Body,
    _holds: Vec<Hold>,
}

impl HoldingBody {
    /// `body` as one body type, holding `holds` until it is dropped.
    pub fn wrap(body: Body, holds: Vec<Hold>) -> Body {
        Body::new(Self { body, _holds: holds })
    }
}

impl http_body::Body for HoldingBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

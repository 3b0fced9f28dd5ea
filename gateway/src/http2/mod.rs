//! HTTP/2 connections, served by the mesh's own HTTP/2 layer
//! ([`wizdata_common::http2`]) rather than the h2 crate's server: frames and
//! header compression handled in the connection's own task ([`connection`]),
//! with no stream store shared between tasks. Measured (BENCHMARKS.md, issue
//! #15): a fifth fewer instructions a call than on h2's server.

pub mod connection;

pub use wizdata_common::http2::{
    PREFACE, READ_BYTES, arriving, frame, hpack, is_connection_specific, outbox, poll_read_some,
};

use std::time::Duration;

use http::{HeaderValue, header};

/// How every HTTP/2 connection is served.
#[derive(Clone, Copy, Debug)]
pub struct Http2Settings {
    /// Larger header blocks are refused (431).
    pub max_header_list_size: u32,
    /// A connection is pinged this often, and closed when a ping goes
    /// unanswered as long: a client that vanished without closing.
    pub keep_alive: Duration,
}

/// gRPC answers carry no `date`: gRPC clients read none, and nginx's
/// `grpc_pass` sends the backend's headers as they are.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

fn date_now() -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(std::time::SystemTime::now()))
        .expect("an HTTP date is a valid header value")
}

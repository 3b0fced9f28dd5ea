//! The mesh's own HTTP/2 (RFC 9113): frames ([`frame`]) and header
//! compression ([`hpack`]), shared by the gateway's server connections and
//! the client connections every call to a backend goes over ([`client`]).
//! Each connection is one task that owns its streams, windows and header
//! tables, so nothing about it is shared or locked but what a call reads
//! or writes itself. Why not the h2 crate: BENCHMARKS.md, issue #15.

pub mod arriving;
pub mod client;
pub mod frame;
pub mod hpack;
pub mod outbox;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncRead;

/// The client preface that opens every HTTP/2 connection with prior
/// knowledge (as gRPC clients, h2load and `curl --http2-prior-knowledge` do).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Headers HTTP/2 does without (RFC 9113, 8.2.2).
pub fn is_connection_specific(name: &http::HeaderName) -> bool {
    use http::header;
    // Matched on the text, not compared with `==`: a name's comparison with
    // a string ignores case byte by byte, and every header of every block
    // passes here (a name is already lower case).
    [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE].contains(name)
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// How much a connection asks its socket for at a time.
pub const READ_BYTES: usize = 16 * 1024;

/// Reads what has arrived onto `buffer`; false when the peer closed.
pub fn poll_read_some(
    io: &mut (impl AsyncRead + Unpin),
    cx: &mut Context<'_>,
    buffer: &mut BytesMut,
) -> Poll<io::Result<bool>> {
    make_room_to_read(buffer);
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buffer).map_ok(|read| read > 0)
}

/// Makes room on `buffer` for the next read, when little is left.
fn make_room_to_read(buffer: &mut BytesMut) {
    if buffer.capacity() - buffer.len() < READ_BYTES / 4 {
        buffer.reserve(READ_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::*;

    #[test]
    fn the_connections_own_headers_are_known_by_name() {
        for name in ["connection", "transfer-encoding", "upgrade", "keep-alive", "proxy-connection"] {
            assert!(is_connection_specific(&HeaderName::from_static(name)), "{name}");
        }
        // TE is allowed with "trailers" (gRPC's), which callers check themselves.
        for name in ["te", "content-type", "x-keep-alive", "keep-alive-x", "x-request-id"] {
            assert!(!is_connection_specific(&HeaderName::from_static(name)), "{name}");
        }
    }
}

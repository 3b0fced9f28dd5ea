//! The mesh's own HTTP/2 (RFC 9113): frames ([`frame`]) and header
//! compression ([`hpack`]), shared by the gateway's server connections and
//! the client connections every call to a backend goes over ([`client`]).
//! Each connection is one task that owns its streams, windows and header
//! tables, so nothing about it is shared or locked but what a call reads
//! or writes itself. Why not the h2 crate: BENCHMARKS.md, issue #15.

pub mod client;
pub mod frame;
pub mod hpack;
pub mod outbox;

/// The client preface that opens every HTTP/2 connection with prior
/// knowledge (as gRPC clients, h2load and `curl --http2-prior-knowledge` do).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Headers HTTP/2 does without (RFC 9113, 8.2.2).
pub fn is_connection_specific(name: &http::HeaderName) -> bool {
    use http::header;
    [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE].contains(name)
        || name == "keep-alive"
        || name == "proxy-connection"
}

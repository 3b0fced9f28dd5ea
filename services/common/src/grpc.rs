//! Reading gRPC off HTTP: which RPC a path names and which status an answer
//! carries. One reading for the call span, the metrics layer and the gateway.

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

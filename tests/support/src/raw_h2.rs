//! gRPC calls over a bare HTTP/2 connection (the `h2` crate), for what a
//! client library would hide or refuse: where an answer's status travels
//! in its frames, and headers such as a `grpc-timeout` tonic would rewrite.

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use crate::grpc_web::frame;

/// How an answer's status arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum StatusAt {
    /// In the response HEADERS, which ended the stream, with no data.
    TrailersOnly(String),
    /// In trailers after the data.
    Trailers(String),
}

impl StatusAt {
    /// The grpc-status, wherever it arrived.
    pub fn code(&self) -> &str {
        match self {
            Self::TrailersOnly(code) | Self::Trailers(code) => code,
        }
    }
}

/// Calls `path` with one message and `headers` besides gRPC's own over a
/// bare HTTP/2 connection to `port`, with none of a client library's
/// checks in the way, and returns the data received and where its status
/// was. A status in headers that do not end the stream fails the call.
pub async fn call_raw(port: u16, path: &str, message: &[u8], headers: &[(&str, &str)]) -> (Bytes, StatusAt) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready for a stream");
    let mut request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(()).unwrap();
    let (response, mut send) = client.send_request(request, false).expect("send the request");
    send.send_data(frame(0, message), true).expect("send the message");
    let (parts, mut body) = response.await.expect("an answer").into_parts();
    let ended_with_headers = body.is_end_stream();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers or none");
    let code = |headers: &http::HeaderMap| headers.get("grpc-status").map(|value| value.to_str().unwrap().to_owned());
    let at = match (code(&parts.headers), trailers.as_ref().and_then(code)) {
        (Some(code), None) => {
            assert!(ended_with_headers && data.is_empty(), "a status in the headers must end the stream there");
            StatusAt::TrailersOnly(code)
        }
        (None, Some(code)) => StatusAt::Trailers(code),
        other => panic!("one status, in headers or in trailers: {other:?} {parts:?} {trailers:?}"),
    };
    (data.freeze(), at)
}

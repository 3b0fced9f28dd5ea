//! A gRPC-Web client over HTTP/1.1, as a browser's grpc-web library speaks
//! it: binary (`application/grpc-web+proto`) or text (base64,
//! `application/grpc-web-text`), trailers framed in the body.

use std::net::SocketAddr;

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

const TRAILERS_FLAG: u8 = 0x80;

/// Binary or base64 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Text,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Binary => "application/grpc-web+proto",
            Self::Text => "application/grpc-web-text",
        }
    }
}

/// One gRPC-Web call's answer.
#[derive(Debug)]
pub struct WebAnswer {
    pub http_status: StatusCode,
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    /// The trailer frame's fields (empty for a trailers-only answer).
    pub trailers: HeaderMap,
}

impl WebAnswer {
    /// The call's gRPC status: from the trailer frame, or from the headers
    /// when the answer is trailers-only.
    pub fn status(&self) -> tonic::Status {
        tonic::Status::from_header_map(&self.trailers)
            .or_else(|| tonic::Status::from_header_map(&self.headers))
            .unwrap_or_else(|| panic!("no grpc-status in the answer: {self:?}"))
    }

    /// The one message of an OK unary answer.
    pub fn message<M: prost::Message + Default>(&self) -> M {
        let status = self.status();
        assert_eq!(status.code(), tonic::Code::Ok, "{status:?}");
        assert_eq!(self.messages.len(), 1, "one message: {self:?}");
        M::decode(self.messages[0].clone()).expect("the message decodes")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Calls a gateway over its own HTTP/1.1 connection per call.
#[derive(Clone, Copy, Debug)]
pub struct GrpcWebClient {
    pub addr: SocketAddr,
    pub encoding: Encoding,
}

impl GrpcWebClient {
    pub fn new(port: u16, encoding: Encoding) -> Self {
        Self { addr: SocketAddr::from(([127, 0, 0, 1], port)), encoding }
    }

    /// A unary (or whole server-streaming) call of `path` with `message`.
    pub async fn call(&self, path: &str, message: &impl prost::Message, headers: &[(&str, &str)]) -> WebAnswer {
        let framed = frame(0, &message.encode_to_vec());
        let body = match self.encoding {
            Encoding::Binary => framed,
            Encoding::Text => base64::engine::general_purpose::STANDARD.encode(&framed).into(),
        };
        self.raw(path, self.encoding.content_type(), body, headers).await
    }

    /// Sends `body` as it is, for malformed requests.
    pub async fn raw(&self, path: &str, content_type: &str, body: Bytes, headers: &[(&str, &str)]) -> WebAnswer {
        let response = self.send("POST", path, content_type, body, headers).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the answer's body arrives").to_bytes();
        let mut decoder = FrameDecoder::new(self.encoding_of(&parts.headers));
        decoder.push(&bytes);
        WebAnswer {
            http_status: parts.status,
            headers: parts.headers,
            messages: decoder.messages,
            trailers: decoder.trailers,
        }
    }

    /// A server-streaming call whose messages are read as they arrive.
    pub async fn stream(&self, path: &str, message: &impl prost::Message, headers: &[(&str, &str)]) -> WebStream {
        let framed = frame(0, &message.encode_to_vec());
        let body = match self.encoding {
            Encoding::Binary => framed,
            Encoding::Text => base64::engine::general_purpose::STANDARD.encode(&framed).into(),
        };
        let response = self.send("POST", path, self.encoding.content_type(), body, headers).await;
        let encoding = self.encoding_of(response.headers());
        let (parts, body) = response.into_parts();
        WebStream { headers: parts.headers, body, decoder: FrameDecoder::new(encoding), next: 0 }
    }

    /// Any HTTP request on a fresh HTTP/1.1 connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> http::Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect to the gateway");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("x-grpc-web", "1")
            .header("accept", self.encoding.content_type());
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        for (name, value) in headers {
            request =
                request.header(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        sender.send_request(request.body(Full::new(body)).unwrap()).await.expect("the gateway answers")
    }

    fn encoding_of(&self, headers: &HeaderMap) -> Encoding {
        match headers.get("content-type").and_then(|value| value.to_str().ok()) {
            Some(content_type) if content_type.starts_with("application/grpc-web-text") => Encoding::Text,
            _ => Encoding::Binary,
        }
    }
}

/// The messages of a streaming answer, as they arrive.
pub struct WebStream {
    pub headers: HeaderMap,
    body: Incoming,
    decoder: FrameDecoder,
    next: usize,
}

impl WebStream {
    /// The next message, or `None` once the trailers came (see `status`).
    pub async fn next_message(&mut self) -> Option<Bytes> {
        loop {
            if let Some(message) = self.decoder.messages.get(self.next) {
                self.next += 1;
                return Some(message.clone());
            }
            if !self.decoder.trailers.is_empty() {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                _ => return None,
            }
        }
    }

    /// The status the stream ended with, when it has.
    pub fn status(&self) -> Option<tonic::Status> {
        tonic::Status::from_header_map(&self.decoder.trailers).or_else(|| tonic::Status::from_header_map(&self.headers))
    }
}

/// Splits a gRPC-Web body into messages and the trailer frame.
struct FrameDecoder {
    encoding: Encoding,
    text: Vec<u8>,
    buffer: BytesMut,
    messages: Vec<Bytes>,
    trailers: HeaderMap,
}

impl FrameDecoder {
    fn new(encoding: Encoding) -> Self {
        Self { encoding, text: Vec::new(), buffer: BytesMut::new(), messages: Vec::new(), trailers: HeaderMap::new() }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self.encoding {
            Encoding::Binary => self.buffer.extend_from_slice(bytes),
            Encoding::Text => {
                // Servers may pad every chunk they encode; each 4-character
                // quantum decodes on its own, so decode quantum by quantum.
                self.text.extend(bytes.iter().filter(|byte| !byte.is_ascii_whitespace()));
                let whole = self.text.len() / 4 * 4;
                for quantum in self.text[..whole].chunks(4) {
                    let decoded = base64::engine::general_purpose::STANDARD.decode(quantum).expect("valid base64");
                    self.buffer.extend_from_slice(&decoded);
                }
                self.text.drain(..whole);
            }
        }
        while self.buffer.len() >= 5 {
            let length = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
            if self.buffer.len() < 5 + length {
                break;
            }
            let flag = self.buffer[0];
            self.buffer.advance(5);
            let payload = self.buffer.split_to(length).freeze();
            if flag & TRAILERS_FLAG != 0 {
                for line in String::from_utf8_lossy(&payload).split("\r\n").filter(|line| !line.is_empty()) {
                    let (name, value) = line.split_once(':').expect("trailer lines are name:value");
                    self.trailers.append(
                        HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                        HeaderValue::from_str(value.trim()).unwrap(),
                    );
                }
            } else {
                self.messages.push(payload);
            }
        }
    }
}

/// One gRPC frame: a flag byte, the big-endian length, the payload.
pub fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + payload.len());
    framed.push(flag);
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    framed.into()
}

//! A plain HTTP/1.1 client for the gateway's HTTP protocols (Connect,
//! REST, Server-Sent Events), and proto3 JSON for the contract's messages,
//! so a test can compare a JSON answer with a native one.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};

/// One HTTP answer, read whole.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!("not JSON ({error}): {:?} {:?}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
}

/// Calls the gateway over a fresh HTTP/1.1 connection per request.
#[derive(Clone, Copy, Debug)]
pub struct HttpClient {
    pub addr: SocketAddr,
}

impl HttpClient {
    pub fn new(port: u16) -> Self {
        Self { addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> HttpAnswer {
        let response = self.open(method, path, headers, body).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the answer's body arrives").to_bytes();
        HttpAnswer { status: parts.status, headers: parts.headers, body }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpAnswer {
        self.send("GET", path, headers, Bytes::new()).await
    }

    /// Sends a request and returns the answer with its body still to read
    /// (a stream).
    pub async fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> http::Response<Incoming> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect to the gateway");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        let mut request = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        for (name, value) in headers {
            request =
                request.header(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        sender.send_request(request.body(Full::new(body.into())).unwrap()).await.expect("the gateway answers")
    }
}

/// The contract's descriptors, for JSON.
pub fn contract() -> DescriptorPool {
    DescriptorPool::decode(wizdata::FILE_DESCRIPTOR_SET).expect("the contract decodes")
}

/// `message` as canonical proto3 JSON; `type_name` is its full name.
pub fn to_json(message: &impl prost::Message, type_name: &str) -> serde_json::Value {
    let desc = contract().get_message_by_name(type_name).unwrap_or_else(|| panic!("{type_name} is in the contract"));
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice()).expect("the message decodes");
    serde_json::to_value(&dynamic).expect("a message is JSON")
}

/// A JSON answer read as the message `M` (full name `type_name`).
pub fn from_json<M: prost::Message + Default>(json: &[u8], type_name: &str) -> M {
    let desc = contract().get_message_by_name(type_name).unwrap_or_else(|| panic!("{type_name} is in the contract"));
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let dynamic = DynamicMessage::deserialize(desc, &mut deserializer)
        .unwrap_or_else(|error| panic!("{type_name} from {:?}: {error}", String::from_utf8_lossy(json)));
    M::decode(dynamic.encode_to_vec().as_slice()).expect("the message decodes")
}

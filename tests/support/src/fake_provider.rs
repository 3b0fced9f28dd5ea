//! Local stand-ins for market data providers on the internet: a WebSocket
//! endpoint that plays one script per connection (the provider's documented
//! frames, pings, a cut mid-stream, silence, a 429 on the upgrade), and a
//! REST endpoint answering from a closure. Feeds are tested against these,
//! over real sockets, exactly as they talk to the provider.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

/// One step of a connection's script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Waits for the client's next text frame and records it.
    Receive,
    /// Sends a text frame.
    Send(String),
    /// Sends a ping and waits for its pong (recorded as "pong").
    Ping,
    Sleep(Duration),
    /// A clean close frame.
    Close,
    /// Holds the connection open, sending nothing, until the client leaves.
    Silence,
}

/// How one connection is answered.
#[derive(Clone, Debug)]
pub enum Script {
    Upgrade(Vec<Step>),
    /// The upgrade refused with this HTTP status and Retry-After seconds.
    Refuse {
        status: u16,
        retry_after: Option<u64>,
    },
}

pub struct FakeWebSocket {
    pub addr: SocketAddr,
    /// What clients sent, one entry per frame, tagged with the connection's
    /// number (from 1).
    pub received: Arc<Mutex<Vec<(usize, String)>>>,
    /// Connections accepted so far.
    pub connections: Arc<Mutex<usize>>,
}

impl FakeWebSocket {
    /// Serves connection `n` with `scripts[n - 1]`; connections beyond the
    /// scripts are held silent.
    pub async fn start(scripts: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (log, count) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            let mut scripts: VecDeque<Script> = scripts.into();
            while let Ok((stream, _)) = listener.accept().await {
                let number = {
                    let mut count = count.lock().unwrap();
                    *count += 1;
                    *count
                };
                let script = scripts.pop_front().unwrap_or(Script::Upgrade(vec![Step::Silence]));
                tokio::spawn(play(stream, number, script, log.clone()));
            }
        });
        Self { addr, received, connections }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    pub fn received(&self) -> Vec<(usize, String)> {
        self.received.lock().unwrap().clone()
    }
}

async fn play(stream: tokio::net::TcpStream, number: usize, script: Script, log: Arc<Mutex<Vec<(usize, String)>>>) {
    let steps = match script {
        Script::Upgrade(steps) => steps,
        Script::Refuse { status, retry_after } => {
            // The shape tungstenite's handshake callback must have.
            #[allow(clippy::result_large_err)]
            let refuse = move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
                let mut response = ErrorResponse::new(Some("slow down".into()));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert("retry-after", seconds.into());
                }
                Err(response)
            };
            let _ = tokio_tungstenite::accept_hdr_async(stream, refuse).await;
            return;
        }
    };
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else { return };
    for step in steps {
        match step {
            Step::Receive => loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        log.lock().unwrap().push((number, text.as_str().to_owned()));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    _ => return,
                }
            },
            Step::Send(text) => {
                if socket.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            Step::Ping => {
                if socket.send(Message::Ping(Bytes::from_static(b"are you there"))).await.is_err() {
                    return;
                }
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Pong(_))) => {
                            log.lock().unwrap().push((number, "pong".into()));
                            break;
                        }
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                }
            }
            Step::Sleep(duration) => tokio::time::sleep(duration).await,
            Step::Close => {
                let _ = socket.close(None).await;
                return;
            }
            Step::Silence => {
                // Reads (and so drops) what arrives, answers nothing, until
                // the client goes.
                while let Some(Ok(_)) = socket.next().await {}
                return;
            }
        }
    }
}

/// An HTTP answer of the fake REST endpoint: status, headers, body.
pub type RestAnswer = (u16, Vec<(&'static str, String)>, String);

pub struct FakeRest {
    pub addr: SocketAddr,
    /// Every request's path and query, in arrival order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeRest {
    /// Answers each GET with `answer(path_and_query)`.
    pub async fn start(answer: impl Fn(&str) -> RestAnswer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (requests.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                    let path = request.uri().path_and_query().map_or("/", |path| path.as_str()).to_owned();
                    log.lock().unwrap().push(path.clone());
                    let (status, headers, body) = answer(&path);
                    let mut response = http::Response::builder().status(status);
                    for (name, value) in headers {
                        response = response.header(name, value);
                    }
                    async move { Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).unwrap()) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

//! Every listener's guard against connections that are held without being
//! used: a cap per listener and per peer address, a handshake timeout (a
//! connection must start its first call in time), an idle timeout (a
//! connection with no call in flight that sends nothing, not even a
//! keep-alive ping, is closed), and accepting that backs
//! off when the process is out of file descriptors instead of spinning.
//!
//! The guard sits in the socket itself ([`Connection`]), so it holds for any
//! server on top of it: tonic's for the services, the gateway's own (h2 and
//! hyper's HTTP/1.1).
//! The server's stack marks calls with [`CallTracking`] (or
//! [`ConnectionInfo::start_call`]), which is how the socket knows whether it
//! is in use.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::time::Alarm;

/// HTTP/2 flow-control windows for what clients send, on every listener.
///
/// HTTP/2 servers (h2, as hyper and tonic use it) close a connection with
/// ENHANCE_YOUR_CALM `too_many_data_frames` when small DATA frames that the
/// application has not read yet cost more than half the connection window
/// (each frame under 256 bytes counts as 256 minus its size). A client that
/// sends one small message per frame (grpc-go, grpcio) faster than a call
/// reads would trip it long before a 1 MiB stream window (hyper's default)
/// filled. A 64 KiB stream window (HTTP/2's and grpc-go's default) within a
/// 8 MiB connection window keeps a stream of 45-byte frames well inside that
/// budget, so a fast feed is slowed by flow control instead of cut off.
pub const STREAM_WINDOW_BYTES: u32 = 64 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// How long accepting pauses after an error (out of file descriptors): a
/// retry at once would fail the same way and take a core doing it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What one listener allows.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Names the listener in logs and metrics ("grpc", "gateway").
    pub listener: &'static str,
    /// Connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one peer address.
    pub max_per_peer: usize,
    /// How long a new connection may take to start its first call.
    pub handshake_timeout: Duration,
    /// How long a connection may stay open with no call in flight and
    /// nothing received.
    pub idle_timeout: Duration,
}

/// Why a connection was let go before its peer closed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    ListenerFull,
    PeerFull,
    HandshakeTimeout,
    Idle,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Self::ListenerFull => "listener_full",
            Self::PeerFull => "peer_full",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Idle => "idle",
        }
    }
}

fn count(listener: &'static str, reason: Refused) {
    metrics::counter!("connections_closed_total", "listener" => listener, "reason" => reason.as_str()).increment(1);
}

/// The counts every connection of one listener shares.
struct Shared {
    limits: ConnectionLimits,
    open: AtomicUsize,
    per_peer: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    /// A place for one more connection from `peer`, if the caps allow it.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refused> {
        let mut per_peer = self.per_peer.lock().expect("connection counts lock is not poisoned");
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            return Err(Refused::ListenerFull);
        }
        let from_peer = per_peer.entry(peer).or_default();
        if *from_peer >= self.limits.max_per_peer {
            return Err(Refused::PeerFull);
        }
        *from_peer += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("connections_open", "listener" => self.limits.listener).increment(1.0);
        Ok(Slot { shared: self.clone(), peer })
    }
}

/// One admitted connection's place in the counts, given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_peer = self.shared.per_peer.lock().expect("connection counts lock is not poisoned");
        if let Some(from_peer) = per_peer.get_mut(&self.peer) {
            *from_peer -= 1;
            if *from_peer == 0 {
                per_peer.remove(&self.peer);
            }
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("connections_open", "listener" => self.shared.limits.listener).decrement(1.0);
    }
}

/// A bound listener that yields guarded connections.
pub struct Incoming {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    backoff: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    pub async fn bind(addr: SocketAddr, limits: ConnectionLimits) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(addr).await.map_err(|error| anyhow::anyhow!("cannot listen on {addr}: {error}"))?;
        let local_addr = listener.local_addr()?;
        metrics::gauge!("connections_open", "listener" => limits.listener).increment(0.0);
        for reason in [Refused::ListenerFull, Refused::PeerFull, Refused::HandshakeTimeout, Refused::Idle] {
            metrics::counter!("connections_closed_total", "listener" => limits.listener, "reason" => reason.as_str())
                .increment(0);
        }
        let shared = Arc::new(Shared { limits, open: AtomicUsize::new(0), per_peer: Mutex::default() });
        Ok(Self { listener, local_addr, shared, backoff: None })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next connection within the caps. Accept errors are logged and
    /// waited out, never returned: a server stops on an error it is given.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Connection> {
        loop {
            if let Some(backoff) = self.backoff.as_mut() {
                std::task::ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            let (stream, peer) = match std::task::ready!(self.listener.poll_accept(cx)) {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = self.shared.limits.listener, %error, "cannot accept a connection");
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                    continue;
                }
            };
            match self.shared.admit(peer.ip()) {
                Ok(slot) => {
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(Connection::new(stream, peer, self.local_addr, slot));
                }
                Err(reason) => {
                    // Dropping the stream closes it at once, giving its file descriptor back.
                    tracing::debug!(listener = self.shared.limits.listener, %peer, reason = reason.as_str(), "connection refused");
                    count(self.shared.limits.listener, reason);
                }
            }
        }
    }

    pub async fn accept(&mut self) -> Connection {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_accept(cx).map(|connection| Some(Ok(connection)))
    }
}

/// Whether a connection is in use: the server's stack marks each call.
struct Calls {
    opened: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    // Milliseconds after `opened` when the last call ended or bytes last
    // arrived (a client's keep-alive pings say it is still there).
    last_active_ms: AtomicU64,
}

impl Calls {
    /// When the connection is to be let go if nothing changes, and why.
    fn deadline(&self, limits: &ConnectionLimits) -> (Instant, Refused) {
        if !self.started.load(Ordering::Acquire) {
            return (self.opened + limits.handshake_timeout, Refused::HandshakeTimeout);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // In use: look again one idle period from now.
            return (Instant::now() + limits.idle_timeout, Refused::Idle);
        }
        let last_active = Duration::from_millis(self.last_active_ms.load(Ordering::Acquire));
        (self.opened + last_active + limits.idle_timeout, Refused::Idle)
    }

    fn active_now(&self) {
        self.last_active_ms.fetch_max(self.opened.elapsed().as_millis() as u64, Ordering::AcqRel);
    }
}

/// One call on a connection, from its start until its answer is done.
pub struct CallMark(Arc<Calls>);

impl Drop for CallMark {
    fn drop(&mut self) {
        self.0.active_now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a server learns of a connection: its addresses, and the handle that
/// marks its calls.
#[derive(Clone)]
pub struct ConnectionInfo {
    local: SocketAddr,
    peer: SocketAddr,
    calls: Arc<Calls>,
}

impl ConnectionInfo {
    pub fn remote_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The addresses as tonic's `Request::remote_addr()` reads them.
    fn tcp(&self) -> TcpConnectInfo {
        TcpConnectInfo { local_addr: Some(self.local), remote_addr: Some(self.peer) }
    }

    /// Marks a call started; the connection counts it in flight until the
    /// mark is dropped.
    pub fn start_call(&self) -> CallMark {
        self.calls.in_flight.fetch_add(1, Ordering::AcqRel);
        self.calls.started.store(true, Ordering::Release);
        CallMark(self.calls.clone())
    }
}

/// An accepted socket that closes itself (its next read fails `TimedOut`)
/// when its handshake or idle time is up; the server then drops it.
pub struct Connection {
    stream: TcpStream,
    info: ConnectionInfo,
    limits: ConnectionLimits,
    check: Alarm,
    _slot: Slot,
}

impl Connection {
    fn new(stream: TcpStream, peer: SocketAddr, local: SocketAddr, slot: Slot) -> Self {
        let limits = slot.shared.limits.clone();
        let calls = Arc::new(Calls {
            opened: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_active_ms: AtomicU64::new(0),
        });
        let check = Alarm::at(calls.opened + limits.handshake_timeout);
        let info = ConnectionInfo { local, peer, calls };
        Self { stream, info, limits, check, _slot: slot }
    }

    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The same connection, served from now on by the runtime this is
    /// called on (a lane: [`crate::lanes`]): its socket and its timer are
    /// registered there, so its wake-ups stay on that runtime's thread.
    pub fn into_current_runtime(self) -> io::Result<Self> {
        let Self { stream, info, limits, check, _slot } = self;
        let stream = TcpStream::from_std(stream.into_std()?)?;
        let check = Alarm::at(check.deadline());
        Ok(Self { stream, info, limits, check, _slot })
    }

    /// Whether the client's first bytes are `prefix` (a protocol's
    /// preface), looked at without reading them. Bound it with a timeout:
    /// a client that sends nothing is answered by the handshake timeout
    /// only once the connection is read.
    pub async fn starts_with(&self, prefix: &[u8]) -> io::Result<bool> {
        let mut seen = vec![0; prefix.len()];
        loop {
            let arrived = self.stream.peek(&mut seen).await?;
            if arrived == 0 || seen[..arrived] != prefix[..arrived] {
                return Ok(false);
            }
            if arrived == prefix.len() {
                return Ok(true);
            }
            // The rest is on its way; peeking again at once would spin on
            // the bytes already here.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// `Err(TimedOut)` once the connection's time is up; otherwise arms the
    /// timer for the next look.
    fn poll_time_left(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        // The alarm wakes the task that reads the connection (one task does).
        while self.check.poll_rang(cx).is_ready() {
            let (deadline, reason) = self.info.calls.deadline(&self.limits);
            if deadline <= Instant::now() {
                tracing::debug!(
                    listener = self.limits.listener,
                    peer = %self.info.peer,
                    reason = reason.as_str(),
                    "closing a connection"
                );
                count(self.limits.listener, reason);
                return Err(io::Error::new(io::ErrorKind::TimedOut, reason.as_str()));
            }
            self.check.set(deadline);
        }
        Ok(())
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_time_left(cx)?;
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        // Only a connection in use can be kept by what it sends: before its
        // first call, bytes trickling in do not extend the handshake.
        if buf.filled().len() > filled && this.info.calls.started.load(Ordering::Acquire) {
            this.info.calls.active_now();
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Marks every call of a tonic server on its [`Connection`] (whose info
/// tonic puts in the request's extensions), and gives tonic's
/// `remote_addr()` the peer address.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallTracking;

impl<S> tower::Layer<S> for CallTracking {
    type Service = TrackCalls<S>;

    fn layer(&self, inner: S) -> TrackCalls<S> {
        TrackCalls { inner }
    }
}

#[derive(Clone, Debug)]
pub struct TrackCalls<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<Request<B>> for TrackCalls<S>
where
    S: tower::Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let mark = request.extensions().get::<ConnectionInfo>().cloned().map(|info| {
            request.extensions_mut().insert(info.tcp());
            info.start_call()
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?.map(Body::new);
            Ok(match mark {
                Some(mark) => response.map(|body| crate::grpc::HoldingBody::wrap(body, mark)),
                None => response,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(max_connections: usize, max_per_peer: usize) -> ConnectionLimits {
        ConnectionLimits {
            listener: "test",
            max_connections,
            max_per_peer,
            handshake_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(300),
        }
    }

    /// Accepts connections and echoes what they send, each on a task of its
    /// own, with one call in flight while `busy` is set.
    async fn echo_server(limits: ConnectionLimits) -> (SocketAddr, Arc<AtomicBool>) {
        let mut incoming = Incoming::bind("127.0.0.1:0".parse().unwrap(), limits).await.unwrap();
        let addr = incoming.local_addr();
        let busy = Arc::new(AtomicBool::new(false));
        let flag = busy.clone();
        tokio::spawn(async move {
            loop {
                let mut connection = incoming.accept().await;
                let busy = flag.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    let mut mark = None;
                    while let Ok(read) = connection.read(&mut buffer).await {
                        if read == 0 {
                            return;
                        }
                        // "c..." starts a call, in flight while `busy` is set; anything else is a ping.
                        if buffer[0] == b'c' {
                            let started = connection.info().start_call();
                            if busy.load(Ordering::Relaxed) {
                                mark = Some(started);
                            } else {
                                drop(mark.take());
                            }
                        }
                        let _ = connection.write_all(&buffer[..read]).await;
                    }
                });
            }
        });
        (addr, busy)
    }

    /// How the peer sees the connection end: `true` once it is closed.
    async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
        let mut buffer = [0u8; 64];
        matches!(tokio::time::timeout(wait, stream.read(&mut buffer)).await, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn a_connection_that_starts_no_call_is_closed_after_the_handshake_timeout() {
        let (addr, _) = echo_server(limits(10, 10)).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(!closed_within(&mut silent, Duration::from_millis(100)).await, "open within the handshake time");
        assert!(closed_within(&mut silent, Duration::from_secs(2)).await, "closed after it");
    }

    #[tokio::test]
    async fn a_used_connection_stays_while_a_call_is_in_flight_and_goes_when_idle() {
        let (addr, busy) = echo_server(limits(10, 10)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        busy.store(true, Ordering::Relaxed);
        client.write_all(b"call").await.unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).await.unwrap();
        assert!(!closed_within(&mut client, Duration::from_millis(700)).await, "in use past both timeouts");
        busy.store(false, Ordering::Relaxed);
        client.write_all(b"call").await.unwrap();
        client.read_exact(&mut echo).await.unwrap();
        assert!(!closed_within(&mut client, Duration::from_millis(150)).await, "open within the idle time");
        for _ in 0..6 {
            client.write_all(b"ping").await.unwrap();
            client.read_exact(&mut echo).await.unwrap();
            assert!(!closed_within(&mut client, Duration::from_millis(100)).await, "pings keep it");
        }
        assert!(closed_within(&mut client, Duration::from_secs(2)).await, "closed once idle and silent");
    }

    #[tokio::test]
    async fn bytes_before_the_first_call_do_not_extend_the_handshake() {
        let (addr, _) = echo_server(limits(10, 10)).await;
        let mut trickling = TcpStream::connect(addr).await.unwrap();
        let mut echo = [0u8; 4];
        // Pings every 50 ms, for five times the handshake timeout.
        let mut answered = 0;
        for _ in 0..20 {
            let pinged = async {
                trickling.write_all(b"ping").await?;
                trickling.read_exact(&mut echo).await
            };
            if pinged.await.is_err() {
                break;
            }
            answered += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!((1..20).contains(&answered), "closed at the handshake timeout, pings or not ({answered} answered)");
    }

    #[tokio::test]
    async fn connections_beyond_the_caps_are_closed_at_once_and_a_freed_place_is_reused() {
        let (addr, _) = echo_server(limits(3, 2)).await;
        let loopback = |last: u8| {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
            socket.connect(addr)
        };
        let mut first = loopback(1).await.unwrap();
        let _second = loopback(1).await.unwrap();
        let mut third_from_same_peer = loopback(1).await.unwrap();
        assert!(closed_within(&mut third_from_same_peer, Duration::from_secs(1)).await, "over the per-peer cap");
        let _other_peer = loopback(2).await.unwrap();
        let mut over_listener_cap = loopback(3).await.unwrap();
        assert!(closed_within(&mut over_listener_cap, Duration::from_secs(1)).await, "over the listener's cap");
        assert!(!closed_within(&mut first, Duration::from_millis(50)).await, "admitted ones stay");
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = loopback(3).await.unwrap();
        again.write_all(b"ca").await.unwrap();
        let mut echo = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(1), again.read_exact(&mut echo)).await.unwrap().unwrap();
        assert_eq!(&echo, b"ca", "the freed place serves a new connection");
    }
}

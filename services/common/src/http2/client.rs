//! The mesh's HTTP/2 client connection (RFC 9113), on [`frame`] and
//! [`hpack`]: every call to a backend goes over one of these.
//!
//! One task per connection ([`Connection`]) owns its streams, windows and
//! header tables. A call hands its request to the task through the
//! connection's [`Client`] and waits on an exchange of its own, which the
//! task fills with the answer's head, data and trailers as they arrive; the
//! two share nothing else. A turn of the task takes the calls submitted,
//! reads and handles every frame that has arrived, and only then writes,
//! once, what the turn produced: a unary call's HEADERS and DATA go out in
//! one write, and its answer, usually one read, wakes the call once.
//!
//! Why not the h2 crate's client: it was about 37k of the 99k instructions
//! a call through the gateway cost (BENCHMARKS.md, issue #15), most of it
//! its stream store, shared and locked between the call and the task, and
//! Huffman-coding every header sent.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::Reason;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tonic::body::Body;

use super::arriving::Arriving;
use super::frame::{self, BlockJoiner, DataArriving, Frame, FrameError, HeaderBlock, Settings, StreamId};
use super::hpack::{Decoder, Encoder, Field, Indexing, Name};
use super::outbox::Outbox;
use super::{PREFACE, READ_BYTES, is_connection_specific, poll_read_some};
use crate::time::Alarm;

/// Each stream's window for answers: as hyper's client, wide enough that a
/// large answer arrives without waiting for this side to release any.
const STREAM_WINDOW_BYTES: u32 = 2 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 5 << 20;
/// The largest frame a backend may send: 1 MiB rather than HTTP/2's 16 KiB
/// default, so a large answer arrives in a few frames (BENCHMARKS.md).
const MAX_FRAME_BYTES: u32 = 1 << 20;
/// A DATA frame larger than this is passed on to its call as it arrives,
/// part by part, not once it has all arrived: the call's own client can
/// be reading the start of a large answer while the rest is on its way.
const PASS_ON_DATA_BYTES: usize = 64 * 1024;
/// Read answer data is released to the backend once this much has been read.
const RELEASE_BYTES: usize = STREAM_WINDOW_BYTES as usize / 2;
/// A header block still arriving past this is the backend's attack, not an
/// answer: the connection ends. Blocks over the configured limit but under
/// this are read whole (the header table must stay in step) and refuse
/// only their own call.
const MAX_HEADER_BLOCK_BYTES: usize = 16 << 20;
/// Past this much unwritten, the connection reads nothing more.
const MAX_UNWRITTEN_BYTES: usize = 1 << 20;
/// A turn gives way to writing after this many rounds of reading.
const ROUNDS_PER_TURN: usize = 16;
/// Stream ids end at 2^31-1; a connection near the end takes no new calls.
const LAST_STREAM_ID: StreamId = (1 << 31) - 1;

/// How a client connection behaves.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// The largest answer header (or trailer) block a call accepts.
    pub max_header_list_size: u32,
    /// How often the connection is pinged, and how long a pong may take
    /// before the backend is given up as gone (its socket may stay open).
    pub keep_alive_interval: Duration,
    pub keep_alive_timeout: Duration,
}

/// Why a call got no answer, or only part of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The connection ended (or was going away) before the answer did.
    ConnectionLost(Arc<str>),
    /// This call alone was refused: the backend reset its stream, or its
    /// answer broke HTTP/2's rules or the header limit.
    Stream { reason: Reason, why: Arc<str> },
}

impl CallError {
    fn stream(reason: Reason, why: impl Into<Arc<str>>) -> Self {
        Self::Stream { reason, why: why.into() }
    }

    /// The status a call's reader is given for an answer that broke off, as
    /// gRPC maps HTTP/2's reasons (gRPC over HTTP/2, "Errors").
    pub fn to_status(&self) -> tonic::Status {
        let code = match self {
            Self::ConnectionLost(_) => tonic::Code::Unavailable,
            Self::Stream { reason, .. } => match *reason {
                Reason::REFUSED_STREAM => tonic::Code::Unavailable,
                Reason::CANCEL => tonic::Code::Cancelled,
                Reason::ENHANCE_YOUR_CALM => tonic::Code::ResourceExhausted,
                Reason::INADEQUATE_SECURITY => tonic::Code::PermissionDenied,
                _ => tonic::Code::Internal,
            },
        };
        tonic::Status::new(code, self.to_string())
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConnectionLost(why) => write!(f, "the connection was lost: {why}"),
            Self::Stream { reason, why } => write!(f, "{why} ({reason:?})"),
        }
    }
}

impl std::error::Error for CallError {}

/// What a call sends: one message (unary and server-streaming calls), or
/// the caller's stream of them.
pub enum Payload {
    Message(Bytes),
    Stream(Body),
}

/// A connection's side for calls: cheap to clone, one per connection.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

/// Dropped with the last [`Client`]: the connection then ends once its calls have.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.abandoned = true;
        state.wake();
    }
}

/// What calls and the connection's task share.
struct Shared {
    /// Cleared once the connection takes no new calls.
    open: AtomicBool,
    state: Mutex<SharedState>,
}

/// The lists a connection's calls fill between its turns (see [`SharedState`]).
#[derive(Default)]
struct Taken {
    submitted: VecDeque<Submission>,
    let_go: Vec<StreamId>,
    releasing: Vec<StreamId>,
}

#[derive(Default)]
struct SharedState {
    submitted: VecDeque<Submission>,
    /// Streams whose callers let go of them before their answer ended.
    let_go: Vec<StreamId>,
    /// Streams whose callers have read enough to release to the backend.
    releasing: Vec<StreamId>,
    /// Why the connection takes no new calls, once it does not.
    closed: Option<CallError>,
    abandoned: bool,
    task: Option<Waker>,
}

impl SharedState {
    fn wake(&mut self) {
        if let Some(task) = self.task.take() {
            task.wake();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Submission {
    path: PathAndQuery,
    /// Shared: a call sent again after UNAVAILABLE sends the same headers.
    headers: Arc<HeaderMap>,
    payload: Payload,
    exchange: Arc<Exchange>,
}

/// One call's answer as it arrives: filled by the connection, read by the call.
struct Exchange {
    shared: Arc<Shared>,
    state: Mutex<ExchangeState>,
}

#[derive(Default)]
struct ExchangeState {
    /// The call's stream, once opened (0 before).
    stream: StreamId,
    head: Option<Response<()>>,
    /// The answer's data and trailers; its waker is the call's, for the head too.
    body: Arriving,
    failed: Option<CallError>,
    let_go: bool,
}

impl ExchangeState {
    fn finished(&self) -> bool {
        self.body.has_ended() || self.failed.is_some()
    }
}

impl Exchange {
    fn lock(&self) -> MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, error: CallError) {
        let mut state = self.lock();
        if !state.body.has_ended() {
            state.failed.get_or_insert(error);
        }
        state.body.wake();
    }

    /// The caller is done with the call: an answer still arriving is
    /// reset (CANCEL), and a call not yet sent is never sent.
    fn let_go(&self) {
        let (stream, finished) = {
            let mut state = self.lock();
            state.let_go = true;
            (state.stream, state.finished())
        };
        if finished {
            return;
        }
        let mut shared = self.shared.lock();
        if stream != 0 {
            shared.let_go.push(stream);
        }
        shared.wake();
    }
}

impl Client {
    /// Sends a call to `path` with `headers`; resolves to the answer's head
    /// and a body that reads the rest as it arrives.
    pub fn send(&self, path: PathAndQuery, headers: impl Into<Arc<HeaderMap>>, payload: Payload) -> ResponseFuture {
        let headers = headers.into();
        let shared = &self.handle.shared;
        let exchange = Arc::new(Exchange { shared: shared.clone(), state: Mutex::default() });
        let mut state = shared.lock();
        if let Some(error) = &state.closed {
            exchange.lock().failed = Some(error.clone());
        } else {
            state.submitted.push_back(Submission { path, headers, payload, exchange: exchange.clone() });
            state.wake();
        }
        ResponseFuture { exchange: Some(exchange) }
    }

    /// Whether the connection still takes calls.
    pub fn is_open(&self) -> bool {
        self.handle.shared.open.load(Ordering::Relaxed)
    }
}

/// A call's answer head, still to come.
pub struct ResponseFuture {
    exchange: Option<Arc<Exchange>>,
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let exchange = self.exchange.as_ref().expect("a response future is not polled after it is ready");
        let mut state = exchange.lock();
        if let Some(head) = state.head.take() {
            drop(state);
            let exchange = self.exchange.take().expect("checked above");
            return Poll::Ready(Ok(head.map(|()| Body::new(AnswerBody { exchange }))));
        }
        if let Some(error) = &state.failed {
            let error = error.clone();
            drop(state);
            self.exchange = None;
            return Poll::Ready(Err(error));
        }
        state.body.wait(cx);
        Poll::Pending
    }
}

impl Drop for ResponseFuture {
    fn drop(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.let_go();
        }
    }
}

/// An answer's data and trailers as they arrive.
struct AnswerBody {
    exchange: Arc<Exchange>,
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let mut state = self.exchange.lock();
        if let Some(frame) = state.body.next_frame() {
            if state.body.consumed() >= RELEASE_BYTES && !state.finished() {
                let stream = state.stream;
                drop(state);
                let mut shared = self.exchange.shared.lock();
                shared.releasing.push(stream);
                shared.wake();
            }
            return Poll::Ready(frame.map(Ok));
        }
        if let Some(error) = &state.failed {
            return Poll::Ready(Some(Err(error.to_status())));
        }
        state.body.wait(cx);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.exchange.lock().body.is_end_stream()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.exchange.let_go();
    }
}

/// Why a connection ended other than by its calls all being done.
#[derive(Debug)]
pub enum ConnectionError {
    Io(io::Error),
    /// The backend broke HTTP/2's rules; it was sent GOAWAY with the reason.
    Protocol {
        reason: Reason,
        why: &'static str,
    },
    /// The backend sent GOAWAY with an error.
    GoAway(Reason),
    /// A ping went unanswered.
    NoPong,
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::Protocol { reason, why } => write!(f, "{why} ({reason:?})"),
            Self::GoAway(reason) => write!(f, "the backend went away ({reason:?})"),
            Self::NoPong => write!(f, "the backend answered no ping"),
        }
    }
}

impl std::error::Error for ConnectionError {}

impl From<io::Error> for ConnectionError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Opens a client connection over `io` (a connected socket) for calls to
/// `origin`'s scheme and authority: the [`Client`] calls go through, and
/// the connection's task, to be spawned. The task ends when the backend
/// closes, breaks the rules or stops answering pings, or when no client is
/// left and no call is in flight; every call it still held then fails.
pub fn handshake<IO>(
    io: IO,
    origin: &http::Uri,
    settings: ClientSettings,
) -> (Client, impl Future<Output = Result<(), ConnectionError>> + Send + 'static)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared { open: AtomicBool::new(true), state: Mutex::default() });
    let client = Client { handle: Arc::new(Handle { shared: shared.clone() }) };
    let connection = Connection::new(io, origin, settings, shared);
    (client, connection.run())
}

type BodyRead = Pin<Box<dyn Future<Output = Result<BodyFrame, Aborted>> + Send>>;

/// A request body's next frame (none: it ended), with the body to read on.
struct BodyFrame {
    stream: StreamId,
    frame: Option<Result<http_body::Frame<Bytes>, tonic::Status>>,
    body: Body,
}

/// What is left of a request to send.
enum Request {
    /// Sent whole.
    Sent,
    /// The body's next frame is being read.
    Reading(AbortHandle),
    /// Data the windows held back, and what follows it.
    Held(Bytes, Then),
}

/// What follows data once it is sent.
enum Then {
    /// It was the request's last.
    End,
    /// The body goes on.
    Body(Body),
}

struct Stream {
    exchange: Arc<Exchange>,
    request: Request,
    /// The answer's head has arrived: the next header block is its trailers.
    answered: bool,
    send_window: i64,
    recv_window: i64,
}

struct Connection<IO> {
    io: IO,
    shared: Arc<Shared>,
    settings: ClientSettings,
    scheme: Bytes,
    authority: Bytes,
    read_buffer: BytesMut,
    /// A large DATA frame still arriving: what follows in `read_buffer` is its payload.
    data_arriving: Option<DataArriving>,
    outbox: Outbox,
    decoder: Decoder,
    encoder: Encoder,
    scratch: BytesMut,
    /// Hashed with foldhash, seeded per process: SipHash's strength is not
    /// needed for ids the peer can only count upwards, and cost more per call.
    streams: foldhash::HashMap<StreamId, Stream>,
    /// Calls submitted beyond the backend's limit of concurrent streams.
    waiting: VecDeque<Submission>,
    /// What the last turn took from the calls, emptied: swapped with the
    /// shared lists each turn, so neither side allocates them anew per call.
    taken: Taken,
    sending: FuturesUnordered<BodyRead>,
    /// Streams whose request data waits for a window to open.
    blocked: VecDeque<StreamId>,
    blocks: BlockJoiner,
    next_stream: StreamId,
    peer_max_streams: usize,
    settings_seen: bool,
    peer_initial_window: i64,
    peer_max_frame_size: u32,
    send_window: i64,
    recv_window: i64,
    unreleased: i64,
    /// The backend sent GOAWAY: no stream above this one will be answered.
    going_away: Option<StreamId>,
    /// Every [`Client`] is gone: no call can come.
    abandoned: bool,
    awaiting_pong: bool,
    pong_arrived: bool,
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn new(io: IO, origin: &http::Uri, settings: ClientSettings, shared: Arc<Shared>) -> Self {
        let mut outbox = Outbox::default();
        outbox.tail().extend_from_slice(PREFACE);
        let ours = Settings {
            enable_push: Some(false),
            initial_window_size: Some(STREAM_WINDOW_BYTES),
            max_frame_size: Some(MAX_FRAME_BYTES),
            max_header_list_size: Some(settings.max_header_list_size),
            ..Settings::default()
        };
        frame::put_settings(outbox.tail(), &ours);
        let default_window = i64::from(u16::MAX);
        frame::put_window_update(outbox.tail(), 0, CONNECTION_WINDOW_BYTES - u32::from(u16::MAX));
        let scheme = origin.scheme_str().unwrap_or("http");
        let authority = origin.authority().map_or("", |authority| authority.as_str());
        Self {
            io,
            shared,
            settings,
            scheme: Bytes::copy_from_slice(scheme.as_bytes()),
            authority: Bytes::copy_from_slice(authority.as_bytes()),
            read_buffer: BytesMut::with_capacity(READ_BYTES),
            data_arriving: None,
            outbox,
            decoder: Decoder::default(),
            encoder: Encoder::default(),
            scratch: BytesMut::new(),
            streams: foldhash::HashMap::default(),
            waiting: VecDeque::new(),
            taken: Taken::default(),
            sending: FuturesUnordered::new(),
            blocked: VecDeque::new(),
            blocks: BlockJoiner::default(),
            next_stream: 1,
            // Until the backend's SETTINGS say: as many as HTTP/2 advises
            // every server to allow (RFC 9113, 6.5.2).
            peer_max_streams: 100,
            settings_seen: false,
            peer_initial_window: default_window,
            peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            send_window: default_window,
            recv_window: i64::from(CONNECTION_WINDOW_BYTES),
            unreleased: 0,
            going_away: None,
            abandoned: false,
            awaiting_pong: false,
            pong_arrived: false,
        }
    }

    async fn run(mut self) -> Result<(), ConnectionError> {
        let mut ping = Alarm::after(self.settings.keep_alive_interval);
        let ended = std::future::poll_fn(|cx| {
            if let Err(error) = self.poll_keep_alive(&mut ping, cx) {
                return Poll::Ready(Err(error));
            }
            self.poll_turn(cx)
        })
        .await;
        let why: Arc<str> = match &ended {
            Ok(()) => "the connection closed".into(),
            Err(error) => error.to_string().into(),
        };
        self.close(CallError::ConnectionLost(why));
        ended
    }

    /// Pings every `keep_alive_interval`; an unanswered ping ends the
    /// connection after `keep_alive_timeout`.
    fn poll_keep_alive(&mut self, ping: &mut Alarm, cx: &mut Context<'_>) -> Result<(), ConnectionError> {
        if self.pong_arrived {
            self.pong_arrived = false;
            ping.set(Instant::now() + self.settings.keep_alive_interval);
        }
        while ping.poll_rang(cx).is_ready() {
            if self.awaiting_pong {
                return Err(ConnectionError::NoPong);
            }
            self.awaiting_pong = true;
            frame::put_ping(self.outbox.tail(), *b"wizdata?", false);
            ping.set(Instant::now() + self.settings.keep_alive_timeout);
        }
        Ok(())
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        let mut rounds = 0;
        loop {
            let mut progressed = self.take_calls(cx);
            if self.outbox.unwritten() < MAX_UNWRITTEN_BYTES {
                match poll_read_some(&mut self.io, cx, &mut self.read_buffer) {
                    Poll::Ready(Ok(true)) => {
                        progressed = true;
                        if let Err(error) = self.handle_frames() {
                            return Poll::Ready(Err(self.fail(cx, error)));
                        }
                    }
                    // Closed with nothing in flight: as a backend that restarts does.
                    Poll::Ready(Ok(false)) if self.streams.is_empty() && self.waiting.is_empty() => {
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Ready(Ok(false)) => {
                        let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the backend closed the connection");
                        return Poll::Ready(Err(closed.into()));
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Pending => {}
                }
                while let Poll::Ready(Some(read)) = self.sending.poll_next_unpin(cx) {
                    progressed = true;
                    if let Ok(read) = read {
                        self.handle_body_frame(read);
                    }
                }
            }
            rounds += 1;
            if progressed && rounds < ROUNDS_PER_TURN && self.outbox.unwritten() < MAX_UNWRITTEN_BYTES {
                continue;
            }
            match self.outbox.poll_write(&mut self.io, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => return Poll::Pending,
            }
            if self.is_done() {
                return Poll::Ready(Ok(()));
            }
            if !progressed {
                return Poll::Pending;
            }
            rounds = 0;
        }
    }

    /// No call in flight, and none can come: every client is gone, or the
    /// backend is going away.
    fn is_done(&self) -> bool {
        if !self.streams.is_empty() || !self.waiting.is_empty() {
            return false;
        }
        self.going_away.is_some() || self.abandoned
    }

    /// Takes what calls asked for since the last turn (new calls, calls let
    /// go, answer data read), and keeps the task's waker for the next.
    fn take_calls(&mut self, cx: &Context<'_>) -> bool {
        let mut taken = std::mem::take(&mut self.taken);
        {
            let mut shared = self.shared.lock();
            if !shared.task.as_ref().is_some_and(|task| task.will_wake(cx.waker())) {
                shared.task = Some(cx.waker().clone());
            }
            self.abandoned = shared.abandoned;
            if shared.submitted.is_empty() && shared.let_go.is_empty() && shared.releasing.is_empty() {
                self.taken = taken;
                return false;
            }
            std::mem::swap(&mut shared.submitted, &mut taken.submitted);
            std::mem::swap(&mut shared.let_go, &mut taken.let_go);
            std::mem::swap(&mut shared.releasing, &mut taken.releasing);
        }
        for id in taken.let_go.drain(..) {
            if self.streams.contains_key(&id) {
                self.reset(id, Reason::CANCEL);
            }
        }
        for id in taken.releasing.drain(..) {
            self.release(id);
        }
        self.waiting.extend(taken.submitted.drain(..));
        self.taken = taken;
        self.open_waiting();
        true
    }

    /// Opens streams for waiting calls while the backend's limit allows.
    fn open_waiting(&mut self) {
        while self.streams.len() < self.peer_max_streams {
            let Some(submission) = self.waiting.pop_front() else { return };
            if self.going_away.is_some() {
                submission.exchange.fail(CallError::ConnectionLost("the backend is going away".into()));
                continue;
            }
            if self.next_stream >= LAST_STREAM_ID {
                let spent = CallError::ConnectionLost("the connection ran out of stream ids".into());
                self.stop_taking_calls(spent.clone());
                submission.exchange.fail(spent);
                continue;
            }
            let id = self.next_stream;
            {
                let mut state = submission.exchange.lock();
                if state.let_go {
                    continue;
                }
                state.stream = id;
            }
            self.next_stream += 2;
            self.open(id, submission);
        }
    }

    fn open(&mut self, id: StreamId, submission: Submission) {
        let Submission { path, headers, payload, exchange } = submission;
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        self.encoder.start_block(&mut block);
        self.encoder.encode(&Name::Method, b"POST", Indexing::Indexed, &mut block);
        self.encoder.encode(&Name::Scheme, &self.scheme, Indexing::Indexed, &mut block);
        self.encoder.encode(&Name::Authority, &self.authority, Indexing::Indexed, &mut block);
        self.encoder.encode(&Name::Path, path.as_str().as_bytes(), Indexing::Indexed, &mut block);
        self.encoder.encode_headers(&headers, &mut block);
        frame::put_headers(self.outbox.tail(), id, &block, false, self.peer_max_frame_size);
        self.scratch = block;
        self.streams.insert(
            id,
            Stream {
                exchange,
                request: Request::Sent,
                answered: false,
                send_window: self.peer_initial_window,
                recv_window: i64::from(STREAM_WINDOW_BYTES),
            },
        );
        match payload {
            Payload::Message(message) => self.send_data(id, message, Then::End),
            Payload::Stream(body) => self.read_body(id, body),
        }
    }

    /// Reads the request body's next frame among the connection's futures.
    fn read_body(&mut self, id: StreamId, mut body: Body) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let (abort, registration) = AbortHandle::new_pair();
        stream.request = Request::Reading(abort);
        self.sending.push(Box::pin(Abortable::new(
            async move {
                let frame = body.frame().await;
                BodyFrame { stream: id, frame, body }
            },
            registration,
        )));
    }

    fn handle_body_frame(&mut self, read: BodyFrame) {
        let BodyFrame { stream: id, frame, body } = read;
        if !self.streams.contains_key(&id) {
            return;
        }
        match frame {
            None => self.send_data(id, Bytes::new(), Then::End),
            Some(Ok(frame)) => match frame.into_data() {
                // A body that knows it is done ends the stream with its last data.
                Ok(data) if body.is_end_stream() => self.send_data(id, data, Then::End),
                Ok(data) => self.send_data(id, data, Then::Body(body)),
                Err(frame) => {
                    let trailers = frame.into_trailers().unwrap_or_default();
                    self.put_trailers(id, &trailers);
                }
            },
            Some(Err(status)) => {
                // The caller's side of the call failed (its client went away): the backend is told so.
                tracing::debug!(stream = id, %status, "a request body broke off");
                if let Some(stream) = self.streams.get(&id) {
                    stream.exchange.fail(CallError::stream(Reason::CANCEL, "the request broke off"));
                }
                self.reset(id, Reason::CANCEL);
            }
        }
    }

    /// Sends what the windows allow of `data`, and then goes on as `then`
    /// says; what they hold back waits for them to open.
    fn send_data(&mut self, id: StreamId, mut data: Bytes, then: Then) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let ends = matches!(then, Then::End);
        if data.is_empty() && !ends {
            return self.go_on(id, then);
        }
        loop {
            let allowed = stream.send_window.min(self.send_window).min(i64::from(self.peer_max_frame_size));
            if allowed <= 0 && !data.is_empty() {
                stream.request = Request::Held(data, then);
                self.blocked.push_back(id);
                return;
            }
            let len = data.len().min(allowed.max(0) as usize);
            let chunk = data.split_to(len);
            stream.send_window -= len as i64;
            self.send_window -= len as i64;
            frame::put_data_header(self.outbox.tail(), id, len, ends && data.is_empty());
            self.outbox.push(chunk);
            if data.is_empty() {
                break;
            }
        }
        self.go_on(id, then);
    }

    fn go_on(&mut self, id: StreamId, then: Then) {
        match then {
            Then::Body(body) => self.read_body(id, body),
            Then::End => self.request_sent(id),
        }
    }

    fn put_trailers(&mut self, id: StreamId, trailers: &HeaderMap) {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        self.encoder.start_block(&mut block);
        self.encoder.encode_headers(trailers, &mut block);
        frame::put_headers(self.outbox.tail(), id, &block, true, self.peer_max_frame_size);
        self.scratch = block;
        self.request_sent(id);
    }

    /// The request has ended; a stream whose answer has too is done.
    fn request_sent(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        stream.request = Request::Sent;
        if stream.exchange.lock().finished() {
            self.streams.remove(&id);
            self.open_waiting();
        }
    }

    /// Sends what was held back on streams whose windows have opened.
    fn resume_blocked(&mut self) {
        for _ in 0..self.blocked.len() {
            if self.send_window <= 0 {
                return;
            }
            let Some(id) = self.blocked.pop_front() else { return };
            let Some(stream) = self.streams.get_mut(&id) else { continue };
            if let Request::Held(data, then) = std::mem::replace(&mut stream.request, Request::Sent) {
                self.send_data(id, data, then);
            }
        }
    }

    /// The next whole frame read, or what has arrived of a large DATA
    /// frame's payload (see `data_arriving`); `None` when nothing is ready.
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.data_arriving.is_none() {
            let frame = frame::read(&mut self.read_buffer, MAX_FRAME_BYTES)?;
            if frame.is_some() {
                return Ok(frame);
            }
            self.data_arriving = frame::start_large_data(&mut self.read_buffer, PASS_ON_DATA_BYTES);
        }
        let Some(data) = &mut self.data_arriving else { return Ok(None) };
        let part = data.next_part(&mut self.read_buffer);
        if data.left == 0 {
            self.data_arriving = None;
        }
        Ok(part)
    }

    fn handle_frames(&mut self) -> Result<(), ConnectionError> {
        loop {
            match self.next_frame().and_then(|frame| frame.map(|frame| self.handle_frame(frame)).transpose()) {
                Ok(Some(Ok(()))) => {}
                Ok(Some(Err(error))) => return Err(error),
                Ok(None) => return Ok(()),
                Err(FrameError::Stream { stream, reason, why }) => {
                    tracing::debug!(stream, ?reason, why, "resetting a backend's HTTP/2 stream");
                    if let Some(open) = self.streams.get(&stream) {
                        open.exchange.fail(CallError::stream(reason, why));
                    }
                    self.reset(stream, reason);
                }
                Err(FrameError::Connection { reason, why }) => return Err(ConnectionError::Protocol { reason, why }),
            }
        }
    }

    /// One frame; a stream's error comes back as a [`FrameError`], a
    /// connection's as a [`ConnectionError`] inside.
    fn handle_frame(&mut self, frame: Frame) -> Result<Result<(), ConnectionError>, FrameError> {
        self.blocks.check(&frame)?;
        match frame {
            Frame::Settings(settings) => self.apply_settings(settings)?,
            Frame::SettingsAck | Frame::Priority { .. } | Frame::Unknown => {}
            Frame::Ping { payload, ack: false } => frame::put_ping(self.outbox.tail(), payload, true),
            Frame::Ping { ack: true, .. } => {
                self.awaiting_pong = false;
                self.pong_arrived = true;
            }
            Frame::Headers { stream, fragment, end_stream, end_headers } => {
                self.check_opened(stream)?;
                if let Some(block) = self.blocks.headers(stream, fragment, end_stream, end_headers) {
                    self.handle_header_block(block)?;
                }
            }
            Frame::Continuation { fragment, end_headers, .. } => {
                if let Some(block) = self.blocks.continuation(&fragment, end_headers, MAX_HEADER_BLOCK_BYTES)? {
                    self.handle_header_block(block)?;
                }
            }
            Frame::Data { stream, payload, end_stream, window_cost } => {
                self.handle_data(stream, payload, end_stream, window_cost)?;
            }
            Frame::RstStream { stream, reason } => {
                self.check_opened(stream)?;
                if let Some(open) = self.streams.remove(&stream) {
                    open.exchange.fail(CallError::stream(reason, "the backend reset the stream"));
                    if let Request::Reading(abort) = open.request {
                        abort.abort();
                    }
                    self.open_waiting();
                }
            }
            Frame::WindowUpdate { stream: 0, increment } => {
                if !frame::widen(&mut self.send_window, increment) {
                    return Err(connection_error(Reason::FLOW_CONTROL_ERROR, "a window above 2^31-1"));
                }
                self.resume_blocked();
            }
            Frame::WindowUpdate { stream, increment } => {
                self.check_opened(stream)?;
                if let Some(open) = self.streams.get_mut(&stream) {
                    if !frame::widen(&mut open.send_window, increment) {
                        let why = "a stream window above 2^31-1";
                        return Err(FrameError::Stream { stream, reason: Reason::FLOW_CONTROL_ERROR, why });
                    }
                    self.resume_blocked();
                }
            }
            Frame::GoAway { last_stream, reason } => return Ok(self.go_away(last_stream, reason)),
            Frame::PushPromise { .. } => {
                return Err(connection_error(Reason::PROTOCOL_ERROR, "PUSH_PROMISE, which this client refused"));
            }
        }
        Ok(Ok(()))
    }

    /// The backend answers the streams up to `last_stream` and no others:
    /// the calls above it were never taken, and no new call goes here.
    fn go_away(&mut self, last_stream: StreamId, reason: Reason) -> Result<(), ConnectionError> {
        let why: Arc<str> = format!("the backend is going away ({reason:?})").into();
        self.stop_taking_calls(CallError::ConnectionLost(why.clone()));
        self.going_away = Some(last_stream);
        let refused: Vec<StreamId> = self.streams.keys().copied().filter(|id| *id > last_stream).collect();
        for id in refused {
            if let Some(stream) = self.streams.remove(&id) {
                stream.exchange.fail(CallError::ConnectionLost(why.clone()));
                if let Request::Reading(abort) = stream.request {
                    abort.abort();
                }
            }
        }
        for submission in self.waiting.drain(..) {
            submission.exchange.fail(CallError::ConnectionLost(why.clone()));
        }
        if reason != Reason::NO_ERROR {
            return Err(ConnectionError::GoAway(reason));
        }
        Ok(())
    }

    fn apply_settings(&mut self, settings: Settings) -> Result<(), FrameError> {
        if let Some(size) = settings.header_table_size {
            self.encoder.set_peer_table_size(size as usize);
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame_size = size;
        }
        // Unlimited unless the backend's first SETTINGS set a limit.
        if !self.settings_seen {
            self.settings_seen = true;
            self.peer_max_streams = usize::MAX;
        }
        if let Some(streams) = settings.max_concurrent_streams {
            self.peer_max_streams = streams as usize;
        }
        if let Some(window) = settings.initial_window_size {
            let change = i64::from(window) - self.peer_initial_window;
            self.peer_initial_window = i64::from(window);
            for stream in self.streams.values_mut() {
                stream.send_window += change;
                if stream.send_window > i64::from(frame::MAX_WINDOW) {
                    return Err(connection_error(Reason::FLOW_CONTROL_ERROR, "a stream window above 2^31-1"));
                }
            }
            self.resume_blocked();
        }
        frame::put_settings_ack(self.outbox.tail());
        self.open_waiting();
        Ok(())
    }

    /// A frame on a stream this side has not opened breaks the rules.
    fn check_opened(&self, stream: StreamId) -> Result<(), FrameError> {
        if stream >= self.next_stream || stream.is_multiple_of(2) {
            return Err(connection_error(Reason::PROTOCOL_ERROR, "a frame on a stream this client did not open"));
        }
        Ok(())
    }

    fn handle_data(&mut self, id: StreamId, payload: Bytes, end_stream: bool, cost: u32) -> Result<(), FrameError> {
        self.check_opened(id)?;
        let cost = i64::from(cost);
        if cost > self.recv_window {
            return Err(connection_error(Reason::FLOW_CONTROL_ERROR, "DATA beyond the connection's window"));
        }
        // The connection's window is given back at once: each stream's own window bounds what waits.
        self.recv_window -= cost;
        self.unreleased += cost;
        if self.unreleased >= i64::from(CONNECTION_WINDOW_BYTES / 2) {
            frame::put_window_update(self.outbox.tail(), 0, self.unreleased as u32);
            self.recv_window += self.unreleased;
            self.unreleased = 0;
        }
        // A stream already done (reset, or let go): its data is dropped.
        let Some(stream) = self.streams.get_mut(&id) else { return Ok(()) };
        if !stream.answered {
            let why = "DATA before the answer's headers";
            return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
        }
        if cost > stream.recv_window {
            let why = "DATA beyond the stream's window";
            return Err(FrameError::Stream { stream: id, reason: Reason::FLOW_CONTROL_ERROR, why });
        }
        // Padding is given back at once, the data as the call reads it.
        let data = payload.len() as i64;
        stream.recv_window -= data;
        let padding = cost - data;
        if padding > 0 && !end_stream {
            frame::put_window_update(self.outbox.tail(), id, padding as u32);
        }
        {
            let mut state = stream.exchange.lock();
            if state.body.has_ended() {
                drop(state);
                let why = "DATA after the end of the answer";
                return Err(FrameError::Stream { stream: id, reason: Reason::STREAM_CLOSED, why });
            }
            state.body.push(payload, end_stream);
        }
        if end_stream {
            self.answer_ended(id);
        }
        Ok(())
    }

    /// A whole header block: the answer's head, or its trailers.
    fn handle_header_block(&mut self, block: HeaderBlock) -> Result<(), FrameError> {
        let HeaderBlock { stream: id, block, end_stream } = block;
        let mut head = AnswerHead::new(self.settings.max_header_list_size as usize);
        let decoded = self.decoder.decode(&block, |field| head.add(field));
        if let Err(error) = decoded {
            tracing::debug!(%error, "a backend's header block could not be read");
            return Err(connection_error(Reason::COMPRESSION_ERROR, "a header block that could not be read"));
        }
        // A stream already done: the block was read only to keep the table in step.
        let Some(stream) = self.streams.get_mut(&id) else { return Ok(()) };
        if head.too_large {
            let why = format!("the answer's headers were over {} bytes", self.settings.max_header_list_size);
            // The backend is told the call is cancelled; the call, that its answer could not be taken.
            stream.exchange.fail(CallError::stream(Reason::INTERNAL_ERROR, why));
            self.reset(id, Reason::CANCEL);
            return Ok(());
        }
        if let Some(why) = head.malformed {
            return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
        }
        if stream.answered {
            if !end_stream || head.status.is_some() {
                let why = "trailers that do not end the stream, or hold :status";
                return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
            }
            stream.exchange.lock().body.finish(head.headers);
            self.answer_ended(id);
            return Ok(());
        }
        let Some(status) = head.status else {
            let why = "an answer without :status";
            return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
        };
        if status.is_informational() {
            if end_stream {
                let why = "an informational answer that ends the stream";
                return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
            }
            return Ok(());
        }
        stream.answered = true;
        let mut answer = Response::new(());
        *answer.status_mut() = status;
        *answer.version_mut() = http::Version::HTTP_2;
        *answer.headers_mut() = head.headers;
        let mut state = stream.exchange.lock();
        state.head = Some(answer);
        state.body.push(Bytes::new(), end_stream);
        drop(state);
        if end_stream {
            self.answer_ended(id);
        }
        Ok(())
    }

    /// The answer is whole; a request still being sent is no longer wanted.
    fn answer_ended(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else { return };
        if matches!(stream.request, Request::Sent) {
            self.streams.remove(&id);
            self.open_waiting();
        } else {
            self.reset(id, Reason::CANCEL);
        }
    }

    /// Gives back to the backend's window what the call has read.
    fn release(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let consumed = stream.exchange.lock().body.take_consumed();
        if consumed > 0 {
            stream.recv_window += consumed as i64;
            frame::put_window_update(self.outbox.tail(), id, consumed as u32);
        }
    }

    /// Ends a stream: RST_STREAM with `reason`, and its request body is no longer read.
    fn reset(&mut self, id: StreamId, reason: Reason) {
        frame::put_rst_stream(self.outbox.tail(), id, reason);
        if let Some(stream) = self.streams.remove(&id) {
            if let Request::Reading(abort) = stream.request {
                abort.abort();
            }
            stream.exchange.fail(CallError::stream(reason, "the call was let go"));
        }
        self.open_waiting();
    }

    /// Ends the connection for a broken rule: GOAWAY with its reason,
    /// written if it can be at once.
    fn fail(&mut self, cx: &mut Context<'_>, error: ConnectionError) -> ConnectionError {
        if let ConnectionError::Protocol { reason, why } = &error {
            let last = self.next_stream.saturating_sub(2);
            frame::put_goaway(self.outbox.tail(), last, *reason, why.as_bytes());
            let _ = self.outbox.poll_write(&mut self.io, cx);
        }
        error
    }
}

/// What a connection does however it ends, so its task's end and its drop share it.
impl<IO> Connection<IO> {
    fn stop_taking_calls(&self, error: CallError) {
        self.shared.open.store(false, Ordering::Relaxed);
        self.shared.lock().closed.get_or_insert(error);
    }

    /// Fails every call the connection still holds, and every call submitted to it.
    fn close(&mut self, error: CallError) {
        self.stop_taking_calls(error.clone());
        for (_, stream) in self.streams.drain() {
            stream.exchange.fail(error.clone());
        }
        let submitted = std::mem::take(&mut self.shared.lock().submitted);
        for submission in self.waiting.drain(..).chain(submitted) {
            submission.exchange.fail(error.clone());
        }
    }
}

impl<IO> Drop for Connection<IO> {
    /// A connection dropped unfinished (its runtime stopped) fails its calls
    /// rather than leave them waiting.
    fn drop(&mut self) {
        if self.streams.is_empty() && self.waiting.is_empty() && !self.shared.open.load(Ordering::Relaxed) {
            return;
        }
        self.close(CallError::ConnectionLost("the connection's task stopped".into()));
    }
}

fn connection_error(reason: Reason, why: &'static str) -> FrameError {
    FrameError::Connection { reason, why }
}

/// An answer's header fields as they are decoded, checked as HTTP/2 requires.
struct AnswerHead {
    status: Option<StatusCode>,
    headers: HeaderMap,
    size: usize,
    limit: usize,
    too_large: bool,
    malformed: Option<&'static str>,
}

impl AnswerHead {
    fn new(limit: usize) -> Self {
        Self { status: None, headers: HeaderMap::new(), size: 0, limit, too_large: false, malformed: None }
    }

    fn add(&mut self, field: Field) {
        self.size += field.size();
        if self.size > self.limit {
            // Decoding goes on, to keep the table in step; the fields are dropped.
            self.too_large = true;
            return;
        }
        match field.name {
            Name::Status if self.status.is_some() => self.malform("a :status twice"),
            Name::Status if !self.headers.is_empty() => self.malform("a :status after a regular header"),
            Name::Status => match StatusCode::from_bytes(&field.value) {
                Ok(status) => self.status = Some(status),
                Err(_) => self.malform("a :status HTTP does not allow"),
            },
            Name::Header(name) => {
                if is_connection_specific(&name) {
                    return self.malform("a connection-specific header");
                }
                match HeaderValue::from_maybe_shared(field.value) {
                    Ok(mut value) => {
                        value.set_sensitive(field.sensitive);
                        self.headers.append(name, value);
                    }
                    Err(_) => self.malform("a header value HTTP does not allow"),
                }
            }
            _ => self.malform("a pseudo-header answers do not carry, or a name HTTP/2 does not allow"),
        }
    }

    fn malform(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BufMut;
    use futures_util::stream;
    use http_body_util::StreamBody;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const SETTINGS: ClientSettings = ClientSettings {
        max_header_list_size: 16 << 10,
        keep_alive_interval: Duration::from_secs(30),
        keep_alive_timeout: Duration::from_secs(10),
    };
    const WAIT: Duration = Duration::from_secs(10);

    fn origin() -> http::Uri {
        "http://backend.test:50051".parse().unwrap()
    }

    fn grpc_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("host", HeaderValue::from_static("elsewhere.test"));
        headers
    }

    fn path() -> PathAndQuery {
        PathAndQuery::from_static("/wizdata.registry.v1.RegistryService/GetSymbol")
    }

    /// A client connection whose task runs, and the backend's end of it.
    fn connected() -> (Client, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(8 << 20);
        let (client, task) = handshake(ours, &origin(), SETTINGS);
        tokio::spawn(task);
        (client, theirs)
    }

    /// The backend's side, frame by frame, as a peer that may break the rules.
    struct RawBackend {
        io: DuplexStream,
        buffer: BytesMut,
        decoder: Decoder,
        encoder: Encoder,
    }

    impl RawBackend {
        async fn accept(io: DuplexStream) -> Self {
            let mut backend =
                Self { io, buffer: BytesMut::new(), decoder: Decoder::default(), encoder: Encoder::default() };
            while backend.buffer.len() < PREFACE.len() {
                backend.io.read_buf(&mut backend.buffer).await.unwrap();
            }
            assert_eq!(&backend.buffer[..PREFACE.len()], PREFACE);
            let _ = backend.buffer.split_to(PREFACE.len());
            backend
        }

        /// The next frame the client sent (SETTINGS, WINDOW_UPDATE and pings are skipped).
        async fn frame(&mut self) -> Frame {
            loop {
                while let Some(frame) = frame::read(&mut self.buffer, MAX_FRAME_BYTES).unwrap() {
                    match frame {
                        Frame::Settings(_) | Frame::SettingsAck | Frame::WindowUpdate { .. } | Frame::Ping { .. } => {}
                        frame => return frame,
                    }
                }
                let read = tokio::time::timeout(WAIT, self.io.read_buf(&mut self.buffer)).await.unwrap().unwrap();
                assert!(read > 0, "the client closed the connection");
            }
        }

        /// The next frame `wanted` picks, skipping the rest (a call's DATA, say).
        async fn until(&mut self, wanted: impl Fn(&Frame) -> bool) -> Frame {
            loop {
                let frame = self.frame().await;
                if wanted(&frame) {
                    return frame;
                }
            }
        }

        /// A request's header fields, by name.
        fn fields(&mut self, block: &Bytes) -> Vec<(String, String)> {
            let mut fields = Vec::new();
            self.decoder
                .decode(block, |field| {
                    fields.push((field.name.as_str().to_owned(), String::from_utf8(field.value.to_vec()).unwrap()))
                })
                .unwrap();
            fields
        }

        fn block(&mut self, fields: &[(&str, &str)]) -> BytesMut {
            let mut block = BytesMut::new();
            self.encoder.start_block(&mut block);
            for (name, value) in fields {
                self.encoder.encode(&Name::parse(name.as_bytes()), value.as_bytes(), Indexing::NotIndexed, &mut block);
            }
            block
        }

        async fn send_headers(&mut self, stream: StreamId, fields: &[(&str, &str)], end_stream: bool) {
            let block = self.block(fields);
            let mut out = BytesMut::new();
            frame::put_headers(&mut out, stream, &block, end_stream, frame::DEFAULT_MAX_FRAME_SIZE);
            self.io.write_all(&out).await.unwrap();
        }

        async fn send_raw(&mut self, write: impl FnOnce(&mut BytesMut)) {
            let mut out = BytesMut::new();
            write(&mut out);
            self.io.write_all(&out).await.unwrap();
        }

        /// An answer's headers, then one DATA frame carrying all of
        /// `payload` of which only the first `sent` bytes go now: the test
        /// sends the rest with [`Self::send_raw`].
        async fn start_large_answer(&mut self, stream: StreamId, payload: &[u8], sent: usize, end_stream: bool) {
            self.send_headers(stream, &[(":status", "200"), ("content-type", "application/grpc")], false).await;
            self.send_raw(|out| {
                frame::put_data_header(out, stream, payload.len(), end_stream);
                out.put_slice(&payload[..sent]);
            })
            .await;
        }
    }

    /// A backend on h2's server that answers each call with its request
    /// body (trailers `grpc-status: 0`), and `/trailers-only` with
    /// NOT_FOUND in its headers alone.
    async fn h2_echo_backend(io: DuplexStream, max_streams: u32) {
        let mut connection =
            h2::server::Builder::new().max_concurrent_streams(max_streams).handshake(io).await.unwrap();
        while let Some(Ok((request, mut respond))) = connection.accept().await {
            tokio::spawn(async move {
                if request.uri().path() == "/trailers-only" {
                    let answer = Response::builder().header("grpc-status", "5").body(()).unwrap();
                    respond.send_response(answer, true).unwrap();
                    return;
                }
                let mut body = request.into_body();
                let answer = Response::builder().header("content-type", "application/grpc").body(()).unwrap();
                let mut sending = respond.send_response(answer, false).unwrap();
                while let Some(data) = body.data().await {
                    let data = data.unwrap();
                    let _ = body.flow_control().release_capacity(data.len());
                    sending.reserve_capacity(data.len());
                    let mut data = data;
                    while !data.is_empty() {
                        let granted = std::future::poll_fn(|cx| sending.poll_capacity(cx)).await.unwrap().unwrap();
                        let chunk = data.split_to(granted.min(data.len()));
                        sending.send_data(chunk, false).unwrap();
                    }
                }
                let trailers = HeaderMap::from_iter([(
                    http::HeaderName::from_static("grpc-status"),
                    HeaderValue::from_static("0"),
                )]);
                sending.send_trailers(trailers).unwrap();
            });
        }
    }

    async fn read_all(body: Body) -> (Vec<u8>, Option<HeaderMap>) {
        let mut body = std::pin::pin!(body);
        let (mut data, mut trailers) = (Vec::new(), None);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("the answer reads to its end");
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        (data, trailers)
    }

    #[tokio::test]
    async fn a_unary_call_goes_out_in_one_write_and_its_answer_reads_back() {
        let (client, theirs) = connected();
        let answer = client.send(path(), grpc_headers(), Payload::Message(Bytes::from_static(b"\0\0\0\0\x02\x0a\x00")));
        let mut backend = RawBackend::accept(theirs).await;
        // What the first turn wrote: HEADERS and DATA, both already in the buffer.
        let Frame::Headers { stream: 1, fragment, end_stream: false, end_headers: true } = backend.frame().await else {
            panic!("HEADERS first")
        };
        assert!(frame::read(&mut backend.buffer.clone(), MAX_FRAME_BYTES).unwrap().is_some(), "DATA came with them");
        let fields = backend.fields(&fragment);
        let named = |name: &str| fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str());
        assert_eq!(named(":method"), Some("POST"));
        assert_eq!(named(":scheme"), Some("http"));
        assert_eq!(named(":authority"), Some("backend.test:50051"));
        assert_eq!(named(":path"), Some("/wizdata.registry.v1.RegistryService/GetSymbol"));
        assert_eq!(named("content-type"), Some("application/grpc"));
        assert_eq!(named("connection"), None, "connection-specific headers stay behind");
        assert_eq!(named("host"), None, "the authority is said once, by :authority");
        let Frame::Data { stream: 1, payload, end_stream: true, .. } = backend.frame().await else { panic!("DATA") };
        assert_eq!(&payload[..], b"\0\0\0\0\x02\x0a\x00");

        backend.send_headers(1, &[(":status", "200"), ("content-type", "application/grpc")], false).await;
        backend
            .send_raw(|out| {
                frame::put_data_header(out, 1, 3, false);
                out.put_slice(b"abc");
            })
            .await;
        backend.send_headers(1, &[("grpc-status", "0")], true).await;
        let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["content-type"], "application/grpc");
        let (data, trailers) = read_all(answer.into_body()).await;
        assert_eq!(data, b"abc");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
    }

    /// A large DATA frame reaches its call part by part: the call reads
    /// the start of the answer while the rest is still to be sent.
    #[tokio::test]
    async fn a_large_data_frame_reaches_its_call_as_it_arrives() {
        let (client, theirs) = connected();
        let answer = client.send(path(), grpc_headers(), Payload::Message(Bytes::from_static(b"\0\0\0\0\0")));
        let mut backend = RawBackend::accept(theirs).await;
        backend.until(|frame| matches!(frame, Frame::Data { stream: 1, end_stream: true, .. })).await;
        let payload: Vec<u8> = (0..300_000u32).map(|at| (at % 253) as u8).collect();
        backend.start_large_answer(1, &payload, 100_000, false).await;
        let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
        let mut body = answer.into_body();
        let mut read = Vec::new();
        while read.len() < 100_000 {
            let frame = tokio::time::timeout(WAIT, body.frame()).await.expect("the first part comes on its own");
            read.extend_from_slice(&frame.unwrap().unwrap().into_data().unwrap());
        }
        assert!(read == payload[..100_000], "the first part, in order");
        backend.send_raw(|out| out.put_slice(&payload[100_000..])).await;
        backend.send_headers(1, &[("grpc-status", "0")], true).await;
        let (rest, trailers) = tokio::time::timeout(WAIT, read_all(body)).await.unwrap();
        read.extend_from_slice(&rest);
        assert!(read == payload, "the whole payload, in order");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");

        // A large frame that ends the stream ends the answer with its last part.
        let answer = client.send(path(), grpc_headers(), Payload::Message(Bytes::from_static(b"\0\0\0\0\0")));
        backend.until(|frame| matches!(frame, Frame::Data { stream: 3, end_stream: true, .. })).await;
        backend.start_large_answer(3, &payload, 200_000, true).await;
        let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
        backend.send_raw(|out| out.put_slice(&payload[200_000..])).await;
        let (data, trailers) = tokio::time::timeout(WAIT, read_all(answer.into_body())).await.unwrap();
        assert!(data == payload);
        assert_eq!(trailers, None);
    }

    #[tokio::test]
    async fn a_trailers_only_answer_stays_headers_alone() {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(h2_echo_backend(theirs, 100));
        let (client, task) = handshake(ours, &origin(), SETTINGS);
        tokio::spawn(task);
        let answer =
            client.send(PathAndQuery::from_static("/trailers-only"), grpc_headers(), Payload::Message(Bytes::new()));
        let answer = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
        assert_eq!(answer.headers()["grpc-status"], "5");
        assert!(answer.body().is_end_stream(), "nothing follows the headers");
        assert_eq!(read_all(answer.into_body()).await, (Vec::new(), None));
    }

    /// Bodies larger than every window both ways: the request waits for
    /// the backend's 64 KiB windows, the answer for this side's releases.
    #[tokio::test]
    async fn streams_larger_than_the_windows_arrive_whole_both_ways() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(h2_echo_backend(theirs, 100));
        let (client, task) = handshake(ours, &origin(), SETTINGS);
        tokio::spawn(task);
        let chunks: Vec<Bytes> = (0..96u8).map(|n| Bytes::from(vec![n; 64 * 1024])).collect();
        let sent: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
        let frames = chunks.into_iter().map(|chunk| Ok::<_, tonic::Status>(http_body::Frame::data(chunk)));
        let body = Body::new(StreamBody::new(stream::iter(frames)));
        let answer = tokio::time::timeout(WAIT, client.send(path(), grpc_headers(), Payload::Stream(body)))
            .await
            .unwrap()
            .unwrap();
        let (data, trailers) = tokio::time::timeout(WAIT, read_all(answer.into_body())).await.unwrap();
        assert_eq!(data.len(), sent.len());
        assert!(data == sent, "the 6 MiB came back in order");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
    }

    #[tokio::test]
    async fn calls_past_the_backends_stream_limit_wait_their_turn() {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(h2_echo_backend(theirs, 1));
        let (client, task) = handshake(ours, &origin(), SETTINGS);
        tokio::spawn(task);
        // Its SETTINGS arrive with the first answer; until then a client may
        // open as many streams as HTTP/2 advises every server to allow.
        let first = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        read_all(tokio::time::timeout(WAIT, first).await.unwrap().unwrap().into_body()).await;
        let calls = (0..5u8).map(|n| {
            let client = client.clone();
            async move {
                let answer = client.send(path(), grpc_headers(), Payload::Message(Bytes::from(vec![n; 10]))).await;
                read_all(answer.unwrap().into_body()).await.0
            }
        });
        let answers = tokio::time::timeout(WAIT, futures_util::future::join_all(calls)).await.unwrap();
        assert_eq!(answers, (0..5u8).map(|n| vec![n; 10]).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_reset_stream_fails_its_call_alone_and_a_lost_connection_every_call() {
        let (client, theirs) = connected();
        let first = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        let mut backend = RawBackend::accept(theirs).await;
        let Frame::Headers { stream: 1, .. } = backend.frame().await else { panic!("HEADERS") };
        backend.send_raw(|out| frame::put_rst_stream(out, 1, Reason::REFUSED_STREAM)).await;
        let refused = tokio::time::timeout(WAIT, first).await.unwrap().unwrap_err();
        assert!(matches!(refused, CallError::Stream { reason: Reason::REFUSED_STREAM, .. }), "{refused:?}");
        assert!(client.is_open(), "one reset stream says nothing of the connection");

        // Reset after the head: the body ends in an error, not a clean end.
        let second = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        while !matches!(backend.frame().await, Frame::Headers { stream: 3, .. }) {}
        backend.send_headers(3, &[(":status", "200")], false).await;
        let answer = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
        backend.send_raw(|out| frame::put_rst_stream(out, 3, Reason::INTERNAL_ERROR)).await;
        let mut body = std::pin::pin!(answer.into_body());
        let broke = tokio::time::timeout(WAIT, body.frame()).await.unwrap().unwrap().unwrap_err();
        assert_eq!(broke.code(), tonic::Code::Internal, "{broke:?}");

        let third = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        while !matches!(backend.frame().await, Frame::Headers { stream: 5, .. }) {}
        drop(backend);
        let lost = tokio::time::timeout(WAIT, third).await.unwrap().unwrap_err();
        assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
        assert!(!client.is_open());
        let after = client.send(path(), grpc_headers(), Payload::Message(Bytes::new())).await.unwrap_err();
        assert!(matches!(after, CallError::ConnectionLost(_)), "a closed connection refuses at once: {after:?}");
    }

    #[tokio::test]
    async fn headers_over_the_limit_refuse_that_call_and_the_next_one_is_answered() {
        let (client, theirs) = connected();
        let first = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        let mut backend = RawBackend::accept(theirs).await;
        let Frame::Headers { stream: 1, .. } = backend.frame().await else { panic!("HEADERS") };
        let huge = "x".repeat(20 << 10);
        backend.send_headers(1, &[(":status", "200"), ("grpc-status", "3"), ("grpc-message", &huge)], true).await;
        let refused = tokio::time::timeout(WAIT, first).await.unwrap().unwrap_err();
        assert!(refused.to_string().contains("over 16384 bytes"), "{refused}");
        assert_eq!(refused.to_status().code(), tonic::Code::Internal, "not a cancel by the caller");
        let reset = backend.until(|frame| matches!(frame, Frame::RstStream { .. })).await;
        assert_eq!(reset, Frame::RstStream { stream: 1, reason: Reason::CANCEL });

        let second = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        while !matches!(backend.frame().await, Frame::Headers { stream: 3, .. }) {}
        backend.send_headers(3, &[(":status", "200"), ("grpc-status", "0")], true).await;
        let answer = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
        assert_eq!(answer.headers()["grpc-status"], "0", "the header table stayed in step");
    }

    #[tokio::test]
    async fn a_call_let_go_is_reset_and_goaway_refuses_what_the_backend_did_not_take() {
        let (client, theirs) = connected();
        let let_go = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        let mut backend = RawBackend::accept(theirs).await;
        let Frame::Headers { stream: 1, .. } = backend.frame().await else { panic!("HEADERS") };
        drop(let_go);
        loop {
            match backend.frame().await {
                Frame::RstStream { stream: 1, reason } => break assert_eq!(reason, Reason::CANCEL),
                Frame::Data { stream: 1, .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }

        let taken = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        let not_taken = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        while !matches!(backend.frame().await, Frame::Headers { stream: 5, .. }) {}
        backend.send_raw(|out| frame::put_goaway(out, 3, Reason::NO_ERROR, b"")).await;
        let refused = tokio::time::timeout(WAIT, not_taken).await.unwrap().unwrap_err();
        assert!(matches!(refused, CallError::ConnectionLost(_)), "{refused:?}");
        assert!(!client.is_open(), "no new calls go to a backend going away");
        backend.send_headers(3, &[(":status", "200"), ("grpc-status", "0")], true).await;
        let answer = tokio::time::timeout(WAIT, taken).await.unwrap().unwrap();
        assert_eq!(answer.headers()["grpc-status"], "0", "a call it took is still answered");
    }

    #[tokio::test]
    async fn answers_that_break_the_rules_fail_their_call_or_the_connection() {
        let (client, theirs) = connected();
        let first = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        let mut backend = RawBackend::accept(theirs).await;
        let Frame::Headers { stream: 1, .. } = backend.frame().await else { panic!("HEADERS") };
        backend.send_raw(|out| frame::put_data_header(out, 1, 0, false)).await;
        let refused = tokio::time::timeout(WAIT, first).await.unwrap().unwrap_err();
        assert!(matches!(refused, CallError::Stream { reason: Reason::PROTOCOL_ERROR, .. }), "{refused:?}");

        let second = client.send(path(), grpc_headers(), Payload::Message(Bytes::new()));
        while !matches!(backend.frame().await, Frame::Headers { stream: 3, .. }) {}
        // A frame on a stream the client never opened ends the connection.
        backend.send_headers(8, &[(":status", "200")], true).await;
        let lost = tokio::time::timeout(WAIT, second).await.unwrap().unwrap_err();
        assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
        let goaway = backend.until(|frame| matches!(frame, Frame::GoAway { .. })).await;
        assert!(matches!(goaway, Frame::GoAway { reason: Reason::PROTOCOL_ERROR, .. }), "{goaway:?}");
    }
}

//! The gateway's own HTTP/2 server connection (RFC 9113), on [`frame`] and
//! [`hpack`]: one task per connection owns everything about it (its
//! streams, windows, header tables and buffers), so nothing is shared or
//! locked but a request body still arriving.
//!
//! A turn of the task reads what has arrived and handles every frame in
//! it, polls the calls that are ready, and only then writes, once, what
//! the turn produced (an answer's headers, data and trailers together).
//! Large answer data is written from the buffer it arrived in.
//!
//! What the h2 crate's server did for the gateway is here too: flow
//! control both ways, header list limits (431), keep-alive pings, graceful
//! shutdown (GOAWAY, then the calls in flight finish), a call dropped when
//! its client resets it, and RST_STREAM or GOAWAY with the RFC's code for
//! each broken rule.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::Reason;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::body::Body;
use tower::ServiceExt;
use wizdata_common::connections::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
use wizdata_common::grpc::GRPC_STATUS;
use wizdata_common::time::Alarm;

use super::arriving::Arriving;
use super::frame::{self, BlockJoiner, Frame, FrameError, HeaderBlock, Settings, StreamId};
use super::hpack::{Decoder, Encoder, Field, Indexing, Name};
use super::outbox::Outbox;
use super::{Http2Settings, PREFACE, date_now, is_grpc};
use super::{READ_BYTES, is_connection_specific, poll_read_some};

/// At most this many calls at once on one connection; more are refused (REFUSED_STREAM).
const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Past this much unwritten, the connection reads nothing more and starts
/// no more answers until the client takes what it has.
const MAX_UNWRITTEN_BYTES: usize = 1 << 20;
/// A turn gives way to writing after this many rounds of reading and calls.
const ROUNDS_PER_TURN: usize = 16;

/// Why a connection ended other than by closing.
#[derive(Debug)]
pub enum ConnectionError {
    Io(io::Error),
    /// The client broke HTTP/2's rules; it was sent GOAWAY with the reason.
    Protocol {
        reason: Reason,
        why: String,
    },
}

impl std::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::Protocol { reason, why } => write!(f, "{why} ({reason:?})"),
        }
    }
}

impl std::error::Error for ConnectionError {}

impl From<io::Error> for ConnectionError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Serves one connection until the client closes it, a ping goes
/// unanswered, or `stopping` turns true (then its calls finish first).
pub async fn serve<IO, S, F>(
    io: IO,
    settings: Http2Settings,
    service: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnectionError>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = F>
        + Clone
        + Send
        + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut connection = ServerConnection::new(io, settings, service);
    let mut stop = std::pin::pin!(stopping.changed());
    let mut ping = Alarm::after(settings.keep_alive);
    poll_fn(|cx| {
        if !connection.closing && stop.as_mut().poll(cx).is_ready() {
            connection.shut_down_gracefully();
        }
        // Pings every `keep_alive`, and closes when one goes unanswered as long.
        while ping.poll_rang(cx).is_ready() {
            if connection.awaiting_ping {
                tracing::debug!("an HTTP/2 client answered no ping; closing its connection");
                return Poll::Ready(Ok(()));
            }
            connection.awaiting_ping = true;
            frame::put_ping(connection.outbox.tail(), *b"wizdata!", false);
            ping.set(tokio::time::Instant::now() + settings.keep_alive);
        }
        connection.poll_turn(cx)
    })
    .await
}

type Call = Pin<Box<dyn Future<Output = Result<Event, futures_util::future::Aborted>> + Send>>;

/// What a call's future hands back to the connection.
enum Event {
    Answered(StreamId, Response<Body>),
    /// The answer body's next frame (none: it ended), with the body to read on.
    BodyFrame(StreamId, Option<Result<http_body::Frame<Bytes>, tonic::Status>>, Body),
}

struct Stream {
    /// Feeds the request's body while the client still sends it.
    inbox: Option<Arc<Inbox>>,
    /// What the client may still send before this side releases more.
    recv_window: i64,
    /// What this side may still send on the stream.
    send_window: i64,
    /// Answer data the windows held back, and the body to go on with once it is sent.
    held: Option<(Bytes, Body)>,
    /// An answer to HEAD: headers only.
    head: bool,
    /// Drops the call (and so its backend call) when the client resets the stream.
    abort: AbortHandle,
}

struct ServerConnection<IO, S> {
    io: IO,
    service: S,
    settings: Http2Settings,
    read_buffer: BytesMut,
    /// The client's preface, until it has been read and checked.
    preface_left: usize,
    settings_seen: bool,
    outbox: Outbox,
    decoder: Decoder,
    encoder: Encoder,
    scratch: BytesMut,
    /// Hashed with foldhash, seeded per process: SipHash's strength is not
    /// needed for ids the peer can only count upwards, and cost more per call.
    streams: foldhash::HashMap<StreamId, Stream>,
    calls: FuturesUnordered<Call>,
    /// Answer bodies whose next frame is to be read. Read here first: a
    /// unary answer's frames have all arrived by the time its head has, and
    /// a future per frame would cost an allocation and a pass through the
    /// calls each. Only a body that has to wait gets a future of its own.
    next_frames: Vec<(StreamId, Body)>,
    /// Answer bodies that have ended, dropped once the turn has written:
    /// what their drops do (the call's span, its lease on the backend, the
    /// connection's count of calls) need not delay the answer.
    ended: Vec<Body>,
    /// Streams whose answers wait for a window to open.
    blocked: VecDeque<StreamId>,
    /// Streams whose request bodies may still be arriving, released back to
    /// the client's window as the call reads them; those that have ended
    /// are dropped from the list when it is next gone through.
    receiving: Vec<StreamId>,
    blocks: BlockJoiner,
    /// The highest stream the client opened.
    last_stream: StreamId,
    peer_initial_window: i64,
    peer_max_frame_size: u32,
    send_window: i64,
    /// What the client may still send on the connection, and what it sent that is not yet released.
    recv_window: i64,
    unreleased: i64,
    /// GOAWAY sent: no new calls; the connection ends when its calls have.
    closing: bool,
    awaiting_ping: bool,
}

impl<IO, S, F> ServerConnection<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = F>
        + Clone
        + Send
        + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    fn new(io: IO, settings: Http2Settings, service: S) -> Self {
        let mut outbox = Outbox::default();
        let ours = Settings {
            max_concurrent_streams: Some(MAX_CONCURRENT_STREAMS),
            initial_window_size: Some(STREAM_WINDOW_BYTES),
            max_header_list_size: Some(settings.max_header_list_size),
            ..Settings::default()
        };
        frame::put_settings(outbox.tail(), &ours);
        let default_window = i64::from(u16::MAX);
        frame::put_window_update(outbox.tail(), 0, CONNECTION_WINDOW_BYTES - u32::from(u16::MAX));
        Self {
            io,
            service,
            settings,
            read_buffer: BytesMut::with_capacity(READ_BYTES),
            preface_left: PREFACE.len(),
            settings_seen: false,
            outbox,
            decoder: Decoder::default(),
            encoder: Encoder::default(),
            scratch: BytesMut::new(),
            streams: foldhash::HashMap::default(),
            calls: FuturesUnordered::new(),
            next_frames: Vec::new(),
            ended: Vec::new(),
            blocked: VecDeque::new(),
            receiving: Vec::new(),
            blocks: BlockJoiner::default(),
            last_stream: 0,
            peer_initial_window: default_window,
            peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            send_window: default_window,
            recv_window: i64::from(CONNECTION_WINDOW_BYTES),
            unreleased: 0,
            closing: false,
            awaiting_ping: false,
        }
    }

    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        let mut rounds = 0;
        loop {
            let mut progressed = false;
            if self.outbox.unwritten() < MAX_UNWRITTEN_BYTES {
                match poll_read_some(&mut self.io, cx, &mut self.read_buffer) {
                    Poll::Ready(Ok(true)) => {
                        progressed = true;
                        if let Err(error) = self.handle_frames() {
                            return Poll::Ready(self.fail(cx, error));
                        }
                    }
                    // The client closed: nothing it asked can reach it now.
                    Poll::Ready(Ok(false)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                    Poll::Pending => {}
                }
                while let Poll::Ready(Some(event)) = self.calls.poll_next_unpin(cx) {
                    progressed = true;
                    if let Ok(event) = event {
                        self.handle_event(event);
                    }
                    if self.outbox.unwritten() >= MAX_UNWRITTEN_BYTES {
                        break;
                    }
                }
                progressed |= self.read_next_frames(cx);
                self.release_consumed();
            }
            rounds += 1;
            if progressed && rounds < ROUNDS_PER_TURN && self.outbox.unwritten() < MAX_UNWRITTEN_BYTES {
                continue;
            }
            let written = self.outbox.poll_write(&mut self.io, cx);
            self.ended.clear();
            match written {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => return Poll::Pending,
            }
            if self.closing && self.streams.is_empty() {
                return Poll::Ready(Ok(()));
            }
            if !progressed {
                return Poll::Pending;
            }
            rounds = 0;
        }
    }

    /// Handles every whole frame read so far.
    fn handle_frames(&mut self) -> Result<(), FrameError> {
        if self.preface_left > 0 {
            let have = self.read_buffer.len().min(self.preface_left);
            let from = PREFACE.len() - self.preface_left;
            if self.read_buffer[..have] != PREFACE[from..from + have] {
                return Err(connection_error(Reason::PROTOCOL_ERROR, "not HTTP/2's preface"));
            }
            let _ = self.read_buffer.split_to(have);
            self.preface_left -= have;
        }
        while self.preface_left == 0 {
            let read = frame::read(&mut self.read_buffer, frame::DEFAULT_MAX_FRAME_SIZE);
            match read.and_then(|frame| frame.map(|frame| self.handle_frame(frame)).transpose()) {
                Ok(Some(())) => {}
                Ok(None) => break,
                Err(FrameError::Stream { stream, reason, why }) => {
                    tracing::debug!(stream, ?reason, why, "resetting an HTTP/2 stream");
                    self.reset(stream, reason);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), FrameError> {
        if !self.settings_seen && !matches!(frame, Frame::Settings(_)) {
            return Err(connection_error(Reason::PROTOCOL_ERROR, "the client's first frame was not SETTINGS"));
        }
        self.blocks.check(&frame)?;
        match frame {
            Frame::Settings(settings) => self.apply_settings(settings)?,
            Frame::SettingsAck | Frame::Priority { .. } | Frame::Unknown => {}
            Frame::Ping { payload, ack: false } => frame::put_ping(self.outbox.tail(), payload, true),
            Frame::Ping { ack: true, .. } => self.awaiting_ping = false,
            Frame::Headers { stream, fragment, end_stream, end_headers } => {
                if let Some(block) = self.blocks.headers(stream, fragment, end_stream, end_headers) {
                    self.handle_header_block(block)?;
                }
            }
            Frame::Continuation { fragment, end_headers, .. } => {
                // HPACK only shrinks what it codes: a block whose fields fit the limit stays well inside twice it.
                let limit = self.settings.max_header_list_size as usize * 2 + 1024;
                if let Some(block) = self.blocks.continuation(&fragment, end_headers, limit)? {
                    self.handle_header_block(block)?;
                }
            }
            Frame::Data { stream, payload, end_stream, window_cost } => {
                self.handle_data(stream, payload, end_stream, window_cost)?;
            }
            Frame::RstStream { stream, .. } => {
                self.check_not_idle(stream)?;
                self.forget_stream(stream);
            }
            Frame::WindowUpdate { stream: 0, increment } => {
                if !frame::widen(&mut self.send_window, increment) {
                    return Err(connection_error(Reason::FLOW_CONTROL_ERROR, "a window above 2^31-1"));
                }
                self.resume_blocked();
            }
            Frame::WindowUpdate { stream, increment } => {
                self.check_not_idle(stream)?;
                if let Some(open) = self.streams.get_mut(&stream) {
                    if !frame::widen(&mut open.send_window, increment) {
                        let why = "a stream window above 2^31-1";
                        return Err(FrameError::Stream { stream, reason: Reason::FLOW_CONTROL_ERROR, why });
                    }
                    self.resume_blocked();
                }
            }
            Frame::GoAway { .. } => {
                // The client sends nothing more; what it asked for still gets its answers.
                self.closing = true;
            }
            Frame::PushPromise { .. } => {
                return Err(connection_error(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client"));
            }
        }
        Ok(())
    }

    fn apply_settings(&mut self, settings: Settings) -> Result<(), FrameError> {
        self.settings_seen = true;
        if let Some(size) = settings.header_table_size {
            self.encoder.set_peer_table_size(size as usize);
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame_size = size;
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
        Ok(())
    }

    /// A frame on a stream the client has not opened yet breaks the rules.
    fn check_not_idle(&self, stream: StreamId) -> Result<(), FrameError> {
        if stream > self.last_stream {
            return Err(connection_error(Reason::PROTOCOL_ERROR, "a frame on a stream not yet opened"));
        }
        Ok(())
    }

    fn handle_data(&mut self, id: StreamId, payload: Bytes, end_stream: bool, cost: u32) -> Result<(), FrameError> {
        self.check_not_idle(id)?;
        let cost = i64::from(cost);
        if cost > self.recv_window {
            return Err(connection_error(Reason::FLOW_CONTROL_ERROR, "DATA beyond the connection's window"));
        }
        // The connection's window is given back at once: each stream's own window bounds what waits.
        self.recv_window -= cost;
        self.unreleased += cost;
        let Some(stream) = self.streams.get_mut(&id) else {
            // A stream already closed (reset, or answered): its data is dropped.
            return Ok(());
        };
        let Some(inbox) = &stream.inbox else {
            let why = "DATA after the end of the stream";
            return Err(FrameError::Stream { stream: id, reason: Reason::STREAM_CLOSED, why });
        };
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
        inbox.push(payload, end_stream);
        if end_stream {
            stream.inbox = None;
        }
        Ok(())
    }

    /// A whole header block: a new call's request, or trailers of a request body.
    fn handle_header_block(&mut self, block: HeaderBlock) -> Result<(), FrameError> {
        let HeaderBlock { stream: id, block, end_stream } = block;
        let mut head = RequestHead::new(self.settings.max_header_list_size as usize);
        let decoded = self.decoder.decode(&block, |field| head.add(field));
        if let Err(error) = decoded {
            tracing::debug!(%error, "an HTTP/2 client's header block could not be read");
            return Err(connection_error(Reason::COMPRESSION_ERROR, "a header block that could not be read"));
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            let Some(inbox) = stream.inbox.take() else {
                let why = "HEADERS after the end of the stream";
                return Err(FrameError::Stream { stream: id, reason: Reason::STREAM_CLOSED, why });
            };
            if !end_stream || head.has_pseudo() || head.malformed.is_some() {
                let why = "trailers that do not end the stream, or hold pseudo-headers";
                return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why });
            }
            inbox.finish(Finish::Trailers(head.headers));
            return Ok(());
        }
        if id <= self.last_stream || id.is_multiple_of(2) {
            // Trailers on a stream this side has already answered and closed are dropped.
            if !id.is_multiple_of(2) && !head.has_pseudo() {
                return Ok(());
            }
            return Err(connection_error(Reason::PROTOCOL_ERROR, "a new stream with an id already used or even"));
        }
        self.last_stream = id;
        if self.closing || self.streams.len() >= MAX_CONCURRENT_STREAMS as usize {
            frame::put_rst_stream(self.outbox.tail(), id, Reason::REFUSED_STREAM);
            return Ok(());
        }
        if head.too_large {
            self.answer_at_once(id, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, end_stream);
            return Ok(());
        }
        let request = match head.into_request() {
            Ok(request) => request,
            Err(why) => return Err(FrameError::Stream { stream: id, reason: Reason::PROTOCOL_ERROR, why }),
        };
        let is_head = request.method() == Method::HEAD;
        let (inbox, body) = if end_stream {
            (None, Body::empty())
        } else {
            let inbox = Arc::new(Inbox::default());
            self.receiving.push(id);
            (Some(inbox.clone()), Body::new(RequestBody { inbox }))
        };
        let (abort, registration) = AbortHandle::new_pair();
        let call = self.service.clone().oneshot(request.map(|()| body));
        self.calls.push(Box::pin(Abortable::new(
            async move {
                match call.await {
                    Ok(response) => Event::Answered(id, response),
                    Err(never) => match never {},
                }
            },
            registration,
        )));
        self.streams.insert(
            id,
            Stream {
                inbox,
                recv_window: i64::from(STREAM_WINDOW_BYTES),
                send_window: self.peer_initial_window,
                held: None,
                head: is_head,
                abort,
            },
        );
        Ok(())
    }

    /// An answer with headers only, for a request refused before any call.
    fn answer_at_once(&mut self, id: StreamId, status: StatusCode, request_ended: bool) {
        self.put_head(id, Some(status), &HeaderMap::new(), true);
        if !request_ended {
            frame::put_rst_stream(self.outbox.tail(), id, Reason::NO_ERROR);
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Answered(id, response) => {
                let Some(stream) = self.streams.get(&id) else { return };
                let (mut parts, body) = response.into_parts();
                let ends = stream.head || body.is_end_stream();
                if let Some(length) = body.size_hint().exact()
                    && !parts.headers.contains_key(header::CONTENT_LENGTH)
                    && length > 0
                {
                    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                }
                if !parts.headers.contains_key(GRPC_STATUS) && !is_grpc(&parts.headers) {
                    parts.headers.insert(header::DATE, date_now());
                }
                self.put_head(id, Some(parts.status), &parts.headers, ends);
                if ends {
                    self.finish_stream(id);
                    self.ended.push(body);
                } else {
                    self.read_body(id, body);
                }
            }
            Event::BodyFrame(id, frame, body) => {
                if !self.streams.contains_key(&id) {
                    return;
                }
                match frame {
                    None => {
                        frame::put_data_header(self.outbox.tail(), id, 0, true);
                        self.finish_stream(id);
                        self.ended.push(body);
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            if self.send_data(id, data, body) {
                                self.blocked.push_back(id);
                            }
                        }
                        Err(frame) => {
                            let trailers = frame.into_trailers().unwrap_or_default();
                            self.put_head(id, None, &trailers, true);
                            self.finish_stream(id);
                            self.ended.push(body);
                        }
                    },
                    Some(Err(status)) => {
                        tracing::debug!(stream = id, %status, "an answer broke off");
                        self.reset(id, Reason::INTERNAL_ERROR);
                    }
                }
            }
        }
    }

    /// Reads the answer body's next frame (see `next_frames`).
    fn read_body(&mut self, id: StreamId, body: Body) {
        self.next_frames.push((id, body));
    }

    /// Handles every answer frame that is ready now; a body whose next frame
    /// is not gets a future among the calls. Says whether any frame was.
    fn read_next_frames(&mut self, cx: &mut Context<'_>) -> bool {
        let mut handled = false;
        while let Some((id, mut body)) = self.next_frames.pop() {
            if !self.streams.contains_key(&id) {
                continue;
            }
            // Past the limit, the frame waits with the calls, which are read
            // again only once the client has taken what it has.
            if self.outbox.unwritten() < MAX_UNWRITTEN_BYTES
                && let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx)
            {
                handled = true;
                self.handle_event(Event::BodyFrame(id, frame, body));
                continue;
            }
            self.wait_for_frame(id, body);
        }
        handled
    }

    /// Waits for the answer body's next frame in the call's place among the futures.
    fn wait_for_frame(&mut self, id: StreamId, mut body: Body) {
        let Some(stream) = self.streams.get_mut(&id) else { return };
        let (abort, registration) = AbortHandle::new_pair();
        stream.abort = abort;
        self.calls.push(Box::pin(Abortable::new(
            async move {
                let frame = body.frame().await;
                Event::BodyFrame(id, frame, body)
            },
            registration,
        )));
    }

    /// Sends what the windows allow of `data`; true when some is held back
    /// (and the body with it) until they open.
    fn send_data(&mut self, id: StreamId, mut data: Bytes, body: Body) -> bool {
        let Some(stream) = self.streams.get_mut(&id) else { return false };
        while !data.is_empty() {
            let allowed = stream.send_window.min(self.send_window).min(i64::from(self.peer_max_frame_size));
            if allowed <= 0 {
                stream.held = Some((data, body));
                return true;
            }
            let len = data.len().min(allowed as usize);
            let chunk = data.split_to(len);
            stream.send_window -= len as i64;
            self.send_window -= len as i64;
            frame::put_data_header(self.outbox.tail(), id, len, false);
            self.outbox.push(chunk);
        }
        self.read_body(id, body);
        false
    }

    /// Sends what was held back on streams whose windows have opened.
    fn resume_blocked(&mut self) {
        for _ in 0..self.blocked.len() {
            if self.send_window <= 0 {
                return;
            }
            let Some(id) = self.blocked.pop_front() else { return };
            let Some((data, body)) = self.streams.get_mut(&id).and_then(|stream| stream.held.take()) else {
                continue;
            };
            if self.send_data(id, data, body) {
                self.blocked.push_back(id);
            }
        }
    }

    /// Headers (with `status`) or trailers (without), in HEADERS and CONTINUATION frames.
    fn put_head(&mut self, id: StreamId, status: Option<StatusCode>, headers: &HeaderMap, end_stream: bool) {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        self.encoder.start_block(&mut block);
        if let Some(status) = status {
            self.encoder.encode(&Name::Status, status.as_str().as_bytes(), Indexing::Indexed, &mut block);
        }
        self.encoder.encode_headers(headers, &mut block);
        frame::put_headers(self.outbox.tail(), id, &block, end_stream, self.peer_max_frame_size);
        self.scratch = block;
    }

    /// The answer is whole: the stream is done, and a client still sending
    /// the request is told to stop (RST_STREAM NO_ERROR, RFC 9113 8.1).
    fn finish_stream(&mut self, id: StreamId) {
        if self.forget_stream(id) == Some(RequestEnded::No) {
            frame::put_rst_stream(self.outbox.tail(), id, Reason::NO_ERROR);
        }
    }

    fn reset(&mut self, id: StreamId, reason: Reason) {
        frame::put_rst_stream(self.outbox.tail(), id, reason);
        self.forget_stream(id);
    }

    /// Forgets a stream: its call, if still running, is dropped, and a
    /// request body still arriving ends as reset. Says whether the request
    /// had ended; `None` when the stream was already forgotten.
    fn forget_stream(&mut self, id: StreamId) -> Option<RequestEnded> {
        let stream = self.streams.remove(&id)?;
        stream.abort.abort();
        let Some(inbox) = stream.inbox else { return Some(RequestEnded::Yes) };
        inbox.finish(Finish::Reset);
        Some(RequestEnded::No)
    }

    /// Gives back to the client's windows what the calls have read, and
    /// forgets the streams whose requests have ended.
    fn release_consumed(&mut self) {
        let (streams, outbox) = (&mut self.streams, &mut self.outbox);
        self.receiving.retain(|id| {
            let Some(stream) = streams.get_mut(id) else { return false };
            let Some(inbox) = &stream.inbox else { return false };
            let consumed = inbox.take_consumed();
            if consumed > 0 {
                stream.recv_window += consumed as i64;
                frame::put_window_update(outbox.tail(), *id, consumed as u32);
            }
            true
        });
        if self.unreleased >= i64::from(CONNECTION_WINDOW_BYTES / 2) {
            frame::put_window_update(self.outbox.tail(), 0, self.unreleased as u32);
            self.recv_window += self.unreleased;
            self.unreleased = 0;
        }
    }

    /// Stops taking new calls; the connection ends when those in flight have.
    fn shut_down_gracefully(&mut self) {
        self.closing = true;
        frame::put_goaway(self.outbox.tail(), self.last_stream, Reason::NO_ERROR, b"");
    }

    /// Ends the connection for a broken rule: GOAWAY with its reason, written if it can be at once.
    fn fail(&mut self, cx: &mut Context<'_>, error: FrameError) -> Result<(), ConnectionError> {
        let (reason, why) = match error {
            FrameError::Connection { reason, why } => (reason, why),
            FrameError::Stream { reason, why, .. } => (reason, why),
        };
        frame::put_goaway(self.outbox.tail(), self.last_stream, reason, why.as_bytes());
        let _ = self.outbox.poll_write(&mut self.io, cx);
        Err(ConnectionError::Protocol { reason, why: why.to_owned() })
    }
}

fn connection_error(reason: Reason, why: &'static str) -> FrameError {
    FrameError::Connection { reason, why }
}

/// A request's header fields as they are decoded, checked as HTTP/2 requires.
struct RequestHead {
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    headers: HeaderMap,
    size: usize,
    limit: usize,
    too_large: bool,
    malformed: Option<&'static str>,
}

impl RequestHead {
    fn new(limit: usize) -> Self {
        Self {
            method: None,
            scheme: None,
            authority: None,
            path: None,
            headers: HeaderMap::new(),
            size: 0,
            limit,
            too_large: false,
            malformed: None,
        }
    }

    fn has_pseudo(&self) -> bool {
        self.method.is_some() || self.scheme.is_some() || self.authority.is_some() || self.path.is_some()
    }

    fn add(&mut self, field: Field) {
        self.size += field.size();
        if self.size > self.limit {
            // Decoding goes on, to keep the table in step; the fields are dropped.
            self.too_large = true;
            return;
        }
        let pseudo = match field.name {
            Name::Method => &mut self.method,
            Name::Scheme => &mut self.scheme,
            Name::Authority => &mut self.authority,
            Name::Path => &mut self.path,
            Name::Status | Name::Protocol => return self.malform("a pseudo-header requests do not carry"),
            Name::Malformed(_) => return self.malform("a field name HTTP/2 does not allow"),
            Name::Header(name) => return self.add_header(name, field.value, field.sensitive),
        };
        if pseudo.is_some() {
            return self.malform("a pseudo-header twice");
        }
        *pseudo = Some(field.value);
        if !self.headers.is_empty() {
            self.malform("a pseudo-header after a regular one");
        }
    }

    fn add_header(&mut self, name: HeaderName, value: Bytes, sensitive: bool) {
        if is_connection_specific(&name) || (name == header::TE && value != "trailers") {
            return self.malform("a connection-specific header");
        }
        match HeaderValue::from_maybe_shared(value) {
            Ok(mut value) => {
                value.set_sensitive(sensitive);
                self.headers.append(name, value);
            }
            Err(_) => self.malform("a header value HTTP does not allow"),
        }
    }

    fn malform(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    fn into_request(self) -> Result<Request<()>, &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        let (Some(method), Some(scheme), Some(path)) = (self.method, self.scheme, self.path) else {
            return Err("a request without :method, :scheme or :path");
        };
        let method = Method::from_bytes(&method).map_err(|_| "a method HTTP does not allow")?;
        if method == Method::CONNECT {
            return Err("CONNECT, which this gateway does not serve");
        }
        let mut uri = http::uri::Parts::default();
        uri.path_and_query = Some(PathAndQuery::from_maybe_shared(path).map_err(|_| "a :path HTTP does not allow")?);
        // A URI has a scheme only beside an authority.
        if let Some(authority) = self.authority {
            uri.authority =
                Some(Authority::from_maybe_shared(authority).map_err(|_| "an :authority HTTP does not allow")?);
            uri.scheme = Some(Scheme::try_from(&scheme[..]).map_err(|_| "a :scheme HTTP does not allow")?);
        }
        let uri = Uri::from_parts(uri).map_err(|_| "a request URI HTTP does not allow")?;
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = self.headers;
        Ok(request)
    }
}

/// A request body arriving on a stream, shared between the connection that
/// receives it and the call that reads it.
#[derive(Default)]
struct Inbox(Mutex<InboxState>);

#[derive(Default)]
struct InboxState {
    body: Arriving,
    reset: bool,
}

enum Finish {
    Trailers(HeaderMap),
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestEnded {
    Yes,
    No,
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, data: Bytes, end_stream: bool) {
        self.state().body.push(data, end_stream);
    }

    fn finish(&self, finish: Finish) {
        let mut state = self.state();
        match finish {
            Finish::Trailers(trailers) => state.body.finish(trailers),
            Finish::Reset => {
                state.reset = true;
                state.body.wake();
            }
        }
    }

    fn take_consumed(&self) -> usize {
        self.state().body.take_consumed()
    }
}

/// The call's side of an [`Inbox`].
struct RequestBody {
    inbox: Arc<Inbox>,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let mut state = self.inbox.state();
        if let Some(frame) = state.body.next_frame() {
            return Poll::Ready(frame.map(Ok));
        }
        if state.reset {
            return Poll::Ready(Some(Err(tonic::Status::cancelled("the client reset the stream"))));
        }
        state.body.wait(cx);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inbox.state().body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use bytes::BufMut;

    use crate::http2::hpack;
    use futures_util::stream;
    use http_body_util::StreamBody;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::http2::frame::DEFAULT_MAX_FRAME_SIZE;

    const LIMIT: u32 = 16 * 1024;
    const BIG: usize = 300 * 1024;

    /// Sets its flag when dropped: the call it lives in was dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn grpc_answer(data: Bytes) -> Response<Body> {
        let trailers = HeaderMap::from_iter([(GRPC_STATUS, HeaderValue::from_static("0"))]);
        let frames =
            vec![Ok::<_, tonic::Status>(http_body::Frame::data(data)), Ok(http_body::Frame::trailers(trailers))];
        Response::builder()
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(Body::new(StreamBody::new(stream::iter(frames))))
            .unwrap()
    }

    /// `/echo` answers the request body; `/big` answers 300 KiB; `/slow`
    /// never answers (and sets `dropped` when dropped); `/not-found` is
    /// trailers-only.
    fn service(
        dropped: Arc<AtomicBool>,
    ) -> impl tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |request: Request<Body>| {
            let dropped = dropped.clone();
            async move {
                let answer = match request.uri().path() {
                    "/echo" => grpc_answer(request.into_body().collect().await.unwrap().to_bytes()),
                    "/big" => grpc_answer((0..BIG).map(|at| at as u8).collect::<Vec<u8>>().into()),
                    "/slow" => {
                        let _flag = DropFlag(dropped);
                        std::future::pending().await
                    }
                    _ => Response::builder()
                        .header(header::CONTENT_TYPE, "application/grpc")
                        .header(GRPC_STATUS, "5")
                        .body(Body::empty())
                        .unwrap(),
                };
                Ok(answer)
            }
        })
    }

    struct Served {
        task: JoinHandle<Result<(), ConnectionError>>,
        stop: tokio::sync::watch::Sender<bool>,
        dropped: Arc<AtomicBool>,
    }

    fn serve_one(keep_alive: Duration) -> (DuplexStream, Served) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let dropped = Arc::new(AtomicBool::new(false));
        let settings = Http2Settings { max_header_list_size: LIMIT, keep_alive };
        let task = tokio::spawn(serve(server, settings, service(dropped.clone()), stopping));
        (client, Served { task, stop, dropped })
    }

    async fn h2_client(io: DuplexStream, window: u32) -> h2::client::SendRequest<Bytes> {
        let (sender, connection) =
            h2::client::Builder::new().initial_window_size(window).handshake(io).await.expect("HTTP/2 handshake");
        tokio::spawn(connection);
        sender
    }

    /// One call with h2's client: the answer's status, data and trailers.
    async fn call(sender: &h2::client::SendRequest<Bytes>, path: &str, body: Bytes) -> (u16, Bytes, Option<HeaderMap>) {
        let mut sender = sender.clone().ready().await.unwrap();
        let request = Request::post(format!("http://gateway.test{path}")).body(()).unwrap();
        let (answer, mut sending) = sender.send_request(request, false).unwrap();
        sending.reserve_capacity(body.len());
        sending.send_data(body, true).unwrap();
        let answer = answer.await.unwrap();
        let status = answer.status().as_u16();
        let mut body = answer.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        (status, data.freeze(), body.trailers().await.unwrap())
    }

    #[tokio::test]
    async fn calls_from_h2s_client_are_answered_whole_with_their_trailers() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let sender = h2_client(io, 65_535).await;
        let calls = (0..40u8).map(|number| call(&sender, "/echo", Bytes::from(vec![number; 100 + number as usize])));
        for (number, (status, data, trailers)) in futures_util::future::join_all(calls).await.into_iter().enumerate() {
            assert_eq!(status, 200);
            assert_eq!(data, vec![number as u8; 100 + number]);
            assert_eq!(trailers.unwrap()[GRPC_STATUS], "0");
        }
        // Trailers-only stays trailers-only: headers that end the stream.
        let (status, data, trailers) = call(&sender, "/not-found", Bytes::new()).await;
        assert_eq!((status, data.len(), trailers), (200, 0, None));
    }

    #[tokio::test]
    async fn large_bodies_go_both_ways_as_the_windows_open() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        // A client window of 1 KiB: the answer waits for each update.
        let sender = h2_client(io, 1024).await;
        let (status, data, trailers) = call(&sender, "/big", Bytes::new()).await;
        assert_eq!((status, data.len()), (200, BIG));
        assert!(data.iter().enumerate().all(|(at, &byte)| byte == at as u8));
        assert!(trailers.is_some());
        // A request far beyond the stream's window comes through as the call reads it.
        let upload: Bytes = (0..(1 << 20)).map(|at: usize| (at % 251) as u8).collect::<Vec<u8>>().into();
        let (status, echoed, _) = call(&sender, "/echo", upload.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(echoed, upload);
    }

    #[tokio::test]
    async fn a_call_is_dropped_when_its_client_resets_it() {
        let (io, served) = serve_one(Duration::from_secs(20));
        let mut sender = h2_client(io, 65_535).await.ready().await.unwrap();
        let (answer, mut sending) =
            sender.send_request(Request::post("http://gateway.test/slow").body(()).unwrap(), false).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!served.dropped.load(Ordering::SeqCst));
        sending.send_reset(h2::Reason::CANCEL);
        drop(answer);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !served.dropped.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the call was dropped");
        // The connection goes on serving.
        let (status, ..) = call(&sender, "/echo", Bytes::from_static(b"after")).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn stopping_sends_goaway_and_lets_calls_in_flight_finish() {
        let (io, served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        raw.send_headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/echo")], false).await;
        // Frames are handled in order: once the ping is answered, the call has started.
        let mut ping = BytesMut::new();
        frame::put_ping(&mut ping, *b"in order", false);
        raw.send(ping).await;
        assert_eq!(raw.next_but_settings().await, Frame::Ping { payload: *b"in order", ack: true });
        served.stop.send(true).unwrap();
        let goaway = raw.next_but_settings().await;
        assert_eq!(goaway, Frame::GoAway { last_stream: 1, reason: Reason::NO_ERROR });
        raw.send_data(1, b"late but accepted", true).await;
        assert!(matches!(raw.next_but_settings().await, Frame::Headers { stream: 1, .. }));
        assert!(
            matches!(raw.next_but_settings().await, Frame::Data { stream: 1, payload, .. } if payload == "late but accepted")
        );
        assert!(matches!(raw.next_but_settings().await, Frame::Headers { stream: 1, end_stream: true, .. }));
        // Nothing left in flight: the connection ends.
        let finished = tokio::time::timeout(Duration::from_secs(5), served.task).await.expect("the connection ended");
        assert!(finished.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_client_that_answers_no_ping_is_closed() {
        let (io, served) = serve_one(Duration::from_millis(50));
        let mut raw = RawClient::start(io).await;
        let ping = raw.next_but_settings().await;
        assert!(matches!(ping, Frame::Ping { ack: false, .. }), "{ping:?}");
        let finished = tokio::time::timeout(Duration::from_secs(5), served.task).await.expect("the connection ended");
        assert!(finished.unwrap().is_ok());
    }

    #[tokio::test]
    async fn pings_are_answered_with_their_payload() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        let mut ping = BytesMut::new();
        frame::put_ping(&mut ping, *b"abcdefgh", false);
        raw.send(ping).await;
        assert_eq!(raw.next_but_settings().await, Frame::Ping { payload: *b"abcdefgh", ack: true });
    }

    #[tokio::test]
    async fn malformed_requests_are_reset_and_the_connection_goes_on() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        let get = [(":method", "POST"), (":scheme", "http"), (":path", "/not-found")];
        let cases: [&[(&str, &str)]; 5] = [
            &[(":method", "POST"), (":scheme", "http"), (":path", "/x"), ("Upper", "1")],
            &[(":method", "POST"), (":path", "/x")],
            &[("x-first", "1"), (":method", "POST"), (":scheme", "http"), (":path", "/x")],
            &[(":method", "POST"), (":scheme", "http"), (":path", "/x"), ("connection", "close")],
            &[(":method", "POST"), (":scheme", "http"), (":path", "/x"), ("te", "gzip")],
        ];
        let mut stream = 1;
        for fields in cases {
            raw.send_headers(stream, fields, true).await;
            assert_eq!(
                raw.next_but_settings().await,
                Frame::RstStream { stream, reason: Reason::PROTOCOL_ERROR },
                "{fields:?}"
            );
            stream += 2;
        }
        // Headers past the limit: 431, and the table stays in step for the next call.
        let long = "x".repeat(LIMIT as usize);
        raw.send_headers(stream, &[get[0], get[1], get[2], ("x-long", &long)], true).await;
        let answer = raw.next_but_settings().await;
        assert_eq!(raw.status_of(&answer), Some(431));
        raw.send_headers(stream + 2, &get, true).await;
        let answer = raw.next_but_settings().await;
        assert_eq!(raw.status_of(&answer), Some(200));
    }

    #[tokio::test]
    async fn trailers_after_the_answer_are_dropped_and_the_connection_goes_on() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        let not_found = [(":method", "POST"), (":scheme", "http"), (":path", "/not-found")];
        // The answer comes before the request has ended; the client's trailers follow it.
        raw.send_headers(1, &not_found, false).await;
        let answer = raw.next_but_settings().await;
        assert!(matches!(answer, Frame::Headers { stream: 1, end_stream: true, .. }), "{answer:?}");
        assert_eq!(raw.status_of(&answer), Some(200));
        assert_eq!(raw.next_but_settings().await, Frame::RstStream { stream: 1, reason: Reason::NO_ERROR });
        raw.send_headers(1, &[("x-trailer", "late")], true).await;
        raw.send_headers(3, &not_found, true).await;
        let answer = raw.next_but_settings().await;
        assert_eq!((raw.status_of(&answer), matches!(answer, Frame::Headers { stream: 3, .. })), (Some(200), true));
    }

    #[tokio::test]
    async fn padding_is_given_back_to_the_streams_window_at_once() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        raw.send_headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/echo")], false).await;
        // Ten bytes of data after 100 of padding (and the pad length's byte).
        let mut padded = BytesMut::new();
        padded.put_slice(&[0, 0, 111, 0x0, 0x8, 0, 0, 0, 1, 100]);
        padded.put_slice(b"ten bytes!");
        padded.put_slice(&[0; 100]);
        raw.send(padded).await;
        loop {
            match raw.next_frame().await {
                Frame::WindowUpdate { stream: 1, increment } => break assert_eq!(increment, 101),
                Frame::Settings(_) | Frame::SettingsAck | Frame::WindowUpdate { stream: 0, .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn data_beyond_a_streams_window_resets_it() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        raw.send_headers(1, &[(":method", "POST"), (":scheme", "http"), (":path", "/slow")], false).await;
        let chunk = vec![0; DEFAULT_MAX_FRAME_SIZE as usize];
        for _ in 0..(STREAM_WINDOW_BYTES as usize / chunk.len() + 1) {
            raw.send_data(1, &chunk, false).await;
        }
        assert_eq!(raw.next_but_settings().await, Frame::RstStream { stream: 1, reason: Reason::FLOW_CONTROL_ERROR });
    }

    #[tokio::test]
    async fn more_calls_than_allowed_at_once_are_refused() {
        let (io, _served) = serve_one(Duration::from_secs(20));
        let mut raw = RawClient::start(io).await;
        let slow = [(":method", "POST"), (":scheme", "http"), (":path", "/slow")];
        for number in 0..=MAX_CONCURRENT_STREAMS {
            raw.send_headers(1 + 2 * number, &slow, true).await;
        }
        let refused = 1 + 2 * MAX_CONCURRENT_STREAMS;
        assert_eq!(raw.next_but_settings().await, Frame::RstStream { stream: refused, reason: Reason::REFUSED_STREAM });
    }

    #[tokio::test]
    async fn broken_rules_end_the_connection_with_their_reason() {
        let headers_on = |stream: StreamId| {
            let mut encoder = Encoder::default();
            let mut block = BytesMut::new();
            encoder.start_block(&mut block);
            encoder.encode(&Name::Method, b"POST", Indexing::Indexed, &mut block);
            let mut frames = BytesMut::new();
            frame::put_headers(&mut frames, stream, &block, true, DEFAULT_MAX_FRAME_SIZE);
            frames
        };
        let cases: [(&str, BytesMut, Reason); 6] = [
            ("an even stream id", headers_on(2), Reason::PROTOCOL_ERROR),
            (
                "a stream id used before",
                {
                    let mut frames = headers_on(5);
                    frames.extend_from_slice(&headers_on(3));
                    frames
                },
                Reason::PROTOCOL_ERROR,
            ),
            (
                "DATA on a stream never opened",
                {
                    let mut data = BytesMut::new();
                    frame::put_data_header(&mut data, 9, 0, true);
                    data
                },
                Reason::PROTOCOL_ERROR,
            ),
            (
                "a header block that cannot be read",
                {
                    let mut frames = BytesMut::new();
                    frame::put_headers(&mut frames, 1, b"\xbe", true, DEFAULT_MAX_FRAME_SIZE);
                    frames
                },
                Reason::COMPRESSION_ERROR,
            ),
            (
                "CONTINUATION without HEADERS",
                {
                    let mut frames = BytesMut::new();
                    frames.put_slice(&[0, 0, 1, 0x9, 0x4, 0, 0, 0, 1, 0x82]);
                    frames
                },
                Reason::PROTOCOL_ERROR,
            ),
            (
                "a frame longer than allowed",
                {
                    let mut data = BytesMut::new();
                    frame::put_data_header(&mut data, 1, DEFAULT_MAX_FRAME_SIZE as usize + 1, false);
                    data
                },
                Reason::FRAME_SIZE_ERROR,
            ),
        ];
        for (what, frames, reason) in cases {
            let (io, served) = serve_one(Duration::from_secs(20));
            let mut raw = RawClient::start(io).await;
            raw.send(frames).await;
            let mut next = raw.next_but_settings().await;
            // A stream the case opened first may be reset before the connection ends.
            while matches!(next, Frame::RstStream { .. }) {
                next = raw.next_but_settings().await;
            }
            assert!(matches!(next, Frame::GoAway { reason: r, .. } if r == reason), "{what}: {next:?}");
            let ended = tokio::time::timeout(Duration::from_secs(5), served.task).await.expect("the connection ended");
            assert!(
                matches!(ended.unwrap(), Err(ConnectionError::Protocol { reason: r, .. }) if r == reason),
                "{what}"
            );
        }

        // The first frame must be SETTINGS; and the preface must be HTTP/2's.
        let (mut io, served) = serve_one(Duration::from_secs(20));
        io.write_all(PREFACE).await.unwrap();
        io.write_all(&headers_on(1)).await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), served.task).await.unwrap().unwrap();
        assert!(matches!(ended, Err(ConnectionError::Protocol { reason: Reason::PROTOCOL_ERROR, .. })));
        let (mut io, served) = serve_one(Duration::from_secs(20));
        io.write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), served.task).await.unwrap().unwrap();
        assert!(matches!(ended, Err(ConnectionError::Protocol { reason: Reason::PROTOCOL_ERROR, .. })));
    }

    /// A client that writes frames by hand, for what h2's client will not send.
    struct RawClient {
        io: DuplexStream,
        encoder: Encoder,
        decoder: Decoder,
        buffer: BytesMut,
    }

    impl RawClient {
        async fn start(mut io: DuplexStream) -> Self {
            let mut opening = BytesMut::from(PREFACE);
            frame::put_settings(&mut opening, &Settings::default());
            io.write_all(&opening).await.unwrap();
            Self { io, encoder: Encoder::default(), decoder: Decoder::default(), buffer: BytesMut::new() }
        }

        async fn send(&mut self, frames: BytesMut) {
            self.io.write_all(&frames).await.unwrap();
        }

        async fn send_headers(&mut self, stream: StreamId, fields: &[(&str, &str)], end_stream: bool) {
            let mut block = BytesMut::new();
            self.encoder.start_block(&mut block);
            for (name, value) in fields {
                // Names go as given, upper case too, which `Name` would refuse.
                hpack::put_unchecked_literal(name.as_bytes(), value.as_bytes(), &mut block);
            }
            let mut frames = BytesMut::new();
            frame::put_headers(&mut frames, stream, &block, end_stream, DEFAULT_MAX_FRAME_SIZE);
            self.send(frames).await;
        }

        async fn send_data(&mut self, stream: StreamId, data: &[u8], end_stream: bool) {
            let mut frames = BytesMut::new();
            frame::put_data_header(&mut frames, stream, data.len(), end_stream);
            frames.put_slice(data);
            self.send(frames).await;
        }

        /// The server's next frame.
        async fn next_frame(&mut self) -> Frame {
            loop {
                if let Some(frame) = frame::read(&mut self.buffer, frame::MAX_MAX_FRAME_SIZE).unwrap() {
                    return frame;
                }
                let read = tokio::time::timeout(Duration::from_secs(5), self.io.read_buf(&mut self.buffer))
                    .await
                    .expect("the server answered in time")
                    .unwrap();
                assert!(read > 0, "the server closed the connection");
            }
        }

        /// The server's next frame other than its settings and window updates.
        async fn next_but_settings(&mut self) -> Frame {
            loop {
                match self.next_frame().await {
                    Frame::Settings(_) | Frame::SettingsAck | Frame::WindowUpdate { .. } => continue,
                    other => return other,
                }
            }
        }

        /// The `:status` of a HEADERS frame.
        fn status_of(&mut self, frame: &Frame) -> Option<u16> {
            let Frame::Headers { fragment, .. } = frame else { return None };
            let mut status = None;
            self.decoder
                .decode(fragment, |field| {
                    if field.name == Name::Status {
                        status = std::str::from_utf8(&field.value).ok().and_then(|value| value.parse().ok());
                    }
                })
                .unwrap();
            status
        }
    }
}

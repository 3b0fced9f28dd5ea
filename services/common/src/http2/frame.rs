//! HTTP/2 frames (RFC 9113, section 6) for the mesh's own HTTP/2 layer:
//! read out of a connection's read buffer without copying their payloads,
//! and written into its write buffer.
//!
//! Reading checks what a frame can be checked for on its own (its length,
//! its stream, its padding, its settings' values); what depends on the
//! connection's state (windows, stream states, header blocks) is the
//! connection's to check.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::Reason;

/// Every frame starts with nine bytes: length (24 bits), type, flags, stream.
pub const HEADER_LEN: usize = 9;
/// The largest frame a peer may send until it says otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;
/// The largest frame size anyone may allow.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest window, and the largest initial window a peer may set.
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// Stream ids and window increments leave their top bit reserved, to be
/// ignored on receipt.
const WITHOUT_RESERVED_BIT: u32 = !(1 << 31);

/// A stream's id; 0 is the connection itself.
pub type StreamId = u32;

/// One frame as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: StreamId,
        /// Without its padding.
        payload: Bytes,
        end_stream: bool,
        /// What the frame counts against the windows: its whole length, padding included.
        window_cost: u32,
    },
    Headers {
        stream: StreamId,
        /// The header block's first fragment (without padding or priority).
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
    },
    Continuation {
        stream: StreamId,
        fragment: Bytes,
        end_headers: bool,
    },
    /// Advice this layer does not take; read only to be checked.
    Priority {
        stream: StreamId,
    },
    RstStream {
        stream: StreamId,
        reason: Reason,
    },
    Settings(Settings),
    SettingsAck,
    Ping {
        payload: [u8; 8],
        ack: bool,
    },
    GoAway {
        last_stream: StreamId,
        reason: Reason,
    },
    WindowUpdate {
        stream: StreamId,
        increment: u32,
    },
    /// PUSH_PROMISE: a server's, which this layer never asks for.
    PushPromise {
        stream: StreamId,
    },
    /// A frame of a type this side does not know, which HTTP/2 says to ignore.
    Unknown,
}

/// The settings a SETTINGS frame changes; those it leaves out stay as they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: Option<bool>,
}

impl Settings {
    const HEADER_TABLE_SIZE: u16 = 0x1;
    const ENABLE_PUSH: u16 = 0x2;
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    const INITIAL_WINDOW_SIZE: u16 = 0x4;
    const MAX_FRAME_SIZE: u16 = 0x5;
    const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

    fn parse(mut payload: &[u8]) -> Result<Self, FrameError> {
        let mut settings = Self::default();
        while payload.has_remaining() {
            let (id, value) = (payload.get_u16(), payload.get_u32());
            match id {
                Self::HEADER_TABLE_SIZE => settings.header_table_size = Some(value),
                Self::ENABLE_PUSH => settings.enable_push = Some(flag(value, "SETTINGS_ENABLE_PUSH")?),
                Self::MAX_CONCURRENT_STREAMS => settings.max_concurrent_streams = Some(value),
                Self::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                    return Err(FrameError::connection(Reason::FLOW_CONTROL_ERROR, "an initial window above 2^31-1"));
                }
                Self::INITIAL_WINDOW_SIZE => settings.initial_window_size = Some(value),
                Self::MAX_FRAME_SIZE if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) => {
                    return Err(FrameError::connection(Reason::PROTOCOL_ERROR, "a largest frame size out of range"));
                }
                Self::MAX_FRAME_SIZE => settings.max_frame_size = Some(value),
                Self::MAX_HEADER_LIST_SIZE => settings.max_header_list_size = Some(value),
                Self::ENABLE_CONNECT_PROTOCOL => {
                    settings.enable_connect_protocol = Some(flag(value, "SETTINGS_ENABLE_CONNECT_PROTOCOL")?);
                }
                // Unknown settings are ignored (RFC 9113, 6.5.2).
                _ => {}
            }
        }
        Ok(settings)
    }

    fn pairs(&self) -> impl Iterator<Item = (u16, u32)> {
        [
            (Self::HEADER_TABLE_SIZE, self.header_table_size),
            (Self::ENABLE_PUSH, self.enable_push.map(u32::from)),
            (Self::MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (Self::INITIAL_WINDOW_SIZE, self.initial_window_size),
            (Self::MAX_FRAME_SIZE, self.max_frame_size),
            (Self::MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (Self::ENABLE_CONNECT_PROTOCOL, self.enable_connect_protocol.map(u32::from)),
        ]
        .into_iter()
        .filter_map(|(id, value)| Some((id, value?)))
    }
}

fn flag(value: u32, setting: &'static str) -> Result<bool, FrameError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(FrameError::Connection { reason: Reason::PROTOCOL_ERROR, why: setting }),
    }
}

/// A frame that breaks HTTP/2's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The connection ends with GOAWAY carrying `reason`.
    Connection { reason: Reason, why: &'static str },
    /// Only the stream ends, with RST_STREAM carrying `reason`.
    Stream { stream: StreamId, reason: Reason, why: &'static str },
}

impl FrameError {
    fn connection(reason: Reason, why: &'static str) -> Self {
        Self::Connection { reason, why }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection { reason, why } => write!(f, "{why} ({reason:?})"),
            Self::Stream { stream, reason, why } => write!(f, "{why} on stream {stream} ({reason:?})"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Adds a WINDOW_UPDATE's `increment` to `window`; false when that takes
/// it above 2^31-1, which breaks flow control (RFC 9113, 6.9.1).
pub fn widen(window: &mut i64, increment: u32) -> bool {
    *window += i64::from(increment);
    *window <= i64::from(MAX_WINDOW)
}

/// A whole header block: a HEADERS frame's fragment and the CONTINUATION
/// frames that finished it.
pub struct HeaderBlock {
    pub stream: StreamId,
    pub block: Bytes,
    pub end_stream: bool,
}

/// Joins header blocks split over HEADERS and CONTINUATION frames, and
/// refuses any other frame between them (RFC 9113, 6.10).
#[derive(Default)]
pub struct BlockJoiner {
    partial: Option<(StreamId, bool, BytesMut)>,
}

impl BlockJoiner {
    /// Refuses a frame that comes between the frames of a block.
    pub fn check(&self, frame: &Frame) -> Result<(), FrameError> {
        match (&self.partial, frame) {
            (None, _) => Ok(()),
            (Some((stream, ..)), Frame::Continuation { stream: of, .. }) if of == stream => Ok(()),
            (Some(_), _) => Err(FrameError::connection(Reason::PROTOCOL_ERROR, "a header block interrupted")),
        }
    }

    /// A HEADERS frame: its block, when the frame holds all of it.
    pub fn headers(
        &mut self,
        stream: StreamId,
        fragment: Bytes,
        end_stream: bool,
        end_headers: bool,
    ) -> Option<HeaderBlock> {
        if end_headers {
            return Some(HeaderBlock { stream, block: fragment, end_stream });
        }
        self.partial = Some((stream, end_stream, BytesMut::from(&fragment[..])));
        None
    }

    /// A CONTINUATION frame: the block, once it ends. A block growing past
    /// `limit` bytes ends the connection.
    pub fn continuation(
        &mut self,
        fragment: &[u8],
        end_headers: bool,
        limit: usize,
    ) -> Result<Option<HeaderBlock>, FrameError> {
        let Some((_, _, block)) = &mut self.partial else {
            return Err(FrameError::connection(Reason::PROTOCOL_ERROR, "CONTINUATION without HEADERS"));
        };
        if block.len() + fragment.len() > limit {
            return Err(FrameError::connection(Reason::ENHANCE_YOUR_CALM, "a header block without end"));
        }
        block.extend_from_slice(fragment);
        if !end_headers {
            return Ok(None);
        }
        let (stream, end_stream, block) = self.partial.take().expect("checked above");
        Ok(Some(HeaderBlock { stream, block: block.freeze(), end_stream }))
    }
}

/// The most room [`read`] makes at once for the rest of a frame. A large
/// DATA frame is passed on in parts as it arrives ([`start_large_data`]),
/// and room for all of it (up to 1 MiB) was a new block for every large
/// answer, which the allocator placed where the caches were cold: the copy
/// out of the socket cost twice as much (BENCHMARKS.md, issue #15). Blocks
/// of this size are reused while they are still in the caches.
const RESERVE_AT_ONCE: usize = 64 * 1024;

/// Takes the first whole frame off `buffer`, or `None` when it holds none
/// yet. Frames longer than `max_frame_size` (this side's setting) are refused.
pub fn read(buffer: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    let Some(Head { len, kind, flags, stream }) = Head::of(buffer) else { return Ok(None) };
    if len > max_frame_size as usize {
        return Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, "a frame longer than this side allows"));
    }
    let total = HEADER_LEN + len;
    if buffer.len() < total {
        buffer.reserve((total - buffer.len()).min(RESERVE_AT_ONCE));
        return Ok(None);
    }
    buffer.advance(HEADER_LEN);
    let payload = buffer.split_to(len).freeze();
    parse(kind, flags, stream, payload).map(Some)
}

/// A frame's header: its payload's length, type, flags and stream.
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: StreamId,
}

impl Head {
    /// The header `buffer` starts with, once all of it has arrived.
    fn of(buffer: &[u8]) -> Option<Self> {
        let header = buffer.get(..HEADER_LEN)?;
        Some(Self {
            len: u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize,
            kind: header[3],
            flags: header[4],
            stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & WITHOUT_RESERVED_BIT,
        })
    }
}

/// A DATA frame whose payload is read as it arrives rather than whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataArriving {
    pub stream: StreamId,
    /// Payload bytes still to come.
    pub left: usize,
    pub end_stream: bool,
}

impl DataArriving {
    /// Takes what has arrived of the payload off `buffer`, as a DATA frame
    /// of its own: the frame's END_STREAM goes with its last part only.
    /// `None` when nothing has; the frame's end, once it has all arrived.
    pub fn next_part(&mut self, buffer: &mut BytesMut) -> Option<Frame> {
        let len = self.left.min(buffer.len());
        if len == 0 {
            return None;
        }
        self.left -= len;
        let payload = buffer.split_to(len).freeze();
        let end_stream = self.end_stream && self.left == 0;
        Some(Frame::Data { stream: self.stream, payload, end_stream, window_cost: len as u32 })
    }
}

/// When `buffer` starts with a DATA frame of more than `at_least` bytes
/// that has not all arrived (and is not padded, so its payload is all
/// data), takes its header off: what follows is its payload, to be read
/// part by part ([`DataArriving::next_part`]) and passed on while the rest
/// is still on its way. [`read`] comes first: it checks the frame's size.
pub fn start_large_data(buffer: &mut BytesMut, at_least: usize) -> Option<DataArriving> {
    let Head { len, kind, flags, stream } = Head::of(buffer)?;
    let arrived = buffer.len() - HEADER_LEN;
    if kind != DATA || flags & PADDED != 0 || stream == 0 || len <= at_least || arrived >= len {
        return None;
    }
    buffer.advance(HEADER_LEN);
    Some(DataArriving { stream, left: len, end_stream: flags & END_STREAM != 0 })
}

fn parse(kind: u8, flags: u8, stream: StreamId, payload: Bytes) -> Result<Frame, FrameError> {
    let on_a_stream = |what: &'static str| {
        if stream == 0 { Err(FrameError::connection(Reason::PROTOCOL_ERROR, what)) } else { Ok(()) }
    };
    let on_the_connection = |what: &'static str| {
        if stream != 0 { Err(FrameError::connection(Reason::PROTOCOL_ERROR, what)) } else { Ok(()) }
    };
    let exactly = |len: usize, what: &'static str| {
        if payload.len() != len { Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, what)) } else { Ok(()) }
    };
    Ok(match kind {
        DATA => {
            on_a_stream("DATA on stream 0")?;
            let window_cost = payload.len() as u32;
            let payload = unpad(flags, payload)?;
            Frame::Data { stream, payload, end_stream: flags & END_STREAM != 0, window_cost }
        }
        HEADERS => {
            on_a_stream("HEADERS on stream 0")?;
            let mut fragment = unpad(flags, payload)?;
            if flags & PRIORITY_FLAG != 0 {
                if fragment.len() < 5 {
                    return Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, "HEADERS too short for its priority"));
                }
                fragment.advance(5);
            }
            Frame::Headers {
                stream,
                fragment,
                end_stream: flags & END_STREAM != 0,
                end_headers: flags & END_HEADERS != 0,
            }
        }
        CONTINUATION => {
            on_a_stream("CONTINUATION on stream 0")?;
            Frame::Continuation { stream, fragment: payload, end_headers: flags & END_HEADERS != 0 }
        }
        PRIORITY => {
            on_a_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                return Err(FrameError::Stream {
                    stream,
                    reason: Reason::FRAME_SIZE_ERROR,
                    why: "PRIORITY not 5 bytes",
                });
            }
            Frame::Priority { stream }
        }
        RST_STREAM => {
            on_a_stream("RST_STREAM on stream 0")?;
            exactly(4, "RST_STREAM not 4 bytes")?;
            Frame::RstStream { stream, reason: Reason::from((&payload[..]).get_u32()) }
        }
        SETTINGS => {
            on_the_connection("SETTINGS on a stream")?;
            if flags & ACK != 0 {
                exactly(0, "SETTINGS acknowledgement with a payload")?;
                Frame::SettingsAck
            } else if !payload.len().is_multiple_of(6) {
                return Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes"));
            } else {
                Frame::Settings(Settings::parse(&payload)?)
            }
        }
        PUSH_PROMISE => {
            on_a_stream("PUSH_PROMISE on stream 0")?;
            Frame::PushPromise { stream }
        }
        PING => {
            on_the_connection("PING on a stream")?;
            exactly(8, "PING not 8 bytes")?;
            let payload = payload[..].try_into().expect("eight bytes, checked");
            Frame::Ping { payload, ack: flags & ACK != 0 }
        }
        GOAWAY => {
            on_the_connection("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes"));
            }
            let mut fields = &payload[..];
            Frame::GoAway {
                last_stream: fields.get_u32() & WITHOUT_RESERVED_BIT,
                reason: Reason::from(fields.get_u32()),
            }
        }
        WINDOW_UPDATE => {
            exactly(4, "WINDOW_UPDATE not 4 bytes")?;
            let increment = (&payload[..]).get_u32() & WITHOUT_RESERVED_BIT;
            match (increment, stream) {
                (0, 0) => return Err(FrameError::connection(Reason::PROTOCOL_ERROR, "a window update of 0")),
                (0, _) => {
                    let why = "a window update of 0";
                    return Err(FrameError::Stream { stream, reason: Reason::PROTOCOL_ERROR, why });
                }
                _ => Frame::WindowUpdate { stream, increment },
            }
        }
        _ => Frame::Unknown,
    })
}

/// A padded frame's content: its first byte says how much padding ends it.
fn unpad(flags: u8, mut payload: Bytes) -> Result<Bytes, FrameError> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let Some(&padding) = payload.first() else {
        return Err(FrameError::connection(Reason::FRAME_SIZE_ERROR, "a padded frame without its pad length"));
    };
    let padding = usize::from(padding);
    if padding >= payload.len() {
        return Err(FrameError::connection(Reason::PROTOCOL_ERROR, "padding as long as the frame"));
    }
    payload.truncate(payload.len() - padding);
    payload.advance(1);
    Ok(payload)
}

fn put_header(dst: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: StreamId) {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
    // Built whole and copied once: a put per field costs a call and a capacity check each.
    let mut header = [0; HEADER_LEN];
    header[..3].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    header[3] = kind;
    header[4] = flags;
    header[5..].copy_from_slice(&stream.to_be_bytes());
    dst.extend_from_slice(&header);
}

/// A DATA frame's header; its `len` bytes of payload follow, written or
/// queued by the caller.
pub fn put_data_header(dst: &mut BytesMut, stream: StreamId, len: usize, end_stream: bool) {
    put_header(dst, len, DATA, if end_stream { END_STREAM } else { 0 }, stream);
}

/// A header block, as HEADERS and as many CONTINUATION frames as `max_frame_size` needs.
pub fn put_headers(dst: &mut BytesMut, stream: StreamId, block: &[u8], end_stream: bool, max_frame_size: u32) {
    let mut fragments = block.chunks(max_frame_size as usize).peekable();
    let first = fragments.next().unwrap_or_default();
    let last = fragments.peek().is_none();
    let flags = if end_stream { END_STREAM } else { 0 } | if last { END_HEADERS } else { 0 };
    put_header(dst, first.len(), HEADERS, flags, stream);
    dst.extend_from_slice(first);
    while let Some(fragment) = fragments.next() {
        let flags = if fragments.peek().is_none() { END_HEADERS } else { 0 };
        put_header(dst, fragment.len(), CONTINUATION, flags, stream);
        dst.extend_from_slice(fragment);
    }
}

pub fn put_settings(dst: &mut BytesMut, settings: &Settings) {
    let pairs: Vec<(u16, u32)> = settings.pairs().collect();
    put_header(dst, pairs.len() * 6, SETTINGS, 0, 0);
    for (id, value) in pairs {
        dst.put_u16(id);
        dst.put_u32(value);
    }
}

pub fn put_settings_ack(dst: &mut BytesMut) {
    put_header(dst, 0, SETTINGS, ACK, 0);
}

pub fn put_ping(dst: &mut BytesMut, payload: [u8; 8], ack: bool) {
    put_header(dst, 8, PING, if ack { ACK } else { 0 }, 0);
    dst.put_slice(&payload);
}

pub fn put_goaway(dst: &mut BytesMut, last_stream: StreamId, reason: Reason, debug: &[u8]) {
    put_header(dst, 8 + debug.len(), GOAWAY, 0, 0);
    dst.put_u32(last_stream);
    dst.put_u32(reason.into());
    dst.put_slice(debug);
}

pub fn put_rst_stream(dst: &mut BytesMut, stream: StreamId, reason: Reason) {
    put_header(dst, 4, RST_STREAM, 0, stream);
    dst.put_u32(reason.into());
}

pub fn put_window_update(dst: &mut BytesMut, stream: StreamId, increment: u32) {
    debug_assert!((1..=MAX_WINDOW).contains(&increment));
    put_header(dst, 4, WINDOW_UPDATE, 0, stream);
    dst.put_u32(increment);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http2::hpack::{Decoder, Name};

    fn read_all(mut buffer: BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = read(&mut buffer, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            frames.push(frame);
        }
        assert!(buffer.is_empty(), "{} bytes left over", buffer.len());
        frames
    }

    fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
        let mut frame = BytesMut::new();
        put_header(&mut frame, payload.len(), kind, flags, stream);
        frame.put_slice(payload);
        frame
    }

    fn read_one(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<Option<Frame>, FrameError> {
        read(&mut raw(kind, flags, stream, payload), DEFAULT_MAX_FRAME_SIZE)
    }

    #[test]
    fn a_large_data_frame_is_read_in_parts_as_it_arrives() {
        let payload: Vec<u8> = (0..200_000u32).map(|at| (at % 251) as u8).collect();
        let mut arrived = BytesMut::new();
        put_header(&mut arrived, payload.len(), DATA, END_STREAM, 3);
        arrived.put_slice(&payload[..70_000]);
        assert_eq!(read(&mut arrived.clone(), 1 << 20).unwrap(), None, "not all here");
        let mut data = start_large_data(&mut arrived, 64 * 1024).expect("large and still arriving");
        assert_eq!(data, DataArriving { stream: 3, left: 200_000, end_stream: true });
        let mut parts = Vec::new();
        for rest in [&payload[70_000..150_000], &payload[150_000..]] {
            parts.extend(data.next_part(&mut arrived));
            assert_eq!(data.next_part(&mut arrived), None, "nothing more has arrived");
            arrived.put_slice(rest);
        }
        // What arrives after the frame is the next frame's, not this one's.
        put_header(&mut arrived, 0, DATA, 0, 5);
        parts.extend(data.next_part(&mut arrived));
        assert_eq!(data.left, 0);
        assert_eq!(arrived.len(), HEADER_LEN);
        let mut joined = Vec::new();
        for (at, part) in parts.iter().enumerate() {
            let Frame::Data { stream: 3, payload, end_stream, window_cost } = part else { panic!("{part:?}") };
            assert_eq!(*end_stream, at == 2, "END_STREAM goes with the last part alone");
            assert_eq!(*window_cost as usize, payload.len());
            joined.extend_from_slice(payload);
        }
        assert_eq!(parts.len(), 3);
        assert!(joined == payload, "the parts are the payload, in order");
    }

    #[test]
    fn room_for_a_long_frame_is_made_a_part_at_a_time_and_it_still_arrives_whole() {
        // Padded, so it is not passed on in parts: it is read whole, however it arrives.
        let payload: Vec<u8> = (0..300_000u32).map(|at| (at % 253) as u8).collect();
        let mut wire = BytesMut::new();
        put_header(&mut wire, 1 + payload.len(), DATA, PADDED | END_STREAM, 7);
        wire.put_u8(0);
        wire.put_slice(&payload);
        let mut buffer = BytesMut::new();
        let mut read_frame = None;
        for chunk in wire.chunks(10_000) {
            assert!(read_frame.is_none(), "the frame is read once all of it has arrived");
            // As `poll_read_some` does before each read.
            crate::http2::make_room_to_read(&mut buffer);
            let first = buffer.is_empty();
            buffer.put_slice(chunk);
            read_frame = read(&mut buffer, 1 << 20).unwrap();
            if first {
                // Not room for all 300 KB at once: the buffer grows as the frame arrives.
                let room = buffer.capacity() - buffer.len();
                assert!(room <= RESERVE_AT_ONCE, "room for {room} bytes made at once");
            }
        }
        let Some(Frame::Data { stream: 7, payload: read, end_stream: true, window_cost }) = read_frame else {
            panic!("{read_frame:?}")
        };
        assert_eq!(window_cost as usize, 1 + payload.len());
        assert!(read == payload, "the payload, whole and in order");
        assert!(buffer.is_empty());
    }

    #[test]
    fn only_large_unpadded_data_still_arriving_is_read_in_parts() {
        let starts = |len: usize, kind: u8, flags: u8, stream: StreamId, arrived: usize| {
            let mut buffer = BytesMut::new();
            put_header(&mut buffer, len, kind, flags, stream);
            buffer.put_slice(&vec![0; arrived]);
            let before = buffer.len();
            let started = start_large_data(&mut buffer, 1000).is_some();
            assert_eq!(
                buffer.len(),
                if started { before - HEADER_LEN } else { before },
                "the header goes only if started"
            );
            started
        };
        assert!(starts(5000, DATA, 0, 1, 0), "its header alone is enough");
        assert!(!starts(1000, DATA, 0, 1, 10), "small: read whole");
        assert!(!starts(5000, DATA, 0, 1, 5000), "all here: read whole");
        assert!(!starts(5000, DATA, PADDED, 1, 10), "padded: its end says how much is data");
        assert!(!starts(5000, HEADERS, 0, 1, 10), "not DATA");
        assert!(!starts(5000, DATA, 0, 0, 10), "stream 0: read refuses it whole");
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut out = BytesMut::new();
        let settings =
            Settings { initial_window_size: Some(1 << 20), max_frame_size: Some(1 << 20), ..Settings::default() };
        put_settings(&mut out, &settings);
        put_settings_ack(&mut out);
        put_ping(&mut out, *b"12345678", true);
        put_window_update(&mut out, 3, 40_000);
        put_headers(&mut out, 3, b"\x82\x86", false, DEFAULT_MAX_FRAME_SIZE);
        put_data_header(&mut out, 3, 5, true);
        out.put_slice(b"hello");
        put_rst_stream(&mut out, 5, Reason::CANCEL);
        put_goaway(&mut out, 5, Reason::NO_ERROR, b"bye");
        assert_eq!(
            read_all(out),
            [
                Frame::Settings(settings),
                Frame::SettingsAck,
                Frame::Ping { payload: *b"12345678", ack: true },
                Frame::WindowUpdate { stream: 3, increment: 40_000 },
                Frame::Headers {
                    stream: 3,
                    fragment: Bytes::from_static(b"\x82\x86"),
                    end_stream: false,
                    end_headers: true
                },
                Frame::Data { stream: 3, payload: Bytes::from_static(b"hello"), end_stream: true, window_cost: 5 },
                Frame::RstStream { stream: 5, reason: Reason::CANCEL },
                Frame::GoAway { last_stream: 5, reason: Reason::NO_ERROR },
            ]
        );
    }

    #[test]
    fn a_large_header_block_continues_in_continuation_frames() {
        let block: Vec<u8> = (0..40_000u32).map(|byte| byte as u8).collect();
        let mut out = BytesMut::new();
        put_headers(&mut out, 1, &block, true, DEFAULT_MAX_FRAME_SIZE);
        let frames = read_all(out);
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for (number, frame) in frames.into_iter().enumerate() {
            match frame {
                Frame::Headers { fragment, end_stream: true, end_headers: false, stream: 1 } if number == 0 => {
                    joined.extend_from_slice(&fragment);
                }
                Frame::Continuation { fragment, end_headers, stream: 1 } if number > 0 => {
                    assert_eq!(end_headers, number == 2);
                    joined.extend_from_slice(&fragment);
                }
                other => panic!("frame {number}: {other:?}"),
            }
        }
        assert_eq!(joined, block);
    }

    #[test]
    fn a_frame_arriving_in_pieces_is_read_once_whole() {
        let mut whole = raw(DATA, END_STREAM, 1, b"abcdef");
        let mut buffer = whole.split_to(4);
        assert_eq!(read(&mut buffer, DEFAULT_MAX_FRAME_SIZE), Ok(None));
        buffer.unsplit(whole.split_to(7));
        assert_eq!(read(&mut buffer, DEFAULT_MAX_FRAME_SIZE), Ok(None));
        buffer.unsplit(whole);
        let frame = read(&mut buffer, DEFAULT_MAX_FRAME_SIZE).unwrap();
        assert!(matches!(frame, Some(Frame::Data { payload, .. }) if payload == "abcdef"));
    }

    #[test]
    fn padding_and_priority_are_taken_off() {
        // Pad length 3, "data", three bytes of padding.
        let frame = read_one(DATA, PADDED, 1, b"\x03data\0\0\0").unwrap();
        assert_eq!(
            frame,
            Some(Frame::Data { stream: 1, payload: Bytes::from_static(b"data"), end_stream: false, window_cost: 8 })
        );
        // Pad length 1, five bytes of priority, the block, one byte of padding.
        let frame = read_one(HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS, 1, b"\x01\0\0\0\0\x10\x82\0").unwrap();
        assert_eq!(
            frame,
            Some(Frame::Headers {
                stream: 1,
                fragment: Bytes::from_static(b"\x82"),
                end_stream: false,
                end_headers: true
            })
        );
    }

    #[test]
    fn frames_breaking_the_rules_are_refused_with_their_reason() {
        let protocol = Reason::PROTOCOL_ERROR;
        let size = Reason::FRAME_SIZE_ERROR;
        let cases: [(u8, u8, u32, &[u8], Reason); 15] = [
            (DATA, 0, 0, b"x", protocol),
            (DATA, PADDED, 1, b"\x04abc", protocol),
            (DATA, PADDED, 1, b"", size),
            (HEADERS, 0, 0, b"\x82", protocol),
            (HEADERS, PRIORITY_FLAG, 1, b"\0\0", size),
            (CONTINUATION, 0, 0, b"", protocol),
            (RST_STREAM, 0, 1, b"\0\0\0", size),
            (SETTINGS, 0, 1, b"", protocol),
            (SETTINGS, 0, 0, b"\0\x04\0\0", size),
            (SETTINGS, ACK, 0, b"\0\x04\0\0\0\0", size),
            (SETTINGS, 0, 0, b"\0\x02\0\0\0\x02", protocol),
            (SETTINGS, 0, 0, b"\0\x04\x80\0\0\0", Reason::FLOW_CONTROL_ERROR),
            (SETTINGS, 0, 0, b"\0\x05\0\0\x01\0", protocol),
            (PING, 0, 0, b"1234567", size),
            (WINDOW_UPDATE, 0, 0, b"\0\0\0\0", protocol),
        ];
        for (number, (kind, flags, stream, payload, expected)) in cases.into_iter().enumerate() {
            let error = read_one(kind, flags, stream, payload).expect_err(&format!("case {number}"));
            let reason = match error {
                FrameError::Connection { reason, .. } => reason,
                FrameError::Stream { .. } => panic!("case {number}: {error} ends only its stream"),
            };
            assert_eq!(reason, expected, "case {number}: {error}");
        }
        assert_eq!(
            read_one(WINDOW_UPDATE, 0, 3, b"\0\0\0\0"),
            Err(FrameError::Stream { stream: 3, reason: Reason::PROTOCOL_ERROR, why: "a window update of 0" })
        );
        assert!(matches!(read_one(PRIORITY, 0, 3, b"\0"), Err(FrameError::Stream { stream: 3, .. })));
        let too_long = read(&mut raw(DATA, 0, 1, &[0; 100]), 99);
        assert!(matches!(too_long, Err(FrameError::Connection { reason: Reason::FRAME_SIZE_ERROR, .. })));
    }

    #[test]
    fn unknown_frames_and_settings_are_ignored() {
        assert_eq!(read_one(0xfa, 0xff, 7, b"anything"), Ok(Some(Frame::Unknown)));
        let settings = read_one(SETTINGS, 0, 0, b"\x00\xff\0\0\0\x01\0\x03\0\0\0\x64").unwrap();
        let expected = Settings { max_concurrent_streams: Some(100), ..Settings::default() };
        assert_eq!(settings, Some(Frame::Settings(expected)));
    }

    #[test]
    fn a_block_split_over_frames_is_joined_and_nothing_may_come_between() {
        let mut joiner = BlockJoiner::default();
        let whole = joiner.headers(1, Bytes::from_static(b"ab"), true, true).expect("ends in its HEADERS");
        assert_eq!((whole.stream, &whole.block[..], whole.end_stream), (1, &b"ab"[..], true));

        assert!(joiner.headers(3, Bytes::from_static(b"ab"), false, false).is_none());
        let interrupting = Frame::Ping { payload: [0; 8], ack: false };
        assert_eq!(
            joiner.check(&interrupting),
            Err(FrameError::connection(Reason::PROTOCOL_ERROR, "a header block interrupted"))
        );
        let other_stream = Frame::Continuation { stream: 5, fragment: Bytes::new(), end_headers: true };
        assert!(joiner.check(&other_stream).is_err(), "a CONTINUATION of another stream interrupts too");
        let its_own = Frame::Continuation { stream: 3, fragment: Bytes::new(), end_headers: true };
        assert_eq!(joiner.check(&its_own), Ok(()));
        assert!(joiner.continuation(b"cd", false, 100).unwrap().is_none());
        let joined = joiner.continuation(b"ef", true, 100).unwrap().expect("the block ended");
        assert_eq!((joined.stream, &joined.block[..], joined.end_stream), (3, &b"abcdef"[..], false));
        assert_eq!(joiner.check(&interrupting), Ok(()), "once joined, any frame may come");

        let without_headers = joiner.continuation(b"x", true, 100).map(|_| ()).unwrap_err();
        assert!(matches!(without_headers, FrameError::Connection { reason: Reason::PROTOCOL_ERROR, .. }));
        joiner.headers(7, Bytes::from_static(b"abc"), false, false);
        let endless = joiner.continuation(&[0; 98], false, 100).map(|_| ()).unwrap_err();
        assert!(matches!(endless, FrameError::Connection { reason: Reason::ENHANCE_YOUR_CALM, .. }));
    }

    #[test]
    fn windows_widen_up_to_two_to_the_thirty_first_less_one() {
        let mut window = i64::from(MAX_WINDOW) - 10;
        assert!(widen(&mut window, 10));
        assert_eq!(window, i64::from(MAX_WINDOW));
        assert!(!widen(&mut window, 1), "one more breaks flow control");
    }

    /// The h2 crate's client, as a real peer: what it sends reads as the
    /// frames and header fields it meant.
    #[tokio::test]
    async fn a_request_from_h2s_client_reads_as_sent() {
        use tokio::io::AsyncReadExt;
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let (mut sender, connection) = h2::client::handshake(client).await.unwrap();
        tokio::spawn(connection);
        let request = http::Request::post("http://gateway.test/wizdata.registry.v1.RegistryService/GetSymbol")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-custom", "Mixed Case Value with spaces")
            .body(())
            .unwrap();
        let (_answer, mut body) = sender.send_request(request, false).unwrap();
        body.send_data(Bytes::from_static(b"\0\0\0\0\x02\x0a\x00"), true).unwrap();

        let mut buffer = BytesMut::new();
        let (mut fields, mut data) = (Vec::new(), None);
        let mut decoder = Decoder::default();
        while data.is_none() {
            assert!(server.read_buf(&mut buffer).await.unwrap() > 0, "h2 closed before its DATA");
            if buffer.starts_with(crate::http2::PREFACE) {
                buffer.advance(crate::http2::PREFACE.len());
            }
            while let Some(frame) = read(&mut buffer, DEFAULT_MAX_FRAME_SIZE).unwrap() {
                match frame {
                    Frame::Headers { stream: 1, fragment, end_stream: false, end_headers: true } => {
                        decoder.decode(&fragment, |field| fields.push(field)).unwrap();
                    }
                    Frame::Data { stream: 1, payload, end_stream: true, .. } => data = Some(payload),
                    Frame::Settings(_) | Frame::WindowUpdate { stream: 0, .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let named = |name: &Name| fields.iter().find(|field| field.name == *name).map(|field| field.value.clone());
        assert_eq!(named(&Name::Method).unwrap(), "POST");
        assert_eq!(named(&Name::Scheme).unwrap(), "http");
        assert_eq!(named(&Name::Authority).unwrap(), "gateway.test");
        assert_eq!(named(&Name::Path).unwrap(), "/wizdata.registry.v1.RegistryService/GetSymbol");
        assert_eq!(named(&Name::parse(b"content-type")).unwrap(), "application/grpc");
        assert_eq!(named(&Name::parse(b"x-custom")).unwrap(), "Mixed Case Value with spaces");
        assert_eq!(data.unwrap(), &b"\0\0\0\0\x02\x0a\x00"[..]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_read_as_frames_or_are_refused(input: Vec<u8>) {
            let mut buffer = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = read(&mut buffer, DEFAULT_MAX_FRAME_SIZE) {}
        }
    }
}

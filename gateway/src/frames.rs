//! gRPC message framing (a flag byte and a 4-byte big-endian length before
//! each message), checked at the edge so a malformed or oversized request
//! is answered with a clear status instead of reaching a backend.
//!
//! gRPC-Web requests arrive here already translated by tonic-web (base64
//! decoded for grpc-web-text), so one check serves both protocols.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame};
use tonic::Status;

/// Flag byte and length prefix.
pub const HEADER_BYTES: usize = 5;
const COMPRESSED: u8 = 1;

/// Why a request's framing was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// No message at all, where the RPC takes exactly one.
    Empty,
    /// A flag other than 0 (plain) or 1 (compressed), e.g. a gRPC-Web
    /// trailer frame (0x80) sent by a client.
    BadFlag(u8),
    /// Compressed without a `grpc-encoding` to say how.
    CompressedWithoutEncoding,
    /// The body ends inside the length prefix or the message.
    Truncated { expected: usize, got: usize },
    /// Bytes after the one message a unary RPC takes.
    TrailingBytes(usize),
    /// A message above the gateway's limit.
    TooLarge { size: usize, limit: usize },
}

impl FrameError {
    pub fn to_status(&self) -> Status {
        match self {
            Self::Empty => Status::invalid_argument("the request has no message; this RPC takes exactly one"),
            Self::BadFlag(flag) => Status::invalid_argument(format!(
                "bad gRPC frame flag 0x{flag:02x}: a request message is flagged 0 (plain) or 1 (compressed)"
            )),
            Self::CompressedWithoutEncoding => {
                Status::invalid_argument("a compressed message needs a grpc-encoding header naming the compression")
            }
            Self::Truncated { expected, got } => Status::invalid_argument(format!(
                "truncated gRPC frame: its length prefix announces {expected} bytes but the body holds {got}"
            )),
            Self::TrailingBytes(extra) => Status::invalid_argument(format!(
                "{extra} bytes follow the request message; this RPC takes exactly one message"
            )),
            // OUT_OF_RANGE, as the services answer it themselves (tonic's
            // "message length too large"), so the code is one on every path.
            Self::TooLarge { size, limit } => Status::out_of_range(format!(
                "the request message is {size} bytes; the gateway accepts at most {limit}"
            )),
        }
    }
}

/// Checks that `body` is exactly one well-formed message of at most
/// `limit` bytes, as a unary (or server-streaming) RPC takes.
pub fn check_single_message(body: &[u8], limit: usize, has_encoding: bool) -> Result<(), FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let length = check_header(body, limit, has_encoding)?;
    let got = body.len() - HEADER_BYTES.min(body.len());
    match got.cmp(&length) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated { expected: length, got }),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(got - length)),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// The announced length of the frame at the start of `bytes`.
fn check_header(bytes: &[u8], limit: usize, has_encoding: bool) -> Result<usize, FrameError> {
    if bytes.len() < HEADER_BYTES {
        return Err(FrameError::Truncated { expected: HEADER_BYTES, got: bytes.len() });
    }
    match bytes[0] {
        0 => {}
        COMPRESSED if has_encoding => {}
        COMPRESSED => return Err(FrameError::CompressedWithoutEncoding),
        flag => return Err(FrameError::BadFlag(flag)),
    }
    let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if length > limit {
        return Err(FrameError::TooLarge { size: length, limit });
    }
    Ok(length)
}

/// A streamed request body passed through unchanged while each message's
/// framing is checked; a bad frame ends the body with an error, which
/// resets the call to the backend.
pub struct CheckedFrames<B> {
    inner: B,
    limit: usize,
    has_encoding: bool,
    header: Vec<u8>,
    // Bytes of the current message still to come.
    message_left: usize,
    failed: bool,
}

impl<B> CheckedFrames<B> {
    pub fn new(inner: B, limit: usize, has_encoding: bool) -> Self {
        Self { inner, limit, has_encoding, header: Vec::with_capacity(HEADER_BYTES), message_left: 0, failed: false }
    }

    /// Walks a chunk of the body through the framing state.
    fn scan(&mut self, mut chunk: &[u8]) -> Result<(), FrameError> {
        while !chunk.is_empty() {
            if self.message_left > 0 {
                let take = self.message_left.min(chunk.len());
                self.message_left -= take;
                chunk = &chunk[take..];
                continue;
            }
            let take = (HEADER_BYTES - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.header.len() == HEADER_BYTES {
                self.message_left = check_header(&self.header, self.limit, self.has_encoding)?;
                self.header.clear();
            }
        }
        Ok(())
    }

    /// At the end of the body: nothing may be left half-sent.
    fn finish(&self) -> Result<(), FrameError> {
        match (self.header.len(), self.message_left) {
            (0, 0) => Ok(()),
            (partial, 0) => Err(FrameError::Truncated { expected: HEADER_BYTES, got: partial }),
            (_, left) => Err(FrameError::Truncated { expected: left, got: 0 }),
        }
    }
}

impl<B> HttpBody for CheckedFrames<B>
where
    B: HttpBody<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let checked = match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) => self.scan(data.chunk()),
                None => Ok(()),
            },
            Poll::Ready(None) => self.finish(),
            _ => Ok(()),
        };
        match checked {
            Ok(()) => polled,
            Err(error) => {
                self.failed = true;
                Poll::Ready(Some(Err(error.to_status())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }
}

/// Takes the first whole frame (its flag and message) off `buffer`, or
/// `None` while it is still incomplete. Connect's envelopes have the same
/// layout, so one reader serves both; flags are for the caller to judge.
pub fn take_frame(buffer: &mut bytes::BytesMut, limit: usize) -> Result<Option<(u8, Bytes)>, FrameError> {
    if buffer.len() < HEADER_BYTES {
        return Ok(None);
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if length > limit {
        return Err(FrameError::TooLarge { size: length, limit });
    }
    if buffer.len() < HEADER_BYTES + length {
        return Ok(None);
    }
    let flag = buffer[0];
    buffer.advance(HEADER_BYTES);
    Ok(Some((flag, buffer.split_to(length).freeze())))
}

/// What a streamed body carries, as it arrives.
pub enum BodyPart {
    /// One whole frame: its flag and message.
    Frame(u8, Bytes),
    /// The trailers that end it.
    Trailers(http::HeaderMap),
}

/// Why a streamed body's frames stopped short.
pub enum FramesError {
    Frame(FrameError),
    /// The body ended inside a frame.
    CutShort,
    /// The body itself failed (a reset, a connection gone).
    Body(Status),
}

/// The frames of `body` (gRPC frames or Connect envelopes, which share a
/// layout) one by one as they arrive, then its trailers if any; nothing
/// after an error. Reading is driven by the caller, so a slow reader slows
/// the sender instead of growing a buffer here.
pub fn frames_of<B>(body: B, limit: usize) -> impl futures_util::Stream<Item = Result<BodyPart, FramesError>> + Send
where
    B: HttpBody<Data = Bytes, Error = Status> + Send + Unpin,
{
    let reading = (body, bytes::BytesMut::new(), false);
    futures_util::stream::unfold(reading, move |(mut body, mut buffer, ended)| async move {
        if ended {
            return None;
        }
        loop {
            match take_frame(&mut buffer, limit) {
                Ok(Some((flag, message))) => return Some((Ok(BodyPart::Frame(flag, message)), (body, buffer, false))),
                Err(error) => return Some((Err(FramesError::Frame(error)), (body, buffer, true))),
                Ok(None) => {}
            }
            match http_body_util::BodyExt::frame(&mut body).await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => buffer.extend_from_slice(&data),
                    Err(frame) => {
                        let trailers = frame.into_trailers().unwrap_or_default();
                        return Some((Ok(BodyPart::Trailers(trailers)), (body, buffer, true)));
                    }
                },
                Some(Err(status)) => return Some((Err(FramesError::Body(status)), (body, buffer, true))),
                None if buffer.is_empty() => return None,
                None => return Some((Err(FramesError::CutShort), (body, buffer, true))),
            }
        }
    })
}

/// Frames `message` as one plain gRPC message.
pub fn encode(message: &[u8]) -> Bytes {
    encode_flagged(0, message)
}

/// Frames `message` behind `flag` (Connect's end-of-stream message is 2).
pub fn encode_flagged(flag: u8, message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(HEADER_BYTES + message.len());
    framed.push(flag);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

#[cfg(test)]
pub(crate) mod tests {
    use http_body_util::BodyExt;
    use proptest::prelude::*;

    use super::*;

    const LIMIT: usize = 1024;

    #[test]
    fn each_kind_of_bad_framing_is_named() {
        assert_eq!(check_single_message(&encode(b"hello"), LIMIT, false), Ok(()));
        assert_eq!(check_single_message(&encode(b""), LIMIT, false), Ok(()), "an empty message is a message");
        assert_eq!(check_single_message(b"", LIMIT, false), Err(FrameError::Empty));
        assert_eq!(check_single_message(&[0, 0, 0], LIMIT, false), Err(FrameError::Truncated { expected: 5, got: 3 }));
        assert_eq!(
            check_single_message(&[0, 0, 0, 0, 9, 1, 2], LIMIT, false),
            Err(FrameError::Truncated { expected: 9, got: 2 })
        );
        let mut two = encode(b"a").to_vec();
        two.extend_from_slice(&encode(b"b"));
        assert_eq!(check_single_message(&two, LIMIT, false), Err(FrameError::TrailingBytes(6)));
        assert_eq!(check_single_message(&[0x80, 0, 0, 0, 0], LIMIT, false), Err(FrameError::BadFlag(0x80)));
        assert_eq!(check_single_message(&[1, 0, 0, 0, 0], LIMIT, false), Err(FrameError::CompressedWithoutEncoding));
        assert_eq!(check_single_message(&[1, 0, 0, 0, 0], LIMIT, true), Ok(()));
        assert_eq!(
            check_single_message(&[0, 0xff, 0xff, 0xff, 0xff], LIMIT, false),
            Err(FrameError::TooLarge { size: u32::MAX as usize, limit: LIMIT })
        );
        assert_eq!(FrameError::TooLarge { size: 2, limit: 1 }.to_status().code(), tonic::Code::OutOfRange);
        assert_eq!(FrameError::Empty.to_status().code(), tonic::Code::InvalidArgument);
    }

    /// Streams `chunks` through `CheckedFrames` and returns what came out.
    fn stream_through(chunks: Vec<Vec<u8>>) -> Result<Vec<u8>, Status> {
        let frames = chunks.into_iter().map(|chunk| Ok::<_, Status>(Frame::data(Bytes::from(chunk))));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let checked = CheckedFrames::new(body, LIMIT, false);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async { checked.collect().await.map(|collected| collected.to_bytes().to_vec()) })
    }

    /// `bytes` cut into chunks at `cuts` (taken modulo the length), as a
    /// network might deliver them.
    pub(crate) fn split_at_points(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<Vec<u8>> {
        cuts.iter_mut().for_each(|cut| *cut %= bytes.len() + 1);
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(bytes[start..cut].to_vec());
            start = cut;
        }
        chunks
    }

    proptest! {
        /// Any bytes at all: an answer, never a panic; and acceptance means
        /// the bytes really are one frame of the announced length.
        #[test]
        fn arbitrary_bodies_are_answered_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if check_single_message(&body, LIMIT, false).is_ok() {
                let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
                prop_assert_eq!(body.len(), HEADER_BYTES + length);
                prop_assert_eq!(body[0], 0);
            }
        }

        /// Well-formed messages pass through any chunking unchanged.
        #[test]
        fn streamed_messages_pass_unchanged_however_they_are_split(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let body: Vec<u8> = messages.iter().flat_map(|message| encode(message).to_vec()).collect();
            let out = stream_through(split_at_points(&body, cuts)).expect("well-formed frames pass");
            prop_assert_eq!(out, body);
        }

        /// A stream cut short anywhere inside a frame is refused, and so is
        /// any frame above the limit, wherever the chunks fall.
        #[test]
        fn streams_cut_short_or_oversized_are_refused(
            message in proptest::collection::vec(any::<u8>(), 1..200),
            keep in any::<usize>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let framed = encode(&message);
            let cut_short = &framed[..keep % framed.len()];
            if !cut_short.is_empty() {
                let error = stream_through(split_at_points(cut_short, cuts.clone())).expect_err("truncated");
                prop_assert_eq!(error.code(), tonic::Code::InvalidArgument);
            }
            let mut oversized = vec![0u8];
            oversized.extend_from_slice(&((LIMIT + 1) as u32).to_be_bytes());
            oversized.extend_from_slice(&message);
            let error = stream_through(split_at_points(&oversized, cuts)).expect_err("oversized");
            prop_assert_eq!(error.code(), tonic::Code::OutOfRange);
        }
    }
}

//! A body arriving on a stream, between the connection that receives it
//! and the call that reads it: a request body on the gateway's server
//! connections, an answer on the client's. The connection pushes what
//! arrives and wakes the reader; the reader takes it frame by frame and
//! counts what it took, for the connection to give back to the peer's
//! flow-control window.

use std::collections::VecDeque;
use std::task::{Context, Waker};

use bytes::Bytes;
use http::HeaderMap;

#[derive(Default)]
pub struct Arriving {
    /// The oldest data not yet read, held apart from the rest: a unary
    /// call's body is one chunk, and a queue's first push allocates.
    first: Option<Bytes>,
    /// Data that arrived after `first`, in order.
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    /// Read and not yet given back to the peer's window.
    consumed: usize,
    reader: Option<Waker>,
}

impl Arriving {
    /// Data as it arrived, and whether the stream ended with it.
    pub fn push(&mut self, data: Bytes, end_stream: bool) {
        if !data.is_empty() {
            match self.first {
                None if self.data.is_empty() => self.first = Some(data),
                _ => self.data.push_back(data),
            }
        }
        self.ended |= end_stream;
        self.wake();
    }

    /// Trailers, which end the body.
    pub fn finish(&mut self, trailers: HeaderMap) {
        self.trailers = Some(trailers);
        self.ended = true;
        self.wake();
    }

    /// Whether the peer has sent all of it (the reader may not have read it yet).
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Wakes the reader: something arrived, or went wrong.
    pub fn wake(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }

    /// The next frame: `Some(None)` once the body has ended, `None` while
    /// nothing is there yet.
    pub fn next_frame(&mut self) -> Option<Option<http_body::Frame<Bytes>>> {
        if let Some(data) = self.first.take().or_else(|| self.data.pop_front()) {
            self.consumed += data.len();
            return Some(Some(http_body::Frame::data(data)));
        }
        if let Some(trailers) = self.trailers.take() {
            return Some(Some(http_body::Frame::trailers(trailers)));
        }
        self.ended.then_some(None)
    }

    /// Keeps the reader's waker, to be woken when something arrives.
    pub fn wait(&mut self, cx: &Context<'_>) {
        if !self.reader.as_ref().is_some_and(|reader| reader.will_wake(cx.waker())) {
            self.reader = Some(cx.waker().clone());
        }
    }

    /// What the reader has read since this was last asked.
    pub fn take_consumed(&mut self) -> usize {
        std::mem::take(&mut self.consumed)
    }

    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Ended, and all of it read.
    pub fn is_end_stream(&self) -> bool {
        self.ended && self.first.is_none() && self.data.is_empty() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_data(arriving: &mut Arriving) -> Option<Bytes> {
        arriving.next_frame().flatten().and_then(|frame| frame.into_data().ok())
    }

    #[test]
    fn data_is_read_in_the_order_it_arrived_then_the_trailers_then_the_end() {
        let mut arriving = Arriving::default();
        assert!(arriving.next_frame().is_none(), "nothing yet");
        arriving.push(Bytes::from_static(b"a"), false);
        arriving.push(Bytes::new(), false);
        arriving.push(Bytes::from_static(b"b"), false);
        assert_eq!(next_data(&mut arriving).as_deref(), Some(&b"a"[..]));
        arriving.push(Bytes::from_static(b"c"), false);
        assert_eq!(next_data(&mut arriving).as_deref(), Some(&b"b"[..]));
        arriving.push(Bytes::from_static(b"d"), false);
        assert_eq!(next_data(&mut arriving).as_deref(), Some(&b"c"[..]));
        assert_eq!(next_data(&mut arriving).as_deref(), Some(&b"d"[..]));
        assert!(arriving.next_frame().is_none(), "read up, not ended");
        arriving.push(Bytes::from_static(b"e"), false);
        arriving.finish(HeaderMap::from_iter([(http::header::TE, http::HeaderValue::from_static("trailers"))]));
        assert!(!arriving.is_end_stream(), "data and trailers still to read");
        assert_eq!(next_data(&mut arriving).as_deref(), Some(&b"e"[..]));
        assert_eq!(arriving.consumed(), 5, "every byte read is counted once");
        let trailers = arriving.next_frame().flatten().and_then(|frame| frame.into_trailers().ok());
        assert_eq!(trailers.map(|trailers| trailers.len()), Some(1));
        assert!(arriving.is_end_stream());
        assert!(matches!(arriving.next_frame(), Some(None)), "then the end, for good");
    }
}

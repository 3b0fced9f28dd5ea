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
            self.data.push_back(data);
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
        if let Some(data) = self.data.pop_front() {
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
        self.ended && self.data.is_empty() && self.trailers.is_none()
    }
}

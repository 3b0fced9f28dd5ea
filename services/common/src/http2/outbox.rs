//! What a connection's turn writes: small frames copied into one buffer,
//! large data queued as the buffers it arrived in; written with one
//! `writev`. Shared by the server and client connections.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Data at least this large is written from its own buffer rather than copied.
const SHARED_WRITE_BYTES: usize = 4096;

/// What a turn writes: small frames copied into one buffer, large data
/// queued as the buffers it arrived in; written with one `writev`.
#[derive(Default)]
pub struct Outbox {
    queued: VecDeque<Bytes>,
    tail: BytesMut,
    /// Bytes in `queued`.
    len: usize,
}

impl Outbox {
    /// Where frames are written.
    pub fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    pub fn unwritten(&self) -> usize {
        self.len + self.tail.len()
    }

    pub fn push(&mut self, data: Bytes) {
        if data.len() < SHARED_WRITE_BYTES {
            self.tail.extend_from_slice(&data);
            return;
        }
        self.queue_tail();
        self.len += data.len();
        self.queued.push_back(data);
    }

    /// What was written into the tail goes into the queue, behind what is there.
    fn queue_tail(&mut self) {
        if !self.tail.is_empty() {
            self.len += self.tail.len();
            self.queued.push_back(self.tail.split().freeze());
        }
    }

    /// Writes everything, or returns `Pending` with the rest kept.
    pub fn poll_write(&mut self, io: &mut (impl AsyncWrite + Unpin), cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.queued.is_empty() {
                if self.tail.is_empty() {
                    self.len = 0;
                    return Poll::Ready(Ok(()));
                }
                let written = std::task::ready!(Pin::new(&mut *io).poll_write(cx, &self.tail))?;
                if written == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                let _ = self.tail.split_to(written);
                continue;
            }
            self.queue_tail();
            let slices: Vec<IoSlice<'_>> = self.queued.iter().take(64).map(|bytes| IoSlice::new(bytes)).collect();
            let mut written = std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.len = self.len.saturating_sub(written);
            while written > 0 {
                let first = self.queued.front_mut().expect("written bytes were queued");
                if written >= first.len() {
                    written -= first.len();
                    self.queued.pop_front();
                } else {
                    let _ = first.split_to(written);
                    written = 0;
                }
            }
        }
    }
}

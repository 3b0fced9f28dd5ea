//! One write per turn of an HTTP/2 connection's task, not one per frame,
//! and large payloads written from where they already are.
//!
//! h2 writes a DATA frame and flushes before it takes the next one, so a
//! 550 KB answer to a client that accepts 16 KiB frames (h2load, grpc-go,
//! most clients) went out in 35 system calls, each waking the client for a
//! part of its answer. nginx writes such an answer in a few. Here h2's
//! writes are queued and its flushes do nothing; the connection's task
//! writes the queue out in one go once a turn has done what it could
//! ([`serve_batched`]). A queue past [`HIGH_WATER_BYTES`] makes h2 wait for
//! the socket, as the socket itself did, so a slow reader still holds h2 back.
//!
//! Small writes (frame headers, HEADERS frames, small DATA) are copied into
//! the queue. A large DATA payload is not: h2 hands over a slice of the very
//! buffer the answer arrived in, and a payload lent beforehand
//! ([`Lent::lend`]) is queued as a shared slice of it
//! ([`Bytes::slice_ref`]). Copying it was half of a large answer's
//! instructions (BENCHMARKS.md).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much a connection may hold unwritten before h2's writes wait.
pub const HIGH_WATER_BYTES: usize = 1 << 20;

/// Payloads smaller than this are copied: a copy costs less than keeping
/// track of where they came from.
const LENT_MIN_BYTES: usize = 4096;

/// At most this many lent payloads are looked up; older ones are forgotten
/// (their later slices are then copied, which only costs time).
const LENT_KEPT: usize = 8;

/// Writes one syscall can take at most (the queue's first ones).
const SLICES_PER_WRITE: usize = 64;

/// The socket as h2 sees it: reads go straight through, writes are held
/// until the turn ends.
pub struct BatchedWrites<T>(Arc<Mutex<Batch<T>>>);

struct Batch<T> {
    io: T,
    /// What waits to be written, in order, before `copied`.
    queued: VecDeque<Bytes>,
    queued_bytes: usize,
    /// Small writes since the last payload queued whole, copied.
    copied: BytesMut,
    lent: Lent,
    /// A failed write, reported to h2 at its next read or write.
    failed: Option<io::ErrorKind>,
}

/// Payloads on their way into a connection's writes, so that h2's slices of
/// them can be queued without a copy. Cloned into each call of the
/// connection; only the connection's own task touches it.
#[derive(Clone, Default)]
pub struct Lent(Arc<Mutex<Lendings>>);

#[derive(Default)]
struct Lendings {
    payloads: VecDeque<Lending>,
    /// Turns of the connection's task so far.
    turn: u64,
}

struct Lending {
    payload: Bytes,
    /// The last turn in which it was lent or a slice of it taken.
    used: u64,
}

impl Lent {
    /// `payload` is about to be sent on this connection.
    pub fn lend(&self, payload: &Bytes) {
        if payload.len() < LENT_MIN_BYTES {
            return;
        }
        let mut lent = self.lock();
        if lent.payloads.len() == LENT_KEPT {
            lent.payloads.pop_front();
        }
        let used = lent.turn;
        lent.payloads.push_back(Lending { payload: payload.clone(), used });
    }

    /// `slice` as a share of the lent payload it lies in, if any. A payload
    /// whose last byte has been taken is forgotten: h2 sends a payload from
    /// its front to its end.
    fn share_of(&self, slice: &[u8]) -> Option<Bytes> {
        let mut lent = self.lock();
        let turn = lent.turn;
        let start = slice.as_ptr() as usize;
        let end = start + slice.len();
        let index = lent.payloads.iter().position(|lending| {
            let from = lending.payload.as_ptr() as usize;
            from <= start && end <= from + lending.payload.len()
        })?;
        let lending = &mut lent.payloads[index];
        lending.used = turn;
        let shared = lending.payload.slice_ref(slice);
        if end == lending.payload.as_ptr() as usize + lending.payload.len() {
            lent.payloads.remove(index);
        }
        Some(shared)
    }

    /// Forgets what went unused for a whole turn: h2 dropped it (its stream
    /// was reset) or waits on the peer's window (its later slices are
    /// copied). So a connection holds on to no answer it will not send.
    fn end_turn(&self) {
        let mut lent = self.lock();
        lent.turn += 1;
        let turn = lent.turn;
        lent.payloads.retain(|lending| lending.used + 1 >= turn);
    }

    fn lock(&self) -> MutexGuard<'_, Lendings> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> BatchedWrites<T> {
    fn lock(&self) -> MutexGuard<'_, Batch<T>> {
        // Only the connection's own task touches it; a poisoned lock means
        // that task panicked, and nothing is left to protect.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `serve` (a connection's whole life, h2 handshake included) over
/// `io`, writing what each turn of the task queued at the end of the turn.
/// `serve` is given the connection's [`Lent`] payloads beside it.
pub async fn serve_batched<T, F, Fut, R>(io: T, serve: F) -> Result<R, h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(BatchedWrites<T>, Lent) -> Fut,
    Fut: Future<Output = Result<R, h2::Error>>,
{
    let lent = Lent::default();
    let batch = Batch {
        io,
        queued: VecDeque::new(),
        queued_bytes: 0,
        copied: BytesMut::new(),
        lent: lent.clone(),
        failed: None,
    };
    let shared = Arc::new(Mutex::new(batch));
    let handle = BatchedWrites(shared.clone());
    let mut served = pin!(serve(BatchedWrites(shared), lent));
    std::future::poll_fn(|cx| {
        let turn = served.as_mut().poll(cx);
        // Pending writes are picked up again when the socket can take more.
        let mut batch = handle.lock();
        batch.lent.end_turn();
        if let Poll::Ready(Err(error)) = batch.poll_write_out(cx) {
            batch.failed = Some(error.kind());
            // Wake h2 so that it reads the failure and ends the connection.
            cx.waker().wake_by_ref();
        }
        turn
    })
    .await
}

impl<T: AsyncWrite + Unpin> Batch<T> {
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The usual turn (no payload queued whole): one buffer, one write.
        while self.queued.is_empty() && !self.copied.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.copied))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.copied.advance(written);
        }
        self.queue_copied();
        while !self.queued.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); SLICES_PER_WRITE];
            for (slice, chunk) in slices.iter_mut().zip(&self.queued) {
                *slice = io::IoSlice::new(chunk);
            }
            let count = self.queued.len().min(SLICES_PER_WRITE);
            let mut written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued_bytes -= written;
            while written > 0 {
                let chunk = self.queued.front_mut().expect("no more written than was queued");
                if written < chunk.len() {
                    chunk.advance(written);
                    break;
                }
                written -= chunk.len();
                self.queued.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The small writes so far, behind what is queued.
    fn queue_copied(&mut self) {
        if !self.copied.is_empty() {
            let copied = self.copied.split().freeze();
            self.queued_bytes += copied.len();
            self.queued.push_back(copied);
        }
    }

    fn take(&mut self, buf: &[u8]) {
        if buf.len() >= LENT_MIN_BYTES
            && let Some(shared) = self.lent.share_of(buf)
        {
            self.queue_copied();
            self.queued_bytes += shared.len();
            self.queued.push_back(shared);
        } else {
            self.copied.extend_from_slice(buf);
        }
    }

    fn check(&self) -> io::Result<()> {
        self.failed.map_or(Ok(()), |kind| Err(kind.into()))
    }

    /// Room for more, or `Pending` until the socket takes some of what waits.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        if self.queued_bytes + self.copied.len() >= HIGH_WATER_BYTES {
            ready!(self.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for BatchedWrites<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut batch = self.lock();
        batch.check()?;
        Pin::new(&mut batch.io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for BatchedWrites<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut batch = self.lock();
        ready!(batch.poll_room(cx))?;
        batch.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut batch = self.lock();
        ready!(batch.poll_room(cx))?;
        let mut taken = 0;
        for buf in bufs {
            batch.take(buf);
            taken += buf.len();
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing yet: the turn's end writes the queue out.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().check().into()
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut batch = self.lock();
        batch.check()?;
        ready!(batch.poll_write_out(cx))?;
        Pin::new(&mut batch.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_writes_of_a_turn_reach_the_peer_together_when_the_turn_ends() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let served = serve_batched(near, |mut io, _| async move {
            io.write_all(b"frame one, ").await.unwrap();
            io.flush().await.unwrap();
            io.write_all(b"frame two").await.unwrap();
            io.flush().await.unwrap();
            let mut got = vec![0; 20];
            let nothing_yet = futures_util::FutureExt::now_or_never(far.read(&mut got[..1])).is_none();
            // The turn ends here; the next one finds both frames arrived.
            tokio::task::yield_now().await;
            far.read_exact(&mut got).await.unwrap();
            far.write_all(b"bye").await.unwrap();
            far.shutdown().await.unwrap();
            let mut answer = Vec::new();
            io.read_to_end(&mut answer).await.unwrap();
            Ok::<_, h2::Error>((nothing_yet, got, answer))
        });
        let (nothing_yet, got, answer) = served.await.unwrap();
        assert!(nothing_yet, "a flush within the turn writes nothing");
        assert_eq!(got, b"frame one, frame two");
        assert_eq!(answer, b"bye", "reads go straight through");
    }

    #[tokio::test]
    async fn a_lent_payload_goes_out_uncopied_in_order_with_the_small_writes() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let payload = Bytes::from((0..3 * LENT_MIN_BYTES).map(|index| index as u8).collect::<Vec<_>>());
        let sent = payload.clone();
        let served = serve_batched(near, |mut io, lent| async move {
            lent.lend(&sent);
            let (front, back) = sent.split_at(LENT_MIN_BYTES);
            io.write_all(b"head").await.unwrap();
            io.write_all(front).await.unwrap();
            let kept_until_its_end = lent.lock().payloads.len();
            io.write_all(b"middle").await.unwrap();
            io.write_all(back).await.unwrap();
            let forgotten_at_its_end = lent.lock().payloads.is_empty();
            // The same bytes elsewhere, never lent, are copied as before.
            let never_lent = back.to_vec();
            io.write_all(&never_lent).await.unwrap();
            io.flush().await.unwrap();
            Ok::<_, h2::Error>((kept_until_its_end, forgotten_at_its_end))
        });
        let (kept_until_its_end, forgotten_at_its_end) = served.await.unwrap();
        assert_eq!(kept_until_its_end, 1, "the payload is shared until h2 takes its last byte");
        assert!(forgotten_at_its_end, "a payload taken to its end is forgotten");
        let mut got = vec![0; 4 + payload.len() + 6 + 2 * LENT_MIN_BYTES];
        far.read_exact(&mut got).await.unwrap();
        let mut wanted = b"head".to_vec();
        wanted.extend_from_slice(&payload[..LENT_MIN_BYTES]);
        wanted.extend_from_slice(b"middle");
        wanted.extend_from_slice(&payload[LENT_MIN_BYTES..]);
        wanted.extend_from_slice(&payload[LENT_MIN_BYTES..]);
        assert_eq!(got, wanted, "shared and copied writes arrive in the order they were made");
    }

    #[tokio::test]
    async fn a_lent_payload_left_unsent_for_a_whole_turn_is_let_go() {
        let (near, _far) = tokio::io::duplex(1 << 16);
        let payload = Bytes::from(vec![1u8; LENT_MIN_BYTES]);
        let sent = payload.clone();
        let served = serve_batched(near, |_io, lent| async move {
            lent.lend(&sent);
            drop(sent);
            tokio::task::yield_now().await;
            let kept_through_the_turn_it_was_lent_in = lent.lock().payloads.len();
            tokio::task::yield_now().await;
            let after_a_turn_unused = lent.lock().payloads.len();
            Ok::<_, h2::Error>((kept_through_the_turn_it_was_lent_in, after_a_turn_unused))
        });
        assert_eq!(served.await.unwrap(), (1, 0));
        assert!(payload.is_unique(), "nothing holds the payload once it is let go");
    }

    #[tokio::test]
    async fn a_slow_reader_holds_writes_back_at_the_high_water_mark() {
        let (near, mut far) = tokio::io::duplex(1 << 10);
        let chunk = vec![7u8; 64 << 10];
        let wanted = HIGH_WATER_BYTES * 3;
        let served = serve_batched(near, |mut io, _| async move {
            let mut sent = 0;
            while sent < wanted {
                io.write_all(&chunk).await.unwrap();
                sent += chunk.len();
            }
            io.shutdown().await.unwrap();
            Ok::<_, h2::Error>(sent)
        });
        let reader = async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.unwrap();
            all.len()
        };
        let (sent, read) = tokio::join!(served, reader);
        assert_eq!(sent.unwrap(), wanted);
        assert_eq!(read, wanted, "every byte arrives, in order of writing");
    }

    #[tokio::test]
    async fn a_failed_write_ends_the_connection_with_the_error() {
        let (near, far) = tokio::io::duplex(1 << 10);
        drop(far);
        let served = serve_batched(near, |mut io, _| async move {
            io.write_all(b"into the void").await.unwrap();
            io.flush().await.unwrap();
            // The turn ends; its write fails, and the next read reports it.
            tokio::task::yield_now().await;
            let mut byte = [0u8; 1];
            let read = io.read(&mut byte).await;
            Ok::<_, h2::Error>(read.map_err(|error| error.kind()))
        });
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), served).await.expect("no hang");
        assert_eq!(read.unwrap(), Err(io::ErrorKind::BrokenPipe));
    }
}

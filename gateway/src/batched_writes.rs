//! One write per turn of an HTTP/2 connection's task, not one per frame.
//!
//! h2 writes a DATA frame and flushes before it takes the next one, so a
//! 550 KB answer to a client that accepts 16 KiB frames (h2load, grpc-go,
//! most clients) went out in 35 system calls, each waking the client for a
//! part of its answer. nginx writes such an answer in a few. Here h2's
//! writes land in a buffer and its flushes do nothing; the connection's
//! task writes the buffer out in one go once a turn has done what it could
//! ([`serve_batched`]). A buffer past [`HIGH_WATER_BYTES`] makes h2 wait for
//! the socket, as the socket itself did, so a slow reader still holds h2 back.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much a connection may hold unwritten before h2's writes wait.
pub const HIGH_WATER_BYTES: usize = 1 << 20;

/// The socket as h2 sees it: reads go straight through, writes are held
/// until the turn ends.
pub struct BatchedWrites<T>(Arc<Mutex<Batch<T>>>);

struct Batch<T> {
    io: T,
    unwritten: BytesMut,
    /// A failed write, reported to h2 at its next read or write.
    failed: Option<io::ErrorKind>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> BatchedWrites<T> {
    fn lock(&self) -> MutexGuard<'_, Batch<T>> {
        // Only the connection's own task touches it; a poisoned lock means
        // that task panicked, and nothing is left to protect.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs `serve` (a connection's whole life, h2 handshake included) over
/// `io`, writing what each turn of the task buffered at the end of the
/// turn.
pub async fn serve_batched<T, F, Fut, R>(io: T, serve: F) -> Result<R, h2::Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(BatchedWrites<T>) -> Fut,
    Fut: Future<Output = Result<R, h2::Error>>,
{
    let shared = Arc::new(Mutex::new(Batch { io, unwritten: BytesMut::new(), failed: None }));
    let handle = BatchedWrites(shared.clone());
    let mut served = pin!(serve(BatchedWrites(shared)));
    std::future::poll_fn(|cx| {
        let turn = served.as_mut().poll(cx);
        // Pending writes are picked up again when the socket can take more.
        let mut batch = handle.lock();
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
        while !self.unwritten.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.unwritten))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unwritten.advance(written);
        }
        Poll::Ready(Ok(()))
    }

    fn check(&self) -> io::Result<()> {
        self.failed.map_or(Ok(()), |kind| Err(kind.into()))
    }

    /// Room for more, or `Pending` until the socket takes some of what waits.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        if self.unwritten.len() >= HIGH_WATER_BYTES {
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
        batch.unwritten.extend_from_slice(buf);
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
            batch.unwritten.extend_from_slice(buf);
            taken += buf.len();
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing yet: the turn's end writes the buffer out.
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
        let served = serve_batched(near, |mut io| async move {
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
    async fn a_slow_reader_holds_writes_back_at_the_high_water_mark() {
        let (near, mut far) = tokio::io::duplex(1 << 10);
        let chunk = vec![7u8; 64 << 10];
        let wanted = HIGH_WATER_BYTES * 3;
        let served = serve_batched(near, |mut io| async move {
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
        let served = serve_batched(near, |mut io| async move {
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

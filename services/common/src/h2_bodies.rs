//! HTTP/2 streams of the `h2` crate as `http_body` bodies, both ways: what
//! arrives on a stream, as a body ([`RecvBody`]), and a body sent onto a
//! stream as the peer's flow-control window allows ([`send_body`]), for
//! the gateway's calls to its backends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tonic::body::Body;

/// What arrives on a stream, trailers last; what is read is given back to
/// the flow-control window at once.
pub struct RecvBody {
    stream: h2::RecvStream,
    data_done: bool,
}

impl RecvBody {
    pub fn new(stream: h2::RecvStream) -> Self {
        Self { stream, data_done: false }
    }
}

impl HttpBody for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.stream.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => self.data_done = true,
            }
        }
        Poll::Ready(match ready!(self.stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_end_stream()
    }
}

/// How sending a body onto a stream ended early.
#[derive(Debug)]
pub enum SendError {
    /// The body failed; the stream was reset with the reason given.
    Body(tonic::Status),
    /// The peer reset the stream or the connection closed.
    Stream(h2::Error),
}

/// Sends `body` onto `sending`, frame by frame, each data frame as the
/// peer's window opens, ending the stream with the body's trailers, its
/// last data or an empty data frame. A body that fails resets the stream
/// with `failed` (what the peer reads of it: CANCEL for a request whose
/// caller went away, INTERNAL_ERROR for an answer that broke off). A peer
/// that resets the stream while the body has nothing to send (a quiet
/// subscription) ends it at once, dropping the body, rather than at its
/// next message.
pub async fn send_body(body: Body, mut sending: h2::SendStream<Bytes>, failed: h2::Reason) -> Result<(), SendError> {
    let mut body = std::pin::pin!(body);
    loop {
        let frame = std::future::poll_fn(|cx| {
            if let Poll::Ready(reset) = sending.poll_reset(cx) {
                return Poll::Ready(Err(SendError::Stream(reset.map_or_else(|error| error, h2::Error::from))));
            }
            body.as_mut().poll_frame(cx).map(Ok)
        })
        .await?;
        let frame = match frame {
            None => return sending.send_data(Bytes::new(), true).map_err(SendError::Stream),
            Some(Err(status)) => {
                sending.send_reset(failed);
                return Err(SendError::Body(status));
            }
            Some(Ok(frame)) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                let Ok(trailers) = frame.into_trailers() else { continue };
                return sending.send_trailers(trailers).map_err(SendError::Stream);
            }
        };
        // A body that knows it is done ends the stream with its last data.
        let last = body.is_end_stream();
        if data.is_empty() {
            match last {
                true => return sending.send_data(data, true).map_err(SendError::Stream),
                false => continue,
            }
        }
        while !data.is_empty() {
            sending.reserve_capacity(data.len());
            let granted = match std::future::poll_fn(|cx| sending.poll_capacity(cx)).await {
                Some(Ok(granted)) => granted.min(data.len()),
                Some(Err(error)) => return Err(SendError::Stream(error)),
                None => return Err(SendError::Stream(h2::Error::from(h2::Reason::CANCEL))),
            };
            if granted > 0 {
                let chunk = data.split_to(granted);
                sending.send_data(chunk, last && data.is_empty()).map_err(SendError::Stream)?;
            }
        }
        if last {
            return Ok(());
        }
    }
}

//! HTTP/2 connections, served on the `h2` crate directly rather than
//! through hyper's server. A connection's calls run as futures in the
//! connection's own task, so each step of a call wakes that one task rather
//! than handing over between a task per call and the connection's. Measured
//! (BENCHMARKS.md): less CPU per call than hyper's server, and no change in
//! latency at 1 in flight on its own. What hyper's server did besides is
//! here: windows and header limits, keep-alive pings, graceful shutdown,
//! a call dropped when its client resets it, `content-length` and `date`
//! on answers that know them. Unlike hyper's server, the frames a turn of
//! the connection's task produces go out in one write
//! ([`crate::batched_writes`]).

pub mod frame;
pub mod hpack;

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use tonic::body::Body;
use tower::ServiceExt;
use wizdata_common::connections::{CONNECTION_WINDOW_BYTES, Connection, STREAM_WINDOW_BYTES};
use wizdata_common::grpc::GRPC_STATUS;
use wizdata_common::h2_bodies::{RecvBody, send_body};

use crate::batched_writes::{Lent, serve_batched};

/// The client preface that opens every HTTP/2 connection with prior
/// knowledge (as gRPC clients, h2load and `curl --http2-prior-knowledge` do).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How every HTTP/2 connection is served.
#[derive(Clone, Copy, Debug)]
pub struct Http2Settings {
    /// Larger header blocks are refused (431).
    pub max_header_list_size: u32,
    /// A connection is pinged this often, and closed when a ping goes
    /// unanswered as long: a client that vanished without closing.
    pub keep_alive: Duration,
}

/// Serves one connection until the client closes it, a ping goes
/// unanswered, or `stopping` turns true (then its calls finish first).
pub async fn serve_connection<S, F>(
    io: Connection,
    settings: Http2Settings,
    service: S,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), h2::Error>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = F>
        + Clone
        + Send
        + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    // Frames go out in one write per turn of this task (BENCHMARKS.md: large answers).
    serve_batched(io, |io, lent| async move {
        let mut connection = h2::server::Builder::new()
            .initial_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_concurrent_streams(1024)
            .max_header_list_size(settings.max_header_list_size)
            .handshake(io)
            .await?;
        let mut keep_alive = pin!(keep_alive(connection.ping_pong(), settings.keep_alive));
        // The connection's calls run in its own task: a call's steps then wake
        // this one task instead of handing over between a task per call and the
        // connection's (hyper's way), which is a wake-up, and often another
        // thread, at each step.
        let mut calls = FuturesUnordered::new();
        // Made once: a future made per turn of the loop registers with the
        // channel again at every wake-up.
        let mut stop = pin!(stopping.changed());
        let mut closing = false;
        loop {
            tokio::select! {
                call = connection.accept() => match call {
                    Some(Ok((request, respond))) => calls.push(answer(service.clone(), request, respond, lent.clone())),
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                },
                Some(()) = calls.next(), if !calls.is_empty() => {}
                _ = &mut stop, if !closing => {
                    connection.graceful_shutdown();
                    closing = true;
                }
                () = &mut keep_alive => {
                    tracing::debug!("an HTTP/2 client answered no ping; closing its connection");
                    return Ok(());
                }
            }
        }
    })
    .await
}

/// Resolves when a ping goes unanswered for `interval`; pings every
/// `interval` until then.
async fn keep_alive(ping_pong: Option<h2::PingPong>, interval: Duration) {
    let Some(mut ping_pong) = ping_pong else { return std::future::pending().await };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(interval, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => continue,
            _ => return,
        }
    }
}

/// One call: the service's answer, written onto the stream. A client that
/// resets the stream first drops the call (and so its backend call).
async fn answer<S>(
    service: S,
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    lent: Lent,
) where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    // An answer to HEAD has headers only, whatever its body would be.
    let head = request.method() == http::Method::HEAD;
    let request = request.map(|stream| Body::new(RecvBody::new(stream)));
    let response = {
        let mut call = pin!(service.oneshot(request));
        poll_fn(|cx| {
            if let Poll::Ready(Ok(response)) = call.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            respond.poll_reset(cx).map(|_| None)
        })
        .await
    };
    let Some(response) = response else { return };
    let (mut parts, body) = response.into_parts();
    let ends = head || body.is_end_stream();
    if let Some(length) = body.size_hint().exact()
        && !parts.headers.contains_key(header::CONTENT_LENGTH)
        && length > 0
    {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if !parts.headers.contains_key(GRPC_STATUS) && !is_grpc(&parts.headers) {
        parts.headers.insert(header::DATE, date_now());
    }
    let sending = match respond.send_response(Response::from_parts(parts, ()), ends) {
        Ok(sending) => sending,
        Err(error) => return tracing::debug!(%error, "an answer's headers could not be sent"),
    };
    // Large data goes out from the buffers it arrived in, not copied into the connection's writes.
    let body = body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            lent.lend(data);
        }
        frame
    });
    if !ends && let Err(error) = send_body(body, sending, h2::Reason::INTERNAL_ERROR).await {
        tracing::debug!(?error, "an answer broke off");
    }
}

/// gRPC answers carry no `date`: gRPC clients read none, and nginx's
/// `grpc_pass` sends the backend's headers as they are.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

fn date_now() -> HeaderValue {
    HeaderValue::try_from(httpdate::fmt_http_date(std::time::SystemTime::now()))
        .expect("an HTTP date is a valid header value")
}

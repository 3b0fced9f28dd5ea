//! Reading gRPC off HTTP: which RPC a path names and which status an answer
//! carries. One reading for the call span, the metrics layer and the gateway.
//! And answers encoded before they are sent ([`Encoded`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use futures_util::future::BoxFuture;
use prost::encoding::{DecodeContext, WireType};
use tonic::Status;
use tonic::body::Body;

// Header names looked up on every call, parsed once: a lookup by text
// parses and checks the name each time.
pub const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The service and method a gRPC request path names (`/pkg.Service/Method`).
pub fn rpc_of(path: &str) -> Option<(&str, &str)> {
    path.trim_start_matches('/').split_once('/')
}

/// The status code an answer carries in `headers`: its headers when it is
/// trailers-only, else its trailers.
pub fn grpc_status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let code = headers.get(GRPC_STATUS)?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(code))
}

/// Marks a header value that differs on every call (an id, a deadline, a
/// count), so HTTP/2 sends it as a literal instead of adding it to the
/// connection's header table: there it would never be matched again, would
/// push out entries that do repeat, and every later value of that name
/// would be compared with it.
pub fn per_call(mut value: http::HeaderValue) -> http::HeaderValue {
    value.set_sensitive(true);
    value
}

/// A response body that keeps what its call holds (an endpoint lease, a
/// stream slot, the connection's call mark) until it is dropped. Held by
/// type rather than boxed: a box each is an allocation per call.
pub struct HoldingBody<H> {
    body: Body,
    _held: H,
}

impl<H: Send + Unpin + 'static> HoldingBody<H> {
    /// `body` as one body type, holding `held` until it is dropped.
    pub fn wrap(body: Body, held: H) -> Body {
        Body::new(Self { body, _held: held })
    }
}

impl<H: Unpin> http_body::Body for HoldingBody<H> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Ends CANCELLED a call whose caller left before its request message
/// arrived. tonic reads a request body its caller reset (RST_STREAM
/// CANCEL) as one that ended cleanly, so such a call would end INTERNAL
/// ("Missing request message."), and one whose caller's connection closed
/// mid-request as UNKNOWN (an h2 error without a reason): counted and
/// logged as the server's failure although the caller had left. A gateway
/// whose client hangs up just after its call was forwarded does the first
/// (BENCHMARKS.md); a load generator ending its run, the second.
#[derive(Clone, Copy, Debug, Default)]
pub struct CancelledRequests;

impl<S> tower::Layer<S> for CancelledRequests {
    type Service = NoticeCancelledRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NoticeCancelledRequests { inner }
    }
}

#[derive(Clone, Debug)]
pub struct NoticeCancelledRequests<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for NoticeCancelledRequests<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // A request body fails only when the caller's side of the stream
        // broke: it reset the stream, or its connection closed.
        let body_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let noted = body_failed.clone();
        let note_failure = move |status: Status| {
            noted.store(true, std::sync::atomic::Ordering::Relaxed);
            status
        };
        let answer =
            self.inner.call(request.map(|body| Body::new(http_body_util::BodyExt::map_err(body, note_failure))));
        Box::pin(async move {
            let response = answer.await?;
            if body_failed.load(std::sync::atomic::Ordering::Relaxed)
                && matches!(grpc_status_in(response.headers()), Some(tonic::Code::Internal | tonic::Code::Unknown))
            {
                return Ok(Status::cancelled("the caller left before its request arrived").into_http());
            }
            Ok(response)
        })
    }
}

/// A response message already encoded, written as it is: the gRPC codec
/// sends it like any message, without encoding it again. An answer made of
/// parts encoded once and shared (a fanned-out event, cached indicator
/// results) is sent this way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded(pub Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buffer: &mut impl BufMut) {
        buffer.put_slice(&self.0);
    }

    /// Only ever sent, never received: whatever arrives is skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buffer: &mut impl Buf,
        context: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buffer, context)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// The message an answer encoded ahead holds: for a generated server's
/// method that [`EncodedRoutes`] answers with the bytes instead.
pub fn decode_answer<M: prost::Message + Default>(answer: Bytes) -> Result<M, Status> {
    M::decode(answer).map_err(|_| Status::internal("an answer could not be read back"))
}

/// The largest request and response messages a server takes; `None` for
/// tonic's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageLimits {
    pub max_request_bytes: Option<usize>,
    pub max_response_bytes: Option<usize>,
}

impl MessageLimits {
    /// The gRPC machinery for one call that answers with [`Encoded`]
    /// messages, within these limits.
    pub fn grpc<Request: prost::Message + Default + 'static>(
        self,
    ) -> tonic::server::Grpc<tonic_prost::ProstCodec<Encoded, Request>> {
        tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
            .apply_max_message_size_config(self.max_request_bytes, self.max_response_bytes)
    }
}

/// The methods a service answers with messages it encoded ahead (parts
/// encoded once and shared), in front of its generated server.
pub trait EncodedMethods: Clone + Send + 'static {
    /// `request` answered, or given back when its path is not one of these
    /// methods (the generated server then answers it).
    #[allow(clippy::result_large_err, reason = "the request goes back as it came, not boxed, to the generated server")]
    fn answer(
        &self,
        request: http::Request<Body>,
        limits: MessageLimits,
    ) -> Result<BoxFuture<'static, http::Response<Body>>, http::Request<Body>>;
}

/// A service as the server mounts it: its [`EncodedMethods`], and its
/// generated server for every other method, both within the same message
/// limits.
#[derive(Clone)]
pub struct EncodedRoutes<Methods, Generated> {
    methods: Methods,
    generated: Generated,
    limits: MessageLimits,
}

impl<Methods, Generated> EncodedRoutes<Methods, Generated> {
    pub fn new(methods: Methods, generated: Generated) -> Self {
        Self { methods, generated, limits: MessageLimits::default() }
    }

    /// The largest request and response messages: `limit_generated` sets
    /// them on the generated server as its own builder does.
    pub fn with_limits(
        self,
        max_request_bytes: usize,
        max_response_bytes: usize,
        limit_generated: impl FnOnce(Generated) -> Generated,
    ) -> Self {
        Self {
            generated: limit_generated(self.generated),
            limits: MessageLimits {
                max_request_bytes: Some(max_request_bytes),
                max_response_bytes: Some(max_response_bytes),
            },
            methods: self.methods,
        }
    }
}

impl<Methods, Generated: tonic::server::NamedService> tonic::server::NamedService
    for EncodedRoutes<Methods, Generated>
{
    const NAME: &'static str = Generated::NAME;
}

impl<Methods, Generated> tower::Service<http::Request<Body>> for EncodedRoutes<Methods, Generated>
where
    Methods: EncodedMethods,
    Generated: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    Generated::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.methods.answer(request, self.limits) {
            Ok(answer) => Box::pin(async move { Ok(answer.await) }),
            Err(request) => Box::pin(self.generated.call(request)),
        }
    }
}

/// Answers a unary call with `handler`'s answer, already encoded, within
/// `limits`.
pub async fn serve_encoded_unary<Request, Handler, Answer>(
    request: http::Request<Body>,
    limits: MessageLimits,
    handler: Handler,
) -> http::Response<Body>
where
    Request: prost::Message + Default + Send + 'static,
    Handler: FnMut(tonic::Request<Request>) -> Answer + Send,
    Answer: Future<Output = Result<tonic::Response<Encoded>, Status>> + Send + 'static,
{
    limits.grpc::<Request>().unary(EncodedUnary(handler), request).await
}

/// A unary method whose handler answers encoded.
struct EncodedUnary<Handler>(Handler);

impl<Request, Handler, Answer> tonic::server::UnaryService<Request> for EncodedUnary<Handler>
where
    Handler: FnMut(tonic::Request<Request>) -> Answer,
    Answer: Future<Output = Result<tonic::Response<Encoded>, Status>> + Send + 'static,
{
    type Response = Encoded;
    type Future = Answer;

    fn call(&mut self, request: tonic::Request<Request>) -> Answer {
        (self.0)(request)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;

    /// A caller that left mid-request: its body fails as tonic reads it,
    /// and the answer tonic makes of that is the caller's cancelling, not
    /// the server's failure. Any other answer, or one to a body that did
    /// not fail, stays as it was.
    #[tokio::test]
    async fn a_call_whose_caller_left_before_its_request_arrived_ends_cancelled() {
        use tower::{Layer, ServiceExt};
        let answer = |body_error: Option<Status>, answered: tonic::Code| async move {
            // As tonic's handlers do: read the request, then answer.
            let service = tower::service_fn(move |request: http::Request<Body>| async move {
                let _ = request.into_body().collect().await;
                Ok::<_, Infallible>(Status::new(answered, "as tonic would answer").into_http())
            });
            let body = match body_error {
                Some(error) => {
                    let failing = futures_util::stream::iter([Err::<http_body::Frame<Bytes>, _>(error)]);
                    Body::new(http_body_util::StreamBody::new(failing))
                }
                None => Body::new(http_body_util::Full::new(Bytes::from_static(b"\0\0\0\0\0"))),
            };
            let response = CancelledRequests.layer(service).oneshot(http::Request::new(body)).await.unwrap();
            grpc_status_in(response.headers())
        };
        let reset = || Some(Status::cancelled("h2 protocol error: stream reset (CANCEL)"));
        let closed = || Some(Status::unknown("h2 protocol error: connection closed"));
        assert_eq!(answer(reset(), tonic::Code::Internal).await, Some(tonic::Code::Cancelled), "reset");
        assert_eq!(answer(closed(), tonic::Code::Unknown).await, Some(tonic::Code::Cancelled), "connection closed");
        assert_eq!(answer(closed(), tonic::Code::NotFound).await, Some(tonic::Code::NotFound), "the service's own");
        assert_eq!(answer(None, tonic::Code::Ok).await, Some(tonic::Code::Ok));
        assert_eq!(answer(None, tonic::Code::Internal).await, Some(tonic::Code::Internal), "the server's own failure");
        assert_eq!(answer(None, tonic::Code::Unknown).await, Some(tonic::Code::Unknown));
    }

    #[tokio::test]
    async fn a_holding_body_passes_its_frames_on_and_holds_until_it_is_dropped() {
        let held = Arc::new(());
        let answer = Body::new(http_body_util::Full::new(Bytes::from_static(b"answer")));
        let mut body = HoldingBody::wrap(answer, held.clone());
        let frame = body.frame().await.expect("a frame").expect("no error");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"answer")));
        assert!(body.frame().await.is_none());
        assert_eq!(Arc::strong_count(&held), 2, "held while the body lives, even once read");
        drop(body);
        assert_eq!(Arc::strong_count(&held), 1, "let go with the body");
    }
}

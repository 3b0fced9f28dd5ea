//! Forwards one gRPC call (native, or gRPC-Web already translated by
//! tonic-web) to its backend: who is calling, whether their rate limit
//! allows it, whether the request is well framed, then the call itself with
//! a deadline, retries of reads, and the rate-limit headers on the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::retry::Policy;
use tower::retry::budget::{Budget, TpsBudget};
use wizdata_common::auth::Caller;
use wizdata_common::auth::verifier::Verifier;
use wizdata_common::deadline::{GRPC_TIMEOUT, grpc_timeout_in, grpc_timeout_value};
use wizdata_common::error::{ApiError, ErrorCode};
use wizdata_common::grpc::{GRPC_STATUS, HoldingBody, grpc_status_in, per_call, rpc_of};
use wizdata_common::subjects::{StreamSlot, StreamSlots, anonymous_subject, subject_key};

use crate::backend::{Backend, BackendError, Lease, Payload};
use crate::frames::{self, CheckedFrames};
use crate::ratelimit::{Decision, RateLimiter};
use crate::routes::{Method, Methods};

/// The ErrorInfo domain of the gateway's own refusals.
pub const ERROR_DOMAIN: &str = "gateway.wizdata";

/// The client's address, put in each request by the connection that
/// received it; anonymous callers are limited by it. What every call of the
/// connection derives from it (the anonymous subject key, `x-forwarded-for`)
/// is formatted once, when the connection opens, not per call.
#[derive(Clone, Debug)]
pub struct ClientAddr(Arc<ClientDerived>);

#[derive(Debug)]
struct ClientDerived {
    anonymous_subject: String,
    forwarded_for: Option<HeaderValue>,
}

impl ClientAddr {
    pub fn new(addr: SocketAddr) -> Self {
        Self(Arc::new(ClientDerived {
            anonymous_subject: anonymous_subject(Some(addr.ip())),
            forwarded_for: HeaderValue::try_from(addr.ip().to_string()).ok(),
        }))
    }

    /// The key of anonymous callers from this client.
    fn anonymous_subject(&self) -> String {
        self.0.anonymous_subject.clone()
    }
}

/// Limits the proxy applies to every call.
#[derive(Clone, Debug)]
pub struct CallLimits {
    pub max_message_bytes: usize,
    pub max_deadline: Duration,
    pub retries: u32,
    pub client_timeout: Duration,
    pub max_streams_per_subject: usize,
}

#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    methods: &'static Methods,
    backends: foldhash::HashMap<&'static str, Arc<Backend>>,
    verifier: Verifier,
    limiter: RateLimiter,
    streams: StreamSlots,
    retry_budget: TpsBudget,
    limits: CallLimits,
}

impl Proxy {
    pub fn new(
        backends: foldhash::HashMap<&'static str, Arc<Backend>>,
        verifier: Verifier,
        limiter: RateLimiter,
        limits: CallLimits,
        retry_budget_percent: f32,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                methods: Methods::contract(),
                backends,
                verifier,
                limiter,
                streams: StreamSlots::new(limits.max_streams_per_subject),
                // Retries may add this share of the calls sent over the last
                // ten seconds, with a floor so a quiet gateway can still retry.
                retry_budget: TpsBudget::new(Duration::from_secs(10), 10, retry_budget_percent / 100.0),
                limits,
            }),
        }
    }

    /// One call through the pipeline; a step's refusal becomes the answer,
    /// with the rate-limit headers once a decision was made. Awaited in the
    /// gateway's own service rather than behind a `Service` of its own,
    /// whose future would be one more allocation per call.
    pub async fn handle(&self, request: Request<Body>, client: Option<ClientAddr>) -> Response<Body> {
        let mut decision = None;
        let answer = self.admit_and_forward(request, client, &mut decision).await;
        let response = answer.unwrap_or_else(|refusal| status_response(refusal.into_status()));
        match decision {
            Some(decision) => with_rate_limit_headers(response, &decision),
            None => response,
        }
    }

    /// The steps every call takes, in order; each may refuse it.
    async fn admit_and_forward(
        &self,
        request: Request<Body>,
        client: Option<ClientAddr>,
        decision: &mut Option<Decision>,
    ) -> Result<Response<Body>, Refusal> {
        let inner = &self.inner;
        // Route: the contract names the RPC and its service; a backend serves it.
        let path = request.uri().path();
        let method = inner.methods.get(path).ok_or_else(|| Refusal::UnknownPath(path.to_owned()))?;
        let backend = inner.backends.get(method.service).cloned().ok_or(Refusal::NotRouted(method.service))?;
        // Identify: a token passes, an API key is exchanged once, else anonymous.
        let caller = inner.verifier.authenticate(request.headers()).await.map_err(Refusal::Credentials)?;
        let subject = subject_key(&caller, || {
            client.as_ref().map_or_else(|| anonymous_subject(None), ClientAddr::anonymous_subject)
        });
        // Rate limit: the tier's and the per-service limit, at once.
        let checked = *decision.insert(inner.limiter.check(&subject, caller.tier, method.service).await);
        if !checked.allowed {
            return Err(Refusal::RateLimited(subject, checked));
        }
        // Stream slot: each subject holds a bounded number of streams open.
        let slot = if method.streams() {
            let too_many = || Refusal::TooManyStreams(subject.clone(), inner.streams.max());
            Some(inner.streams.acquire(&subject).ok_or_else(too_many)?)
        } else {
            None
        };
        // Breaker: a backend that keeps failing gets no calls for a moment.
        if !backend.breaker.allows() {
            crate::metrics::breaker_rejection(backend.service);
            return Err(Refusal::CircuitOpen(backend.service, backend.breaker.retry_after()));
        }
        self.forward(request, method, &backend, &caller, client.as_ref(), slot).await
    }

    /// Sends the call to `backend`: a streamed request frame by frame; a
    /// single message checked whole first, and sent again (for reads) when
    /// an attempt fails UNAVAILABLE and the deadline and retry budget allow.
    async fn forward(
        &self,
        request: Request<Body>,
        method: &Method,
        backend: &Backend,
        caller: &Caller,
        client: Option<&ClientAddr>,
        slot: Option<StreamSlot>,
    ) -> Result<Response<Body>, Refusal> {
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let has_encoding = parts.headers.contains_key(GRPC_ENCODING);
        // Deadline: the caller's, capped for unary calls, passed on.
        let deadline = Deadline::of(&parts.headers, method, inner.limits.max_deadline);
        let headers = forwarded_headers(parts.headers, caller, client, deadline);
        let whole = !method.server_streaming;

        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        if method.client_streaming {
            let lease = self.pick(backend).await?;
            let body = Body::new(CheckedFrames::new(body, inner.limits.max_message_bytes, has_encoding));
            let attempt = call(&lease, &path, &headers, Payload::Stream(body), deadline, whole).await;
            return settle(backend, attempt, (lease, slot));
        }

        // Body check: exactly one well-framed message within the size limit.
        let limits = &inner.limits;
        let mut message = read_single_message(body, limits.max_message_bytes, has_encoding, limits.client_timeout)
            .await
            .map_err(Refusal::BadRequest)?;
        inner.retry_budget.deposit();
        let retries = if method.retryable { limits.retries } else { 0 };
        let mut policy = RetryReads { retries_left: retries, budget: &inner.retry_budget, backend, deadline };
        // Retry: reads that failed UNAVAILABLE, within the budget and the deadline. The
        // policy is driven here rather than by tower's `Retry` service, whose futures
        // would wrap the attempt's in two more state machines on every call.
        loop {
            let sent = policy.clone_request(&message).expect("a message can always be sent again");
            let mut result = async {
                let lease = self.pick(backend).await?;
                let attempt = call(&lease, &path, &headers, Payload::Message(sent), deadline, whole).await;
                Ok::<_, Refusal>((lease, attempt))
            }
            .await;
            match policy.retry(&mut message, &mut result) {
                Some(backoff) => backoff.await,
                None => {
                    let (lease, attempt) = result?;
                    return settle(backend, attempt, (lease, slot));
                }
            }
        }
    }

    async fn pick(&self, backend: &Backend) -> Result<Lease, Refusal> {
        backend.pool.pick_discovered().await.ok_or_else(|| {
            crate::metrics::no_healthy_endpoint(backend.service);
            Refusal::NoHealthyEndpoint(backend.pool.unavailable_reason())
        })
    }
}

/// Records the attempt's outcome with the backend's breaker and turns it
/// into the answer, holding the endpoint lease and the stream slot (if
/// any) until its body is done.
fn settle(backend: &Backend, attempt: Attempt, held: (Lease, Option<StreamSlot>)) -> Result<Response<Body>, Refusal> {
    match attempt {
        Attempt::Answered(response) => {
            backend.breaker.record_success();
            Ok(response.map(|body| HoldingBody::wrap(body, held)))
        }
        Attempt::Unavailable(response) => {
            if backend.breaker.record_failure() {
                tracing::warn!(service = backend.service, "backend keeps failing; its circuit is open");
            }
            Ok(response)
        }
        Attempt::Unusable(response) => Ok(response),
        // Not a failure of the backend: the caller's deadline may have
        // been too short for anyone (and must not open the circuit for all).
        Attempt::TimedOut => Err(Refusal::TimedOut(backend.service)),
    }
}

/// Sends a read again after UNAVAILABLE while retries, the retry budget and
/// the call's deadline allow; each failed attempt counts with the breaker.
#[derive(Clone)]
struct RetryReads<'a> {
    retries_left: u32,
    budget: &'a TpsBudget,
    backend: &'a Backend,
    deadline: Deadline,
}

impl Policy<Bytes, (Lease, Attempt), Refusal> for RetryReads<'_> {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _: &mut Bytes, result: &mut Result<(Lease, Attempt), Refusal>) -> Option<Self::Future> {
        let Ok((_, Attempt::Unavailable(_))) = result else { return None };
        if self.retries_left == 0 || self.deadline.has_passed() {
            return None;
        }
        self.backend.breaker.record_failure();
        let sent = self.budget.withdraw();
        crate::metrics::retry(sent);
        if !sent {
            return None;
        }
        self.retries_left -= 1;
        tracing::debug!(service = self.backend.service, "retrying a read that failed UNAVAILABLE");
        Some(std::future::ready(()))
    }

    fn clone_request(&mut self, message: &Bytes) -> Option<Bytes> {
        Some(message.clone())
    }
}

/// Why the gateway answers a call itself. Each step of the pipeline refuses
/// with one of these; [`Refusal::into_status`] is the one place that turns
/// them into what the caller reads.
#[derive(Debug)]
enum Refusal {
    /// The path names no RPC of the contract.
    UnknownPath(String),
    /// The RPC's service has no backend at this gateway.
    NotRouted(&'static str),
    /// The credentials were bad, or could not be checked.
    Credentials(ApiError),
    /// The subject's limit is reached.
    RateLimited(String, Decision),
    /// The subject holds as many streams open as it may.
    TooManyStreams(String, usize),
    /// The backend's circuit is open, for about this long.
    CircuitOpen(&'static str, Duration),
    /// No endpoint of the backend can take the call, for this reason.
    NoHealthyEndpoint(String),
    /// The request body was malformed, too large or too slow to arrive.
    BadRequest(Status),
    /// The backend did not answer within the call's deadline.
    TimedOut(&'static str),
}

impl Refusal {
    fn into_status(self) -> Status {
        match self {
            Self::UnknownPath(path) => unknown_path(&path),
            Self::NotRouted(service) => Status::unimplemented(format!("{service} is not routed by this gateway")),
            Self::Credentials(error) => error.into(),
            Self::RateLimited(subject, decision) => rate_limited(&subject, &decision),
            Self::TooManyStreams(subject, max) => too_many_streams(&subject, max),
            Self::CircuitOpen(service, retry_after) => {
                ApiError::unavailable(format!("{service} is failing; the gateway is not sending it calls for a moment"))
                    .with_retry_after(retry_after)
                    .into()
            }
            Self::NoHealthyEndpoint(reason) => {
                ApiError::new(ErrorCode::Unavailable, reason).with_retry_after(Duration::from_secs(1)).into()
            }
            Self::BadRequest(status) => status,
            Self::TimedOut(service) => {
                Status::deadline_exceeded(format!("{service} did not answer within the call's deadline"))
            }
        }
    }
}

/// How one attempt ended.
enum Attempt {
    /// The backend answered (any status but UNAVAILABLE).
    Answered(Response<Body>),
    /// UNAVAILABLE, from the backend or because it could not be reached.
    Unavailable(Response<Body>),
    /// This one answer could not be passed on; nothing is said of the
    /// backend's health.
    Unusable(Response<Body>),
    TimedOut,
}

/// Single-message answers up to this size are read whole before they are
/// passed on; larger ones go on as they arrive (see [`call`]).
const WHOLE_ANSWER_BYTES: usize = 64 * 1024;

/// One attempt. A single-message answer (`whole`) of up to
/// [`WHOLE_ANSWER_BYTES`] is read completely before it is passed on, so the
/// client gets headers, message and trailers in one write instead of one per
/// part as they are polled. A larger one goes on from there as it arrives:
/// holding it whole would make the client's leg wait for the whole
/// backend's leg (BENCHMARKS.md: GetCandles of 10,000 bars added 940 µs,
/// nginx 130 µs).
/// An answer that was trailers-only (its status in the headers, nothing
/// after) stays so, as strict clients (grpc-go, grpc-java) require.
async fn call(
    lease: &Lease,
    path: &PathAndQuery,
    headers: &Arc<HeaderMap>,
    payload: Payload,
    deadline: Deadline,
    whole: bool,
) -> Attempt {
    // A deadline spent before sending (grpc-timeout of a nanosecond, or the
    // time a retry waited) fails now: sent, it would round up to the
    // backend's 1 ms and a fast answer would come back OK.
    if deadline.has_passed() {
        return Attempt::TimedOut;
    }
    let answer = async {
        let response = lease.endpoint().send(path, headers.clone(), payload).await?;
        if !whole {
            return Ok::<_, BackendError>(response);
        }
        let (parts, mut body) = response.into_parts();
        // Kept as the frames arrived: joining them into one buffer would
        // copy the data once more for nothing, since every frame queued
        // here goes out in the same write.
        let mut frames = Vec::with_capacity(2);
        let mut held = 0;
        while held <= WHOLE_ANSWER_BYTES {
            let Some(frame) = body.frame().await else {
                if frames.is_empty() {
                    return Ok(Response::from_parts(parts, Body::empty()));
                }
                let whole = futures_util::stream::iter(frames);
                return Ok(Response::from_parts(parts, Body::new(http_body_util::StreamBody::new(whole))));
            };
            let frame = frame.map_err(BackendError::BrokeOff)?;
            match frame.data_ref() {
                Some(data) if data.is_empty() => continue,
                Some(data) => held += data.len(),
                None => {}
            }
            frames.push(Ok::<_, Status>(frame));
        }
        let answer = futures_util::stream::iter(frames).chain(rest_of_answer(body, deadline));
        Ok(Response::from_parts(parts, Body::new(http_body_util::StreamBody::new(answer))))
    };
    let answered = match deadline.remaining() {
        Some(remaining) => match tokio::time::timeout(remaining, answer).await {
            Ok(answered) => answered,
            Err(_) => return Attempt::TimedOut,
        },
        None => answer.await,
    };
    match answered {
        Ok(response) if grpc_status_in(response.headers()) == Some(Code::Unavailable) => Attempt::Unavailable(response),
        Ok(response) => Attempt::Answered(response),
        Err(error) if error.counts_against_endpoint() => {
            tracing::warn!(%error, "backend unreachable");
            lease.endpoint().unreachable();
            Attempt::Unavailable(status_response(Status::unavailable("the backend could not be reached")))
        }
        Err(error) => {
            tracing::warn!(%error, "a backend answer could not be passed on");
            Attempt::Unusable(status_response(not_passed_on(match error {
                BackendError::BrokeOff(_) => "it broke off",
                _ => "its stream was reset, or its headers were over the gateway's limit",
            })))
        }
    }
}

/// The rest of a large single-message answer, passed on as it arrives. The
/// caller has had the answer's headers already, so a backend that breaks
/// off, or is still sending when the call's deadline passes, ends it with
/// trailers that say so: a status the caller can still read, where a reset
/// would say only that the stream broke.
fn rest_of_answer(body: Body, deadline: Deadline) -> impl Stream<Item = Result<Frame<Bytes>, Status>> + Send {
    let expiry = deadline.at.map(|at| Box::pin(tokio::time::sleep_until(at.into())));
    futures_util::stream::unfold(Some((body, expiry)), |state| async move {
        let (mut body, mut expiry) = state?;
        let expired = async {
            match expiry.as_mut() {
                Some(expiry) => expiry.await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            frame = body.frame() => frame?.map_err(|error| {
                tracing::warn!(%error, "a backend answer broke off after its first part was passed on");
                not_passed_on("it broke off")
            }),
            () = expired => Err(Status::deadline_exceeded("the backend's answer did not end within the call's deadline")),
        };
        match next {
            Ok(frame) => Some((Ok(frame), Some((body, expiry)))),
            Err(status) => {
                let mut trailers = HeaderMap::new();
                if status.add_header(&mut trailers).is_err() {
                    trailers.insert(GRPC_STATUS, HeaderValue::from(Code::Internal as i32));
                }
                Some((Ok(Frame::trailers(trailers)), None))
            }
        }
    })
}

/// What a caller is told of a backend answer the gateway could not pass on,
/// whether it broke off before the caller had any of it or after.
fn not_passed_on(why: &str) -> Status {
    Status::internal(format!("the backend's answer could not be passed on ({why})"))
}

/// Reads a request that carries exactly one message (unary and
/// server-streaming RPCs), so it can be checked whole and sent again.
async fn read_single_message(body: Body, limit: usize, has_encoding: bool, timeout: Duration) -> Result<Bytes, Status> {
    let message = read_whole(body, limit, timeout).await?;
    frames::check_single_message(&message, limit, has_encoding).map_err(|error| error.to_status())?;
    Ok(message)
}

/// Reads a request body whole: at most one message of `limit` bytes and its
/// frame header (or envelope), within `timeout`. Every protocol's single
/// request is read by this one loop.
pub(crate) async fn read_whole(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Status> {
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut buffer = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(body_error)?;
            if let Ok(data) = frame.into_data() {
                if buffer.len() + data.len() > limit + frames::HEADER_BYTES {
                    return Err(frames::FrameError::TooLarge {
                        size: buffer.len() + data.len() - frames::HEADER_BYTES,
                        limit,
                    }
                    .to_status());
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(buffer.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Status::deadline_exceeded(format!("the request body did not arrive within {timeout:?}")))?
}

/// A request body that could not be read: bad base64 from a grpc-web-text
/// client (tonic-web reports it as INTERNAL), or a connection gone.
fn body_error(error: Status) -> Status {
    // tonic-web's decoding errors: the base64 crate's ("Invalid symbol 33,
    // offset 4.", "Invalid padding") or its own ("malformed base64 request").
    let detail = error.message().trim_start_matches("tonic-web: ");
    if detail.contains("base64") || detail.starts_with("Invalid") {
        return Status::invalid_argument(format!("the grpc-web-text request body is not valid base64: {detail}"));
    }
    Status::invalid_argument(format!("the request body could not be read: {detail}"))
}

/// The call's deadline: the caller's `grpc-timeout`, capped for unary calls
/// (which get the cap when they send none). Streams keep what they send.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    fn of(headers: &HeaderMap, method: &Method, cap: Duration) -> Self {
        let asked = grpc_timeout_in(headers);
        let timeout = match method.streams() {
            true => asked,
            false => Some(asked.map_or(cap, |asked| asked.min(cap))),
        };
        Self { at: timeout.map(|timeout| Instant::now() + timeout) }
    }

    fn remaining(&self) -> Option<Duration> {
        self.at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn has_passed(&self) -> bool {
        self.remaining().is_some_and(|left| left.is_zero())
    }
}

// Parsed once: a name built from text is parsed on every call.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// The headers sent to the backend: the caller's, less those that only
/// mean something on the client's connection, with the credential the
/// backend checks cheaply (an API key becomes the token it was exchanged
/// for) and the deadline left. Edited in place, and shared by the call's
/// attempts: building a map per call cost more than the rest of this step.
fn forwarded_headers(
    mut headers: HeaderMap,
    caller: &Caller,
    client: Option<&ClientAddr>,
    deadline: Deadline,
) -> Arc<HeaderMap> {
    // The connection's own headers (Connection, Host and the like) are the
    // HTTP/2 encoder's to leave out, of every block it sends. Removed here:
    // a length the call's body may no longer have, and the API key the
    // caller was identified by. Only those present: a removal hashes its name.
    const NOT_FORWARDED: [HeaderName; 2] = [header::CONTENT_LENGTH, HeaderName::from_static("x-api-key")];
    let mut present = [false; 2];
    for name in headers.keys() {
        if let Some(at) = NOT_FORWARDED.iter().position(|not_forwarded| not_forwarded == name) {
            present[at] = true;
        }
    }
    for (name, present) in NOT_FORWARDED.into_iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    match caller.authorization() {
        Some(authorization) => {
            headers.insert(header::AUTHORIZATION, authorization);
        }
        None => {
            headers.remove(header::AUTHORIZATION);
        }
    }
    if let Some(forwarded_for) = client.and_then(|client| client.0.forwarded_for.clone()) {
        headers.append(X_FORWARDED_FOR, forwarded_for);
    }
    if let Some(remaining) = deadline.remaining() {
        headers.insert(GRPC_TIMEOUT, per_call(grpc_timeout_value(remaining)));
    }
    // The backend's span is a child of this call's span at the gateway.
    wizdata_common::telemetry::inject_trace_context(&mut headers);
    Arc::new(headers)
}

fn unknown_path(path: &str) -> Status {
    let service = rpc_of(path).map_or(path.trim_start_matches('/'), |(service, _)| service);
    let known_service = Methods::contract().services().contains(&service);
    match known_service {
        true => Status::unimplemented(format!("{service} has no method {path:?}")),
        false => Status::unimplemented(format!(
            "unknown service {service:?}; this gateway routes {}",
            Methods::contract().services().join(", ")
        )),
    }
}

fn rate_limited(subject: &str, decision: &Decision) -> Status {
    let retry_after = decision.retry_after;
    ApiError::resource_exhausted(
        format!(
            "rate limit reached ({} calls per {}); retry after {} ms",
            decision.limit,
            match decision.scope {
                "service" => "service per period",
                _ => "period for your tier",
            },
            retry_after.as_millis().max(1)
        ),
        retry_after,
    )
    .with_quota_violation(subject, &format!("{} limit of {} calls", decision.scope, decision.limit))
    .with_error_info(
        "RATE_LIMITED",
        ERROR_DOMAIN,
        [("scope".to_owned(), decision.scope.to_owned()), ("mode".to_owned(), decision.mode.as_str().to_owned())],
    )
    .into()
}

fn too_many_streams(subject: &str, max: usize) -> Status {
    ApiError::resource_exhausted(
        format!("{max} streaming calls are already open for this caller; close one first"),
        Duration::from_secs(1),
    )
    .with_quota_violation(subject, &format!("at most {max} concurrent streams"))
    .with_error_info("TOO_MANY_STREAMS", ERROR_DOMAIN, [])
    .into()
}

/// A gRPC answer with no message: the status in the headers (trailers-only).
pub fn status_response(status: Status) -> Response<Body> {
    status.into_http()
}

/// Adds `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset` (and
/// `retry-after` when refused), in whole seconds rounded up.
fn with_rate_limit_headers(mut response: Response<Body>, decision: &Decision) -> Response<Body> {
    const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
    let seconds = |duration: Duration| HeaderValue::from(duration.as_millis().div_ceil(1000) as u64);
    let headers = response.headers_mut();
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    // The count and the time to reset move with every call a subject makes.
    headers.insert(REMAINING, per_call(HeaderValue::from(decision.remaining)));
    headers.insert(RESET, per_call(seconds(decision.reset_after)));
    if !decision.allowed {
        headers.insert(header::RETRY_AFTER, seconds(decision.retry_after));
    }
    response
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use proptest::prelude::*;
    use tower::{Layer, ServiceExt};
    use wizdata_common::http2::hpack::{Decoder, Encoder};

    use super::*;
    use crate::frames::tests::split_at_points;

    const LIMIT: usize = 256;

    /// Sends `chunks` as one gRPC-Web request through tonic-web's
    /// translation into the gateway's request reading, as the gateway does,
    /// and returns the message read or the status answered.
    fn through_grpc_web(content_type: &'static str, chunks: Vec<Vec<u8>>) -> Result<Bytes, Status> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let (read, mut answered) = tokio::sync::mpsc::unbounded_channel();
            let reader = tower::service_fn(move |request: Request<Body>| {
                let read = read.clone();
                async move {
                    let message = read_single_message(request.into_body(), LIMIT, false, Duration::from_secs(5)).await;
                    let _ = read.send(message);
                    Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
                }
            });
            let frames = chunks.into_iter().map(|chunk| Ok::<_, Status>(http_body::Frame::data(Bytes::from(chunk))));
            let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(frames)));
            let request = Request::builder().method("POST").header("content-type", content_type).body(body).unwrap();
            tonic_web::GrpcWebLayer::new().layer(reader).oneshot(request).await.unwrap();
            answered.recv().await.expect("the request reached the reader")
        })
    }

    proptest! {
        /// A message sent as grpc-web-text arrives whole however the base64
        /// is split across chunks, and as grpc-web binary likewise.
        #[test]
        fn grpc_web_messages_arrive_whole_however_they_are_chunked(
            message in proptest::collection::vec(any::<u8>(), 0..LIMIT),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let framed = frames::encode(&message);
            let text = base64::engine::general_purpose::STANDARD.encode(&framed).into_bytes();
            prop_assert_eq!(through_grpc_web("application/grpc-web-text", split_at_points(&text, cuts.clone())).unwrap(), framed.clone());
            prop_assert_eq!(through_grpc_web("application/grpc-web+proto", split_at_points(&framed, cuts)).unwrap(), framed);
        }

        /// Any bytes at all, in either encoding: a clear status for the
        /// caller, never a panic, and never anything accepted that is not
        /// exactly one frame.
        #[test]
        fn arbitrary_grpc_web_bodies_get_a_clear_answer(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            text in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
        ) {
            let content_type = if text { "application/grpc-web-text" } else { "application/grpc-web" };
            match through_grpc_web(content_type, split_at_points(&body, cuts)) {
                Ok(message) => prop_assert!(frames::check_single_message(&message, LIMIT, false).is_ok()),
                Err(status) => prop_assert!(
                    matches!(status.code(), Code::InvalidArgument | Code::OutOfRange),
                    "{:?}", status
                ),
            }
        }
    }

    #[test]
    fn rate_limit_headers_say_the_decision_and_mark_what_moves_per_call() {
        let decision = Decision {
            allowed: false,
            limit: 60,
            remaining: 0,
            reset_after: Duration::from_millis(59_001),
            retry_after: Duration::from_millis(999),
            mode: crate::rate_limit_mode::Mode::Local,
            scope: "tier",
        };
        let response = with_rate_limit_headers(Response::new(Body::empty()), &decision);
        let header = |name: &str| response.headers().get(name).unwrap();
        assert_eq!(header("ratelimit-limit"), "60");
        assert_eq!(header("ratelimit-remaining"), "0");
        assert_eq!(header("ratelimit-reset"), "60", "seconds, rounded up");
        assert_eq!(header("retry-after"), "1");
        assert!(!header("ratelimit-limit").is_sensitive(), "the limit repeats: HTTP/2 may index it");
        assert!(header("ratelimit-remaining").is_sensitive() && header("ratelimit-reset").is_sensitive());
    }

    #[test]
    fn the_backend_gets_the_callers_headers_less_the_connections_own() {
        let incoming = HeaderMap::from_iter(
            [
                (header::CONNECTION, "keep-alive"),
                (header::HOST, "gateway.test"),
                (header::CONTENT_LENGTH, "11"),
                (HeaderName::from_static("x-api-key"), "wzk_not_for_the_backend"),
                (header::TE, "trailers"),
                (header::AUTHORIZATION, "Bearer not-verified-here"),
                (header::CONTENT_TYPE, "application/grpc"),
                (HeaderName::from_static("x-request-id"), "call-1"),
            ]
            .map(|(name, value)| (name, HeaderValue::from_static(value))),
        );
        let client = ClientAddr::new("192.0.2.7:5000".parse().unwrap());
        let deadline = Deadline { at: Some(Instant::now() + Duration::from_secs(5)) };
        let sent = forwarded_headers(incoming, &Caller::anonymous(&[]), Some(&client), deadline);
        for gone in ["content-length", "x-api-key", "authorization"] {
            assert!(!sent.contains_key(gone), "{gone} is not passed on: {sent:?}");
        }
        // The connection's own are left to the encoder, which sends none of them.
        let mut block = BytesMut::new();
        let mut encoder = Encoder::default();
        encoder.start_block(&mut block);
        encoder.encode_headers(&sent, &mut block);
        let mut on_the_wire = Vec::new();
        Decoder::default().decode(&block.freeze(), |field| on_the_wire.push(field.name.as_str().to_owned())).unwrap();
        for gone in ["connection", "host", "content-length", "x-api-key", "authorization"] {
            assert!(!on_the_wire.iter().any(|name| name == gone), "{gone} is not sent: {on_the_wire:?}");
        }
        assert_eq!(sent["te"], "trailers");
        assert_eq!(sent["content-type"], "application/grpc");
        assert_eq!(sent["x-request-id"], "call-1");
        assert_eq!(sent["x-forwarded-for"], "192.0.2.7");
        let left = wizdata_common::deadline::grpc_timeout_in(&sent).unwrap();
        assert!(left <= Duration::from_secs(5) && left > Duration::from_secs(4), "{left:?}");

        // Nothing to remove: the headers go on as they came, and TE is set all the same.
        let plain = HeaderMap::from_iter([(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"))]);
        let sent = forwarded_headers(plain, &Caller::anonymous(&[]), None, Deadline { at: None });
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent["te"], "trailers");
    }

    #[test]
    fn unary_deadlines_are_capped_and_streams_keep_their_own() {
        let methods = Methods::contract();
        let unary = methods.get("/wizdata.registry.v1.RegistryService/GetSymbol").unwrap();
        let stream = methods.get("/wizdata.streaming.v1.StreamingService/Subscribe").unwrap();
        let cap = Duration::from_secs(30);
        let asking = |timeout: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_TIMEOUT, HeaderValue::from_static(timeout));
            headers
        };
        let left = |deadline: Deadline| deadline.remaining().map(|left| left.as_secs_f64().round() as u64);
        assert_eq!(left(Deadline::of(&asking("1H"), unary, cap)), Some(30), "capped");
        assert_eq!(left(Deadline::of(&asking("5S"), unary, cap)), Some(5), "shorter ones kept");
        assert_eq!(left(Deadline::of(&HeaderMap::new(), unary, cap)), Some(30), "none means the cap");
        assert_eq!(left(Deadline::of(&asking("garbage"), unary, cap)), Some(30));
        assert_eq!(left(Deadline::of(&HeaderMap::new(), stream, cap)), None, "streams may live long");
        assert_eq!(left(Deadline::of(&asking("1H"), stream, cap)), Some(3600), "and keep the one they send");
    }
}

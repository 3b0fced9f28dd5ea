//! The StreamingService as the server mounts it: Subscribe and Session are
//! served here with their responses already encoded (the generated server
//! would encode every event again for every subscriber), GetStreamStats by
//! the generated server. Both read the same message limits.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, ServerStreamingService, StreamingService as BidiStreaming};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;
use wizdata::streaming::v1::streaming_service_server::StreamingServiceServer;
use wizdata::streaming::v1::{SessionRequest, SubscribeRequest};

use crate::Streamer;
use crate::encoded::Encoded;
use crate::service::EventStream;

const SUBSCRIBE: &str = "/wizdata.streaming.v1.StreamingService/Subscribe";
const SESSION: &str = "/wizdata.streaming.v1.StreamingService/Session";

#[derive(Clone)]
pub struct StreamingRoutes {
    streamer: Streamer,
    generated: StreamingServiceServer<Streamer>,
    max_request_bytes: Option<usize>,
    max_response_bytes: Option<usize>,
}

impl StreamingRoutes {
    pub fn new(streamer: Streamer) -> Self {
        Self {
            generated: StreamingServiceServer::new(streamer.clone()),
            streamer,
            max_request_bytes: None,
            max_response_bytes: None,
        }
    }

    /// The largest request and response messages, as the generated servers take them.
    pub fn with_message_limits(self, max_request_bytes: usize, max_response_bytes: usize) -> Self {
        Self {
            generated: self
                .generated
                .max_decoding_message_size(max_request_bytes)
                .max_encoding_message_size(max_response_bytes),
            max_request_bytes: Some(max_request_bytes),
            max_response_bytes: Some(max_response_bytes),
            ..self
        }
    }

    /// The gRPC machinery for one call, sending encoded responses as they are.
    fn grpc<Request: prost::Message + Default + 'static>(&self) -> Grpc<ProstCodec<Encoded, Request>> {
        Grpc::new(ProstCodec::default()).apply_max_message_size_config(self.max_request_bytes, self.max_response_bytes)
    }
}

impl NamedService for StreamingRoutes {
    const NAME: &'static str = crate::SERVICE_NAME;
}

impl tower::Service<http::Request<Body>> for StreamingRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match request.uri().path() {
            SUBSCRIBE => {
                let (mut grpc, method) = (self.grpc::<SubscribeRequest>(), Subscribe(self.streamer.clone()));
                Box::pin(async move { Ok(grpc.server_streaming(method, request).await) })
            }
            SESSION => {
                let (mut grpc, method) = (self.grpc::<SessionRequest>(), Session(self.streamer.clone()));
                Box::pin(async move { Ok(grpc.streaming(method, request).await) })
            }
            _ => self.generated.call(request),
        }
    }
}

struct Subscribe(Streamer);

impl ServerStreamingService<SubscribeRequest> for Subscribe {
    type Response = Encoded;
    type ResponseStream = EventStream<Encoded>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<SubscribeRequest>) -> Self::Future {
        let streamer = self.0.clone();
        Box::pin(async move { streamer.subscribe_encoded(request).await })
    }
}

struct Session(Streamer);

impl BidiStreaming<SessionRequest> for Session {
    type Response = Encoded;
    type ResponseStream = EventStream<Encoded>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<SessionRequest>>) -> Self::Future {
        let streamer = self.0.clone();
        Box::pin(async move { streamer.session_encoded(request).await })
    }
}

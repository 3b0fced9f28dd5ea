//! The StreamingService as the server mounts it: Subscribe and Session are
//! served here with their responses already encoded (the generated server
//! would encode every event again for every subscriber), GetStreamStats by
//! the generated server.

use futures_util::future::BoxFuture;
use tonic::body::Body;
use tonic::server::{ServerStreamingService, StreamingService as BidiStreaming};
use tonic::{Request, Response, Status, Streaming};
use wizdata::streaming::v1::streaming_service_server::StreamingServiceServer;
use wizdata::streaming::v1::{SessionRequest, SubscribeRequest};
use wizdata_common::grpc::{EncodedMethods, EncodedRoutes, MessageLimits};

use crate::Streamer;
use crate::encoded::Encoded;
use crate::service::EventStream;

const SUBSCRIBE: &str = "/wizdata.streaming.v1.StreamingService/Subscribe";
const SESSION: &str = "/wizdata.streaming.v1.StreamingService/Session";

pub type StreamingRoutes = EncodedRoutes<EncodedStreams, StreamingServiceServer<Streamer>>;

pub fn routes(streamer: Streamer) -> StreamingRoutes {
    EncodedRoutes::new(EncodedStreams(streamer.clone()), StreamingServiceServer::new(streamer))
}

/// The streams whose events go out as they were encoded for all their
/// subscribers.
#[derive(Clone)]
pub struct EncodedStreams(Streamer);

impl EncodedMethods for EncodedStreams {
    fn answer(
        &self,
        request: http::Request<Body>,
        limits: MessageLimits,
    ) -> Result<BoxFuture<'static, http::Response<Body>>, http::Request<Body>> {
        match request.uri().path() {
            SUBSCRIBE => {
                let (mut grpc, method) = (limits.grpc::<SubscribeRequest>(), Subscribe(self.0.clone()));
                Ok(Box::pin(async move { grpc.server_streaming(method, request).await }))
            }
            SESSION => {
                let (mut grpc, method) = (limits.grpc::<SessionRequest>(), Session(self.0.clone()));
                Ok(Box::pin(async move { grpc.streaming(method, request).await }))
            }
            _ => Err(request),
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

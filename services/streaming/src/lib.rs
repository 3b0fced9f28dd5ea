//! The streaming service. Its contract is published and mounted; the RPCs
//! arrive with issue #6.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use wizdata::streaming::v1::streaming_service_server::{StreamingService, StreamingServiceServer};
use wizdata::streaming::v1::{
    GetStreamStatsRequest, GetStreamStatsResponse, SessionRequest, SessionResponse, SubscribeRequest, SubscribeResponse,
};
use wizdata_common::ApiError;

pub const SERVICE_NAME: &str = wizdata::streaming::v1::streaming_service_server::SERVICE_NAME;
const BUILT_BY_ISSUE: u32 = 6;

fn not_built_yet(method: &str) -> Status {
    ApiError::not_built_yet(&format!("{SERVICE_NAME}/{method}"), BUILT_BY_ISSUE).into()
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Debug, Default, Clone)]
pub struct Streamer;

#[tonic::async_trait]
impl StreamingService for Streamer {
    type SubscribeStream = EventStream<SubscribeResponse>;
    type SessionStream = EventStream<SessionResponse>;

    async fn subscribe(&self, _: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(not_built_yet("Subscribe"))
    }

    async fn session(&self, _: Request<Streaming<SessionRequest>>) -> Result<Response<Self::SessionStream>, Status> {
        Err(not_built_yet("Session"))
    }

    async fn get_stream_stats(
        &self,
        _: Request<GetStreamStatsRequest>,
    ) -> Result<Response<GetStreamStatsResponse>, Status> {
        Err(not_built_yet("GetStreamStats"))
    }
}

pub fn service() -> StreamingServiceServer<Streamer> {
    StreamingServiceServer::new(Streamer)
}

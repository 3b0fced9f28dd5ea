//! An endpoint pool as the channel of generated tonic clients, so a
//! service's calls to its neighbours are spread, checked and discovered as
//! the gateway's are.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tonic::Status;
use tonic::body::Body;

use super::{EndpointPool, Payload};
use crate::deadline::grpc_timeout_in;
use crate::grpc::HoldingBody;

/// A channel over every endpoint of a service. Cheap to clone; the pool's
/// upkeep stops when the last clone is dropped.
#[derive(Clone)]
pub struct ServiceChannel {
    pool: Arc<EndpointPool>,
}

impl ServiceChannel {
    /// A channel over `pool`, keeping it current from now on.
    pub fn new(pool: Arc<EndpointPool>) -> Self {
        // Detached: it ends by itself once the pool is dropped.
        drop(pool.spawn_upkeep(None));
        Self { pool }
    }

    pub fn pool(&self) -> &Arc<EndpointPool> {
        &self.pool
    }
}

impl std::fmt::Debug for ServiceChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceChannel").field("service", &self.pool.service).finish_non_exhaustive()
    }
}

impl tower::Service<http::Request<Body>> for ServiceChannel {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Each call waits for its endpoint's connection itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let pool = self.pool.clone();
        Box::pin(async move {
            // As tonic's own channel: the caller's deadline bounds the wait
            // for the answer's headers here too, so an endpoint that accepts
            // but never answers cannot hold a call past it.
            let timeout = grpc_timeout_in(request.headers());
            let call = async move {
                let lease =
                    pool.pick_discovered().await.ok_or_else(|| Status::unavailable(pool.unavailable_reason()))?;
                let (parts, body) = request.into_parts();
                let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
                match lease.endpoint().send(&path, Arc::new(parts.headers), Payload::Stream(body)).await {
                    // The lease counts the call in flight until its answer is read.
                    Ok(answer) => Ok(answer.map(|body| HoldingBody::wrap(body, lease))),
                    Err(error) => {
                        if error.counts_against_endpoint() {
                            lease.endpoint().unreachable();
                        }
                        Err(Status::unavailable(format!(
                            "{} at {}: {error}",
                            pool.display_name(),
                            lease.endpoint().address()
                        )))
                    }
                }
            };
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, call)
                    .await
                    .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("no answer within {timeout:?}")))),
                None => call.await,
            }
        })
    }
}

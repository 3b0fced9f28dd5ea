//! The indicator engine. Its contract is published and mounted; the RPCs
//! arrive with issue #4.

use tonic::{Request, Response, Status};
use wizdata::indicator::v1::indicator_service_server::{IndicatorService, IndicatorServiceServer};
use wizdata::indicator::v1::{
    BatchComputeRequest, BatchComputeResponse, ComputeIndicatorsRequest, ComputeIndicatorsResponse,
    ComputeSeriesRequest, ComputeSeriesResponse, ListIndicatorsRequest, ListIndicatorsResponse,
};
use wizdata_common::ApiError;

pub const SERVICE_NAME: &str = wizdata::indicator::v1::indicator_service_server::SERVICE_NAME;
const BUILT_BY_ISSUE: u32 = 4;

fn not_built_yet(method: &str) -> Status {
    ApiError::not_built_yet(&format!("{SERVICE_NAME}/{method}"), BUILT_BY_ISSUE).into()
}

#[derive(Debug, Default, Clone)]
pub struct Indicators;

#[tonic::async_trait]
impl IndicatorService for Indicators {
    async fn list_indicators(
        &self,
        _: Request<ListIndicatorsRequest>,
    ) -> Result<Response<ListIndicatorsResponse>, Status> {
        Err(not_built_yet("ListIndicators"))
    }

    async fn compute_indicators(
        &self,
        _: Request<ComputeIndicatorsRequest>,
    ) -> Result<Response<ComputeIndicatorsResponse>, Status> {
        Err(not_built_yet("ComputeIndicators"))
    }

    async fn compute_series(
        &self,
        _: Request<ComputeSeriesRequest>,
    ) -> Result<Response<ComputeSeriesResponse>, Status> {
        Err(not_built_yet("ComputeSeries"))
    }

    async fn batch_compute(&self, _: Request<BatchComputeRequest>) -> Result<Response<BatchComputeResponse>, Status> {
        Err(not_built_yet("BatchCompute"))
    }
}

pub fn service() -> IndicatorServiceServer<Indicators> {
    IndicatorServiceServer::new(Indicators)
}

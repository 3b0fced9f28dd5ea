//! The market data service: ticks in, candles and quotes out. Its contract is
//! published and mounted; the RPCs arrive with issue #3.

use tonic::{Request, Response, Status, Streaming};
use wizdata::marketdata::v1::market_data_service_server::{MarketDataService, MarketDataServiceServer};
use wizdata::marketdata::v1::{
    GetCandlesRequest, GetCandlesResponse, GetQuoteRequest, GetQuoteResponse, GetQuotesRequest, GetQuotesResponse,
    ImportCandlesRequest, ImportCandlesResponse, IngestTicksRequest, IngestTicksResponse,
};
use wizdata_common::ApiError;

pub const SERVICE_NAME: &str = wizdata::marketdata::v1::market_data_service_server::SERVICE_NAME;
const BUILT_BY_ISSUE: u32 = 3;

fn not_built_yet(method: &str) -> Status {
    ApiError::not_built_yet(&format!("{SERVICE_NAME}/{method}"), BUILT_BY_ISSUE).into()
}

#[derive(Debug, Default, Clone)]
pub struct MarketData;

#[tonic::async_trait]
impl MarketDataService for MarketData {
    async fn get_quote(&self, _: Request<GetQuoteRequest>) -> Result<Response<GetQuoteResponse>, Status> {
        Err(not_built_yet("GetQuote"))
    }

    async fn get_quotes(&self, _: Request<GetQuotesRequest>) -> Result<Response<GetQuotesResponse>, Status> {
        Err(not_built_yet("GetQuotes"))
    }

    async fn get_candles(&self, _: Request<GetCandlesRequest>) -> Result<Response<GetCandlesResponse>, Status> {
        Err(not_built_yet("GetCandles"))
    }

    async fn ingest_ticks(
        &self,
        _: Request<Streaming<IngestTicksRequest>>,
    ) -> Result<Response<IngestTicksResponse>, Status> {
        Err(not_built_yet("IngestTicks"))
    }

    async fn import_candles(
        &self,
        _: Request<Streaming<ImportCandlesRequest>>,
    ) -> Result<Response<ImportCandlesResponse>, Status> {
        Err(not_built_yet("ImportCandles"))
    }
}

pub fn service() -> MarketDataServiceServer<MarketData> {
    MarketDataServiceServer::new(MarketData)
}

//! A symbol's stored candles, fetched page by page from the market data
//! service over gRPC within the caller's deadline, and the revision of
//! their series.

use prost_types::Timestamp;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, GetSeriesRevisionRequest};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::Caller;
use wizdata_common::deadline::Deadline;
use wizdata_common::endpoints::ServiceChannel;
use wizdata_common::{ApiError, ErrorCode};

/// The largest page market data serves: the fewest round trips.
const PAGE_SIZE: i32 = 10_000;
/// A page of 10,000 candles is well under 1 MiB; this leaves room.
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// The candles of one symbol and interval in a time range, oldest first.
pub struct Candles {
    /// The registry's spelling of the symbol.
    pub symbol: String,
    pub candles: Vec<Candle>,
    /// The series' revision, read before the first page's candles.
    pub revision: u64,
}

/// A series' revision and the registry's spelling of its symbol.
pub struct Revision {
    pub symbol: String,
    pub revision: u64,
}

#[derive(Clone)]
pub struct CandleSource {
    client: MarketDataServiceClient<ServiceChannel>,
}

impl CandleSource {
    pub fn new(market_data: ServiceChannel) -> Self {
        Self { client: MarketDataServiceClient::new(market_data).max_decoding_message_size(MAX_PAGE_BYTES) }
    }

    /// Every candle with an open time in `[start, end)`, fetched with the
    /// credentials of the `caller` being served. `end` is pinned by the
    /// caller so that every page reads the same range.
    pub async fn fetch(
        &self,
        symbol: &str,
        interval: Interval,
        start: Option<Timestamp>,
        end: Timestamp,
        deadline: Deadline,
        caller: &Caller,
    ) -> Result<Candles, ApiError> {
        let mut request = GetCandlesRequest {
            symbol: symbol.to_owned(),
            interval: interval as i32,
            start_time: start,
            end_time: Some(end),
            page_size: PAGE_SIZE,
            page_token: String::new(),
        };
        let mut candles = Vec::new();
        let mut revision = None;
        loop {
            let mut outgoing = deadline.request(request.clone())?;
            caller.forward(&mut outgoing);
            let page = self
                .client
                .clone()
                .get_candles(outgoing)
                .await
                .map_err(|status| upstream_failure(status, deadline))?
                .into_inner();
            candles.extend(page.candles);
            let revision = *revision.get_or_insert(page.revision);
            if page.next_page_token.is_empty() {
                return Ok(Candles { symbol: page.symbol, candles, revision });
            }
            request.page_token = page.next_page_token;
        }
    }

    /// The revision of `symbol`'s candles at `interval`, asked with the
    /// credentials of the `caller` being served (so an unknown symbol or a
    /// caller without access fails here as the fetch would).
    pub async fn revision(
        &self,
        symbol: &str,
        interval: Interval,
        deadline: Deadline,
        caller: &Caller,
    ) -> Result<Revision, ApiError> {
        let mut outgoing =
            deadline.request(GetSeriesRevisionRequest { symbol: symbol.to_owned(), interval: interval as i32 })?;
        caller.forward(&mut outgoing);
        let answer = self
            .client
            .clone()
            .get_series_revision(outgoing)
            .await
            .map_err(|status| upstream_failure(status, deadline))?
            .into_inner();
        Ok(Revision { symbol: answer.symbol, revision: answer.revision })
    }
}

/// Market data's answer, as this service's: the caller's mistakes (a bad
/// symbol or range) are passed on with their details; anything else means
/// market data could not serve, which is not the caller's fault.
fn upstream_failure(status: tonic::Status, deadline: Deadline) -> ApiError {
    match status.code() {
        // Market data judged the caller's own request or credentials.
        tonic::Code::InvalidArgument
        | tonic::Code::NotFound
        | tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied => ApiError::from(status),
        _ if deadline.has_passed() => {
            ApiError::new(ErrorCode::DeadlineExceeded, "the call's deadline passed while fetching candles")
        }
        code => ApiError::unavailable(format!("market data could not serve the candles ({code:?})")),
    }
}

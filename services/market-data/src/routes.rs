//! The MarketDataService as the server mounts it: GetCandles is answered
//! with the bytes [`crate::service`] put together, cached bars as the
//! cache holds them encoded (the generated server would encode every bar of
//! every page again); every other method by the generated server.

use futures_util::future::BoxFuture;
use tonic::Response;
use tonic::body::Body;
use wizdata::marketdata::v1::GetCandlesRequest;
use wizdata::marketdata::v1::market_data_service_server::MarketDataServiceServer;
use wizdata_common::auth::Caller;
use wizdata_common::grpc::{Encoded, EncodedMethods, EncodedRoutes, MessageLimits, serve_encoded_unary};

use crate::MarketData;

const GET_CANDLES: &str = "/wizdata.marketdata.v1.MarketDataService/GetCandles";

pub type MarketDataRoutes = EncodedRoutes<EncodedAnswers, MarketDataServiceServer<MarketData>>;

pub fn routes(market_data: MarketData) -> MarketDataRoutes {
    EncodedRoutes::new(EncodedAnswers(market_data.clone()), MarketDataServiceServer::new(market_data))
}

/// The methods answered with bytes encoded ahead.
#[derive(Clone)]
pub struct EncodedAnswers(MarketData);

impl EncodedMethods for EncodedAnswers {
    fn answer(
        &self,
        request: http::Request<Body>,
        limits: MessageLimits,
    ) -> Result<BoxFuture<'static, http::Response<Body>>, http::Request<Body>> {
        if request.uri().path() != GET_CANDLES {
            return Err(request);
        }
        let market_data = self.0.clone();
        Ok(Box::pin(serve_encoded_unary(request, limits, move |request: tonic::Request<GetCandlesRequest>| {
            let market_data = market_data.clone();
            async move {
                let caller = Caller::serving(&request);
                let answer = market_data.get_candles(request.into_inner(), &caller).await?;
                Ok(Response::new(Encoded(answer)))
            }
        })))
    }
}

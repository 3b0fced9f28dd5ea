//! The IndicatorService as the server mounts it: ComputeIndicators and
//! BatchCompute are answered with bytes put together from parts encoded
//! once ([`crate::answers`]; the generated server would encode every cached
//! result again on every hit), ListIndicators and ComputeSeries by the
//! generated server.

use futures_util::future::BoxFuture;
use tonic::Response;
use tonic::body::Body;
use wizdata::indicator::v1::indicator_service_server::IndicatorServiceServer;
use wizdata_common::grpc::{Encoded, EncodedMethods, EncodedRoutes, MessageLimits, serve_encoded_unary};

use crate::Indicators;

const COMPUTE_INDICATORS: &str = "/wizdata.indicator.v1.IndicatorService/ComputeIndicators";
const BATCH_COMPUTE: &str = "/wizdata.indicator.v1.IndicatorService/BatchCompute";

pub type IndicatorRoutes = EncodedRoutes<EncodedAnswers, IndicatorServiceServer<Indicators>>;

pub fn routes(indicators: Indicators) -> IndicatorRoutes {
    EncodedRoutes::new(EncodedAnswers(indicators.clone()), IndicatorServiceServer::new(indicators))
}

/// The methods whose answers are put together from encoded parts.
#[derive(Clone)]
pub struct EncodedAnswers(Indicators);

impl EncodedMethods for EncodedAnswers {
    fn answer(
        &self,
        request: http::Request<Body>,
        limits: MessageLimits,
    ) -> Result<BoxFuture<'static, http::Response<Body>>, http::Request<Body>> {
        let indicators = self.0.clone();
        match request.uri().path() {
            COMPUTE_INDICATORS => Ok(Box::pin(serve_encoded_unary(request, limits, move |request| {
                let indicators = indicators.clone();
                async move { Ok(Response::new(Encoded(indicators.compute_indicators(request).await?))) }
            }))),
            BATCH_COMPUTE => Ok(Box::pin(serve_encoded_unary(request, limits, move |request| {
                let indicators = indicators.clone();
                async move { Ok(Response::new(Encoded(indicators.batch_compute(request).await?))) }
            }))),
            _ => Err(request),
        }
    }
}

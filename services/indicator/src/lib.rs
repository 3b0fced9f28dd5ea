//! The indicator engine: TA-Lib's indicators, value for value, as
//! incremental studies that the batch RPCs run over a series.
//!
//! Built so far (issue #4, in progress): ListIndicators and ComputeSeries.
//! ComputeIndicators and BatchCompute (over stored candles, with a cache)
//! arrive next.

pub mod catalog;
pub mod studies;

use tonic::{Request, Response, Status};
use wizdata::indicator::v1::indicator_service_server::{IndicatorService, IndicatorServiceServer};
use wizdata::indicator::v1::{
    BatchComputeRequest, BatchComputeResponse, ComputeIndicatorsRequest, ComputeIndicatorsResponse,
    ComputeSeriesRequest, ComputeSeriesResponse, IndicatorResult, IndicatorSpec, ListIndicatorsRequest,
    ListIndicatorsResponse, OutputSeries,
};
use wizdata::r#type::v1::Candle;
use wizdata_common::{ApiError, FieldViolations};

use crate::studies::{Bar, Study};

pub const SERVICE_NAME: &str = wizdata::indicator::v1::indicator_service_server::SERVICE_NAME;
const BUILT_BY_ISSUE: u32 = 4;
/// Most candles in one series.
pub const MAX_SERIES_CANDLES: usize = 100_000;
/// Most indicators per request.
pub const MAX_INDICATORS: usize = 32;

fn not_built_yet(method: &str) -> Status {
    ApiError::not_built_yet(&format!("{SERVICE_NAME}/{method}"), BUILT_BY_ISSUE).into()
}

/// Runs `study` over `bars`: its values from the first bar past the
/// lookback on, one series per output; nothing is padded.
pub fn run(mut study: Box<dyn Study>, outputs: usize, bars: &[Bar]) -> (usize, usize, Vec<Vec<f64>>) {
    let lookback = study.lookback();
    let length = bars.len().saturating_sub(lookback);
    let mut series = vec![Vec::with_capacity(length); outputs];
    let mut values = vec![0.0; outputs];
    let mut begin = bars.len();
    for (index, bar) in bars.iter().enumerate() {
        if study.next(bar, &mut values) {
            if begin == bars.len() {
                begin = index;
            }
            for (output, value) in series.iter_mut().zip(&values) {
                output.push(*value);
            }
        }
    }
    (lookback, begin, series)
}

/// Checks the caller's candles: strictly increasing times, finite values,
/// high not below low.
fn bars_of(candles: &[Candle], violations: &mut FieldViolations) -> Vec<Bar> {
    let mut previous_time = None;
    let mut bars = Vec::with_capacity(candles.len());
    for (index, candle) in candles.iter().enumerate() {
        let field = |name: &str| format!("candles[{index}].{name}");
        match &candle.open_time {
            None => violations.add(field("open_time"), "is required"),
            Some(time) => {
                let time = (time.seconds, time.nanos);
                if previous_time.is_some_and(|previous| time <= previous) {
                    violations
                        .add(field("open_time"), "must be after the previous candle's (oldest first, no duplicates)");
                }
                previous_time = Some(time);
            }
        }
        let values = [
            ("open", candle.open),
            ("high", candle.high),
            ("low", candle.low),
            ("close", candle.close),
            ("volume", candle.volume),
        ];
        for (name, value) in values {
            if !value.is_finite() {
                violations.add(field(name), format!("{value} is not a finite number"));
            }
        }
        if candle.high < candle.low {
            violations.add(field("high"), format!("high {} is below low {}", candle.high, candle.low));
        }
        bars.push(Bar {
            open: candle.open,
            high: candle.high,
            low: candle.low,
            close: candle.close,
            volume: candle.volume,
        });
    }
    bars
}

/// The studies for `specs`, or every problem with them.
fn studies_of(
    specs: &[IndicatorSpec],
    violations: &mut FieldViolations,
) -> Vec<(IndicatorSpec, &'static catalog::Indicator, Box<dyn Study>)> {
    if specs.is_empty() {
        violations.add("indicators", "name at least one indicator");
    }
    if specs.len() > MAX_INDICATORS {
        violations.add("indicators", format!("at most {MAX_INDICATORS} per request (got {})", specs.len()));
    }
    let mut studies = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let field = format!("indicators[{index}]");
        let Some(indicator) = catalog::find(&spec.name) else {
            let known: Vec<&str> = catalog::INDICATORS.iter().map(|indicator| indicator.name).collect();
            violations.add(
                format!("{field}.name"),
                format!("{:?} is not an indicator; known: {}", spec.name, known.join(", ")),
            );
            continue;
        };
        if let Some(study) = catalog::build(indicator, &spec.parameters, &field, violations) {
            studies.push((spec.clone(), indicator, study));
        }
    }
    studies
}

#[derive(Debug, Default, Clone)]
pub struct Indicators;

impl Indicators {
    fn compute_series(&self, request: ComputeSeriesRequest) -> Result<ComputeSeriesResponse, ApiError> {
        let mut violations = FieldViolations::default();
        if request.candles.len() > MAX_SERIES_CANDLES {
            return Err(ApiError::invalid_field(
                "candles",
                format!("at most {MAX_SERIES_CANDLES} candles per series (got {})", request.candles.len()),
            ));
        }
        let bars = bars_of(&request.candles, &mut violations);
        let studies = studies_of(&request.indicators, &mut violations);
        violations.into_result()?;
        let results = studies
            .into_iter()
            .map(|(spec, indicator, study)| {
                let (lookback, begin, series) = run(study, indicator.outputs.len(), &bars);
                IndicatorResult {
                    spec: Some(IndicatorSpec { name: indicator.name.into(), ..spec }),
                    lookback: lookback as u32,
                    begin_index: begin as u32,
                    outputs: indicator
                        .outputs
                        .iter()
                        .zip(series)
                        .map(|(name, values)| OutputSeries { name: (*name).into(), values })
                        .collect(),
                }
            })
            .collect();
        Ok(ComputeSeriesResponse { results })
    }
}

#[tonic::async_trait]
impl IndicatorService for Indicators {
    async fn list_indicators(
        &self,
        _: Request<ListIndicatorsRequest>,
    ) -> Result<Response<ListIndicatorsResponse>, Status> {
        let indicators = catalog::INDICATORS.iter().map(catalog::Indicator::descriptor).collect();
        Ok(Response::new(ListIndicatorsResponse { indicators }))
    }

    async fn compute_indicators(
        &self,
        _: Request<ComputeIndicatorsRequest>,
    ) -> Result<Response<ComputeIndicatorsResponse>, Status> {
        Err(not_built_yet("ComputeIndicators"))
    }

    async fn compute_series(
        &self,
        request: Request<ComputeSeriesRequest>,
    ) -> Result<Response<ComputeSeriesResponse>, Status> {
        let request = request.into_inner();
        // CPU-bound: off the I/O threads.
        let response = tokio::task::spawn_blocking(move || Indicators.compute_series(request))
            .await
            .map_err(|_| Status::from(ApiError::internal("the computation failed")))??;
        Ok(Response::new(response))
    }

    async fn batch_compute(&self, _: Request<BatchComputeRequest>) -> Result<Response<BatchComputeResponse>, Status> {
        Err(not_built_yet("BatchCompute"))
    }
}

pub fn service() -> IndicatorServiceServer<Indicators> {
    IndicatorServiceServer::new(Indicators)
}

//! The indicator engine: TA-Lib's indicators, value for value, as
//! incremental studies that the RPCs run over a series: candles the caller
//! sends (ComputeSeries) or a symbol's stored candles fetched from market
//! data within the caller's deadline (ComputeIndicators, BatchCompute), whose
//! results are cached by the candles they were computed from.

mod answers;
pub mod candles;
pub mod catalog;
mod results;
mod routes;
pub mod studies;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use prost_types::Timestamp;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use wizdata::indicator::v1::indicator_service_server::IndicatorService;
use wizdata::indicator::v1::{
    BatchComputeRequest, BatchComputeResponse, ComputeIndicatorsRequest, ComputeIndicatorsResponse,
    ComputeSeriesRequest, ComputeSeriesResponse, IndicatorResult, IndicatorSpec, ListIndicatorsRequest,
    ListIndicatorsResponse, OutputSeries, SymbolResult,
};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::Caller;
use wizdata_common::cache::Cache;
use wizdata_common::config::parse_duration;
use wizdata_common::deadline::Deadline;
use wizdata_common::endpoints::ServiceChannel;
use wizdata_common::grpc::decode_answer;
use wizdata_common::interval;
use wizdata_common::time::{from_timestamp, to_timestamp};
use wizdata_common::{ApiError, FieldViolations};

use crate::candles::CandleSource;
use crate::catalog::Configured;
use crate::results::{ResultCache, SeriesView};
pub use crate::routes::IndicatorRoutes;
use crate::studies::{AnyStudy, Bar, Bars};

pub const SERVICE_NAME: &str = wizdata::indicator::v1::indicator_service_server::SERVICE_NAME;
/// Most candles in one series (ComputeSeries), the same bound market data
/// puts on one range (ComputeIndicators).
pub const MAX_SERIES_CANDLES: usize = 100_000;
/// Most indicators per request.
pub const MAX_INDICATORS: usize = 32;
/// Most symbols in one BatchCompute.
pub const MAX_BATCH_SYMBOLS: usize = 100;
/// Most bars of the interval one BatchCompute range may span.
pub const MAX_BATCH_BARS: i64 = 10_000;
/// Most symbols x indicators in one BatchCompute: bounds the answer's size
/// (at worst 400 x 10,000 bars x 3 outputs, about 100 MB).
pub const MAX_BATCH_COMPUTATIONS: usize = 400;

#[derive(clap::Args, Debug, Clone)]
pub struct IndicatorConfig {
    /// How long computed results stay cached. Keys change with the candles,
    /// so this bounds memory, not staleness.
    #[arg(long, env = "WIZDATA_INDICATOR_CACHE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub indicator_cache_ttl: Duration,

    /// Most symbols of one BatchCompute fetched and computed at once.
    #[arg(long, env = "WIZDATA_BATCH_PARALLELISM", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub batch_parallelism: u16,
}

/// Runs `study` over `bars`: its lookback, the index of the first bar with
/// values, and its values from there on, one series per output; nothing is
/// padded.
pub fn run(study: Box<dyn AnyStudy>, outputs: usize, bars: &Bars) -> (usize, usize, Vec<Vec<f64>>) {
    let lookback = study.lookback();
    let (begin, series) = study.series(bars, outputs);
    (lookback, begin, series)
}

fn bar_of(candle: &Candle) -> Bar {
    Bar { open: candle.open, high: candle.high, low: candle.low, close: candle.close, volume: candle.volume }
}

/// Checks the caller's candles: strictly increasing times, finite values,
/// high not below low.
fn bars_of(candles: &[Candle], violations: &mut FieldViolations) -> Bars {
    let mut previous_time = None;
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
    }
    candles.iter().map(bar_of).collect()
}

/// One requested indicator, checked and configured.
#[derive(Clone)]
pub struct Planned {
    /// The caller's spec under the indicator's canonical name.
    pub spec: IndicatorSpec,
    pub configured: Configured,
}

/// The indicators `specs` (the request's field `field`) ask for, or every
/// problem with them: the one check of indicator specs, shared with the
/// streaming service's live indicators.
pub fn plan(field: &str, specs: &[IndicatorSpec], violations: &mut FieldViolations) -> Vec<Planned> {
    if specs.is_empty() {
        violations.add(field, "name at least one indicator");
    }
    if specs.len() > MAX_INDICATORS {
        violations.add(field, format!("at most {MAX_INDICATORS} per request (got {})", specs.len()));
    }
    let mut planned = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let field = format!("{field}[{index}]");
        let Some(indicator) = catalog::find(&spec.name) else {
            let known: Vec<&str> = catalog::INDICATORS.iter().map(|indicator| indicator.name).collect();
            violations.add(
                format!("{field}.name"),
                format!("{:?} is not an indicator; known: {}", spec.name, known.join(", ")),
            );
            continue;
        };
        if let Some(configured) = catalog::configure(indicator, &spec.parameters, &field, violations) {
            planned.push(Planned { spec: IndicatorSpec { name: indicator.name.into(), ..spec.clone() }, configured });
        }
    }
    planned
}

/// One indicator over a whole series.
fn evaluate(planned: &Planned, bars: &Bars) -> IndicatorResult {
    let indicator = planned.configured.indicator;
    let (lookback, begin, series) = run(planned.configured.study(), indicator.outputs.len(), bars);
    IndicatorResult {
        spec: Some(planned.spec.clone()),
        lookback: lookback as u32,
        begin_index: begin as u32,
        outputs: indicator
            .outputs
            .iter()
            .zip(series)
            .map(|(name, values)| OutputSeries { name: (*name).into(), values })
            .collect(),
    }
}

/// The time range of a request over stored candles; an unset end means now,
/// pinned here so that every page of the fetch reads the same range.
fn range_of(
    start: Option<&Timestamp>,
    end: Option<&Timestamp>,
    violations: &mut FieldViolations,
) -> (Option<Timestamp>, Timestamp) {
    let mut checked = |field: &str, time: Option<&Timestamp>| match time {
        Some(time) if from_timestamp(time).is_none() => {
            violations.add(field, "is not a valid time");
            None
        }
        time => time.copied(),
    };
    let start = checked("start_time", start);
    let end = checked("end_time", end).unwrap_or_else(|| to_timestamp(chrono::Utc::now()));
    (start, end)
}

fn interval_of(value: i32, violations: &mut FieldViolations) -> Interval {
    violations.check("interval", interval::from_request(value)).unwrap_or(Interval::Unspecified)
}

#[derive(Clone)]
pub struct Indicators {
    candles: CandleSource,
    results: ResultCache,
    /// Computations run on the blocking pool; at most one per core at once,
    /// so a burst of requests queues here instead of oversubscribing the CPU.
    compute_slots: Arc<Semaphore>,
    market_data_timeout: Duration,
    batch_parallelism: usize,
}

impl Indicators {
    /// Candles come from market data behind `market_data`, within
    /// `market_data_timeout` when the caller set no deadline.
    pub fn new(
        market_data: ServiceChannel,
        market_data_timeout: Duration,
        cache: Cache,
        config: &IndicatorConfig,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        // Exported at zero, so `rate()` sees the series from the start.
        metrics::counter!("indicator_series_cache_hits_total").increment(0);
        metrics::counter!("indicator_candle_fetches_total").increment(0);
        Self {
            candles: CandleSource::new(market_data),
            results: ResultCache::new(cache, config.indicator_cache_ttl),
            compute_slots: Arc::new(Semaphore::new(cores)),
            market_data_timeout,
            batch_parallelism: usize::from(config.batch_parallelism),
        }
    }

    /// Every indicator over `bars`, off the I/O threads.
    async fn evaluate_all(&self, work: Vec<Planned>, bars: Arc<Bars>) -> Result<Vec<IndicatorResult>, ApiError> {
        if work.is_empty() {
            return Ok(Vec::new());
        }
        let _slot = self.compute_slots.acquire().await.expect("the compute semaphore is never closed");
        tokio::task::spawn_blocking(move || work.iter().map(|planned| evaluate(planned, &bars)).collect())
            .await
            .map_err(|_| ApiError::internal("the computation failed"))
    }

    async fn compute_series(&self, request: ComputeSeriesRequest) -> Result<ComputeSeriesResponse, ApiError> {
        if request.candles.len() > MAX_SERIES_CANDLES {
            return Err(ApiError::invalid_field(
                "candles",
                format!("at most {MAX_SERIES_CANDLES} candles per series (got {})", request.candles.len()),
            ));
        }
        let mut violations = FieldViolations::default();
        let bars = bars_of(&request.candles, &mut violations);
        let planned = plan("indicators", &request.indicators, &mut violations);
        violations.into_result()?;
        Ok(ComputeSeriesResponse { results: self.evaluate_all(planned, Arc::new(bars)).await? })
    }

    /// The indicators over one symbol's stored candles. The series'
    /// revision comes first: when every result is cached under it, the
    /// candles are not fetched at all. Otherwise they are, and whatever is
    /// missing is computed and cached under the revision they were read at.
    async fn compute_for_symbol(
        &self,
        symbol: &str,
        interval: Interval,
        (start, end): (Option<Timestamp>, Timestamp),
        planned: &[Planned],
        deadline: Deadline,
        caller: &Caller,
    ) -> Result<Bytes, ApiError> {
        let identities: Vec<&str> = planned.iter().map(|planned| planned.configured.identity.as_str()).collect();
        let specs: Vec<&IndicatorSpec> = planned.iter().map(|planned| &planned.spec).collect();
        let series = self.candles.revision(symbol, interval, deadline, caller).await?;
        let view = SeriesView::new(&series.symbol, interval, series.revision, start.as_ref(), &end);
        let (mut cached, times) = match &view {
            Some(view) => self.results.lookup(view, &identities).await,
            None => (vec![None; planned.len()], None),
        };
        if let Some(times) = times
            && cached.iter().all(Option::is_some)
        {
            metrics::counter!("indicator_series_cache_hits_total").increment(1);
            let results: Vec<Bytes> = cached.into_iter().flatten().collect();
            return Ok(answers::compute_indicators_response(series.symbol, interval, &times, &results, &specs));
        }

        metrics::counter!("indicator_candle_fetches_total").increment(1);
        let fetched = self.candles.fetch(symbol, interval, start, end, deadline, caller).await?;
        let open_times: Vec<Timestamp> =
            fetched.candles.iter().map(|candle| candle.open_time.unwrap_or_default()).collect();
        let times = answers::encode_times(&open_times);
        let bars: Arc<Bars> = Arc::new(fetched.candles.iter().map(bar_of).collect());
        let fetched_view = SeriesView::new(&fetched.symbol, interval, fetched.revision, start.as_ref(), &end);
        if fetched_view != view {
            // Written meanwhile: what was cached describes older bars.
            cached = vec![None; planned.len()];
        }
        let missing: Vec<usize> = (0..planned.len()).filter(|&index| cached[index].is_none()).collect();
        let computed = self.evaluate_all(missing.iter().map(|&index| planned[index].clone()).collect(), bars).await?;
        let computed: Vec<Bytes> = computed.into_iter().map(answers::encode_result).collect();
        if let Some(view) = &fetched_view {
            let entries = missing.iter().map(|&index| identities[index]).zip(&computed).collect();
            self.results.remember(view, &times, entries).await;
        }
        for (index, result) in missing.into_iter().zip(computed) {
            cached[index] = Some(result);
        }
        let results: Vec<Bytes> =
            cached.into_iter().map(|result| result.expect("every result was cached or computed")).collect();
        Ok(answers::compute_indicators_response(fetched.symbol, interval, &times, &results, &specs))
    }

    /// ComputeIndicators' answer, encoded.
    async fn compute_indicators(&self, request: Request<ComputeIndicatorsRequest>) -> Result<Bytes, ApiError> {
        let (deadline, caller) = (Deadline::of(&request, self.market_data_timeout), Caller::serving(&request));
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        if request.symbol.trim().is_empty() {
            violations.add("symbol", "is required");
        }
        let interval = interval_of(request.interval, &mut violations);
        let range = range_of(request.start_time.as_ref(), request.end_time.as_ref(), &mut violations);
        let planned = plan("indicators", &request.indicators, &mut violations);
        violations.into_result()?;
        self.compute_for_symbol(request.symbol.trim(), interval, range, &planned, deadline, &caller).await
    }

    /// BatchCompute's answer, encoded.
    async fn batch_compute(&self, request: Request<BatchComputeRequest>) -> Result<Bytes, ApiError> {
        let (deadline, caller) = (Deadline::of(&request, self.market_data_timeout), Caller::serving(&request));
        let request = request.into_inner();
        let mut violations = FieldViolations::default();
        let symbols = batch_symbols(&request.symbols, &mut violations);
        let interval = interval_of(request.interval, &mut violations);
        let (start, end) = range_of(request.start_time.as_ref(), request.end_time.as_ref(), &mut violations);
        let planned = plan("indicators", &request.indicators, &mut violations);
        let computations = symbols.len() * planned.len();
        if computations > MAX_BATCH_COMPUTATIONS {
            violations.add(
                "indicators",
                format!(
                    "symbols x indicators may be at most {MAX_BATCH_COMPUTATIONS} per batch (got {} x {} = {computations})",
                    symbols.len(),
                    planned.len()
                ),
            );
        }
        let start = match interval::width_seconds(interval) {
            Some(width) => Some(batch_start(start, end, width, &mut violations)),
            None => start,
        };
        violations.into_result()?;

        let range = (start, end);
        let results = futures_util::stream::iter(symbols)
            .map(|symbol| {
                let (planned, caller) = (&planned, &caller);
                async move {
                    match self.compute_for_symbol(&symbol, interval, range, planned, deadline, caller).await {
                        Ok(response) => (SymbolResult { symbol, ..Default::default() }, Some(response)),
                        Err(error) => {
                            let failed = SymbolResult {
                                symbol,
                                response: None,
                                error_code: error.code().grpc_code() as i32,
                                error_message: error.message().to_owned(),
                            };
                            (failed, None)
                        }
                    }
                }
            })
            .buffered(self.batch_parallelism)
            .collect()
            .await;
        Ok(answers::batch_compute_response(results))
    }
}

/// A batch's symbols, each named once.
fn batch_symbols(symbols: &[String], violations: &mut FieldViolations) -> Vec<String> {
    if symbols.is_empty() {
        violations.add("symbols", "name at least one symbol");
    }
    if symbols.len() > MAX_BATCH_SYMBOLS {
        violations.add("symbols", format!("at most {MAX_BATCH_SYMBOLS} per batch (got {})", symbols.len()));
    }
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(symbols.len());
    for (index, symbol) in symbols.iter().enumerate() {
        let symbol = symbol.trim();
        if symbol.is_empty() {
            violations.add(format!("symbols[{index}]"), "is empty");
        } else if !seen.insert(symbol.to_ascii_uppercase()) {
            violations.add(format!("symbols[{index}]"), format!("{symbol:?} is named twice"));
        } else {
            unique.push(symbol.to_owned());
        }
    }
    unique
}

/// The start of a batch's range: as given when it spans at most
/// MAX_BATCH_BARS bars, MAX_BATCH_BARS bars before the end when unset.
fn batch_start(start: Option<Timestamp>, end: Timestamp, width: i64, violations: &mut FieldViolations) -> Timestamp {
    let max_span = MAX_BATCH_BARS * width;
    match start {
        None => Timestamp { seconds: end.seconds.saturating_sub(max_span), nanos: end.nanos },
        Some(start) => {
            let span = (i128::from(end.seconds) - i128::from(start.seconds)) * 1_000_000_000
                + i128::from(end.nanos - start.nanos);
            if span > i128::from(max_span) * 1_000_000_000 {
                violations
                    .add("end_time", format!("a batch range may span at most {MAX_BATCH_BARS} bars of the interval"));
            }
            start
        }
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
        request: Request<ComputeIndicatorsRequest>,
    ) -> Result<Response<ComputeIndicatorsResponse>, Status> {
        let answer = Indicators::compute_indicators(self, request).await?;
        Ok(Response::new(decode_answer(answer)?))
    }

    async fn compute_series(
        &self,
        request: Request<ComputeSeriesRequest>,
    ) -> Result<Response<ComputeSeriesResponse>, Status> {
        Ok(Response::new(Indicators::compute_series(self, request.into_inner()).await?))
    }

    async fn batch_compute(
        &self,
        request: Request<BatchComputeRequest>,
    ) -> Result<Response<BatchComputeResponse>, Status> {
        let answer = Indicators::batch_compute(self, request).await?;
        Ok(Response::new(decode_answer(answer)?))
    }
}

/// The service, fetching candles from the market data service behind
/// `market_data` and caching results in `cache`.
pub fn service(
    market_data: ServiceChannel,
    market_data_timeout: Duration,
    cache: Cache,
    config: &IndicatorConfig,
) -> IndicatorRoutes {
    routes::routes(Indicators::new(market_data, market_data_timeout, cache, config))
}

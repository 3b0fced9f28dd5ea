//! The MarketDataService RPCs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use wizdata::marketdata::v1::market_data_service_server::MarketDataService;
use wizdata::marketdata::v1::{
    GetCandlesRequest, GetCandlesResponse, GetQuoteRequest, GetQuoteResponse, GetQuotesRequest, GetQuotesResponse,
    GetSeriesRevisionRequest, GetSeriesRevisionResponse, ImportCandlesRequest, ImportCandlesResponse,
    IngestTicksRequest, IngestTicksResponse, Tick,
};
use wizdata::r#type::v1::{Candle, Interval, Quote};
use wizdata_common::grpc::decode_answer;
use wizdata_common::pagination::{PageTokens, page_size};
use wizdata_common::symbols::check_symbol_length;
use wizdata_common::time::{NANOS_PER_SECOND, now_ns, ns_from_timestamp};
use wizdata_common::{ApiError, FieldViolations};

use crate::candle_cache::{CandleCache, announce_settled, read_candles};
use crate::convert::mark_stale;
use crate::history::check_price_order;
use crate::interval::{self, width_seconds};
use crate::quotes::QuoteCache;
use crate::store::{Store, imported_row};
use crate::ticks::{Admission, Summary};
use crate::writer::{Writer, acknowledged};
use wizdata_common::auth::Caller;
use wizdata_common::bus::Bus;
use wizdata_common::symbols::SymbolDirectory;

/// GetQuotes answers at most this many symbols per call.
pub const MAX_QUOTES_PER_CALL: usize = 500;
pub const DEFAULT_CANDLE_PAGE: u32 = 1000;
pub const MAX_CANDLE_PAGE: u32 = 10_000;
/// A GetCandles range spans at most this many bars of its interval.
pub const MAX_RANGE_BARS: i64 = 100_000;
/// ImportCandles takes at most this many candles per call.
pub const MAX_IMPORT_CANDLES: usize = 1_000_000;
/// Bad candles described in one ImportCandles error.
const MAX_REPORTED_VIOLATIONS: usize = 20;

#[derive(Clone)]
pub struct MarketData {
    pub(crate) store: Store,
    pub(crate) writer: Writer,
    pub(crate) quotes: QuoteCache,
    pub(crate) candles: CandleCache,
    /// Where imports announce the settled bars they wrote.
    pub(crate) bus: Bus,
    pub(crate) symbols: SymbolDirectory,
    pub(crate) admission: Arc<Admission>,
    pub(crate) page_tokens: PageTokens,
    pub(crate) staleness: Duration,
}

impl MarketData {
    /// The registry's ticker for a requested symbol, NOT_FOUND when unknown.
    async fn known_symbol(&self, field: &str, raw: &str, caller: &Caller) -> Result<Arc<str>, ApiError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ApiError::invalid_field(field, "is required"));
        }
        check_symbol_length(raw).map_err(|why| ApiError::invalid_field(field, why))?;
        self.symbols.resolve(raw, caller).await?.ok_or_else(|| ApiError::not_found("symbol", raw))
    }

    /// Quotes of known symbols: from the cache, else from the database (and
    /// then the writer is asked to refill the cache).
    async fn quotes_of(&self, symbols: &[Arc<str>]) -> Result<Vec<Option<Quote>>, ApiError> {
        let mut quotes = self.quotes.get_many(symbols).await;
        let mut refill = Vec::new();
        for (symbol, quote) in symbols.iter().zip(quotes.iter_mut()) {
            if quote.is_none() {
                *quote = self.store.quote(symbol).await?;
                if quote.is_some() {
                    refill.push(symbol.clone());
                }
            }
        }
        self.writer.refresh(refill);
        let now = now_ns();
        for quote in quotes.iter_mut().flatten() {
            mark_stale(quote, self.staleness, now);
        }
        Ok(quotes)
    }

    async fn get_quote(&self, request: GetQuoteRequest, caller: &Caller) -> Result<GetQuoteResponse, ApiError> {
        let symbol = self.known_symbol("symbol", &request.symbol, caller).await?;
        let quote = self.quotes_of(std::slice::from_ref(&symbol)).await?.pop().flatten();
        let quote = quote.ok_or_else(|| ApiError::not_found("quote", &symbol))?;
        Ok(GetQuoteResponse { quote: Some(quote) })
    }

    async fn get_quotes(&self, request: GetQuotesRequest, caller: &Caller) -> Result<GetQuotesResponse, ApiError> {
        if request.symbols.is_empty() {
            return Err(ApiError::invalid_field("symbols", "name at least one symbol"));
        }
        if request.symbols.len() > MAX_QUOTES_PER_CALL {
            return Err(ApiError::invalid_field(
                "symbols",
                format!("at most {MAX_QUOTES_PER_CALL} symbols per call (got {})", request.symbols.len()),
            ));
        }
        let mut violations = FieldViolations::default();
        for (index, raw) in request.symbols.iter().enumerate() {
            violations.check(&format!("symbols[{index}]"), check_symbol_length(raw.trim()));
        }
        violations.into_result()?;
        let known = self.symbols.resolve_many(request.symbols.iter().map(|symbol| symbol.trim()), caller).await?;
        let mut violations = FieldViolations::default();
        let mut symbols = Vec::with_capacity(request.symbols.len());
        for (index, raw) in request.symbols.iter().enumerate() {
            match known.get(raw.trim()).cloned().flatten() {
                Some(symbol) => symbols.push(symbol),
                None => violations.add(format!("symbols[{index}]"), format!("{raw:?} is not in the registry")),
            }
        }
        violations.into_result()?;
        let mut response = GetQuotesResponse::default();
        for (symbol, quote) in symbols.iter().zip(self.quotes_of(&symbols).await?) {
            match quote {
                Some(quote) => response.quotes.push(quote),
                None => response.missing_symbols.push(symbol.to_string()),
            }
        }
        Ok(response)
    }

    /// GetCandles' answer, encoded: cached bars go out as the cache holds
    /// them.
    pub(crate) async fn get_candles(&self, request: GetCandlesRequest, caller: &Caller) -> Result<Bytes, ApiError> {
        let mut violations = FieldViolations::default();
        if request.symbol.trim().is_empty() {
            violations.add("symbol", "is required");
        }
        let interval = violations.check("interval", interval::from_request(request.interval));
        let limit = violations.check("page_size", page_size(request.page_size, DEFAULT_CANDLE_PAGE, MAX_CANDLE_PAGE));
        let now = now_ns();
        let end = match &request.end_time {
            None => Some(now),
            Some(time) => violations.check("end_time", ns_from_timestamp(time).ok_or_else(invalid_time)),
        };
        let start = match &request.start_time {
            None => Some(None),
            Some(time) => violations.check("start_time", ns_from_timestamp(time).ok_or_else(invalid_time)).map(Some),
        };
        let (Some(interval), Some(limit), Some(end), Some(start)) = (interval, limit, end, start) else {
            return Err(violations.into_error());
        };
        let width = width_seconds(interval).expect("a requested interval has a width");
        let max_span_ns = MAX_RANGE_BARS * width * NANOS_PER_SECOND;
        let start = start.unwrap_or_else(|| end.saturating_sub(max_span_ns).max(0));
        if end <= start {
            violations.add("end_time", "must be after start_time");
        } else if end - start > max_span_ns {
            violations.add(
                "end_time",
                format!("the range may span at most {MAX_RANGE_BARS} bars of {}", interval::code(interval)),
            );
        }
        violations.into_result()?;
        let symbol = self.known_symbol("symbol", &request.symbol, caller).await?;

        let filters = format!("{symbol}|{}|{:?}|{:?}", request.interval, request.start_time, request.end_time);
        let after = match self.page_tokens.decode(&request.page_token, filters.as_bytes())? {
            None => None,
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid_field("page_token", "is not a page token this service issued"))?,
            ),
        };
        // Bars open on whole seconds: the first bar at or after `start`, and
        // every bar opening before `end`.
        let (start_seconds, end_seconds) = (ceil_seconds(start), ceil_seconds(end));
        let from = after.map_or(start_seconds, |after| start_seconds.max(after.saturating_add(1)));
        let (revision, mut candles) =
            read_candles(&self.store, &self.candles, &symbol, interval, from..end_seconds, limit as usize + 1, now)
                .await?;
        let next_page_token = if candles.len() > limit as usize {
            candles.truncate(limit as usize);
            let last = candles.last_open_time().expect("a full page is not empty");
            self.page_tokens.encode(filters.as_bytes(), &last.to_string())
        } else {
            String::new()
        };
        // Fields in their numbers' order, the candles between the others,
        // as the message would be encoded.
        let before = GetCandlesResponse { symbol: symbol.to_string(), interval: interval as i32, ..Default::default() };
        let after = GetCandlesResponse { next_page_token, revision: revision_of(revision), ..Default::default() };
        let mut answer = BytesMut::with_capacity(before.encoded_len() + candles.encoded_len() + after.encoded_len());
        before.encode_raw(&mut answer);
        candles.encode(&mut answer);
        after.encode_raw(&mut answer);
        Ok(answer.freeze())
    }

    async fn get_series_revision(
        &self,
        request: GetSeriesRevisionRequest,
        caller: &Caller,
    ) -> Result<GetSeriesRevisionResponse, ApiError> {
        let mut violations = FieldViolations::default();
        if request.symbol.trim().is_empty() {
            violations.add("symbol", "is required");
        }
        let interval = violations.check("interval", interval::from_request(request.interval));
        let Some(interval) = interval else { return Err(violations.into_error()) };
        violations.into_result()?;
        let symbol = self.known_symbol("symbol", &request.symbol, caller).await?;
        let (revision, _) = self.store.series_revisions(&symbol, interval).await?;
        Ok(GetSeriesRevisionResponse {
            symbol: symbol.to_string(),
            interval: interval as i32,
            revision: revision_of(revision),
        })
    }

    async fn ingest_ticks(
        &self,
        mut stream: Streaming<IngestTicksRequest>,
        caller: &Caller,
    ) -> Result<IngestTicksResponse, Status> {
        let mut summary = Summary::default();
        let mut pending = FuturesUnordered::new();
        loop {
            tokio::select! {
                // A failed write fails the call at once: the feed must resend.
                Some(written) = pending.next(), if !pending.is_empty() => summary.duplicates(written?),
                message = stream.message() => {
                    let Some(message) = message? else { break };
                    let (ticks, ended) = with_messages_received(message.ticks, &mut stream)?;
                    let known = self.symbols.resolve_many(ticks.iter().map(|tick| tick.symbol.as_str()), caller).await?;
                    let batch = self.admission.admit(ticks, &known, now_ns(), &mut summary);
                    if !batch.is_empty() {
                        pending.push(acknowledged(self.writer.submit(batch).await?));
                    }
                    if ended {
                        break;
                    }
                }
            }
        }
        while let Some(written) = pending.next().await {
            summary.duplicates(written?);
        }
        Ok(summary.into_response())
    }

    async fn import_candles(
        &self,
        mut stream: Streaming<ImportCandlesRequest>,
        caller: &Caller,
    ) -> Result<ImportCandlesResponse, Status> {
        let mut series: Option<(Arc<str>, Interval, String)> = None;
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        let mut violations = FieldViolations::default();
        let mut reported = 0;
        let mut position = 0usize;
        while let Some(message) = stream.message().await? {
            let (symbol, interval, _) = match &series {
                Some(known) => {
                    let (_, interval, raw) = known;
                    let repeats_interval = message.interval == 0 || message.interval == *interval as i32;
                    if !(message.symbol.is_empty() || message.symbol == *raw) || !repeats_interval {
                        return Err(ApiError::invalid_field(
                            "symbol",
                            "later messages must leave symbol and interval empty or repeat the first message's",
                        )
                        .into());
                    }
                    known.clone()
                }
                None => {
                    let interval = match interval::from_request(message.interval) {
                        Ok(interval) => interval,
                        Err(why) => {
                            let mut first = FieldViolations::default();
                            if message.symbol.trim().is_empty() {
                                first.add("symbol", "is required");
                            }
                            first.add("interval", why);
                            return Err(first.into_error().into());
                        }
                    };
                    let symbol = self.known_symbol("symbol", &message.symbol, caller).await?;
                    let known = (symbol, interval, message.symbol.clone());
                    series = Some(known.clone());
                    known
                }
            };
            if rows.len() + message.candles.len() > MAX_IMPORT_CANDLES {
                return Err(ApiError::invalid_field(
                    "candles",
                    format!("at most {MAX_IMPORT_CANDLES} candles per import; split the history into several calls"),
                )
                .into());
            }
            let width = width_seconds(interval).expect("an import interval has a width");
            for (index, candle) in message.candles.iter().enumerate() {
                match imported_candle(candle, width, &mut seen) {
                    Ok((open_time, ohlcv)) => rows.push(imported_row(&symbol, interval, open_time, width, ohlcv)),
                    Err((field, why)) => {
                        if reported < MAX_REPORTED_VIOLATIONS {
                            violations.add(
                                format!("candles[{index}].{field}"),
                                format!("{why} (candle {} of the import)", position + index + 1),
                            );
                        }
                        reported += 1;
                    }
                }
            }
            position += message.candles.len();
        }
        let Some((symbol, interval, _)) = series else {
            return Err(
                ApiError::invalid_field("symbol", "the import is empty: send symbol, interval and candles").into()
            );
        };
        if reported > MAX_REPORTED_VIOLATIONS {
            violations.add(
                "candles",
                format!("{reported} bad candles in all; the first {MAX_REPORTED_VIOLATIONS} are listed"),
            );
        }
        violations.into_result()?;
        let imported = rows.len() as u64;
        let now = now_ns();
        let (replaced, settled) = self.store.import(&rows).await.map_err(ApiError::from)?;
        let announced = announce_settled(&self.candles, settled.as_slice(), &rows, now);
        if self.bus.publish(announced).await.is_err() {
            tracing::warn!(%symbol, "cannot announce imported bars to other replicas: the bus is down");
        }
        tracing::info!(%symbol, interval = interval::code(interval), imported, replaced, "candles imported");
        if interval == Interval::OneDay {
            // Daily bars feed the quote's day and previous close.
            self.writer.refresh(vec![symbol]);
        }
        Ok(ImportCandlesResponse { imported, replaced })
    }
}

/// A stored revision as the contract's: stored ones are never negative.
fn revision_of(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// The first whole second at or after `ns`.
fn ceil_seconds(ns: i64) -> i64 {
    ns.div_euclid(NANOS_PER_SECOND) + i64::from(ns.rem_euclid(NANOS_PER_SECOND) != 0)
}

fn invalid_time() -> String {
    "is not a valid time from 1970 on".into()
}

/// Checks one imported candle: the field at fault and why, or its open time
/// (seconds) and values.
fn imported_candle(
    candle: &Candle,
    width: i64,
    seen: &mut HashSet<i64>,
) -> Result<(i64, [f64; 5]), (&'static str, String)> {
    let Some(open_time) = &candle.open_time else { return Err(("open_time", "is required".into())) };
    if ns_from_timestamp(open_time).is_none() {
        return Err(("open_time", invalid_time()));
    }
    if open_time.nanos != 0 || open_time.seconds % width != 0 {
        return Err(("open_time", format!("must fall on a UTC boundary of the interval ({width} s)")));
    }
    let ohlcv = [candle.open, candle.high, candle.low, candle.close, candle.volume];
    for (field, value) in ["open", "high", "low", "close", "volume"].into_iter().zip(ohlcv) {
        if !value.is_finite() || value < 0.0 {
            return Err((field, format!("{value} is not a finite non-negative number")));
        }
    }
    check_price_order(candle.open, candle.high, candle.low, candle.close)?;
    if !seen.insert(open_time.seconds) {
        return Err(("open_time", "another candle of this import opens at the same time".into()));
    }
    Ok((open_time.seconds, ohlcv))
}

/// Ticks merged into one submission at most, when messages wait.
const MAX_MERGED_TICKS: usize = 16 * 1024;

/// `ticks` with those of every message already received on `stream` (up to
/// [`MAX_MERGED_TICKS`]), and whether the stream ended. A feed of small
/// messages then costs one registry lookup and one hand-off to the writer
/// per batch instead of per message, so the call reads nearly as fast as
/// the feed sends; the request windows (`common::connections`) bound what
/// waits unread, within HTTP/2's guard against small frames.
fn with_messages_received(
    mut ticks: Vec<Tick>,
    stream: &mut Streaming<IngestTicksRequest>,
) -> Result<(Vec<Tick>, bool), Status> {
    while ticks.len() < MAX_MERGED_TICKS {
        match stream.message().now_or_never() {
            Some(Ok(Some(message))) => ticks.extend(message.ticks),
            Some(Ok(None)) => return Ok((ticks, true)),
            Some(Err(status)) => return Err(status),
            None => break,
        }
    }
    Ok((ticks, false))
}

#[tonic::async_trait]
impl MarketDataService for MarketData {
    async fn get_quote(&self, request: Request<GetQuoteRequest>) -> Result<Response<GetQuoteResponse>, Status> {
        let caller = Caller::serving(&request);
        Ok(Response::new(MarketData::get_quote(self, request.into_inner(), &caller).await?))
    }

    async fn get_quotes(&self, request: Request<GetQuotesRequest>) -> Result<Response<GetQuotesResponse>, Status> {
        let caller = Caller::serving(&request);
        Ok(Response::new(MarketData::get_quotes(self, request.into_inner(), &caller).await?))
    }

    /// Served encoded by [`crate::MarketDataRoutes`]; here for the
    /// generated server's completeness, decoding what that sends.
    async fn get_candles(&self, request: Request<GetCandlesRequest>) -> Result<Response<GetCandlesResponse>, Status> {
        let caller = Caller::serving(&request);
        let answer = MarketData::get_candles(self, request.into_inner(), &caller).await?;
        Ok(Response::new(decode_answer(answer)?))
    }

    async fn get_series_revision(
        &self,
        request: Request<GetSeriesRevisionRequest>,
    ) -> Result<Response<GetSeriesRevisionResponse>, Status> {
        let caller = Caller::serving(&request);
        Ok(Response::new(MarketData::get_series_revision(self, request.into_inner(), &caller).await?))
    }

    async fn ingest_ticks(
        &self,
        request: Request<Streaming<IngestTicksRequest>>,
    ) -> Result<Response<IngestTicksResponse>, Status> {
        let caller = Caller::serving(&request);
        Ok(Response::new(MarketData::ingest_ticks(self, request.into_inner(), &caller).await?))
    }

    async fn import_candles(
        &self,
        request: Request<Streaming<ImportCandlesRequest>>,
    ) -> Result<Response<ImportCandlesResponse>, Status> {
        let caller = Caller::serving(&request);
        Ok(Response::new(MarketData::import_candles(self, request.into_inner(), &caller).await?))
    }
}

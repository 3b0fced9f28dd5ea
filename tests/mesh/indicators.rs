//! The indicator engine end to end: ComputeSeries and ListIndicators, and
//! every bad input answered with its field. (Values against TA-Lib: the
//! Python oracle test, tests/python/test_indicator_oracle.py.)

use std::collections::HashMap;

use prost_types::Timestamp;
use tonic::Code;
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::*;
use wizdata::r#type::v1::Candle;
use wizdata_test_support::{TestMesh, all_candles, at, ingest_accepted, invalid_fields, trade, violated_fields};

fn candles(closes: &[f64]) -> Vec<Candle> {
    closes
        .iter()
        .enumerate()
        .map(|(day, close)| Candle {
            open_time: Some(Timestamp { seconds: 1_700_000_000 + day as i64 * 86_400, nanos: 0 }),
            open: *close,
            high: close + 1.0,
            low: close - 1.0,
            close: *close,
            volume: 100.0,
            ..Default::default()
        })
        .collect()
}

fn spec(name: &str, parameters: &[(&str, f64)]) -> IndicatorSpec {
    IndicatorSpec {
        name: name.into(),
        parameters: parameters.iter().map(|(key, value)| ((*key).to_owned(), *value)).collect::<HashMap<_, _>>(),
    }
}

#[tokio::test]
async fn series_start_after_the_lookback_and_are_never_padded() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.indicators().await;
    let closes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let request = ComputeSeriesRequest {
        candles: candles(&closes),
        indicators: vec![spec("sma", &[("time_period", 3.0)]), spec("EMA", &[("time_period", 3.0)]), spec("OBV", &[])],
    };
    let results = client.compute_series(request).await.unwrap().into_inner().results;
    let sma = &results[0];
    assert_eq!(sma.spec.as_ref().unwrap().name, "SMA", "names are canonical");
    assert_eq!((sma.lookback, sma.begin_index), (2, 2));
    assert_eq!(sma.outputs[0].values, [2.0, 3.0, 4.0, 5.0]);
    assert_eq!(results[1].outputs[0].values, [2.0, 3.0, 4.0, 5.0], "EMA seeded with the SMA, then k = 0.5");
    assert_eq!((results[2].begin_index, results[2].outputs[0].values.len()), (0, 6));
}

#[tokio::test]
async fn fewer_candles_than_the_lookback_give_an_empty_valid_series() {
    let mesh = TestMesh::all().await;
    let request = ComputeSeriesRequest { candles: candles(&[1.0, 2.0, 3.0]), indicators: vec![spec("MACD", &[])] };
    let result = mesh.indicators().await.compute_series(request).await.unwrap().into_inner().results.remove(0);
    assert_eq!(result.lookback, 33);
    assert_eq!(result.begin_index, 3, "begin_index = number of candles says no value is valid yet");
    assert_eq!(result.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["macd", "macdsignal", "macdhist"]);
    assert!(result.outputs.iter().all(|output| output.values.is_empty()));
}

#[tokio::test]
async fn bad_series_requests_name_every_bad_field() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.indicators().await;

    let mut bad_candles = candles(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    bad_candles[1].open_time = bad_candles[0].open_time; // duplicated
    bad_candles[2].close = f64::NAN;
    bad_candles[3].high = f64::INFINITY;
    bad_candles[4].high = bad_candles[4].low - 1.0;
    let request = ComputeSeriesRequest { candles: bad_candles, indicators: vec![spec("SMA", &[])] };
    assert_eq!(
        invalid_fields(client.compute_series(request).await.unwrap_err()),
        ["candles[1].open_time", "candles[2].close", "candles[3].high", "candles[4].high"]
    );

    let mut out_of_order = candles(&[1.0, 2.0]);
    out_of_order.reverse();
    let request = ComputeSeriesRequest { candles: out_of_order, indicators: vec![spec("SMA", &[])] };
    assert_eq!(invalid_fields(client.compute_series(request).await.unwrap_err()), ["candles[1].open_time"]);

    let request = ComputeSeriesRequest {
        candles: candles(&[1.0, 2.0]),
        indicators: vec![
            spec("NOPE", &[]),
            spec("SMA", &[("time_period", 1.0)]),
            spec("RSI", &[("time_period", 14.5)]),
            spec("BBANDS", &[("nb_dev_up", f64::NAN), ("ma_type", 7.0)]),
            spec("EMA", &[("period", 10.0)]),
        ],
    };
    let mut fields = invalid_fields(client.compute_series(request).await.unwrap_err());
    fields.sort();
    assert_eq!(
        fields,
        [
            "indicators[0].name",
            "indicators[1].parameters[time_period]",
            "indicators[2].parameters[time_period]",
            "indicators[3].parameters[ma_type]",
            "indicators[3].parameters[nb_dev_up]",
            "indicators[4].parameters[period]",
        ]
    );

    let request = ComputeSeriesRequest { candles: candles(&[1.0]), indicators: vec![] };
    assert_eq!(invalid_fields(client.compute_series(request).await.unwrap_err()), ["indicators"]);
    let request = ComputeSeriesRequest { candles: candles(&[1.0]), indicators: vec![spec("SMA", &[]); 33] };
    assert_eq!(invalid_fields(client.compute_series(request).await.unwrap_err()), ["indicators"]);
    let too_long = vec![Candle::default(); wizdata_indicator::MAX_SERIES_CANDLES + 1];
    let request = ComputeSeriesRequest { candles: too_long, indicators: vec![spec("SMA", &[])] };
    assert_eq!(invalid_fields(client.compute_series(request).await.unwrap_err()), ["candles"]);
}

#[tokio::test]
async fn list_indicators_gives_talib_defaults_and_ranges() {
    let mesh = TestMesh::all().await;
    let listed = mesh.indicators().await.list_indicators(ListIndicatorsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.indicators.len(), 14);
    let bbands = listed.indicators.iter().find(|indicator| indicator.name == "BBANDS").unwrap();
    let parameters: Vec<(&str, i32, f64)> =
        bbands.parameters.iter().map(|p| (p.name.as_str(), p.kind, p.default_value)).collect();
    assert_eq!(
        parameters,
        [
            ("time_period", ParameterKind::Integer as i32, 5.0),
            ("nb_dev_up", ParameterKind::Real as i32, 2.0),
            ("nb_dev_dn", ParameterKind::Real as i32, 2.0),
            ("ma_type", ParameterKind::Integer as i32, 0.0),
        ]
    );
}

// ---- Over stored candles: ComputeIndicators and BatchCompute ----

use wizdata::marketdata::v1::GetCandlesRequest;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::r#type::v1::Interval;
use wizdata_test_support::ClientChannel as Channel;

/// 2000-01-03T00:00:00Z, a UTC day boundary.
const FIRST_DAY: i64 = 946_857_600;
const DAY: i64 = 86_400;

fn day(index: usize) -> Timestamp {
    Timestamp { seconds: FIRST_DAY + index as i64 * DAY, nanos: 0 }
}

/// A deterministic daily history with swings, gaps and flat stretches, so
/// every indicator sees rising, falling and unchanged bars.
fn history(days: usize, base: f64) -> Vec<Candle> {
    (0..days)
        .map(|index| {
            let t = index as f64;
            let close = base + 10.0 * (t / 17.0).sin() + 3.0 * (t / 5.0).cos() + t * 0.01;
            let close = if index % 50 < 3 { base } else { close };
            let open = close - (t / 3.0).sin();
            Candle {
                open_time: Some(day(index)),
                open,
                high: close.max(open) + 1.0 + (t / 7.0).sin().abs(),
                low: close.min(open) - 1.0 - (t / 11.0).cos().abs(),
                close,
                volume: 1000.0 + 500.0 * (t / 13.0).sin(),
                ..Default::default()
            }
        })
        .collect()
}

async fn import(mesh: &TestMesh, symbol: &str, candles: Vec<Candle>) {
    let mut market_data = MarketDataServiceClient::new(mesh.channel().await);
    wizdata_market_data::history::import(&mut market_data, symbol, Interval::OneDay, candles).await.unwrap();
}

/// What market data serves for `symbol` from FIRST_DAY on, every page.
async fn stored(mesh: &TestMesh, symbol: &str) -> Vec<Candle> {
    let mut market_data = MarketDataServiceClient::new(mesh.channel().await).max_decoding_message_size(64 << 20);
    let request = GetCandlesRequest {
        symbol: symbol.into(),
        interval: Interval::OneDay as i32,
        start_time: Some(day(0)),
        ..Default::default()
    };
    all_candles(&mut market_data, request, 10_000).await
}

/// Every indicator at its defaults, and the moving-average choices of the
/// ones that take them.
fn every_indicator() -> Vec<IndicatorSpec> {
    let mut specs: Vec<IndicatorSpec> = [
        "SMA", "EMA", "WMA", "MACD", "RSI", "STOCH", "WILLR", "CCI", "BBANDS", "ATR", "ADX", "PLUS_DI", "MINUS_DI",
        "OBV",
    ]
    .iter()
    .map(|name| spec(name, &[]))
    .collect();
    specs.push(spec("BBANDS", &[("time_period", 20.0), ("ma_type", 1.0), ("nb_dev_dn", 1.5)]));
    specs.push(spec("STOCH", &[("slow_k_ma_type", 2.0), ("slow_d_ma_type", 1.0)]));
    specs.push(spec("EMA", &[("time_period", 2.0)]));
    specs
}

async fn large_client(mesh: &TestMesh) -> IndicatorServiceClient<Channel> {
    mesh.indicators().await.max_decoding_message_size(256 << 20)
}

fn over(symbol: &str, indicators: Vec<IndicatorSpec>) -> ComputeIndicatorsRequest {
    ComputeIndicatorsRequest {
        symbol: symbol.into(),
        interval: Interval::OneDay as i32,
        start_time: Some(day(0)),
        end_time: None,
        indicators,
    }
}

/// ComputeIndicators over a symbol's stored candles answers exactly what
/// ComputeSeries answers for the same candles sent by the caller.
async fn assert_same_as_series(mesh: &TestMesh, symbol: &str, expected_candles: usize) {
    let mut indicators = large_client(mesh).await;
    let candles = stored(mesh, symbol).await;
    assert_eq!(candles.len(), expected_candles);
    let from_store = indicators.compute_indicators(over(symbol, every_indicator())).await.unwrap().into_inner();
    let from_series = indicators
        .compute_series(ComputeSeriesRequest { candles: candles.clone(), indicators: every_indicator() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(from_store.symbol, symbol);
    assert_eq!(from_store.interval, Interval::OneDay as i32);
    let open_times: Vec<Timestamp> = candles.iter().map(|candle| candle.open_time.unwrap()).collect();
    assert_eq!(from_store.times, open_times, "results are aligned to the stored candles");
    assert_eq!(from_store.results.len(), every_indicator().len());
    for (stored, series) in from_store.results.iter().zip(&from_series.results) {
        let name = &series.spec.as_ref().unwrap().name;
        assert!(!series.outputs[0].values.is_empty(), "{name} has values to compare");
        assert_eq!(stored, series, "{name}");
    }
}

#[tokio::test]
async fn compute_indicators_on_an_imported_symbol_equals_compute_series_on_the_same_candles() {
    let mesh = TestMesh::all().await;
    import(&mesh, "AAPL", history(3_000, 100.0)).await;
    assert_same_as_series(&mesh, "AAPL", 3_000).await;
}

/// The same over the real sample history, when the sample data is present.
#[tokio::test]
async fn compute_indicators_on_imported_orcl_equals_compute_series() {
    let Some(text) = wizdata_test_support::sample_data("orcl-1995-2014.csv", "the ORCL comparison") else { return };
    let candles = wizdata_market_data::history::parse_candles(text.as_bytes(), Interval::OneDay).unwrap();
    let count = candles.len();
    let mesh = TestMesh::all().await;
    wizdata_test_support::register_orcl(&mesh).await;
    // ORCL's history starts in 1995, before FIRST_DAY: import only what the
    // comparison reads.
    let from_first_day: Vec<Candle> =
        candles.into_iter().filter(|candle| candle.open_time.unwrap().seconds >= FIRST_DAY).collect();
    assert!(from_first_day.len() > 3_000 && from_first_day.len() < count);
    let expected = from_first_day.len();
    import(&mesh, "ORCL", from_first_day).await;
    assert_same_as_series(&mesh, "ORCL", expected).await;
}

/// Results are cached under the revision of the candles they come from:
/// asking again reuses them, and a new candle or a changed one is reflected
/// at once.
async fn assert_new_candles_are_reflected(mesh: &TestMesh) -> Vec<ComputeIndicatorsResponse> {
    let mut indicators = large_client(mesh).await;
    let sma = || over("MSFT", vec![spec("SMA", &[("time_period", 2.0)]), spec("OBV", &[])]);
    let candles = history(10, 50.0);
    import(mesh, "MSFT", candles.clone()).await;
    let first = indicators.compute_indicators(sma()).await.unwrap().into_inner();
    let again = indicators.compute_indicators(sma()).await.unwrap().into_inner();
    assert_eq!(first, again);
    let expected_last = (candles[8].close + candles[9].close) / 2.0;
    assert_eq!(first.results[0].outputs[0].values.last(), Some(&expected_last));

    // A new candle.
    let mut longer = history(11, 50.0);
    longer[10].close = 1_000.0;
    longer[10].high = 1_001.0;
    import(mesh, "MSFT", longer[10..].to_vec()).await;
    let grown = indicators.compute_indicators(sma()).await.unwrap().into_inner();
    assert_eq!(grown.times.len(), 11);
    assert_eq!(grown.results[0].outputs[0].values.last(), Some(&((candles[9].close + 1_000.0) / 2.0)));

    // A changed candle in the middle of the history (a correction).
    let mut corrected = longer[5];
    corrected.volume += 1.0;
    corrected.close += 1.0;
    corrected.high += 1.0;
    import(mesh, "MSFT", vec![corrected]).await;
    let after_correction = indicators.compute_indicators(sma()).await.unwrap().into_inner();
    assert_eq!(after_correction.results[0].outputs[0].values[4], (longer[4].close + corrected.close) / 2.0);
    assert_ne!(after_correction.results[1], grown.results[1], "OBV moved with the corrected bar");
    let series = ComputeSeriesRequest { candles: stored(mesh, "MSFT").await, indicators: sma().indicators };
    assert_eq!(after_correction.results, indicators.compute_series(series).await.unwrap().into_inner().results);
    vec![first, grown, after_correction]
}

/// Results are cached by what the indicator computes, not by how the
/// request spelled it: a second request that names SMA's default period
/// explicitly is answered from the first one's cached result, under its own
/// spec, with the same values.
#[tokio::test]
async fn a_cached_result_answers_under_each_callers_spec() {
    let mesh = TestMesh::all().await;
    let mut indicators = large_client(&mesh).await;
    import(&mesh, "MSFT", history(40, 50.0)).await;
    let explicit = over("MSFT", vec![spec("sma", &[("time_period", 30.0)]), spec("OBV", &[])]);
    let explicit = indicators.compute_indicators(explicit).await.unwrap().into_inner();
    let implicit = indicators.compute_indicators(over("MSFT", vec![spec("SMA", &[])])).await.unwrap().into_inner();
    assert_eq!(
        explicit.results[0].spec,
        Some(spec("SMA", &[("time_period", 30.0)])),
        "canonical name, caller's parameters"
    );
    assert_eq!(explicit.results[1].spec, Some(spec("OBV", &[])));
    // Not the spec the cached result was first computed for, nor a mix of the two.
    assert_eq!(implicit.results[0].spec, Some(spec("SMA", &[])));
    assert_eq!(
        (implicit.symbol.as_str(), implicit.interval, &implicit.times),
        ("MSFT", explicit.interval, &explicit.times)
    );
    assert_eq!(implicit.results[0].outputs, explicit.results[0].outputs);
    assert_eq!((implicit.results[0].lookback, implicit.results[0].begin_index), (29, 29));
    assert_eq!(implicit.results[0].outputs[0].values.len(), 11);
}

/// A late trade into a closed bar gives its series a new revision: the next
/// ComputeIndicators reads the changed candles instead of answering with
/// the results cached for the old ones.
#[tokio::test]
async fn a_late_trade_in_a_closed_bar_is_reflected_not_the_cached_results() {
    let mesh = TestMesh::all().await;
    // 2024-03-05T13:00:00Z, on a minute boundary: every bar long closed.
    const BASE: i64 = 1_709_643_600;
    let ticks = (0..5).map(|minute| trade("GOOGL", BASE + minute * 60 + 10, 10.0 + minute as f64, 1.0)).collect();
    ingest_accepted(&mesh, ticks).await;
    let mut indicators = mesh.indicators().await;
    let request = ComputeIndicatorsRequest {
        symbol: "GOOGL".into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(at(BASE)),
        end_time: Some(at(BASE + 300)),
        indicators: vec![spec("SMA", &[("time_period", 2.0)]), spec("OBV", &[])],
    };
    let before = indicators.compute_indicators(request.clone()).await.unwrap().into_inner();
    assert_eq!(before.results[0].outputs[0].values, [10.5, 11.5, 12.5, 13.5]);
    assert_eq!(before, indicators.compute_indicators(request.clone()).await.unwrap().into_inner(), "cached");

    // After the second bar's last trade: its close becomes 20, its volume 4.
    ingest_accepted(&mesh, vec![trade("GOOGL", BASE + 60 + 50, 20.0, 3.0)]).await;
    let after = indicators.compute_indicators(request.clone()).await.unwrap().into_inner();
    assert_eq!(after.results[0].outputs[0].values, [15.0, 16.0, 12.5, 13.5]);
    assert_ne!(after.results[1], before.results[1], "OBV moved with the bar's volume");
    let mut market_data = MarketDataServiceClient::new(mesh.channel().await);
    let candles = GetCandlesRequest {
        symbol: "GOOGL".into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(at(BASE)),
        end_time: Some(at(BASE + 300)),
        ..Default::default()
    };
    let stored = all_candles(&mut market_data, candles, 100).await;
    let series = ComputeSeriesRequest { candles: stored, indicators: request.indicators };
    assert_eq!(after.results, indicators.compute_series(series).await.unwrap().into_inner().results);
}

#[tokio::test]
async fn a_new_or_changed_candle_is_reflected_at_once() {
    let mesh = TestMesh::all().await;
    assert_new_candles_are_reflected(&mesh).await;
}

/// With Redis, results land there under the mesh's prefix, one entry per
/// indicator and revision of the series, shared by every replica.
#[tokio::test]
async fn with_redis_results_are_cached_there_by_series() {
    use fred::interfaces::{ClientLike, KeysInterface};

    let Some(redis) = wizdata_test_support::redis_or_skip("the Redis cache").await else { return };
    let prefix = redis.prefix.clone();
    let direct =
        fred::types::Builder::from_config(fred::types::config::Config::from_url(&redis.url).unwrap()).build().unwrap();
    direct.init().await.unwrap();
    let mesh = TestMesh::serve("all").redis(Some(redis)).start().await;

    assert_new_candles_are_reflected(&mesh).await;
    let (_, keys): (String, Vec<String>) =
        direct.scan_page("0", format!("{prefix}indicator:v3:*"), Some(10_000), None).await.unwrap();
    // Three revisions of the series (10 candles, 11, then corrected) x (two
    // indicators and the candles' times).
    assert_eq!(keys.len(), 9, "{keys:?}");
    let _ = direct.quit().await;
}

#[tokio::test]
async fn bad_compute_indicators_requests() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.indicators().await;
    let request = ComputeIndicatorsRequest {
        symbol: " ".into(),
        interval: 0,
        start_time: Some(Timestamp { seconds: 0, nanos: -1 }),
        end_time: None,
        indicators: vec![spec("NOPE", &[])],
    };
    let status = client.compute_indicators(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["symbol", "interval", "start_time", "indicators[0].name"]);

    let status = client.compute_indicators(over("NOPE", vec![spec("SMA", &[])])).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "market data's answer about the symbol is passed on: {status:?}");

    let backwards = ComputeIndicatorsRequest {
        end_time: Some(day(0)),
        start_time: Some(day(5)),
        ..over("AAPL", vec![spec("SMA", &[])])
    };
    let status = client.compute_indicators(backwards).await.unwrap_err();
    assert_eq!((status.code(), violated_fields(&status)), (Code::InvalidArgument, vec!["end_time".to_owned()]));

    // Too few candles: an empty valid series, not an error.
    import(&mesh, "AAPL", history(3, 100.0)).await;
    let answer = client.compute_indicators(over("AAPL", vec![spec("RSI", &[])])).await.unwrap().into_inner();
    assert_eq!(answer.times.len(), 3);
    assert_eq!((answer.results[0].lookback, answer.results[0].begin_index), (14, 3));
    assert!(answer.results[0].outputs[0].values.is_empty());
}

#[tokio::test]
async fn batch_compute_answers_every_symbol_and_reports_failures_per_symbol() {
    let mesh = TestMesh::all_with(&["--batch-parallelism", "2"]).await;
    import(&mesh, "AAPL", history(300, 100.0)).await;
    import(&mesh, "MSFT", history(200, 50.0)).await;
    let mut client = large_client(&mesh).await;
    let indicators = vec![spec("RSI", &[]), spec("MACD", &[])];
    let request = BatchComputeRequest {
        symbols: vec!["AAPL".into(), "NOPE".into(), "msft".into()],
        interval: Interval::OneDay as i32,
        start_time: Some(day(0)),
        end_time: Some(day(10_000)),
        indicators: indicators.clone(),
    };
    let results = client.batch_compute(request).await.unwrap().into_inner().results;
    let symbols: Vec<&str> = results.iter().map(|result| result.symbol.as_str()).collect();
    assert_eq!(symbols, ["AAPL", "NOPE", "msft"], "in the order asked");
    assert_eq!((results[1].error_code, results[1].response.is_none()), (Code::NotFound as i32, true));
    assert!(!results[1].error_message.is_empty());
    for (result, symbol) in [(&results[0], "AAPL"), (&results[2], "MSFT")] {
        assert_eq!(result.error_code, 0);
        let single = ComputeIndicatorsRequest { end_time: Some(day(10_000)), ..over(symbol, indicators.clone()) };
        let alone = client.compute_indicators(single).await.unwrap().into_inner();
        assert_eq!(result.response.as_ref(), Some(&alone), "{symbol}");
    }
}

#[tokio::test]
async fn bad_batches_name_every_bad_field() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.indicators().await;
    let batch = |symbols: Vec<String>, indicators: Vec<IndicatorSpec>| BatchComputeRequest {
        symbols,
        interval: Interval::OneDay as i32,
        start_time: Some(day(0)),
        end_time: Some(day(100)),
        indicators,
    };

    let status = client.batch_compute(batch(vec![], vec![])).await.unwrap_err();
    assert_eq!(invalid_fields(status), ["symbols", "indicators"]);
    let named = vec!["AAPL".into(), "".into(), "aapl".into()];
    let status = client.batch_compute(batch(named, vec![spec("SMA", &[])])).await.unwrap_err();
    assert_eq!(invalid_fields(status), ["symbols[1]", "symbols[2]"]);

    let many: Vec<String> = (0..=wizdata_indicator::MAX_BATCH_SYMBOLS).map(|index| format!("S{index}")).collect();
    let status = client.batch_compute(batch(many, vec![spec("SMA", &[])])).await.unwrap_err();
    assert_eq!(invalid_fields(status), ["symbols"]);

    // 20 x 21 = 420 computations, over the 400 allowed.
    let twenty: Vec<String> = (0..20).map(|index| format!("S{index}")).collect();
    let status = client.batch_compute(batch(twenty, vec![spec("SMA", &[]); 21])).await.unwrap_err();
    assert_eq!(invalid_fields(status), ["indicators"]);

    let too_long = BatchComputeRequest {
        end_time: Some(day(wizdata_indicator::MAX_BATCH_BARS as usize + 1)),
        ..batch(vec!["AAPL".into()], vec![spec("SMA", &[])])
    };
    assert_eq!(invalid_fields(client.batch_compute(too_long).await.unwrap_err()), ["end_time"]);
    let no_interval = BatchComputeRequest { interval: 0, ..batch(vec!["AAPL".into()], vec![spec("SMA", &[])]) };
    assert_eq!(invalid_fields(client.batch_compute(no_interval).await.unwrap_err()), ["interval"]);
}

/// An indicator process whose market data never answers: the fetch ends
/// with the deadline instead of hanging, and a market data that refuses
/// connections answers UNAVAILABLE.
#[tokio::test]
async fn market_data_trouble_ends_calls_with_a_clear_status() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let mesh = TestMesh::serve("indicator")
        // Anonymous reads need no auth service; a dead address will do.
        .flags(&[
            "--market-data-url",
            &silent_url,
            "--market-data-timeout",
            "300ms",
            "--auth-url",
            "http://127.0.0.1:9",
        ])
        .start()
        .await;
    let status = mesh.indicators().await.compute_indicators(over("AAPL", vec![spec("SMA", &[])])).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    hold.abort();

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mesh = TestMesh::serve("indicator")
        .database(mesh.database())
        .flags(&["--market-data-url", &closed, "--auth-url", "http://127.0.0.1:9"])
        .start()
        .await;
    let status = mesh.indicators().await.compute_indicators(over("AAPL", vec![spec("SMA", &[])])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.message().contains("127.0.0.1"), "no hosts in messages: {}", status.message());
}

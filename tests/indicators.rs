//! The indicator engine end to end: ComputeSeries and ListIndicators, and
//! every bad input answered with its field. (Values against TA-Lib: the
//! Python oracle test, tests/python/test_indicator_oracle.py.)

mod support;

use std::collections::HashMap;

use prost_types::Timestamp;
use support::{TestMesh, violated_fields};
use tonic::Code;
use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
use wizdata::indicator::v1::*;
use wizdata::r#type::v1::Candle;
use wizdata_common::testing::TestDatabase;

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

async fn client(mesh: &TestMesh) -> IndicatorServiceClient<tonic::transport::Channel> {
    IndicatorServiceClient::new(mesh.channel().await)
}

#[tokio::test]
async fn series_start_after_the_lookback_and_are_never_padded() {
    let db = TestDatabase::new().await;
    let mesh = TestMesh::all(&db).await;
    let mut client = client(&mesh).await;
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
    let db = TestDatabase::new().await;
    let mesh = TestMesh::all(&db).await;
    let request = ComputeSeriesRequest { candles: candles(&[1.0, 2.0, 3.0]), indicators: vec![spec("MACD", &[])] };
    let result = client(&mesh).await.compute_series(request).await.unwrap().into_inner().results.remove(0);
    assert_eq!(result.lookback, 33);
    assert_eq!(result.begin_index, 3, "begin_index = number of candles says no value is valid yet");
    assert_eq!(result.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["macd", "macdsignal", "macdhist"]);
    assert!(result.outputs.iter().all(|output| output.values.is_empty()));
}

#[tokio::test]
async fn bad_series_requests_name_every_bad_field() {
    let db = TestDatabase::new().await;
    let mesh = TestMesh::all(&db).await;
    let mut client = client(&mesh).await;
    let invalid = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        violated_fields(&status)
    };

    let mut bad_candles = candles(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    bad_candles[1].open_time = bad_candles[0].open_time; // duplicated
    bad_candles[2].close = f64::NAN;
    bad_candles[3].high = f64::INFINITY;
    bad_candles[4].high = bad_candles[4].low - 1.0;
    let request = ComputeSeriesRequest { candles: bad_candles, indicators: vec![spec("SMA", &[])] };
    assert_eq!(
        invalid(client.compute_series(request).await.unwrap_err()),
        ["candles[1].open_time", "candles[2].close", "candles[3].high", "candles[4].high"]
    );

    let mut out_of_order = candles(&[1.0, 2.0]);
    out_of_order.reverse();
    let request = ComputeSeriesRequest { candles: out_of_order, indicators: vec![spec("SMA", &[])] };
    assert_eq!(invalid(client.compute_series(request).await.unwrap_err()), ["candles[1].open_time"]);

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
    let mut fields = invalid(client.compute_series(request).await.unwrap_err());
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
    assert_eq!(invalid(client.compute_series(request).await.unwrap_err()), ["indicators"]);
    let request = ComputeSeriesRequest { candles: candles(&[1.0]), indicators: vec![spec("SMA", &[]); 33] };
    assert_eq!(invalid(client.compute_series(request).await.unwrap_err()), ["indicators"]);
    let too_long = vec![Candle::default(); wizdata_indicator::MAX_SERIES_CANDLES + 1];
    let request = ComputeSeriesRequest { candles: too_long, indicators: vec![spec("SMA", &[])] };
    assert_eq!(invalid(client.compute_series(request).await.unwrap_err()), ["candles"]);
}

#[tokio::test]
async fn list_indicators_gives_talib_defaults_and_ranges() {
    let db = TestDatabase::new().await;
    let mesh = TestMesh::all(&db).await;
    let listed = client(&mesh).await.list_indicators(ListIndicatorsRequest {}).await.unwrap().into_inner();
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

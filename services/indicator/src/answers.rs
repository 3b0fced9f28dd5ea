//! Answers over stored candles, put together from parts encoded once.
//!
//! A protobuf message's encoding is its fields' encodings one after the
//! other, so an answer is the concatenation of its parts: the bars' open
//! times and each indicator's result, encoded once when they are computed
//! and kept so in the cache, and the few bytes that differ per request
//! (the symbol, the interval, the caller's spelling of each spec). A cache
//! hit then copies bytes instead of decoding the results and encoding them
//! again, 10,000 doubles at a time.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use prost_types::Timestamp;
use wizdata::indicator::v1::{ComputeIndicatorsResponse, IndicatorResult, IndicatorSpec, SymbolResult};
use wizdata::r#type::v1::Interval;

/// Field numbers (indicator_service.proto).
const RESPONSE_TIMES: u32 = 3;
const RESPONSE_RESULTS: u32 = 4;
const RESULT_SPEC: u32 = 1;
const SYMBOL_RESULT_RESPONSE: u32 = 2;
const BATCH_RESULTS: u32 = 1;

/// A result's encoding without its spec: shared by every request that
/// configures the indicator alike, whatever spelling of the spec it used.
pub fn encode_result(result: IndicatorResult) -> Bytes {
    IndicatorResult { spec: None, ..result }.encode_to_vec().into()
}

/// The bars' open times as the answer's `times` field.
pub fn encode_times(times: &[Timestamp]) -> Bytes {
    let mut buffer = Vec::with_capacity(times.len() * 10);
    prost::encoding::message::encode_repeated(RESPONSE_TIMES, times, &mut buffer);
    buffer.into()
}

/// A ComputeIndicatorsResponse: `results[i]` (from [`encode_result`]) under
/// the caller's `specs[i]`, aligned to `times` (from [`encode_times`]).
pub fn compute_indicators_response(
    symbol: String,
    interval: Interval,
    times: &Bytes,
    results: &[Bytes],
    specs: &[&IndicatorSpec],
) -> Bytes {
    debug_assert_eq!(results.len(), specs.len());
    let head = ComputeIndicatorsResponse { symbol, interval: interval as i32, ..Default::default() };
    let spec_lengths: Vec<usize> =
        specs.iter().map(|spec| prost::encoding::message::encoded_len(RESULT_SPEC, *spec)).collect();
    let result_lengths = results.iter().zip(&spec_lengths).map(|(result, spec)| spec + result.len());
    let size = head.encoded_len()
        + times.len()
        + result_lengths
            .map(|length| key_len(RESPONSE_RESULTS) + encoded_len_varint(length as u64) + length)
            .sum::<usize>();
    let mut buffer = BytesMut::with_capacity(size);
    head.encode_raw(&mut buffer);
    buffer.put_slice(times);
    for ((result, spec), spec_length) in results.iter().zip(specs).zip(spec_lengths) {
        encode_key(RESPONSE_RESULTS, WireType::LengthDelimited, &mut buffer);
        encode_varint((spec_length + result.len()) as u64, &mut buffer);
        prost::encoding::message::encode(RESULT_SPEC, *spec, &mut buffer);
        buffer.put_slice(result);
    }
    debug_assert_eq!(buffer.len(), size);
    buffer.freeze()
}

/// A BatchComputeResponse: for each symbol, its encoded
/// ComputeIndicatorsResponse or why it failed (`symbol_result` without its
/// `response`).
pub fn batch_compute_response(results: Vec<(SymbolResult, Option<Bytes>)>) -> Bytes {
    let mut buffer = BytesMut::new();
    for (symbol_result, response) in results {
        let response_length = response.as_ref().map_or(0, |response| {
            key_len(SYMBOL_RESULT_RESPONSE) + encoded_len_varint(response.len() as u64) + response.len()
        });
        encode_key(BATCH_RESULTS, WireType::LengthDelimited, &mut buffer);
        encode_varint((symbol_result.encoded_len() + response_length) as u64, &mut buffer);
        symbol_result.encode_raw(&mut buffer);
        if let Some(response) = response {
            encode_key(SYMBOL_RESULT_RESPONSE, WireType::LengthDelimited, &mut buffer);
            encode_varint(response.len() as u64, &mut buffer);
            buffer.put_slice(&response);
        }
    }
    buffer.freeze()
}

#[cfg(test)]
mod tests {
    use wizdata::indicator::v1::{BatchComputeResponse, OutputSeries};

    use super::*;

    fn result(name: &str, values: Vec<f64>, outputs: &[&str]) -> IndicatorResult {
        IndicatorResult {
            spec: Some(IndicatorSpec {
                name: format!("{name} as first computed"),
                parameters: [("period".into(), 3.0)].into(),
            }),
            lookback: 2,
            begin_index: 2,
            outputs: outputs
                .iter()
                .map(|output| OutputSeries { name: (*output).into(), values: values.clone() })
                .collect(),
        }
    }

    fn spec(name: &str, period: f64) -> IndicatorSpec {
        IndicatorSpec { name: name.into(), parameters: [("period".into(), period)].into() }
    }

    /// The answer the parts make, as the typed message would be: each
    /// result under the caller's spec.
    fn typed(
        symbol: &str,
        times: &[Timestamp],
        results: &[IndicatorResult],
        specs: &[IndicatorSpec],
    ) -> ComputeIndicatorsResponse {
        ComputeIndicatorsResponse {
            symbol: symbol.into(),
            interval: Interval::OneMinute as i32,
            times: times.to_vec(),
            results: results
                .iter()
                .zip(specs)
                .map(|(result, spec)| IndicatorResult { spec: Some(spec.clone()), ..result.clone() })
                .collect(),
        }
    }

    #[test]
    fn an_answer_from_encoded_parts_is_the_typed_answer_with_the_callers_specs() {
        let times: Vec<Timestamp> = (0..5).map(|bar| Timestamp { seconds: 60 * bar, nanos: 0 }).collect();
        let results = [
            result("RSI", vec![1.5, -2.25, f64::MAX], &["rsi"]),
            result("BBANDS", vec![0.1; 300], &["upper", "middle", "lower"]),
            result("SMA", Vec::new(), &["sma"]),
        ];
        let specs =
            [spec("RSI", 14.0), spec("BBANDS", 20.0), IndicatorSpec { name: "SMA".into(), ..Default::default() }];
        let encoded: Vec<Bytes> = results.iter().cloned().map(encode_result).collect();
        let answer = compute_indicators_response(
            "BTC/USDT".into(),
            Interval::OneMinute,
            &encode_times(&times),
            &encoded,
            &specs.iter().collect::<Vec<_>>(),
        );
        let decoded = ComputeIndicatorsResponse::decode(answer.clone()).unwrap();
        let expected = typed("BTC/USDT", &times, &results, &specs);
        assert_eq!(decoded, expected);
        assert_eq!(answer.len(), expected.encoded_len());
    }

    #[test]
    fn an_answer_without_bars_or_results_is_the_empty_typed_answer() {
        let answer = compute_indicators_response("X".into(), Interval::OneMinute, &encode_times(&[]), &[], &[]);
        assert_eq!(ComputeIndicatorsResponse::decode(answer).unwrap(), typed("X", &[], &[], &[]));
    }

    #[test]
    fn a_batch_from_encoded_answers_is_the_typed_batch() {
        let times = [Timestamp { seconds: 60, nanos: 5 }];
        let results = [result("EMA", vec![3.0], &["ema"])];
        let specs = [spec("EMA", 9.0)];
        let answer = compute_indicators_response(
            "AAA".into(),
            Interval::OneMinute,
            &encode_times(&times),
            &[encode_result(results[0].clone())],
            &specs.iter().collect::<Vec<_>>(),
        );
        let ok = SymbolResult { symbol: "AAA".into(), ..Default::default() };
        let failed = SymbolResult {
            symbol: "BBB".into(),
            response: None,
            error_code: tonic::Code::NotFound as i32,
            error_message: "no such symbol".into(),
        };
        let batch = batch_compute_response(vec![(ok.clone(), Some(answer)), (failed.clone(), None)]);
        let expected = BatchComputeResponse {
            results: vec![SymbolResult { response: Some(typed("AAA", &times, &results, &specs)), ..ok }, failed],
        };
        assert_eq!(BatchComputeResponse::decode(batch).unwrap(), expected);
    }
}

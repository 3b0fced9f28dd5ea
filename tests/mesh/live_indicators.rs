//! Live indicators on the stream end to end: every value a subscriber is
//! sent (snapshot, provisional, final, correction) equals what
//! ComputeIndicators answers over the stored candles at that moment; one
//! computation serves every subscriber of the same indicator; bad specs are
//! refused field by field.

use std::collections::HashMap;
use std::time::Duration;

use prost_types::Timestamp;
use tonic::Code;
use wizdata::indicator::v1::{ComputeIndicatorsRequest, ComputeIndicatorsResponse, IndicatorSpec};
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::*;
use wizdata::r#type::v1::Interval;
use wizdata_test_support::{TestMesh, ingest_accepted, invalid_fields, now_seconds, trade};

/// Long enough for a one-minute bar to close and its close to be announced.
const WAIT: Duration = Duration::from_secs(75);

fn spec(name: &str, parameters: &[(&str, f64)]) -> IndicatorSpec {
    IndicatorSpec {
        name: name.into(),
        parameters: parameters.iter().map(|(key, value)| ((*key).to_owned(), *value)).collect::<HashMap<_, _>>(),
    }
}

/// The five the issue names, one of each shape: one output, three outputs,
/// high-low-close input.
fn five() -> Vec<IndicatorSpec> {
    vec![
        spec("RSI", &[]),
        spec("EMA", &[("time_period", 10.0)]),
        spec("MACD", &[("fast_period", 5.0), ("slow_period", 12.0), ("signal_period", 4.0)]),
        spec("BBANDS", &[("time_period", 8.0)]),
        spec("ADX", &[("time_period", 6.0)]),
    ]
}

fn subscription(symbols: &[&str], indicators: Vec<IndicatorSpec>) -> SubscribeRequest {
    SubscribeRequest {
        symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
        channels: vec![Channel::Indicators as i32],
        candle_interval: Interval::OneMinute as i32,
        indicators,
    }
}

/// The open time of the current one-minute bar.
fn this_minute() -> i64 {
    let now = now_seconds();
    now - now.rem_euclid(60)
}

/// Three trades in each of the `bars` one-minute bars before this one, so
/// every bar has its own open, high, low and close.
async fn ingest_history(mesh: &TestMesh, symbol: &str, bars: i64) {
    let start = this_minute() - bars * 60;
    let ticks = (0..bars)
        .flat_map(|bar| {
            let base = 100.0 + ((bar * 37) % 23) as f64 + bar as f64 * 0.25;
            let open = start + bar * 60;
            [(5, base), (20, base + 1.5 + (bar % 3) as f64), (50, base - 0.75 - (bar % 5) as f64 * 0.5)]
                .map(|(second, price)| trade(symbol, open + second, price, 1.0 + (bar % 4) as f64))
        })
        .collect();
    ingest_accepted(mesh, ticks).await;
}

/// The next indicator event of a stream, skipping heartbeats.
async fn next_update(stream: &mut tonic::Streaming<SubscribeResponse>) -> (MarketEvent, IndicatorUpdate) {
    loop {
        let message = tokio::time::timeout(WAIT, stream.message()).await.expect("an event in time");
        if let Some(subscribe_response::Payload::Event(event)) = message.unwrap().expect("the stream goes on").payload {
            match event.payload.clone() {
                Some(Payload::Indicator(update)) => return (event, *update),
                other => panic!("an indicator subscription sent {other:?}"),
            }
        }
    }
}

/// One event per indicator of `five()`, keyed by name, with their sequences.
async fn one_each(stream: &mut tonic::Streaming<SubscribeResponse>) -> HashMap<String, (MarketEvent, IndicatorUpdate)> {
    let mut updates = HashMap::new();
    while updates.len() < five().len() {
        let (event, update) = next_update(stream).await;
        let name = update.spec.as_ref().unwrap().name.clone();
        assert!(updates.insert(name.clone(), (event, update)).is_none(), "one event for {name}");
    }
    updates
}

/// ComputeIndicators over all of `symbol`'s stored one-minute candles.
async fn compute(mesh: &TestMesh, symbol: &str, indicators: Vec<IndicatorSpec>) -> ComputeIndicatorsResponse {
    let request = ComputeIndicatorsRequest {
        symbol: symbol.into(),
        interval: Interval::OneMinute as i32,
        indicators,
        ..Default::default()
    };
    mesh.indicators().await.compute_indicators(request).await.unwrap().into_inner()
}

/// Holds `update`'s values to ComputeIndicators' at its bar, as equal as
/// the batch kernels and the state machines are to each other.
fn assert_matches(update: &IndicatorUpdate, computed: &ComputeIndicatorsResponse) {
    let name = &update.spec.as_ref().unwrap().name;
    let bar = computed.times.iter().position(|time| Some(*time) == update.bar_time).expect("the bar is stored");
    let result = computed.results.iter().find(|result| &result.spec.as_ref().unwrap().name == name).unwrap();
    let index = bar.checked_sub(result.begin_index as usize).expect("the bar is past the lookback");
    assert_eq!(update.values.len(), result.outputs.len(), "{name}: every output");
    for output in &result.outputs {
        let (live, batch) = (update.values[&output.name], output.values[index]);
        let tolerance = 1e-9 * batch.abs().max(1.0);
        assert!((live - batch).abs() <= tolerance, "{name} {}: live {live} vs ComputeIndicators {batch}", output.name);
    }
}

#[tokio::test]
async fn live_values_equal_compute_indicators_from_the_snapshot_through_a_correction_and_a_close() {
    let mesh = TestMesh::all().await;
    ingest_history(&mesh, "AAPL", 60).await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let mut stream = client.subscribe(subscription(&["AAPL"], five())).await.unwrap().into_inner();

    // The snapshot: the last closed bar's final values (no bar is open).
    let snapshot = one_each(&mut stream).await;
    let computed = compute(&mesh, "AAPL", five()).await;
    for (event, update) in snapshot.values() {
        assert!(event.snapshot && update.closed, "{update:?}");
        assert_eq!(update.bars_needed, 0);
        let (sent, asked) = (
            update.spec.as_ref().unwrap(),
            five().into_iter().find(|asked| asked.name == update.spec.as_ref().unwrap().name).unwrap(),
        );
        assert!(asked.parameters.iter().all(|(name, value)| sent.parameters.get(name) == Some(value)), "{sent:?}");
        assert!(!sent.parameters.is_empty(), "the spec names every parameter, defaults too");
        assert_matches(update, &computed);
    }

    // A trade in the current bar: provisional values, numbered next.
    let open_time = this_minute();
    ingest_accepted(&mesh, vec![trade("AAPL", now_seconds(), 131.0, 2.0)]).await;
    let provisional = one_each(&mut stream).await;
    let computed = compute(&mesh, "AAPL", five()).await;
    let mut last_sequence: HashMap<String, u64> =
        snapshot.iter().map(|(name, (event, _))| (name.clone(), event.sequence)).collect();
    for (name, (event, update)) in &provisional {
        assert!(!event.snapshot);
        assert_eq!(event.sequence, last_sequence[name] + 1, "{name}: live events follow the snapshot");
        last_sequence.insert(name.clone(), event.sequence);
        assert!(update.bar_time.unwrap().seconds >= open_time);
        assert_matches(update, &computed);
    }

    // The bar's close: its final values. (If the minute turned between the
    // trade and its event, the event was already the final one.)
    let mut finals: HashMap<String, IndicatorUpdate> = provisional
        .into_iter()
        .filter(|(_, (_, update))| update.closed)
        .map(|(name, (_, update))| (name, update))
        .collect();
    while finals.len() < five().len() {
        let (event, update) = next_update(&mut stream).await;
        assert!(!event.snapshot && update.closed, "only the close follows: {update:?}");
        assert!(update.bar_time.unwrap().seconds >= open_time);
        let name = update.spec.as_ref().unwrap().name.clone();
        assert_eq!(event.sequence, last_sequence[&name] + 1, "{name}: numbered next");
        last_sequence.insert(name.clone(), event.sequence);
        finals.insert(name, update);
    }
    let computed = compute(&mesh, "AAPL", five()).await;
    for update in finals.values() {
        assert_matches(update, &computed);
    }

    // A late trade ten bars back: a correction naming that bar, its values
    // recomputed from stored history.
    let late_bar = this_minute() - 10 * 60;
    ingest_accepted(&mesh, vec![trade("AAPL", late_bar + 30, 175.0, 9.0)]).await;
    let corrections = one_each(&mut stream).await;
    let computed = compute(&mesh, "AAPL", five()).await;
    for (name, (event, update)) in &corrections {
        assert_eq!(update.corrected_bar_time, Some(Timestamp { seconds: late_bar, nanos: 0 }), "{name}");
        assert_eq!(event.sequence, last_sequence[name] + 1, "{name}: numbered next");
        assert_matches(update, &computed);
    }
}

#[tokio::test]
async fn subscribers_of_one_indicator_share_one_computation_and_a_short_history_says_what_it_lacks() {
    let mesh = TestMesh::all().await;
    ingest_history(&mesh, "MSFT", 40).await;
    ingest_history(&mesh, "TSLA", 3).await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let mut first = client.subscribe(subscription(&["MSFT"], vec![spec("RSI", &[])])).await.unwrap().into_inner();
    // The same computation however it is asked for.
    let same = spec("rsi", &[("time_period", 14.0)]);
    let mut second = client.subscribe(subscription(&["MSFT"], vec![same])).await.unwrap().into_inner();
    let (_, a) = next_update(&mut first).await;
    let (_, b) = next_update(&mut second).await;
    assert_eq!(a, b, "both are sent the same snapshot");
    assert_eq!(a.spec.as_ref().unwrap(), &spec("RSI", &[("time_period", 14.0)]), "the canonical spec");

    // Too little history: a snapshot without values that says how many bars are missing.
    let mut short = client.subscribe(subscription(&["TSLA"], vec![spec("RSI", &[])])).await.unwrap().into_inner();
    let (event, update) = next_update(&mut short).await;
    assert!(event.snapshot && update.values.is_empty());
    assert_eq!(update.bars_needed, 15 - 3, "RSI(14) needs 15 bars; 3 are stored");
    // One bar short: the next bar brings the first (provisional) value,
    // ComputeIndicators' over the same four bars.
    let sma = spec("SMA", &[("time_period", 4.0)]);
    let mut almost = client.subscribe(subscription(&["TSLA"], vec![sma.clone()])).await.unwrap().into_inner();
    let (_, update) = next_update(&mut almost).await;
    assert!(update.values.is_empty());
    assert_eq!(update.bars_needed, 1);
    ingest_accepted(&mesh, vec![trade("TSLA", now_seconds(), 250.0, 1.0)]).await;
    let (event, first) = next_update(&mut almost).await;
    assert!(!event.snapshot && first.bars_needed == 0, "{first:?}");
    let computed = compute(&mesh, "TSLA", vec![sma]).await;
    assert_eq!(computed.times.len(), 4);
    assert_matches(&first, &computed);

    let mut streaming = mesh.streaming().await;
    let stats = streaming.get_stream_stats(GetStreamStatsRequest {}).await.unwrap().into_inner();
    assert_eq!(stats.live_indicators, 3, "one for MSFT's RSI, however many subscribe, and TSLA's RSI and SMA");

    // In a Session, subscribed and unsubscribed by any spelling of the spec.
    let command = |id: &str, subscribe: bool| SessionRequest {
        command_id: id.into(),
        command: Some(match subscribe {
            true => session_request::Command::Subscribe(SubscribeCommand {
                symbols: vec!["MSFT".into()],
                channels: vec![Channel::Indicators as i32],
                candle_interval: Interval::OneMinute as i32,
                indicators: vec![spec("RSI", &[])],
            }),
            false => session_request::Command::Unsubscribe(UnsubscribeCommand {
                symbols: vec!["MSFT".into()],
                channels: vec![Channel::Indicators as i32],
                candle_interval: Interval::OneMinute as i32,
                indicators: vec![spec("Rsi", &[("time_period", 14.0)])],
            }),
        }),
    };
    let (commands, receiver) = tokio::sync::mpsc::channel(4);
    let mut session = client.session(tokio_stream::wrappers::ReceiverStream::new(receiver)).await.unwrap().into_inner();
    commands.send(command("on", true)).await.unwrap();
    let mut seen = (None, None);
    while seen.0.is_none() || seen.1.is_none() {
        let message = tokio::time::timeout(WAIT, session.message()).await.unwrap().unwrap().unwrap();
        match message.payload {
            Some(session_response::Payload::Ack(ack)) => seen.0 = Some((ack.code, ack.active_subscriptions)),
            Some(session_response::Payload::Event(event)) => seen.1 = Some(event.payload),
            _ => {}
        }
    }
    assert_eq!(seen.0, Some((0, 1)));
    assert_eq!(seen.1, Some(Some(Payload::Indicator(Box::new(a)))), "the session's snapshot is the shared state");
    commands.send(command("off", false)).await.unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, session.message()).await.unwrap().unwrap().unwrap();
        if let Some(session_response::Payload::Ack(ack)) = message.payload {
            assert_eq!((ack.command_id.as_str(), ack.code, ack.active_subscriptions), ("off", 0, 0));
            break;
        }
    }
}

#[tokio::test]
async fn bad_indicator_subscriptions_are_refused_with_every_bad_field() {
    let mesh = TestMesh::all().await;
    let client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let refused = |request| {
        let mut client = client.clone();
        async move { client.subscribe(request).await.expect_err("refused") }
    };
    // An unknown indicator, a parameter out of range, one it does not take.
    let bad = subscription(
        &["AAPL"],
        vec![spec("NOPE", &[]), spec("RSI", &[("time_period", 1.0)]), spec("EMA", &[("span", 3.0)])],
    );
    let status = refused(bad).await;
    assert_eq!(
        invalid_fields(status),
        ["indicators[0].name", "indicators[1].parameters[time_period]", "indicators[2].parameters[span]"]
    );
    // The channel without indicators or an interval; indicators without the channel.
    let bare = SubscribeRequest { candle_interval: 0, indicators: Vec::new(), ..subscription(&["AAPL"], Vec::new()) };
    assert_eq!(invalid_fields(refused(bare).await), ["candle_interval", "indicators"]);
    let unoffered = SubscribeRequest { candle_interval: 42, ..subscription(&["AAPL"], vec![spec("RSI", &[])]) };
    assert_eq!(invalid_fields(refused(unoffered).await), ["candle_interval"]);
    let stray =
        SubscribeRequest { channels: vec![Channel::Trades as i32], ..subscription(&["AAPL"], vec![spec("RSI", &[])]) };
    assert_eq!(invalid_fields(refused(stray).await), ["indicators"]);
    // Each indicator counts as a subscription: 7 symbols x 30 indicators is
    // over the 200 a call may hold.
    let periods: Vec<IndicatorSpec> = (2..32).map(|period| spec("SMA", &[("time_period", period as f64)])).collect();
    let many = subscription(&["AAPL", "MSFT", "TSLA", "GOOGL", "NPN", "SBK", "AMZN"], periods);
    let status = refused(many).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(invalid_fields(status), ["symbols"]);
}

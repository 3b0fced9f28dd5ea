//! The streaming service end to end: ticks ingested through market data
//! reach subscribers in order with consecutive sequence numbers, across
//! replicas sharing Redis, and a slow subscriber never slows a fast one.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::*;
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::ClientChannel;
use wizdata_test_support::{TestMesh, book_now, ingest_accepted, invalid_fields, trade_now};

type Streams = StreamingServiceClient<ClientChannel>;

const WAIT: Duration = Duration::from_secs(20);

fn request(symbols: &[&str], channels: &[Channel], interval: Interval) -> SubscribeRequest {
    SubscribeRequest {
        symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
        channels: channels.iter().map(|channel| *channel as i32).collect(),
        candle_interval: interval as i32,
        indicators: Vec::new(),
    }
}

async fn subscribe(client: &mut Streams, request: SubscribeRequest) -> tonic::Streaming<SubscribeResponse> {
    client.subscribe(request).await.unwrap().into_inner()
}

/// The next event of a stream, skipping heartbeats.
async fn next_event(stream: &mut tonic::Streaming<SubscribeResponse>) -> MarketEvent {
    loop {
        let message = tokio::time::timeout(WAIT, stream.message()).await.expect("an event in time");
        match message.unwrap().expect("the stream goes on").payload {
            Some(subscribe_response::Payload::Event(event)) => return event,
            _ => continue,
        }
    }
}

/// Reads trade events until `count` trades (delivered or reported lost) are
/// accounted for; returns the delivered prices and the number lost.
async fn read_trades(stream: &mut tonic::Streaming<SubscribeResponse>, count: u64) -> (Vec<f64>, u64) {
    let (mut prices, mut lost, mut last_sequence) = (Vec::new(), 0, 0);
    while prices.len() as u64 + lost < count {
        let event = next_event(stream).await;
        if event.channel != Channel::Trades as i32 {
            continue;
        }
        match event.payload.unwrap() {
            Payload::Trade(trade) => {
                assert_eq!(event.sequence, last_sequence + 1, "no unexplained jump");
                prices.push(trade.price);
            }
            Payload::Gap(gap) => {
                assert_eq!(event.sequence, last_sequence + gap.dropped, "a gap covers exactly what it dropped");
                lost += gap.dropped;
            }
            other => panic!("unexpected payload {other:?}"),
        }
        last_sequence = event.sequence;
    }
    (prices, lost)
}

fn prices(from: usize, count: usize) -> Vec<f64> {
    (from..from + count).map(|n| 100.0 + n as f64 / 100.0).collect()
}

/// A connection whose HTTP/2 windows are small, so a client that stops
/// reading pushes back on the server after a few kilobytes, as a slow
/// client on a thin link would.
async fn thin_channel(mesh: &TestMesh) -> ClientChannel {
    let channel = tonic::transport::Endpoint::from_shared(mesh.url())
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    Credentials::none().on(channel)
}

/// Reads a stream until it ends with a status, within `WAIT`.
async fn ending_status(stream: &mut tonic::Streaming<SubscribeResponse>) -> tonic::Status {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await.expect("the stream ends in time") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => return status,
        }
    }
}

async fn stats(mesh: &TestMesh) -> GetStreamStatsResponse {
    let mut client = StreamingServiceClient::new(mesh.channel().await);
    client.get_stream_stats(GetStreamStatsRequest {}).await.unwrap().into_inner()
}

#[tokio::test]
async fn ingested_trades_reach_a_subscriber_in_order_with_consecutive_sequences() {
    let mesh = TestMesh::all().await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let mut stream = subscribe(&mut client, request(&["AAPL"], &[Channel::Trades], Interval::Unspecified)).await;
    for batch in 0..5 {
        ingest_accepted(&mesh, prices(batch * 40, 40).into_iter().map(|price| trade_now("AAPL", price)).collect())
            .await;
    }
    let (delivered, lost) = read_trades(&mut stream, 200).await;
    assert_eq!((delivered, lost), (prices(0, 200), 0));
    let stats = stats(&mesh).await;
    assert!(stats.events_in >= 200 && stats.events_out >= 200, "{stats:?}");
}

#[tokio::test]
async fn a_subscription_starts_from_a_snapshot_of_the_quote_and_the_open_candle() {
    let mesh = TestMesh::all().await;
    ingest_accepted(&mesh, vec![trade_now("MSFT", 410.5), book_now("MSFT", 410.0, 411.0)]).await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let channels = [Channel::Quotes, Channel::Candles];
    let mut stream = subscribe(&mut client, request(&["MSFT"], &channels, Interval::OneMinute)).await;
    let mut snapshots = [next_event(&mut stream).await, next_event(&mut stream).await];
    snapshots.sort_by_key(|event| event.channel);
    assert!(snapshots.iter().all(|event| event.snapshot && event.symbol == "MSFT"));
    match snapshots[0].payload.as_ref().unwrap() {
        Payload::Quote(quote) => assert_eq!((quote.last_price, quote.bid, quote.ask), (410.5, 410.0, 411.0)),
        other => panic!("expected a quote, got {other:?}"),
    }
    match snapshots[1].payload.as_ref().unwrap() {
        Payload::Candle(update) => {
            assert_eq!(update.interval, Interval::OneMinute as i32);
            assert_eq!(update.candle.as_ref().unwrap().close, 410.5);
        }
        other => panic!("expected a candle, got {other:?}"),
    }
    // Live events follow the snapshot's number.
    ingest_accepted(&mesh, vec![trade_now("MSFT", 412.0)]).await;
    let live = next_event(&mut stream).await;
    assert!(!live.snapshot);
    let snapshot_sequence = snapshots.iter().find(|event| event.channel == live.channel).unwrap().sequence;
    assert_eq!(live.sequence, snapshot_sequence + 1);
}

#[tokio::test]
async fn two_streaming_replicas_sharing_redis_both_deliver_everything() {
    let mesh = TestMesh::all().await;
    let Some(redis) = &mesh.redis else {
        eprintln!("WIZDATA_TEST_REDIS_URL is unset: replicas can only share a bus through Redis");
        return;
    };
    let url = mesh.url();
    let mut flags: Vec<String> = redis.args();
    flags.extend(["--registry-url", &url, "--market-data-url", &url, "--auth-url", &url].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let replica = TestMesh::serve("streaming").database(mesh.database()).flags(&flags).start().await;
    let wanted = || request(&["BTC/USDT"], &[Channel::Trades], Interval::Unspecified);
    let mut first = subscribe(&mut StreamingServiceClient::new(mesh.anonymous_channel().await), wanted()).await;
    let mut second = subscribe(&mut StreamingServiceClient::new(replica.anonymous_channel().await), wanted()).await;
    for batch in 0..3 {
        ingest_accepted(&mesh, prices(batch * 50, 50).into_iter().map(|price| trade_now("BTC/USDT", price)).collect())
            .await;
    }
    assert_eq!(read_trades(&mut first, 150).await, (prices(0, 150), 0));
    assert_eq!(read_trades(&mut second, 150).await, (prices(0, 150), 0));
}

#[tokio::test]
async fn a_stalled_subscriber_gets_conflated_quotes_and_gaps_while_a_fast_one_gets_everything() {
    let mesh = TestMesh::all_with(&["--subscriber-queue", "1024", "--slow-subscriber-timeout", "5m"]).await;
    let wanted = || request(&["TSLA"], &[Channel::Trades, Channel::Quotes], Interval::Unspecified);
    // Separate connections: the stalled one's HTTP/2 window fills, the fast one's does not.
    let mut stalled = subscribe(&mut StreamingServiceClient::new(thin_channel(&mesh).await), wanted()).await;
    let mut fast = subscribe(&mut StreamingServiceClient::new(mesh.anonymous_channel().await), wanted()).await;
    let total = 6000;
    let reader = tokio::spawn(async move { read_trades(&mut fast, total).await });
    for batch in 0..(total as usize / 100) {
        let ticks = prices(batch * 100, 100)
            .into_iter()
            .flat_map(|price| [trade_now("TSLA", price), book_now("TSLA", price - 0.01, price + 0.01)]);
        ingest_accepted(&mesh, ticks.collect()).await;
    }
    assert_eq!(reader.await.unwrap(), (prices(0, total as usize), 0), "the fast subscriber got every trade");

    let (delivered, lost) = read_trades(&mut stalled, total).await;
    assert!(lost > 0, "the stalled subscriber was told of lost trades");
    assert_eq!(delivered.len() as u64 + lost, total);
    assert!(delivered.windows(2).all(|pair| pair[0] < pair[1]), "what it got is in order");
    let stats = stats(&mesh).await;
    assert!(stats.events_dropped >= lost && stats.quotes_conflated > 0, "{stats:?}");
}

#[tokio::test]
async fn a_subscriber_stuck_too_long_is_ended_with_resource_exhausted() {
    let mesh = TestMesh::all_with(&["--subscriber-queue", "16", "--slow-subscriber-timeout", "1s"]).await;
    let mut stalled = subscribe(
        &mut StreamingServiceClient::new(thin_channel(&mesh).await),
        request(&["GOOGL"], &[Channel::Trades], Interval::Unspecified),
    )
    .await;
    // Trades keep coming, filling its HTTP/2 window and queue, until the
    // server gives up on it (its call is no longer counted).
    let deadline = tokio::time::Instant::now() + WAIT;
    for batch in 0.. {
        ingest_accepted(&mesh, prices(batch * 100, 100).into_iter().map(|price| trade_now("GOOGL", price)).collect())
            .await;
        if stats(&mesh).await.connections == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the stuck subscriber was never let go");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = ending_status(&mut stalled).await;
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("unread"), "{}", ended.message());
    let stats = stats(&mesh).await;
    assert_eq!((stats.connections, stats.subscriptions), (0, 0), "{stats:?}");
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_every_bad_field() {
    let mesh = TestMesh::all_with(&["--max-subscriptions-per-call", "4"]).await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let refused = |request| {
        let mut client = client.clone();
        async move { client.subscribe(request).await.expect_err("refused") }
    };
    assert_eq!(invalid_fields(refused(request(&[], &[], Interval::Unspecified)).await), ["symbols", "channels"]);
    let bad = SubscribeRequest {
        symbols: vec!["AAPL".into()],
        channels: vec![0, 9, Channel::Candles as i32],
        candle_interval: 0,
        indicators: Vec::new(),
    };
    assert_eq!(invalid_fields(refused(bad).await), ["channels[0]", "channels[1]", "candle_interval"]);
    let unsupported = request(&["AAPL"], &[Channel::Candles], Interval::Unspecified);
    let unsupported = SubscribeRequest { candle_interval: 42, ..unsupported };
    assert_eq!(invalid_fields(refused(unsupported).await), ["candle_interval"]);
    let unknown = request(&["AAPL", "NOPE", ""], &[Channel::Trades], Interval::Unspecified);
    assert_eq!(invalid_fields(refused(unknown).await), ["symbols[2]"]);
    let unknown = request(&["AAPL", "NOPE"], &[Channel::Trades], Interval::Unspecified);
    assert_eq!(invalid_fields(refused(unknown).await), ["symbols[1]"]);
    let long = "L".repeat(25);
    let too_long = request(&[long.as_str(), "AAPL"], &[Channel::Trades], Interval::Unspecified);
    assert_eq!(invalid_fields(refused(too_long).await), ["symbols[0]"]);
    let many = request(&["AAPL", "MSFT", "TSLA", "GOOGL", "NPN"], &[Channel::Trades], Interval::Unspecified);
    assert_eq!(invalid_fields(refused(many).await), ["symbols"]);
    client
        .subscribe(request(&["AAPL", "MSFT"], &[Channel::Trades, Channel::Quotes], Interval::Unspecified))
        .await
        .unwrap();

    // A Session may not grow past the same limit, command by command.
    let command = |id: &str, symbols: &[&str]| SessionRequest {
        command_id: id.into(),
        command: Some(session_request::Command::Subscribe(SubscribeCommand {
            symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
            channels: vec![Channel::Trades as i32],
            candle_interval: 0,
            indicators: Vec::new(),
        })),
    };
    let commands = tokio_stream::iter(vec![command("a", &["AAPL", "MSFT", "TSLA"]), command("b", &["GOOGL", "NPN"])]);
    let mut session = client.session(commands).await.unwrap().into_inner();
    let mut acks = Vec::new();
    while acks.len() < 2 {
        let message = tokio::time::timeout(WAIT, session.message()).await.unwrap().unwrap().unwrap();
        if let Some(session_response::Payload::Ack(ack)) = message.payload {
            acks.push((ack.command_id, ack.code, ack.active_subscriptions));
        }
    }
    assert_eq!(acks, [("a".into(), 0, 3), ("b".into(), Code::ResourceExhausted as i32, 3)]);
}

#[tokio::test]
async fn session_commands_are_acknowledged_and_unsubscribing_the_unsubscribed_is_not_found() {
    let mesh = TestMesh::all().await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let subscribe = |id: &str, symbols: &[&str], channel: Channel| SessionRequest {
        command_id: id.into(),
        command: Some(session_request::Command::Subscribe(SubscribeCommand {
            symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
            channels: vec![channel as i32],
            candle_interval: 0,
            indicators: Vec::new(),
        })),
    };
    let unsubscribe = |id: &str, symbols: &[&str], channel: Channel| SessionRequest {
        command_id: id.into(),
        command: Some(session_request::Command::Unsubscribe(UnsubscribeCommand {
            symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
            channels: vec![channel as i32],
            candle_interval: 0,
            indicators: Vec::new(),
        })),
    };
    let (commands, receiver) = tokio::sync::mpsc::channel(8);
    let mut session = client.session(tokio_stream::wrappers::ReceiverStream::new(receiver)).await.unwrap().into_inner();
    // The next acknowledgement, or (with no command) the next live AAPL event.
    let mut ack = async |command: Option<SessionRequest>| {
        let waits_for_ack = command.is_some();
        if let Some(command) = command {
            commands.send(command).await.unwrap();
        }
        loop {
            let message = tokio::time::timeout(WAIT, session.message()).await.unwrap().unwrap().unwrap();
            match message.payload {
                Some(session_response::Payload::Ack(ack)) if waits_for_ack => return ack,
                Some(session_response::Payload::Event(event)) if !waits_for_ack && event.symbol == "AAPL" => {
                    return CommandAck { command_id: "event".into(), ..Default::default() };
                }
                _ => continue,
            }
        }
    };
    let acked = ack(Some(subscribe("s1", &["AAPL"], Channel::Trades))).await;
    assert_eq!((acked.command_id.as_str(), acked.code, acked.active_subscriptions), ("s1", 0, 1));
    let acked = ack(Some(subscribe("s2", &["MSFT", "TSLA"], Channel::Quotes))).await;
    assert_eq!((acked.code, acked.active_subscriptions), (0, 3));
    let never = ack(Some(unsubscribe("u1", &["GOOGL"], Channel::Trades))).await;
    assert_eq!((never.code, never.active_subscriptions), (Code::NotFound as i32, 3));
    assert!(never.message.contains("GOOGL"), "{}", never.message);
    let bad = ack(Some(subscribe("s3", &["NOPE"], Channel::Trades))).await;
    assert_eq!(bad.code, Code::InvalidArgument as i32);
    let empty = ack(Some(SessionRequest { command_id: "x".into(), command: None })).await;
    assert_eq!(empty.code, Code::InvalidArgument as i32);

    ingest_accepted(&mesh, vec![trade_now("AAPL", 190.0)]).await;
    assert_eq!(ack(None).await.command_id, "event");
    let acked = ack(Some(unsubscribe("u2", &["AAPL"], Channel::Trades))).await;
    assert_eq!((acked.code, acked.active_subscriptions), (0, 2));
    let stats = stats(&mesh).await;
    assert!(stats.symbols.iter().all(|symbol| symbol.symbol != "AAPL"), "{stats:?}");
    assert_eq!(stats.subscriptions, 2);
}

#[tokio::test]
async fn cancelled_calls_free_everything_they_held() {
    let mesh = TestMesh::all().await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let first =
        subscribe(&mut client, request(&["AAPL", "MSFT"], &[Channel::Trades, Channel::Quotes], Interval::Unspecified))
            .await;
    let second = subscribe(&mut client, request(&["AAPL"], &[Channel::Candles], Interval::OneHour)).await;
    let held = stats(&mesh).await;
    assert_eq!((held.connections, held.subscriptions), (2, 5), "{held:?}");
    let aapl = held.symbols.iter().find(|symbol| symbol.symbol == "AAPL").unwrap();
    assert_eq!(aapl.subscriptions, 3);
    drop(first);
    drop(second);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = stats(&mesh).await;
        if (now.connections, now.subscriptions) == (0, 0) && now.symbols.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still held: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_streams_get_heartbeats_and_streams_per_subject_are_limited() {
    let mesh = TestMesh::all_with(&["--heartbeat-interval", "200ms", "--max-streams-per-subject", "2"]).await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let wanted = || request(&["NPN"], &[Channel::Trades], Interval::Unspecified);
    let mut first = subscribe(&mut client, wanted()).await;
    let beat = tokio::time::timeout(WAIT, first.message()).await.unwrap().unwrap().unwrap();
    assert!(matches!(beat.payload, Some(subscribe_response::Payload::Heartbeat(Heartbeat { time: Some(_) }))));
    let _second = subscribe(&mut client, wanted()).await;
    let refused = client.subscribe(wanted()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.get_details_quota_failure().is_some(), "{refused:?}");
    drop(first);
    // The slot comes back once the call is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    while client.subscribe(wanted()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn streams_end_unavailable_when_the_server_stops() {
    let mesh = TestMesh::all().await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let mut stream = subscribe(&mut client, request(&["SOL"], &[Channel::Quotes], Interval::Unspecified)).await;
    let stopped = tokio::spawn(mesh.stop());
    let ended = ending_status(&mut stream).await;
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    stopped.await.unwrap().unwrap();
}

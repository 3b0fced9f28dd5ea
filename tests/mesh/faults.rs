//! Hostile callers and faults: calls cancelled at any moment leave nothing
//! behind, connections that are held without being used are let go, a
//! client that does not read cannot grow the server, a broken bus is a gap
//! on every stream, and an unreachable database fails calls within one
//! timeout, writing nothing it refused. Bounded in time; real sockets,
//! PostgreSQL and Redis where the suite is given them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, IngestTicksRequest, IngestTicksResponse};
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::streaming::v1::market_event::Payload;
use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
use wizdata::streaming::v1::*;
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::testing::TcpProxy;
use wizdata_test_support::ClientChannel;
use wizdata_test_support::{
    TestDatabase, TestMesh, TestRedis, at, eventually, ingest, now_seconds, redis_or_skip, trade, trade_now,
    wait_for_health,
};

type Streams = StreamingServiceClient<ClientChannel>;

const WAIT: Duration = Duration::from_secs(20);

fn subscribe_request(symbols: &[&str], channels: &[Channel]) -> SubscribeRequest {
    SubscribeRequest {
        symbols: symbols.iter().map(|symbol| (*symbol).to_owned()).collect(),
        channels: channels.iter().map(|channel| *channel as i32).collect(),
        candle_interval: Interval::OneMinute as i32,
        indicators: Vec::new(),
    }
}

fn subscribe_command(id: &str, symbols: &[&str], channels: &[Channel]) -> SessionRequest {
    let SubscribeRequest { symbols, channels, candle_interval, indicators } = subscribe_request(symbols, channels);
    SessionRequest {
        command_id: id.to_owned(),
        command: Some(session_request::Command::Subscribe(SubscribeCommand {
            symbols,
            channels,
            candle_interval,
            indicators,
        })),
    }
}

async fn stream_stats(mesh: &TestMesh) -> GetStreamStatsResponse {
    let mut client = StreamingServiceClient::new(mesh.channel().await);
    client.get_stream_stats(GetStreamStatsRequest {}).await.unwrap().into_inner()
}

/// The 1m bar of `symbol` holding second `second`.
async fn minute_bar(client: &mut MarketDataServiceClient<ClientChannel>, symbol: &str, second: i64) -> Candle {
    let minute = second / 60 * 60;
    let request = GetCandlesRequest {
        symbol: symbol.into(),
        interval: Interval::OneMinute as i32,
        start_time: Some(at(minute)),
        end_time: Some(at(minute + 60)),
        page_size: 1,
        page_token: String::new(),
    };
    let mut candles = client.get_candles(request).await.expect("the bar reads").into_inner().candles;
    assert_eq!(candles.len(), 1, "one bar in {symbol}'s minute");
    candles.remove(0)
}

/// The process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux reports the process's status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// When a churned call is let go.
#[derive(Clone, Copy, Debug)]
enum Cancel {
    /// After this many milliseconds, whatever it was doing (opening, joining
    /// topics, reading snapshots).
    After(u64),
    /// After reading this many messages.
    AfterMessages(usize),
}

async fn churn_subscribe(mut client: Streams, cancel: Cancel) {
    let request = subscribe_request(&["AAPL", "MSFT"], &[Channel::Trades, Channel::Quotes, Channel::Candles]);
    match cancel {
        Cancel::After(ms) => {
            let _ = tokio::time::timeout(Duration::from_millis(ms), async move {
                let mut stream = client.subscribe(request).await?.into_inner();
                while stream.message().await?.is_some() {}
                Ok::<_, tonic::Status>(())
            })
            .await;
        }
        Cancel::AfterMessages(count) => {
            let Ok(answer) = client.subscribe(request).await else { return };
            let mut stream = answer.into_inner();
            for _ in 0..count {
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
            }
        }
    }
}

async fn churn_session(mut client: Streams, cancel: Cancel) {
    let (commands, queued) = tokio::sync::mpsc::channel(4);
    let _ = commands.send(subscribe_command("1", &["AAPL", "MSFT"], &[Channel::Trades, Channel::Quotes])).await;
    match cancel {
        Cancel::After(ms) => {
            let _ = tokio::time::timeout(Duration::from_millis(ms), async move {
                let mut stream = client.session(ReceiverStream::new(queued)).await?.into_inner();
                let _ = commands.send(subscribe_command("2", &["MSFT"], &[Channel::Candles])).await;
                while stream.message().await?.is_some() {}
                Ok::<_, tonic::Status>(())
            })
            .await;
        }
        Cancel::AfterMessages(count) => {
            let Ok(answer) = client.session(ReceiverStream::new(queued)).await else { return };
            let mut stream = answer.into_inner();
            for _ in 0..count {
                let _ = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
            }
        }
    }
}

/// Thousands of Subscribe and Session calls, directly and through the
/// gateway, cancelled at random moments while events flow: afterwards the
/// service holds no subscription and no connection, Redis no channel of
/// this mesh, and the process's memory has settled near where it started.
#[tokio::test]
async fn calls_cancelled_at_any_moment_leave_nothing_behind() {
    const CALLS: usize = 3_000;
    const RSS_BOUND: u64 = 128 << 20;
    let unlimited = "50000000/1m";
    let mesh = TestMesh::all_with(&[
        "--max-streams-per-subject",
        "100000",
        "--gateway-max-streams-per-subject",
        "100000",
        "--rate-limit-per-service",
        unlimited,
        "--rate-limit-internal",
        unlimited,
    ])
    .await;
    let direct = StreamingServiceClient::new(mesh.channel().await);
    let through_gateway = StreamingServiceClient::new(mesh.gateway_channel_as(mesh.admin_credentials()).await);

    // Events flow the whole time: trades and quotes on both symbols.
    let feeding = tokio::spawn({
        let mut market_data = mesh.market_data().await;
        async move {
            for n in 0.. {
                let price = 100.0 + (n % 100) as f64;
                let ticks = vec![trade_now("AAPL", price), trade_now("MSFT", price)];
                let _ = ingest(&mut market_data, vec![ticks]).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    // Warm up, so memory grown by the first calls (pools, caches) is not counted as left behind.
    for _ in 0..20 {
        churn_subscribe(direct.clone(), Cancel::AfterMessages(2)).await;
    }
    let before = resident_bytes();

    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let plan: Vec<(bool, bool, Cancel)> = (0..CALLS)
        .map(|_| {
            let cancel = match rng.random_range(0..3) {
                0 => Cancel::After(rng.random_range(0..10)),
                1 => Cancel::After(rng.random_range(10..60)),
                _ => Cancel::AfterMessages(rng.random_range(1..5)),
            };
            (rng.random_bool(0.5), rng.random_bool(0.5), cancel)
        })
        .collect();
    futures_util::stream::iter(plan)
        .for_each_concurrent(64, |(via_gateway, session, cancel)| {
            let client = if via_gateway { through_gateway.clone() } else { direct.clone() };
            async move {
                if session {
                    churn_session(client, cancel).await
                } else {
                    churn_subscribe(client, cancel).await
                }
            }
        })
        .await;
    feeding.abort();

    let settled = eventually(Duration::from_secs(15), || async {
        let stats = stream_stats(&mesh).await;
        stats.subscriptions == 0 && stats.connections == 0
    })
    .await;
    assert!(settled, "every cancelled call let go of its subscriptions: {:?}", stream_stats(&mesh).await);
    if let Some(redis) = &mesh.redis {
        use fred::interfaces::{ClientLike, PubsubInterface};
        let client = fred::types::Builder::from_config(fred::types::config::Config::from_url(&redis.url).unwrap())
            .build()
            .unwrap();
        client.init().await.unwrap();
        let pattern = format!("{}*", redis.prefix);
        // Market data follows the other replicas' writes of settled bars
        // for as long as it runs; nothing else may stay subscribed.
        let standing = [format!("{}marketdata.settled", redis.prefix)];
        let orphans = || async {
            let channels: Vec<String> = client.pubsub_channels(pattern.clone()).await.unwrap();
            channels.into_iter().filter(|channel| !standing.contains(channel)).collect::<Vec<_>>()
        };
        let no_orphans = eventually(Duration::from_secs(10), || async { orphans().await.is_empty() }).await;
        assert!(no_orphans, "Redis holds no channel of this mesh's calls: {:?}", orphans().await);
        let _ = client.quit().await;
    }
    let after = resident_bytes();
    eprintln!("{CALLS} calls churned; resident memory {} MB before, {} MB after", before >> 20, after >> 20);
    assert!(after < before + RSS_BOUND, "memory settles: {} MB before, {} MB after", before >> 20, after >> 20);
}

/// A Session client that sends commands and never reads its answers is held
/// back by flow control once the acknowledgements waiting reach their bound;
/// when it reads, every command is acknowledged, in order.
#[tokio::test]
async fn a_session_that_does_not_read_is_held_back_and_every_command_is_acknowledged() {
    const COMMANDS: usize = 20_000;
    let mesh = TestMesh::all().await;
    let mut client = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = taken.clone();
    // Ids long enough that the HTTP/2 windows hold a few thousand commands, not all of them.
    let commands = futures_util::stream::iter(0..COMMANDS).map(move |n| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SessionRequest { command_id: format!("{n:0>200}"), command: None }
    });
    let mut answers = client.session(commands).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent_unread = taken.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent_unread < COMMANDS, "the client is held back while it does not read ({sent_unread} sent)");

    let mut expected = 0;
    while expected < COMMANDS {
        let message = tokio::time::timeout(WAIT, answers.message()).await.expect("answers keep coming");
        match message.unwrap().expect("the session goes on").payload {
            Some(session_response::Payload::Ack(ack)) => {
                assert_eq!(ack.command_id, format!("{expected:0>200}"), "every command, in order");
                assert_eq!(ack.code, Code::InvalidArgument as i32, "a command with nothing to do: {ack:?}");
                expected += 1;
            }
            _ => continue,
        }
    }
}

/// A client on `local` (a loopback address of its own).
async fn registry_from(url: String, local: [u8; 4]) -> RegistryServiceClient<ClientChannel> {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .local_address(Some(IpAddr::from(local)))
        .connect()
        .await
        .expect("a legitimate client connects");
    RegistryServiceClient::new(Credentials::none().on(channel))
}

/// Resolves once the peer has closed `stream` (or reset it).
async fn until_closed(stream: &mut TcpStream) {
    let mut buffer = [0u8; 256];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            return;
        }
    }
}

/// Thousands of silent connections, and connections that stop halfway
/// through their first request's headers, on both ports: past the per-peer
/// cap they are closed at once, the rest once their handshake time is up,
/// and a client from another address is answered all along.
#[tokio::test]
async fn silent_and_half_open_connections_are_let_go_and_never_crowd_out_a_caller() {
    const SILENT: usize = 1_500;
    const HALF_OPEN: usize = 100;
    let mesh = TestMesh::all_with(&[
        "--grpc-handshake-timeout",
        "1s",
        "--client-timeout",
        "1s",
        "--grpc-max-connections-per-peer",
        "400",
        "--gateway-max-connections-per-peer",
        "400",
    ])
    .await;
    // The crowd comes from an address of its own: the in-process gateway
    // reaches the services from 127.0.0.1, as a gateway pod would from its own.
    let crowd = |port: u16| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 3], 0))).unwrap();
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("the kernel accepts the connection")
    };
    let mut held = Vec::new();
    for port in [mesh.port, mesh.gateway_port.unwrap()] {
        for _ in 0..SILENT {
            held.push(crowd(port).await);
        }
        for _ in 0..HALF_OPEN {
            let mut stream = crowd(port).await;
            // The HTTP/2 preface, an empty SETTINGS frame, then a HEADERS frame
            // whose header block never ends (no END_HEADERS, no CONTINUATION).
            let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            opening.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            opening.extend_from_slice(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x83]);
            if stream.write_all(&opening).await.is_ok() {
                held.push(stream);
            }
        }
    }
    for url in [mesh.url(), mesh.gateway_url()] {
        let mut registry = registry_from(url.clone(), [127, 0, 0, 2]).await;
        let symbol = tokio::time::timeout(
            Duration::from_secs(5),
            registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }),
        )
        .await
        .unwrap_or_else(|_| panic!("{url} answers in time while {} connections are held", held.len()))
        .expect("and answers OK");
        assert_eq!(symbol.into_inner().symbol.unwrap().ticker, "AAPL");
    }
    let total = held.len();
    let closing = held.iter_mut().map(|stream| tokio::time::timeout(Duration::from_secs(10), until_closed(stream)));
    let still_open = futures_util::future::join_all(closing).await.iter().filter(|closed| closed.is_err()).count();
    assert_eq!(still_open, 0, "{still_open} of {total} held connections still open");
    // A caller on the crowded address itself is served once they are gone.
    for url in [mesh.url(), mesh.gateway_url()] {
        let mut registry = registry_from(url, [127, 0, 0, 3]).await;
        registry.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.expect("served");
    }
}

/// One IngestTicks call to `port` of `messages` one-tick messages, each in a
/// DATA frame of its own as grpc-go and grpcio send them, over a bare HTTP/2
/// connection; its answer, once the connection carried every frame.
async fn ingest_one_tick_per_frame(port: u16, key: &str, messages: usize, second: i64) -> IngestTicksResponse {
    use prost::Message;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let path = "/wizdata.marketdata.v1.MarketDataService/IngestTicks";
    let request = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {key}"))
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    let message = IngestTicksRequest { ticks: vec![trade("AAPL", second, 100.0, 1.0)] };
    let frame = wizdata_test_support::grpc_web::frame(0, &message.encode_to_vec());
    for sent in 0..messages {
        send.reserve_capacity(frame.len());
        while send.capacity() < frame.len() {
            std::future::poll_fn(|cx| send.poll_capacity(cx))
                .await
                .unwrap_or_else(|| panic!("the connection to {port} closed after {sent} messages"))
                .unwrap_or_else(|error| panic!("the connection to {port} failed after {sent} messages: {error}"));
        }
        send.send_data(frame.clone(), false)
            .unwrap_or_else(|error| panic!("the connection to {port} failed after {sent} messages: {error}"));
    }
    send.send_data(bytes::Bytes::new(), true).unwrap();
    let (parts, mut body) = response.await.expect("an answer").into_parts();
    let mut data = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        data.extend_from_slice(&chunk.expect("the answer's data"));
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    let status = trailers.get("grpc-status").or(parts.headers.get("grpc-status")).unwrap().to_str().unwrap().to_owned();
    assert_eq!(status, "0", "{parts:?} {trailers:?}");
    connection.abort();
    IngestTicksResponse::decode(&data[5..]).unwrap()
}

/// A long IngestTicks call of one tick per DATA frame, directly and through
/// the gateway, is read to its end: HTTP/2's guard against unread small
/// frames never closes the connection, and every tick is counted once.
#[tokio::test]
async fn a_long_ingest_of_one_tick_per_frame_is_read_to_the_end() {
    const MESSAGES: usize = 100_000;
    let mesh = TestMesh::all().await;
    let second = now_seconds() - 30;
    let key = secrecy::ExposeSecret::expose_secret(mesh.admin_key.as_ref().unwrap()).to_owned();
    for port in [mesh.port, mesh.gateway_port.unwrap()] {
        let summary = ingest_one_tick_per_frame(port, &key, MESSAGES, second).await;
        assert_eq!((summary.accepted, summary.rejected), (MESSAGES as u64, 0), "through {port}");
    }
    let bar = minute_bar(&mut mesh.market_data().await, "AAPL", second).await;
    assert_eq!(bar.volume, 2.0 * MESSAGES as f64, "every tick counted once");
}

/// With PostgreSQL unreachable, each IngestTicks call fails UNAVAILABLE
/// within about one database timeout however many are queued behind a
/// failing write, and none of what was refused is written once the
/// database is back. The connection runs through a proxy the test cuts.
#[tokio::test]
async fn ingest_during_a_database_outage_fails_within_one_timeout_and_writes_nothing_it_refused() {
    let database = std::sync::Arc::new(TestDatabase::new().await);
    let Some((proxy, through_proxy)) = database.behind_proxy().await else {
        eprintln!(
            "the database outage needs {}; SQLite cannot become unreachable",
            wizdata_common::testing::TEST_DATABASE_URL
        );
        return;
    };
    let timeout = Duration::from_secs(2);
    let mesh = TestMesh::serve("all")
        .database(&database)
        .database_url(through_proxy)
        .flags(&["--db-timeout", "2s"])
        .start()
        .await;
    let second = now_seconds() - 30;
    let mut client = mesh.market_data().await;
    ingest(&mut client, vec![vec![trade("MSFT", second, 10.0, 1.0)]]).await.expect("written while it is up");

    proxy.cut();
    let calls: Vec<_> = [0u64, 300, 600, 900, 1_500, 2_400, 3_000]
        .into_iter()
        .map(|start_ms| {
            let mut client = client.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(start_ms)).await;
                let started = Instant::now();
                let answer = ingest(&mut client, vec![vec![trade("MSFT", second, 20.0, 100.0)]]).await;
                (answer.map(drop), started.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (answer, took) = call.await.unwrap();
        eprintln!(
            "an ingest during the outage answered after {took:?}: {:?}",
            answer.as_ref().map_err(|status| status.code())
        );
        let status = answer.expect_err("no write while the database is unreachable");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(took < timeout + timeout / 2, "failed after {took:?}, more than one {timeout:?} attempt");
    }

    proxy.restore();
    assert!(
        wait_for_health(&mesh, "wizdata.marketdata.v1.MarketDataService", ServingStatus::Serving, WAIT).await,
        "serving again once the database is back"
    );
    ingest(&mut client, vec![vec![trade("MSFT", second, 30.0, 1.0)]]).await.expect("written once it is back");
    let candle = minute_bar(&mut client, "MSFT", second).await;
    assert_eq!((candle.volume, candle.high), (2.0, 30.0), "the refused trades were not written: {candle:?}");
}

/// Reads events until one satisfies `wanted`, returning it and the events before it.
async fn events_until(
    stream: &mut tonic::Streaming<SubscribeResponse>,
    wanted: impl Fn(&MarketEvent) -> bool,
) -> (Vec<MarketEvent>, MarketEvent) {
    let mut before = Vec::new();
    loop {
        let message = tokio::time::timeout(WAIT, stream.message()).await.expect("an event in time");
        if let Some(subscribe_response::Payload::Event(event)) = message.unwrap().expect("the stream goes on").payload {
            if wanted(&event) {
                return (before, event);
            }
            before.push(event);
        }
    }
}

/// `serve all` on Redis reached through a proxy the test cuts; `None`
/// without Redis. The returned `TestRedis` owns the prefix and cleans it up.
async fn mesh_on_cuttable_redis(needed_for: &str) -> Option<(TestRedis, TcpProxy, TestMesh)> {
    let redis = redis_or_skip(needed_for).await?;
    let (proxy, via_proxy) = redis.behind_proxy().await;
    let flags = ["--redis-url", &via_proxy, "--redis-prefix", &redis.prefix, "--redis-health-interval", "200ms"];
    let mesh = TestMesh::serve("all").flags(&flags).start().await;
    Some((redis, proxy, mesh))
}

/// Redis between the mesh and the test runs through a proxy the test cuts:
/// when the bus connection comes back, every stream (directly and through
/// the gateway) gets a gap that takes a sequence number, quotes a fresh
/// snapshot, and live events resume after it.
#[tokio::test]
async fn a_broken_bus_connection_is_a_gap_on_every_stream_and_delivery_resumes() {
    let Some((redis, proxy, mesh)) = mesh_on_cuttable_redis("the bus interruption").await else { return };
    let channels = [Channel::Trades, Channel::Quotes];
    let mut direct = StreamingServiceClient::new(mesh.anonymous_channel().await);
    let mut through_gateway = StreamingServiceClient::new(mesh.gateway_channel_as(Credentials::none()).await);
    let mut streams = Vec::new();
    for client in [&mut direct, &mut through_gateway] {
        streams.push(client.subscribe(subscribe_request(&["AAPL"], &channels)).await.unwrap().into_inner());
    }
    let mut market_data = mesh.market_data().await;
    ingest(&mut market_data, vec![vec![trade_now("AAPL", 101.0)]]).await.unwrap();
    let mut last_trade = Vec::new();
    for stream in &mut streams {
        let (_, event) = events_until(stream, |event| matches!(event.payload, Some(Payload::Trade(_)))).await;
        last_trade.push(event.sequence);
    }

    proxy.cut();
    let redis_health = "dependency/redis";
    assert!(wait_for_health(&mesh, redis_health, ServingStatus::NotServing, WAIT).await, "Redis is seen gone");
    // Published while the bus is down: lost, and to be explained.
    let _ = ingest(&mut market_data, vec![vec![trade_now("AAPL", 102.0)]]).await;
    proxy.restore();
    assert!(wait_for_health(&mesh, redis_health, ServingStatus::Serving, WAIT).await, "Redis is back");

    // Live trades again, until each stream shows one.
    let feeding = tokio::spawn({
        let mut market_data = market_data.clone();
        async move {
            loop {
                let _ = ingest(&mut market_data, vec![vec![trade_now("AAPL", 103.0)]]).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    for (stream, last_trade) in streams.iter_mut().zip(last_trade) {
        let (mut trade_gap, mut fresh_quote) = (None, None);
        let deadline = Instant::now() + WAIT;
        let resumed = loop {
            assert!(Instant::now() < deadline, "a gap, then live trades, within {WAIT:?}: gap {trade_gap:?}");
            let (_, event) = events_until(stream, |_| true).await;
            let is_gap = matches!(event.payload, Some(Payload::Gap(_)));
            match event.payload.as_ref().unwrap() {
                Payload::Gap(_) if event.channel == Channel::Trades as i32 => trade_gap = Some(event),
                Payload::Quote(_) if event.snapshot => fresh_quote = Some(event),
                Payload::Trade(trade) if trade.price == 103.0 && trade_gap.is_some() => break event,
                _ => assert!(!is_gap || event.channel == Channel::Quotes as i32, "{event:?}"),
            }
        };
        let gap = trade_gap.expect("a gap on the trades stream");
        let Some(Payload::Gap(explained)) = &gap.payload else { unreachable!() };
        assert_eq!(explained.reason(), GapReason::BusInterrupted, "{gap:?}");
        assert!(gap.sequence > last_trade, "the gap takes a number after the last trade: {gap:?}");
        assert!(resumed.sequence > gap.sequence, "live trades follow the gap: {resumed:?}");
        let fresh_quote = fresh_quote.expect("the quote is sent afresh after the gap");
        assert_eq!(fresh_quote.symbol, "AAPL");
    }
    feeding.abort();
    drop(redis);
}

/// A live indicator misses the candles published while the bus was down:
/// its stream gets the gap, naming the indicator, and then the values
/// afresh from stored history, which holds what was missed.
#[tokio::test]
async fn a_broken_bus_reseeds_live_indicators_after_the_gap() {
    use wizdata::indicator::v1::{ComputeIndicatorsRequest, IndicatorSpec};

    let Some((redis, proxy, mesh)) = mesh_on_cuttable_redis("the bus interruption of a live indicator").await else {
        return;
    };
    let mut market_data = mesh.market_data().await;
    let minute = now_seconds() - now_seconds().rem_euclid(60);
    let history = (1..=5).map(|back| trade("AAPL", minute - back * 60 + 10, 100.0 + back as f64, 1.0)).collect();
    ingest(&mut market_data, vec![history]).await.unwrap();
    let sma = IndicatorSpec { name: "SMA".into(), parameters: [("time_period".to_owned(), 2.0)].into() };
    let request = SubscribeRequest {
        symbols: vec!["AAPL".into()],
        channels: vec![Channel::Indicators as i32],
        candle_interval: Interval::OneMinute as i32,
        indicators: vec![sma.clone()],
    };
    let mut stream = StreamingServiceClient::new(mesh.anonymous_channel().await).subscribe(request).await.unwrap();
    let stream = stream.get_mut();
    let (_, snapshot) = events_until(stream, |event| event.snapshot).await;

    proxy.cut();
    assert!(wait_for_health(&mesh, "dependency/redis", ServingStatus::NotServing, WAIT).await, "Redis is seen gone");
    // Written while the bus is down: the last closed bar changes, unannounced.
    ingest(&mut market_data, vec![vec![trade("AAPL", minute - 60 + 20, 150.0, 1.0)]]).await.unwrap();
    proxy.restore();

    let (_, gap) = events_until(stream, |event| matches!(event.payload, Some(Payload::Gap(_)))).await;
    let Some(Payload::Gap(explained)) = &gap.payload else { unreachable!() };
    assert_eq!(explained.reason(), GapReason::BusInterrupted, "{gap:?}");
    assert_eq!(explained.indicator.as_ref().map(|spec| spec.name.as_str()), Some("SMA"), "the gap names the indicator");
    assert!(gap.sequence > snapshot.sequence);
    let (_, fresh) = events_until(stream, |event| event.snapshot).await;
    let Some(Payload::Indicator(update)) = &fresh.payload else { panic!("{fresh:?}") };
    let computed = mesh
        .indicators()
        .await
        .compute_indicators(ComputeIndicatorsRequest {
            symbol: "AAPL".into(),
            interval: Interval::OneMinute as i32,
            indicators: vec![sma],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let last = *computed.results[0].outputs[0].values.last().unwrap();
    assert_eq!(update.bar_time, computed.times.last().copied());
    assert_eq!(update.values["real"], last, "the missed trade is in the fresh values");
    drop(redis);
}

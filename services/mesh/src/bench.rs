//! `wizdata bench`: load generators for BENCHMARKS.md, run against a live
//! mesh over gRPC like any client (`make bench` starts one in release mode).

use std::time::{Duration, Instant};

use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, IngestTicksRequest, Tick, Trade, tick};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::credentials::AuthenticatedChannel as Channel;
use wizdata_common::auth::credentials::Credentials;

#[derive(clap::Args, Debug)]
pub struct IngestBench {
    /// Ticks to send in all.
    #[arg(long, default_value_t = 2_000_000)]
    pub ticks: usize,
    /// Ticks per IngestTicks message.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Concurrent IngestTicks calls.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Time between two ticks of one symbol: 10ms packs ticks into few bars
    /// (a live feed); 60s puts every tick in a 1m bar of its own (a backfill).
    #[arg(long, default_value = "10ms", value_parser = wizdata_common::config::parse_duration)]
    pub spacing: Duration,
    /// Symbols the ticks are spread over.
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT,GOOGL,TSLA,BTC/USDT,ETH/USDT,EUR/USD,USD/ZAR")]
    pub symbols: Vec<String>,
    /// Give every trade a source and an id, as a live feed does, so market
    /// data checks each for a repeat.
    #[arg(long)]
    pub trade_ids: bool,
    /// Send the same ticks this many times over (with --trade-ids, every
    /// pass after the first is all duplicates).
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
}

#[derive(clap::Args, Debug)]
pub struct CandlesBench {
    /// Bars per GetCandles call (imported first as 1m history).
    #[arg(long, default_value_t = 10_000)]
    pub bars: usize,
    /// Calls to time.
    #[arg(long, default_value_t = 300)]
    pub calls: usize,
    /// The symbol to import the bars under.
    #[arg(long, default_value = "NPN")]
    pub symbol: String,
    /// The mesh's metrics address: each phase's mean server time is read
    /// off its `grpc_server_handling_seconds` (sum and count) before and after.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: std::net::SocketAddr,
}

/// The total and count of `method`'s handling time as the service measured
/// it, from the Prometheus text at `metrics_addr`.
async fn server_seconds(metrics_addr: std::net::SocketAddr, method: &str) -> anyhow::Result<(f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(metrics_addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: metrics\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let value = |name: &str| {
        text.lines()
            .filter(|line| {
                line.starts_with(name)
                    && line.contains(&format!("grpc_method=\"{method}\""))
                    && line.contains("component=\"service\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    Ok((value("grpc_server_handling_seconds_sum"), value("grpc_server_handling_seconds_count")))
}

/// Times `calls` of `call` (after `before` each, untimed) and reports the
/// round trips and the mean server time of `method` meanwhile.
async fn phase<Before, Call>(
    what: &str,
    method: &str,
    metrics_addr: std::net::SocketAddr,
    calls: usize,
    mut before: impl FnMut() -> Before,
    mut call: impl FnMut() -> Call,
) -> anyhow::Result<()>
where
    Before: std::future::Future<Output = anyhow::Result<()>>,
    Call: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut latencies = Vec::with_capacity(calls);
    let (mut server_total, mut served) = (0.0, 0.0);
    for _ in 0..calls {
        before().await?;
        let (total, count) = server_seconds(metrics_addr, method).await?;
        latencies.push(call().await?);
        let (total_after, count_after) = server_seconds(metrics_addr, method).await?;
        server_total += total_after - total;
        served += count_after - count;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: {calls} calls, round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server time mean {:.2} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().expect("at least one call")),
        server_total / served.max(1.0) * 1000.0
    );
    Ok(())
}

/// Sends `ticks` trades over `streams` concurrent calls and reports ticks/s
/// from the first message sent to the last call acknowledged (durably
/// written).
pub async fn ingest(channel: Channel, bench: IngestBench) -> anyhow::Result<()> {
    let per_stream = bench.ticks / bench.streams;
    // Ticks `spacing` apart per symbol, ending now.
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let spacing = i64::try_from(bench.spacing.as_nanos()).unwrap_or(i64::MAX) * bench.symbols.len() as i64;
    anyhow::ensure!(
        (bench.ticks as i64).saturating_mul(spacing / bench.symbols.len() as i64) < now,
        "--ticks times --spacing reaches back before 1970"
    );
    // Built anew for each pass, before its clock starts: the client's
    // copying is not what is timed.
    let messages = || -> Vec<Vec<IngestTicksRequest>> {
        (0..bench.streams)
            .map(|stream| {
                (0..per_stream)
                    .map(|i| {
                        let n = (stream * per_stream + i) as i64;
                        let symbol = &bench.symbols[n as usize % bench.symbols.len()];
                        let time_ns = now - (bench.ticks as i64 - n) * spacing / bench.symbols.len() as i64;
                        let price = 100.0 + (n % 1000) as f64 / 100.0;
                        Tick {
                            symbol: symbol.clone(),
                            time: Some(prost_types::Timestamp {
                                seconds: time_ns.div_euclid(1_000_000_000),
                                nanos: time_ns.rem_euclid(1_000_000_000) as i32,
                            }),
                            kind: Some(tick::Kind::Trade(Trade {
                                price,
                                size: 1.0 + (n % 7) as f64,
                                source: if bench.trade_ids { "bench".into() } else { String::new() },
                                // Numbered per symbol, as exchanges number trades.
                                trade_id: if bench.trade_ids {
                                    (n / bench.symbols.len() as i64).to_string()
                                } else {
                                    String::new()
                                },
                            })),
                        }
                    })
                    .collect::<Vec<_>>()
                    .chunks(bench.batch)
                    .map(|chunk| IngestTicksRequest { ticks: chunk.to_vec() })
                    .collect()
            })
            .collect()
    };
    for pass in 1..=bench.passes {
        let messages = messages();
        let started = Instant::now();
        let calls = messages.into_iter().map(|messages| {
            let mut client = MarketDataServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20);
            async move { client.ingest_ticks(tokio_stream::iter(messages)).await.map(|r| r.into_inner()) }
        });
        let summaries = futures_util::future::try_join_all(calls).await?;
        let elapsed = started.elapsed();
        let accepted: u64 = summaries.iter().map(|summary| summary.accepted).sum();
        let rejected: u64 = summaries.iter().map(|summary| summary.rejected).sum();
        println!(
            "ingest{}, pass {pass}: {accepted} ticks accepted and {rejected} rejected over {} streams in batches of {} in {:.2} s = {:.0} ticks/s",
            if bench.trade_ids { " with trade ids" } else { "" },
            bench.streams,
            bench.batch,
            elapsed.as_secs_f64(),
            (accepted + rejected) as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Imports 1m bars, then times GetCandles of `bars` of them and
/// ComputeIndicators (RSI, MACD and BBANDS) over them. GetCandles cold: each
/// call starts a bar earlier than any before it, so its bars are not cached
/// yet and come from the database; warm: calls in a row over the same bars.
/// ComputeIndicators on a miss: each call after a write into a settled bar
/// (a new revision: computed again, over candles the write left cached); on
/// a hit: calls in a row.
pub async fn candles(channel: Channel, bench: CandlesBench) -> anyhow::Result<()> {
    use std::cell::Cell;

    use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
    use wizdata::indicator::v1::{ComputeIndicatorsRequest, IndicatorSpec};

    let mut client = MarketDataServiceClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (bars, metrics) = (bench.bars, bench.metrics_addr);
    let cold_calls = bench.calls.min(50);
    let start = (chrono::Utc::now().timestamp() / 60 - (bars + cold_calls) as i64 - 1) * 60;
    let open_time = |i: usize| Some(prost_types::Timestamp { seconds: start + i as i64 * 60, nanos: 0 });
    let bar = |i: usize| Candle {
        open_time: open_time(i),
        open: 10.0 + (i % 7) as f64,
        high: 18.0,
        low: 9.0,
        close: 10.5 + (i % 5) as f64,
        volume: 1000.0,
        ..Default::default()
    };
    let history: Vec<Candle> = (0..bars + cold_calls).map(bar).collect();
    wizdata_market_data::history::import(&mut client, &bench.symbol, Interval::OneMinute, history).await?;
    // `bars` bars from bar `first` on.
    let read_from = |first: usize| {
        let mut client = client.clone();
        let request = GetCandlesRequest {
            symbol: bench.symbol.clone(),
            interval: Interval::OneMinute as i32,
            start_time: open_time(first),
            page_size: bars as i32,
            ..Default::default()
        };
        async move {
            let sent = Instant::now();
            let answer = client.get_candles(request).await?.into_inner();
            anyhow::ensure!(answer.candles.len() == bars, "expected {bars} bars, got {}", answer.candles.len());
            Ok(sent.elapsed())
        }
    };
    let earliest = Cell::new(cold_calls);
    let cold_read = || {
        earliest.set(earliest.get() - 1);
        read_from(earliest.get())
    };
    let nothing = || async { Ok(()) };
    let cold = format!("get_candles, {bars} bars per call, cold (not cached yet)");
    phase(&cold, "GetCandles", metrics, cold_calls, nothing, cold_read).await?;
    let warm = format!("get_candles, {bars} bars per call, warm");
    phase(&warm, "GetCandles", metrics, bench.calls, nothing, || read_from(cold_calls)).await?;

    // The first bar written again as it is: a write into a settled bar.
    let (rewrite, symbol) = (client.clone(), bench.symbol.clone());
    let touched = move || {
        let (mut client, symbol) = (rewrite.clone(), symbol.clone());
        async move {
            wizdata_market_data::history::import(&mut client, &symbol, Interval::OneMinute, vec![bar(0)]).await?;
            Ok(())
        }
    };
    let indicators = IndicatorServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let spec = |name: &str| IndicatorSpec { name: name.into(), parameters: Default::default() };
    let compute = ComputeIndicatorsRequest {
        symbol: bench.symbol.clone(),
        interval: Interval::OneMinute as i32,
        start_time: open_time(cold_calls),
        end_time: None,
        indicators: vec![spec("RSI"), spec("MACD"), spec("BBANDS")],
    };
    let compute_once = || {
        let (mut indicators, compute) = (indicators.clone(), compute.clone());
        async move {
            let sent = Instant::now();
            let answer = indicators.compute_indicators(compute).await?.into_inner();
            anyhow::ensure!(answer.times.len() == bars, "expected {bars} bars, got {}", answer.times.len());
            Ok(sent.elapsed())
        }
    };
    let miss = format!("compute_indicators RSI+MACD+BBANDS over {bars} bars, a miss (after a write)");
    phase(&miss, "ComputeIndicators", metrics, cold_calls, touched, compute_once).await?;
    let hit = format!("compute_indicators RSI+MACD+BBANDS over {bars} bars, a hit");
    phase(&hit, "ComputeIndicators", metrics, bench.calls, nothing, compute_once).await?;
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct SubscribeBench {
    /// Concurrent Subscribe streams, each on one symbol's trades.
    #[arg(long, default_value_t = 10_000)]
    pub streams: usize,
    /// HTTP/2 connections the streams are spread over.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Symbols the streams are spread over, and the feed trades.
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT,GOOGL,TSLA,NPN,BTC/USDT,ETH/USDT,EUR/USD")]
    pub symbols: Vec<String>,
    /// Trades per second per symbol, ingested through IngestTicks.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// How long the feed runs; the first `warmup` of it is not measured.
    #[arg(long, default_value = "20s", value_parser = wizdata_common::config::parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "3s", value_parser = wizdata_common::config::parse_duration)]
    pub warmup: Duration,
}

/// What one subscriber saw in the measured window.
#[derive(Default)]
struct Received {
    latencies_us: Vec<u32>,
    lost: u64,
}

/// Opens `streams` Subscribe streams, feeds trades at `rate` per symbol, and
/// reports delivered events/s and tick-to-receipt latency.
pub async fn subscribe(target: &str, credentials: Credentials, bench: SubscribeBench) -> anyhow::Result<()> {
    use futures_util::{StreamExt, TryStreamExt};
    use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
    use wizdata::streaming::v1::{Channel as StreamChannel, SubscribeRequest, market_event, subscribe_response};

    let mut connections = Vec::new();
    for _ in 0..bench.connections.max(1) {
        let channel = tonic::transport::Endpoint::from_shared(target.to_owned())?.tcp_nodelay(true).connect().await?;
        connections.push(credentials.clone().on(channel));
    }
    let started = Instant::now();
    // Opened 100 at a time; nothing is fed until all are open.
    let streams: Vec<tonic::Streaming<_>> = futures_util::stream::iter(0..bench.streams)
        .map(|index| {
            let mut client = StreamingServiceClient::new(connections[index % connections.len()].clone());
            let request = SubscribeRequest {
                symbols: vec![bench.symbols[index % bench.symbols.len()].clone()],
                channels: vec![StreamChannel::Trades as i32],
                candle_interval: 0,
                indicators: Vec::new(),
            };
            async move { client.subscribe(request).await.map(|response| response.into_inner()) }
        })
        .buffer_unordered(100)
        .try_collect()
        .await?;
    let measure_from = tokio::time::Instant::now() + bench.warmup;
    let measure_until = measure_from + bench.duration.saturating_sub(bench.warmup);
    let subscribers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut received = Received::default();
                while let Ok(Ok(Some(message))) = tokio::time::timeout_at(measure_until, stream.message()).await {
                    let Some(subscribe_response::Payload::Event(event)) = message.payload else { continue };
                    if tokio::time::Instant::now() < measure_from {
                        continue;
                    }
                    match event.payload {
                        Some(market_event::Payload::Gap(gap)) => received.lost += gap.dropped,
                        Some(market_event::Payload::Trade(_)) => {
                            let sent = event.event_time.unwrap_or_default();
                            let sent_ns = sent.seconds as i128 * 1_000_000_000 + sent.nanos as i128;
                            let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as i128;
                            let micros = ((now_ns - sent_ns) / 1000).clamp(0, u32::MAX as i128) as u32;
                            received.latencies_us.push(micros);
                        }
                        _ => {}
                    }
                }
                received
            })
        })
        .collect();
    println!(
        "subscribe: {} streams over {} connections open in {:.1} s",
        bench.streams,
        connections.len(),
        started.elapsed().as_secs_f64()
    );

    // The feed: `rate` trades per second per symbol.
    let period = Duration::from_secs_f64(1.0 / bench.rate);
    let feed_until = measure_until;
    let symbols = bench.symbols.clone();
    let ticks = paced_trades(symbols, period, feed_until);
    let mut market = MarketDataServiceClient::new(connections[0].clone());
    let feed = tokio::spawn(async move { market.ingest_ticks(ticks).await.map(|r| r.into_inner().accepted) });

    let mut latencies = Vec::new();
    let mut lost = 0;
    for subscriber in subscribers {
        let received = subscriber.await?;
        latencies.extend(received.latencies_us);
        lost += received.lost;
    }
    let accepted = feed.await??;
    latencies.sort_unstable();
    let window = measure_until.duration_since(measure_from).as_secs_f64();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "subscribe: {} trades in ({} symbols x {}/s); {} events delivered in {:.1} s = {:.0} events/s; lost {}; \
         latency tick->receipt p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        accepted,
        bench.symbols.len(),
        bench.rate,
        latencies.len(),
        window,
        latencies.len() as f64 / window,
        lost,
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(1.0),
    );
    Ok(())
}

/// Trades of every symbol at `period` each, until `until`: one IngestTicks
/// message per trade, the symbols staggered evenly across the period (as a
/// live feed would be, rather than all at the same instant), each stamped
/// with the time it is sent.
fn paced_trades(
    symbols: Vec<String>,
    period: Duration,
    until: tokio::time::Instant,
) -> impl tokio_stream::Stream<Item = IngestTicksRequest> + Send + 'static {
    let mut timer = tokio::time::interval(period / symbols.len().max(1) as u32);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures_util::stream::unfold((timer, 0usize), move |(mut timer, n)| {
        let symbol = symbols[n % symbols.len()].clone();
        async move {
            timer.tick().await;
            if tokio::time::Instant::now() >= until {
                return None;
            }
            let now = chrono::Utc::now();
            let time =
                Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: now.timestamp_subsec_nanos() as i32 });
            let price = 100.0 + (n % 100) as f64 / 100.0;
            let trade =
                Tick { symbol, time, kind: Some(tick::Kind::Trade(Trade { price, size: 1.0, ..Default::default() })) };
            Some((IngestTicksRequest { ticks: vec![trade] }, (timer, n + 1)))
        }
    })
}

#[derive(clap::Args, Debug)]
pub struct UnaryBench {
    /// The gateway in front of --target: each concurrency level is run
    /// against the service directly, then through the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Calls in flight at once, one run per level.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub concurrency: Vec<usize>,
    /// How long each run lasts.
    #[arg(long, default_value = "5s", value_parser = wizdata_common::config::parse_duration)]
    pub duration: Duration,
}

/// One run's calls: how many, over how long, and their latencies.
struct UnaryRun {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl UnaryRun {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_us(&self, p: f64) -> f64 {
        let at = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(at).map_or(0.0, |latency| latency.as_secs_f64() * 1e6)
    }
}

/// WhoAmI (the cheapest authenticated RPC: the cost measured is the path,
/// not the work) at each concurrency, directly and through the gateway, in
/// one run so both see the same machine.
pub async fn unary(direct: Channel, gateway: Channel, bench: UnaryBench) -> anyhow::Result<()> {
    println!(
        "| in flight | direct calls/s | direct p50 / p99 (us) | gateway calls/s | gateway p50 / p99 (us) | added p50 (us) | throughput ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &concurrency in &bench.concurrency {
        // Warm both paths (connections, cached credentials) before timing.
        unary_run(direct.clone(), concurrency, Duration::from_millis(300)).await?;
        unary_run(gateway.clone(), concurrency, Duration::from_millis(300)).await?;
        let straight = unary_run(direct.clone(), concurrency, bench.duration).await?;
        let through = unary_run(gateway.clone(), concurrency, bench.duration).await?;
        println!(
            "| {concurrency} | {:.0} | {:.0} / {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.2} |",
            straight.rate(),
            straight.percentile_us(0.5),
            straight.percentile_us(0.99),
            through.rate(),
            through.percentile_us(0.5),
            through.percentile_us(0.99),
            through.percentile_us(0.5) - straight.percentile_us(0.5),
            through.rate() / straight.rate(),
        );
    }
    Ok(())
}

async fn unary_run(channel: Channel, concurrency: usize, duration: Duration) -> anyhow::Result<UnaryRun> {
    use wizdata::auth::v1::WhoAmIRequest;
    use wizdata::auth::v1::auth_service_client::AuthServiceClient;
    let started = Instant::now();
    let until = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = AuthServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    client.who_am_i(WhoAmIRequest {}).await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, tonic::Status>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(UnaryRun { latencies, elapsed })
}

#[derive(clap::Args, Debug)]
pub struct SoakBench {
    /// The gateway in front of --target, called at the anonymous limit.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The mesh's process id, whose memory, descriptors and threads are sampled.
    #[arg(long)]
    pub pid: u32,
    /// How long the soak runs; one row per minute.
    #[arg(long, default_value = "30m", value_parser = wizdata_common::config::parse_duration)]
    pub duration: Duration,
    /// Subscribe streams held open (trades and quotes of one symbol each).
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: usize,
    /// Share of the subscribers cancelled and replaced each minute, in percent.
    #[arg(long, default_value_t = 10)]
    pub churn_percent: usize,
    /// Anonymous callers (each from a loopback address of its own) calling
    /// GetQuote through the gateway once a second: the anonymous limit.
    #[arg(long, default_value_t = 8)]
    pub anonymous_callers: u8,
    #[arg(long, value_delimiter = ',', default_value = "AAPL,MSFT,GOOGL,TSLA,BTC/USDT,ETH/USDT,EUR/USD,USD/ZAR")]
    pub symbols: Vec<String>,
}

/// One minute of the gateway load: latencies of OK calls, and the rest by outcome.
#[derive(Default)]
struct GatewayMinute {
    ok_latencies: Vec<Duration>,
    refused: u64,
    failed: u64,
}

/// The mesh under a simulated feed, churning subscribers and anonymous
/// gateway load for `duration`; each minute a Markdown row of the process's
/// resident memory, open descriptors, threads, streams and latency.
pub async fn soak(target: &str, credentials: Credentials, bench: SoakBench) -> anyhow::Result<()> {
    use std::sync::{Arc, Mutex};
    use wizdata::marketdata::v1::GetQuoteRequest;
    use wizdata::streaming::v1::streaming_service_client::StreamingServiceClient;
    use wizdata::streaming::v1::{Channel as StreamChannel, GetStreamStatsRequest, SubscribeRequest};

    let mut connections = Vec::new();
    for _ in 0..10 {
        let channel = tonic::transport::Endpoint::from_shared(target.to_owned())?.connect().await?;
        connections.push(credentials.clone().on(channel));
    }
    let subscriber = |index: usize| {
        let mut client = StreamingServiceClient::new(connections[index % connections.len()].clone());
        let request = SubscribeRequest {
            symbols: vec![bench.symbols[index % bench.symbols.len()].clone()],
            channels: vec![StreamChannel::Trades as i32, StreamChannel::Quotes as i32],
            candle_interval: 0,
            indicators: Vec::new(),
        };
        tokio::spawn(async move {
            // Read until cancelled; a stream the server ends is opened again.
            loop {
                if let Ok(answer) = client.subscribe(request.clone()).await {
                    let mut stream = answer.into_inner();
                    while let Ok(Some(_)) = stream.message().await {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut subscribers: Vec<_> = (0..bench.subscribers).map(subscriber).collect();

    let minute = Arc::new(Mutex::new(GatewayMinute::default()));
    let mut callers = Vec::new();
    for caller in 0..bench.anonymous_callers {
        let channel = tonic::transport::Endpoint::from_shared(bench.gateway.clone())?
            .local_address(Some(std::net::IpAddr::from([127, 0, 1, caller.wrapping_add(1)])))
            .connect()
            .await?;
        let mut client = MarketDataServiceClient::new(Credentials::none().on(channel));
        let minute = minute.clone();
        callers.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let sent = Instant::now();
                let outcome = client.get_quote(GetQuoteRequest { symbol: "AAPL".into() }).await;
                let mut minute = minute.lock().expect("soak lock");
                match outcome {
                    Ok(_) => minute.ok_latencies.push(sent.elapsed()),
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => minute.refused += 1,
                    Err(_) => minute.failed += 1,
                }
            }
        }));
    }

    let mut stats = StreamingServiceClient::new(connections[0].clone());
    println!(
        "| minute | RSS (MB) | open fds | threads | streams | subscriptions | events out | churned | gateway OK / refused / failed | gateway p50 / p99 (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let minutes = (bench.duration.as_secs() / 60).max(1);
    let churn_per_minute = bench.subscribers * bench.churn_percent / 100;
    let (mut next_churned, mut events_before) = (0usize, 0u64);
    for row in 1..=minutes {
        // Churn spread over the minute: one cancel and replacement at a time.
        let pause = Duration::from_secs(60) / churn_per_minute.max(1) as u32;
        let minute_ends = tokio::time::Instant::now() + Duration::from_secs(60);
        for _ in 0..churn_per_minute {
            tokio::time::sleep(pause).await;
            let index = next_churned % subscribers.len();
            subscribers[index].abort();
            subscribers[index] = subscriber(index);
            next_churned += 1;
        }
        tokio::time::sleep_until(minute_ends).await;
        let (rss_mb, threads) = process_status(bench.pid)?;
        let fds = std::fs::read_dir(format!("/proc/{}/fd", bench.pid))?.count();
        let report = stats.get_stream_stats(GetStreamStatsRequest {}).await?.into_inner();
        let gateway = std::mem::take(&mut *minute.lock().expect("soak lock"));
        let mut latencies = gateway.ok_latencies;
        latencies.sort_unstable();
        let at = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
        };
        println!(
            "| {row} | {rss_mb:.0} | {fds} | {threads} | {} | {} | {} | {churn_per_minute} | {} / {} / {} | {:.1} / {:.1} |",
            report.connections,
            report.subscriptions,
            report.events_out - events_before,
            latencies.len(),
            gateway.refused,
            gateway.failed,
            at(0.5),
            at(0.99),
        );
        events_before = report.events_out;
    }
    for task in subscribers.into_iter().chain(callers) {
        task.abort();
    }
    Ok(())
}

/// Resident memory (MB) and thread count of process `pid`, from /proc.
fn process_status(pid: u32) -> anyhow::Result<(f64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|line| line.starts_with(name)).ok_or_else(|| anyhow::anyhow!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or_default().parse()?)
    };
    Ok((field("VmRSS:")? as f64 / 1024.0, field("Threads:")?))
}

//! `wizdata bench`: load generators for BENCHMARKS.md, run against a live
//! mesh over gRPC like any client (`make bench` starts one in release mode).

use std::time::{Duration, Instant};

use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{GetCandlesRequest, IngestTicksRequest, Tick, Trade, tick};
use wizdata::r#type::v1::{Candle, Interval};
use wizdata_common::auth::credentials::AuthenticatedChannel as Channel;

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
    let messages: Vec<Vec<IngestTicksRequest>> = (0..bench.streams)
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
                        kind: Some(tick::Kind::Trade(Trade { price, size: 1.0 + (n % 7) as f64 })),
                    }
                })
                .collect::<Vec<_>>()
                .chunks(bench.batch)
                .map(|chunk| IngestTicksRequest { ticks: chunk.to_vec() })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let calls = messages.into_iter().map(|messages| {
        let mut client = MarketDataServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20);
        async move { client.ingest_ticks(tokio_stream::iter(messages)).await.map(|r| r.into_inner().accepted) }
    });
    let accepted: u64 = futures_util::future::try_join_all(calls).await?.into_iter().sum();
    let elapsed = started.elapsed();
    println!(
        "ingest: {accepted} ticks over {} streams in batches of {} in {:.2} s = {:.0} ticks/s",
        bench.streams,
        bench.batch,
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Imports `bars` 1m bars, then times GetCandles returning all of them.
pub async fn candles(channel: Channel, bench: CandlesBench) -> anyhow::Result<()> {
    let mut client =
        MarketDataServiceClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
    let start = (chrono::Utc::now().timestamp() / 60 - bench.bars as i64 - 1) * 60;
    let history: Vec<Candle> = (0..bench.bars)
        .map(|i| Candle {
            open_time: Some(prost_types::Timestamp { seconds: start + i as i64 * 60, nanos: 0 }),
            open: 10.0,
            high: 11.0,
            low: 9.0,
            close: 10.5,
            volume: 1000.0,
            ..Default::default()
        })
        .collect();
    wizdata_market_data::history::import(&mut client, &bench.symbol, Interval::OneMinute, history).await?;
    let request = GetCandlesRequest {
        symbol: bench.symbol.clone(),
        interval: Interval::OneMinute as i32,
        start_time: Some(prost_types::Timestamp { seconds: start, nanos: 0 }),
        page_size: bench.bars as i32,
        ..Default::default()
    };
    let mut latencies = Vec::with_capacity(bench.calls);
    for _ in 0..bench.calls {
        let sent = Instant::now();
        let answer = client.get_candles(request.clone()).await?.into_inner();
        latencies.push(sent.elapsed());
        anyhow::ensure!(
            answer.candles.len() == bench.bars,
            "expected {} bars, got {}",
            bench.bars,
            answer.candles.len()
        );
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "get_candles: {} bars per call, {} calls, round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        bench.bars,
        bench.calls,
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*latencies.last().expect("at least one call"))
    );
    Ok(())
}

//! Idempotent ingest: trades carrying a source and an id are applied once,
//! however often a feed resends them, across calls, restarts and replicas.

use super::*;
use wizdata_test_support::identified_trade;

/// How many of a summary's rejections are for `reason`.
fn rejected_for(summary: &IngestTicksResponse, reason: TickRejection) -> u64 {
    summary.rejections.iter().find(|count| count.reason == reason as i32).map_or(0, |count| count.count)
}

fn binance(seconds: i64, price: f64, size: f64, trade_id: &str) -> Tick {
    identified_trade("BTC/USDT", seconds, price, size, "binance", trade_id)
}

#[tokio::test]
async fn a_resent_trade_is_a_duplicate_and_counts_once() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let first = ingest(&mut client, vec![vec![binance(BASE, 100.0, 1.0, "1"), binance(BASE + 1, 101.0, 2.0, "2")]])
        .await
        .unwrap();
    assert_eq!((first.accepted, first.rejected), (2, 0));

    // A replay of "2" and "1", a new "3", "3" again in the same call, the same
    // id from another source, and a trade without an id sent twice.
    let replay = vec![
        vec![binance(BASE + 1, 101.0, 2.0, "2"), binance(BASE + 2, 102.0, 3.0, "3")],
        vec![
            binance(BASE, 100.0, 1.0, "1"),
            binance(BASE + 2, 102.0, 3.0, "3"),
            identified_trade("BTC/USDT", BASE + 3, 99.0, 4.0, "coinbase", "1"),
            trade("BTC/USDT", BASE + 4, 98.0, 5.0),
            trade("BTC/USDT", BASE + 4, 98.0, 5.0),
        ],
    ];
    let summary = ingest(&mut client, replay).await.unwrap();
    assert_eq!((summary.accepted, summary.rejected), (4, 3), "{summary:?}");
    assert_eq!(rejected_for(&summary, TickRejection::Duplicate), 3);
    let mut samples: Vec<(u64, i32)> = summary.samples.iter().map(|sample| (sample.index, sample.reason)).collect();
    samples.sort_unstable();
    let duplicate = TickRejection::Duplicate as i32;
    assert_eq!(samples, [(0, duplicate), (2, duplicate), (3, duplicate)], "the replays, by position in the call");
    let detail = &summary.samples.iter().find(|sample| sample.index == 0).unwrap().detail;
    assert!(detail.contains("\"2\"") && detail.contains("binance") && detail.contains("already applied"), "{detail}");

    let minute = all_candles(&mut client, candles_request("BTC/USDT", Interval::OneMinute, BASE, BASE + 60), 10).await;
    assert_eq!(
        minute.iter().map(ohlcv).collect::<Vec<_>>(),
        [(BASE, 100.0, 102.0, 98.0, 98.0, 1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 5.0, 6)],
        "binance 1, 2 and 3 once, coinbase's 1, and the trade without an id twice, as before ids"
    );
}

#[tokio::test]
async fn trade_ids_that_cannot_be_ids_are_rejected_with_the_reason() {
    let mesh = TestMesh::all().await;
    let mut client = mesh.market_data().await;
    let ticks = vec![
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, "", "1"),
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, "binance", &"9".repeat(129)),
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, &"x".repeat(33), "1"),
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, "binance", "1\u{0}"),
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, "binance", &"é".repeat(128)),
        identified_trade("BTC/USDT", BASE, 100.0, 1.0, "binance", ""),
    ];
    let summary = ingest(&mut client, vec![ticks]).await.unwrap();
    assert_eq!((summary.accepted, summary.rejected), (2, 4), "{summary:?}");
    assert_eq!(rejected_for(&summary, TickRejection::InvalidTradeId), 4);
    let details: Vec<&str> = summary.samples.iter().map(|sample| sample.detail.as_str()).collect();
    assert!(details[0].contains("needs trade.source"), "{details:?}");
    assert!(details[1].contains("trade.trade_id has 129 characters; at most 128"), "{details:?}");
    assert!(details[2].contains("trade.source has 33 characters; at most 32"), "{details:?}");
    assert!(details[3].contains("control character"), "{details:?}");
}

#[tokio::test]
async fn trade_ids_are_remembered_across_a_restart() {
    let mesh = TestMesh::all().await;
    let trades = vec![vec![binance(BASE, 100.0, 1.0, "1"), binance(BASE + 1, 101.0, 2.0, "2")]];
    ingest(&mut mesh.market_data().await, trades.clone()).await.unwrap();
    let database = mesh.database().clone();
    mesh.stop().await.unwrap();

    let mesh = TestMesh::serve("all").database(&database).start().await;
    let mut client = mesh.market_data().await;
    let summary = ingest(&mut client, trades).await.unwrap();
    assert_eq!((summary.accepted, rejected_for(&summary, TickRejection::Duplicate)), (0, 2));
    let minute = all_candles(&mut client, candles_request("BTC/USDT", Interval::OneMinute, BASE, BASE + 60), 10).await;
    assert_eq!(minute.iter().map(ohlcv).collect::<Vec<_>>(), [(BASE, 100.0, 101.0, 100.0, 101.0, 3.0, 2)]);
}

/// Two market data replicas on one database (PostgreSQL when
/// WIZDATA_TEST_DATABASE_URL is set) receive the same trades with the same
/// ids at once: each trade is accepted by exactly one of them.
#[tokio::test]
async fn two_replicas_on_one_database_count_each_trade_once() {
    let first = TestMesh::all().await;
    let second = TestMesh::serve("all").database(first.database()).start().await;
    let trades: Vec<RawTrade> =
        (0..600).map(|n| ((BASE + n % 300) * NANOS + n, 100.0 + (n % 37) as f64, 1.0 + (n % 5) as f64)).collect();
    let ticks: Vec<Tick> = trades
        .iter()
        .enumerate()
        .map(|(n, raw)| Tick { time: Some(at_ns(raw.0)), ..binance(0, raw.1, raw.2, &n.to_string()) })
        .collect();
    let messages: Vec<Vec<Tick>> = ticks.chunks(25).map(<[Tick]>::to_vec).collect();
    let mut reversed = messages.clone();
    reversed.reverse();
    let calls = [(&first, messages.clone()), (&second, reversed), (&first, messages.clone()), (&second, messages)]
        .map(|(mesh, messages)| async move { ingest(&mut mesh.market_data().await, messages).await.unwrap() });
    let summaries = futures_util::future::join_all(calls).await;
    let accepted: u64 = summaries.iter().map(|summary| summary.accepted).sum();
    let duplicates: u64 = summaries.iter().map(|summary| rejected_for(summary, TickRejection::Duplicate)).sum();
    assert_eq!((accepted, duplicates), (600, 3 * 600), "{summaries:?}");
    for mesh in [&first, &second] {
        assert_reference_candles(&mut mesh.market_data().await, "BTC/USDT", &trades, BASE - BASE % DAY, BASE + DAY)
            .await;
    }
}

/// Random trades with ids, cut into calls of which some fail partway (a
/// message over the size limit after a random number of good ones) and are
/// sent again whole, and some are sent twice: the candles and the quote are
/// exactly those of the same trades ingested once, cleanly, under another
/// symbol, and the reference's.
#[test]
fn failed_and_retried_calls_give_the_candles_and_quote_of_one_clean_ingest() {
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    const MAX_MESSAGE_BYTES: usize = 64 * 1024;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mesh = runtime.block_on(TestMesh::all_with(&["--max-message-bytes", "65536"]));
    let channel = runtime.block_on(mesh.channel());
    let case = std::sync::atomic::AtomicI64::new(0);
    // One tick that makes its message too large: the call fails there, after
    // what the service already took from the messages before it.
    let too_large = trade(&"X".repeat(MAX_MESSAGE_BYTES), BASE, 1.0, 1.0);

    let trades = proptest::collection::vec((0i64..3 * 3600, 1u32..20_000, 1u32..1_000), 1..300);
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(trades, any::<u64>()), |(raw, seed)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let day = 1_672_531_200 + case * DAY;
            let trades: Vec<RawTrade> = raw
                .iter()
                .map(|(second, cents, size)| {
                    ((day + 3600 + second) * NANOS, f64::from(*cents) / 100.0, f64::from(*size))
                })
                .collect();
            // Mostly integers, claimed as runs (with a gap at every fourth,
            // which has an id that is not an integer), unique across cases.
            let trade_id =
                |n: usize| if n % 4 == 3 { format!("{case}-{n}") } else { (case * 1_000_000 + n as i64).to_string() };
            let with_ids = |symbol: &str| -> Vec<Tick> {
                trades
                    .iter()
                    .enumerate()
                    .map(|(n, raw)| Tick {
                        time: Some(at_ns(raw.0)),
                        ..identified_trade(symbol, 0, raw.1, raw.2, "feed", &trade_id(n))
                    })
                    .collect()
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let messy = with_ids("BTC/USDT");
            let mut calls: Vec<Vec<Vec<Tick>>> = Vec::new();
            let mut rest = messy.as_slice();
            while !rest.is_empty() {
                let (call, after) = rest.split_at(rng.random_range(1..=rest.len()));
                calls.push(call.chunks(rng.random_range(1..=20)).map(<[Tick]>::to_vec).collect());
                rest = after;
            }
            let plans: Vec<(Vec<Vec<Tick>>, Option<usize>, bool)> = calls
                .into_iter()
                .map(|messages| {
                    let fails_after = rng.random_bool(0.5).then(|| rng.random_range(0..=messages.len()));
                    (messages, fails_after, rng.random_bool(0.3))
                })
                .collect();
            runtime.block_on(async {
                let sends = plans.into_iter().map(|(messages, fails_after, twice)| {
                    let mut client = MarketDataServiceClient::new(channel.clone());
                    let too_large = too_large.clone();
                    async move {
                        let ticks: usize = messages.iter().map(Vec::len).sum();
                        if let Some(good) = fails_after {
                            let mut cut: Vec<Vec<Tick>> = messages[..good].to_vec();
                            cut.push(vec![too_large]);
                            let status = ingest(&mut client, cut).await.unwrap_err();
                            assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
                        }
                        for _ in 0..1 + usize::from(twice) {
                            let summary = ingest(&mut client, messages.clone()).await.unwrap();
                            let duplicates = rejected_for(&summary, TickRejection::Duplicate);
                            assert_eq!(summary.accepted + duplicates, ticks as u64, "{summary:?}");
                            assert_eq!(summary.rejected, duplicates, "only duplicates are refused: {summary:?}");
                        }
                    }
                });
                futures_util::future::join_all(sends).await;
                let mut client = MarketDataServiceClient::new(channel.clone());
                let clean = ingest(&mut client, vec![with_ids("ETH/USDT")]).await.unwrap();
                assert_eq!((clean.accepted, clean.rejected), (trades.len() as u64, 0));
                assert_reference_candles(&mut client, "BTC/USDT", &trades, day, day + DAY).await;
                assert_reference_candles(&mut client, "ETH/USDT", &trades, day, day + DAY).await;
                let (mut messy_quote, mut clean_quote) =
                    (quote(&mut client, "BTC/USDT").await.unwrap(), quote(&mut client, "ETH/USDT").await.unwrap());
                (messy_quote.symbol, clean_quote.symbol) = (String::new(), String::new());
                assert_eq!(messy_quote, clean_quote);
            });
            Ok(())
        })
        .unwrap();
    runtime.block_on(mesh.stop()).unwrap();
}

//! `wizdata feed simulate`: a feed handler that walks prices as geometric
//! Brownian motion and pushes trades and bid/ask quotes through IngestTicks
//! over gRPC, like any external feed would. The same seed gives the same
//! walk. Symbols without a quote yet are first backfilled with history, so a
//! fresh mesh has candles to show; the others continue from their last price.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{BidAsk, GetQuotesRequest, IngestTicksRequest, Tick, Trade, tick};
use wizdata::registry::v1::ListSymbolsRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata_common::auth::credentials::AuthenticatedChannel as Channel;
use wizdata_common::config::parse_duration;
use wizdata_common::time::{now_ns, timestamp_from_ns};

const SECONDS_PER_YEAR: f64 = 365.25 * 24.0 * 3600.0;
/// Ticks per IngestTicks message.
const TICKS_PER_MESSAGE: usize = 2000;
/// Half the bid/ask spread, relative to the price.
const HALF_SPREAD: f64 = 0.0002;

#[derive(clap::Args, Debug, Clone)]
pub struct SimulatorConfig {
    /// Ticks per second across all symbols.
    #[arg(long = "feed-rate", env = "WIZDATA_FEED_RATE", default_value_t = 20.0)]
    pub rate: f64,

    /// Seed of the random walk: the same seed gives the same ticks.
    #[arg(long = "feed-seed", env = "WIZDATA_FEED_SEED", default_value_t = 42)]
    pub seed: u64,

    /// History generated before going live, for symbols without a quote yet
    /// (0s turns backfill off).
    #[arg(long = "feed-backfill", env = "WIZDATA_FEED_BACKFILL", default_value = "2d", value_parser = parse_duration)]
    pub backfill: Duration,

    /// Time between backfilled trades.
    #[arg(long = "feed-backfill-step", env = "WIZDATA_FEED_BACKFILL_STEP", default_value = "1m", value_parser = parse_duration)]
    pub backfill_step: Duration,

    /// Annualised volatility of the walk (0.5 = 50%).
    #[arg(long = "feed-volatility", env = "WIZDATA_FEED_VOLATILITY", default_value_t = 0.5)]
    pub volatility: f64,

    /// How often live ticks are sent (one IngestTicks call each time).
    #[arg(long = "feed-interval", env = "WIZDATA_FEED_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub interval: Duration,

    /// Symbols to feed (comma-separated); empty means every streamable symbol
    /// in the registry.
    #[arg(long = "feed-symbols", env = "WIZDATA_FEED_SYMBOLS", value_delimiter = ',')]
    pub symbols: Vec<String>,
}

/// A price walking as geometric Brownian motion (no drift).
struct Walk {
    price: f64,
    last_ns: i64,
}

struct Simulator {
    rng: StdRng,
    volatility: f64,
    walks: Vec<(String, Walk)>,
}

impl Simulator {
    fn standard_normal(&mut self) -> f64 {
        // Box-Muller: two uniforms in (0, 1] give one standard normal.
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Moves symbol `index` to `time_ns` and returns its trade and quote.
    fn step(&mut self, index: usize, time_ns: i64) -> [Tick; 2] {
        let z = self.standard_normal();
        let size = f64::from(self.rng.random_range(1..=100u32));
        let volatility = self.volatility;
        let (symbol, walk) = &mut self.walks[index];
        let years = (time_ns - walk.last_ns).max(0) as f64 / 1e9 / SECONDS_PER_YEAR;
        walk.price *= ((-0.5 * volatility * volatility) * years + volatility * years.sqrt() * z).exp();
        walk.last_ns = time_ns;
        let price = round_to_tick(walk.price);
        let time = Some(timestamp_from_ns(time_ns));
        [
            Tick {
                symbol: symbol.clone(),
                time,
                kind: Some(tick::Kind::Trade(Trade { price, size, ..Default::default() })),
            },
            Tick {
                symbol: symbol.clone(),
                time,
                kind: Some(tick::Kind::BidAsk(BidAsk {
                    bid: round_to_tick(price * (1.0 - HALF_SPREAD)),
                    bid_size: size * 2.0,
                    ask: round_to_tick(price * (1.0 + HALF_SPREAD)),
                    ask_size: size * 3.0,
                })),
            },
        ]
    }
}

/// Keeps six significant digits, as a venue's price grid would.
fn round_to_tick(price: f64) -> f64 {
    let digits = 5 - price.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (price * scale).round() / scale
}

/// Where a symbol's walk starts when it has no quote yet.
fn starting_price(symbol: &str) -> f64 {
    match symbol {
        "AAPL" => 190.0,
        "MSFT" => 420.0,
        "GOOGL" => 170.0,
        "TSLA" => 250.0,
        "BTC/USDT" => 65_000.0,
        "ETH/USDT" => 3_200.0,
        "USD/ZAR" => 18.2,
        "EUR/USD" => 1.08,
        "GBP/USD" => 1.27,
        "NPN" => 3_400.0,
        "PRX" => 1_150.0,
        _ => 100.0,
    }
}

/// Feeds until `stop` resolves.
pub async fn run(
    channel: Channel,
    config: SimulatorConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut market = MarketDataServiceClient::new(channel.clone());
    let symbols = match config.symbols.is_empty() {
        false => config.symbols.clone(),
        true => streamable_symbols(channel).await?,
    };
    if symbols.is_empty() {
        tracing::warn!("no symbols to feed");
        return Ok(());
    }
    let quotes = market.get_quotes(GetQuotesRequest { symbols: symbols.clone() }).await?.into_inner();
    let last_prices: HashMap<String, f64> = quotes
        .quotes
        .iter()
        .filter(|quote| quote.last_price > 0.0)
        .map(|quote| (quote.symbol.clone(), quote.last_price))
        .collect();

    let now = now_ns();
    let backfill_ns = i64::try_from(config.backfill.as_nanos()).unwrap_or(i64::MAX);
    let start = if backfill_ns > 0 { now - backfill_ns } else { now };
    let walks = symbols
        .iter()
        .map(|symbol| {
            let price = last_prices.get(symbol).copied().unwrap_or_else(|| starting_price(symbol));
            let last_ns = if last_prices.contains_key(symbol) { now } else { start };
            (symbol.clone(), Walk { price, last_ns })
        })
        .collect();
    let mut simulator = Simulator { rng: StdRng::seed_from_u64(config.seed), volatility: config.volatility, walks };

    let step_ns = i64::try_from(config.backfill_step.as_nanos()).unwrap_or(i64::MAX).max(1_000_000);
    let to_backfill: Vec<usize> =
        (0..symbols.len()).filter(|index| !last_prices.contains_key(&symbols[*index])).collect();
    if backfill_ns > 0 && !to_backfill.is_empty() {
        let mut ticks = Vec::new();
        let mut time = start;
        while time < now {
            for &index in &to_backfill {
                ticks.extend(simulator.step(index, time));
            }
            time += step_ns;
        }
        let count = ticks.len();
        let summary = send(&mut market, ticks).await?;
        tracing::info!(symbols = to_backfill.len(), ticks = count, accepted = summary, "feed backfilled history");
    }

    tracing::info!(symbols = symbols.len(), rate = config.rate, "feed live");
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_round = config.rate * config.interval.as_secs_f64();
    let mut owed = 0.0;
    let mut round_start = now_ns();
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = ticker.tick() => {}
        }
        let round_end = now_ns();
        owed += per_round;
        let count = owed.floor() as usize;
        owed -= count as f64;
        let mut times: Vec<i64> =
            (0..count).map(|_| simulator.rng.random_range(round_start..round_end.max(round_start + 1))).collect();
        times.sort_unstable();
        let mut ticks = Vec::with_capacity(count * 2);
        for time in times {
            let index = simulator.rng.random_range(0..symbols.len());
            ticks.extend(simulator.step(index, time));
        }
        round_start = round_end;
        if let Err(status) = send(&mut market, ticks).await {
            tracing::warn!(code = ?status.code(), message = status.message(), "feed could not deliver ticks; carrying on");
        }
    }
}

async fn send(market: &mut MarketDataServiceClient<Channel>, ticks: Vec<Tick>) -> Result<u64, tonic::Status> {
    if ticks.is_empty() {
        return Ok(0);
    }
    let messages: Vec<IngestTicksRequest> =
        ticks.chunks(TICKS_PER_MESSAGE).map(|chunk| IngestTicksRequest { ticks: chunk.to_vec() }).collect();
    let summary = market.ingest_ticks(tokio_stream::iter(messages)).await?.into_inner();
    if summary.rejected > 0 {
        tracing::warn!(rejected = summary.rejected, samples = ?summary.samples, "feed ticks rejected");
    }
    Ok(summary.accepted)
}

async fn streamable_symbols(channel: Channel) -> anyhow::Result<Vec<String>> {
    let mut registry = RegistryServiceClient::new(channel);
    let mut symbols = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = registry
            .list_symbols(ListSymbolsRequest {
                streamable: Some(true),
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        symbols.extend(page.symbols.into_iter().map(|symbol| symbol.ticker));
        if page.next_page_token.is_empty() {
            return Ok(symbols);
        }
        page_token = page.next_page_token;
    }
}

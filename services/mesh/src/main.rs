mod bench;

/// mimalloc rather than glibc's malloc: glibc hands a freed block at the top
/// of its heap back to the kernel once it passes its trim threshold, so each
/// large answer (a batch of indicator series, a page of candles) faulted its
/// pages in again; measured on `make bench-indicators`, that was three
/// quarters of MACD's and BBANDS' time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use wizdata::auth::v1::Tier;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::r#type::v1::Interval;
use wizdata_common::auth::access::AccessRules;
use wizdata_common::auth::credentials::AuthenticatedChannel;
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::config::{DatabaseConfig, TelemetryConfig};
use wizdata_common::endpoints::{DiscoveryConfig, Resolver, ServiceChannel};
use wizdata_common::metrics::MetricsConfig;
use wizdata_market_data::simulator::SimulatorConfig;
use wizdata_market_data::{history, interval};
use wizdata_mesh::{Mesh, ServeArgs, channel_to};

/// WizData mesh: market data services over gRPC.
#[derive(Parser)]
#[command(name = "wizdata", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve one service (a Kubernetes role), or `all` of them on one port.
    Serve(Box<ServeArgs>),
    /// Feed handlers that push ticks into a mesh.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Load history into a mesh.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Load generators for the benchmarks (BENCHMARKS.md).
    Bench(BenchArgs),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The mesh to load.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// API key (wiz_...) with the scopes the load needs.
    #[arg(long, env = "WIZDATA_API_KEY", hide_env_values = true)]
    api_key: Option<SecretString>,
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Sustained IngestTicks throughput.
    Ingest(bench::IngestBench),
    /// GetCandles latency for a large range.
    Candles(bench::CandlesBench),
    /// Many concurrent Subscribe streams fed by ingested trades: delivered
    /// events/s and tick-to-receipt latency.
    Subscribe(bench::SubscribeBench),
    /// Unary latency and throughput calling a service directly versus
    /// through the gateway, at several concurrencies.
    Unary(bench::UnaryBench),
    /// A long run under a live feed with churning subscribers and gateway
    /// load at the anonymous limit: memory, descriptors, threads, streams
    /// and latency, sampled each minute.
    Soak(bench::SoakBench),
}

#[derive(Subcommand)]
enum FeedCommand {
    /// Geometric-Brownian trades and quotes for registry symbols, through
    /// IngestTicks.
    Simulate(Box<SimulateArgs>),
    /// Binance spot: live trades and best bid/ask over its WebSocket
    /// streams, history from its klines, into IngestTicks and ImportCandles.
    Binance(Box<ProviderArgs<wizdata_feeds::binance::BinanceConfig>>),
    /// Coinbase Exchange: trades (matches) and best bid/ask (ticker) over
    /// its WebSocket feed, gaps in its trade numbering filled from REST.
    Coinbase(Box<ProviderArgs<wizdata_feeds::coinbase::CoinbaseConfig>>),
    /// Kraken: trades and best bid/ask over its WebSocket v2 channels.
    Kraken(Box<ProviderArgs<wizdata_feeds::kraken::KrakenConfig>>),
    /// CoinGecko: prices polled from simple/price, as size-0 trades.
    Coingecko(Box<ProviderArgs<wizdata_feeds::coingecko::CoingeckoConfig>>),
    /// Alpha Vantage: daily or intraday history into ImportCandles.
    Alphavantage(Box<ProviderArgs<wizdata_feeds::alphavantage::AlphaVantageConfig>>),
}

/// What every real feed's command takes: where to publish, as whom, how to
/// keep the connection, and where its metrics are served.
#[derive(clap::Args)]
struct ProviderArgs<Provider: clap::Args> {
    /// The mesh (or market data service) to feed.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// API key (wiz_...) with the marketdata:write scope.
    #[arg(long, env = "WIZDATA_API_KEY", hide_env_values = true)]
    api_key: Option<SecretString>,
    /// Where the feed serves its metrics (`GET /metrics`) and its health
    /// (`GET /healthz`: 200 while connected, else 503); beside a mesh on
    /// 9464 by default.
    #[arg(long, env = "WIZDATA_FEED_METRICS_ADDR", default_value = "127.0.0.1:9465")]
    metrics_addr: std::net::SocketAddr,
    #[command(flatten)]
    provider: Provider,
    #[command(flatten)]
    session: wizdata_feeds::SessionConfig,
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

impl<Provider: clap::Args> ProviderArgs<Provider> {
    /// Telemetry, the metrics endpoint and the channel to the mesh, then
    /// `run` until a shutdown signal.
    async fn run<Run>(
        self,
        run: impl FnOnce(Provider, wizdata_feeds::SessionConfig, AuthenticatedChannel, ShutdownSignal) -> Run,
    ) -> anyhow::Result<()>
    where
        Run: std::future::Future<Output = anyhow::Result<()>>,
    {
        let _telemetry = wizdata_common::telemetry::init(&self.telemetry, "wizdata-feed");
        let metrics = MetricsConfig { metrics_addr: self.metrics_addr };
        let connections = wizdata_feeds::connections();
        let connected = move || {
            let connections = connections.borrow();
            !connections.is_empty() && connections.values().all(|connected| *connected)
        };
        let _metrics = wizdata_common::metrics::MetricsServer::bind(&metrics)
            .await?
            .with_health_check(std::sync::Arc::new(connected))
            .spawn();
        let channel = Credentials::from_optional(self.api_key.as_ref())?.on(tool_channel(&self.target)?);
        run(self.provider, self.session, channel, Box::pin(wizdata_common::server::shutdown_signal())).await
    }
}

type ShutdownSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[derive(clap::Args)]
struct SimulateArgs {
    /// The mesh (or market data service) to feed.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// API key (wiz_...) with the marketdata:write scope.
    #[arg(long, env = "WIZDATA_API_KEY", hide_env_values = true)]
    api_key: Option<SecretString>,
    #[command(flatten)]
    feed: SimulatorConfig,
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Candles from a CSV file: Yahoo (Date,Open,High,Low,Close,Adj Close,Volume)
    /// or Date,Time,Open,High,Low,Close,Volume,OpenInterest. Times are UTC.
    /// Nothing is imported while any row is bad; every bad row is listed.
    Candles(ImportCandlesArgs),
}

#[derive(clap::Args)]
struct ImportCandlesArgs {
    /// The CSV file.
    file: PathBuf,
    /// The registry symbol the candles belong to.
    #[arg(long)]
    symbol: String,
    /// Bar width: 1m, 5m, 15m, 1h or 1d.
    #[arg(long, value_parser = parse_interval)]
    interval: Interval,
    /// The mesh (or market data service) to import into.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    /// API key (wiz_...) with the marketdata:write scope.
    #[arg(long, env = "WIZDATA_API_KEY", hide_env_values = true)]
    api_key: Option<SecretString>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Creates an API key directly in the auth service's database (the way to
    /// get the first admin key on a fresh mesh) and prints its secret once.
    Create(CreateKeyArgs),
}

#[derive(clap::Args)]
struct CreateKeyArgs {
    /// What the key is for.
    #[arg(long, default_value = "admin")]
    name: String,
    /// Scopes, comma-separated (e.g. marketdata:read,marketdata:write), or
    /// `all` for every scope of the contract.
    #[arg(long, value_delimiter = ',', required = true)]
    scopes: Vec<String>,
    /// Rate-limit tier: anonymous, standard, premium or internal.
    #[arg(long, default_value = "standard", value_parser = parse_tier)]
    tier: Tier,
    /// The subject the key acts as.
    #[arg(long, default_value = "admin")]
    owner: String,
    /// How long until the key expires (e.g. 90d); unset means never.
    #[arg(long, value_parser = wizdata_common::config::parse_duration)]
    expires_in: Option<std::time::Duration>,
    #[command(flatten)]
    database: DatabaseConfig,
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    wizdata_common::auth::tier_named(text)
        .ok_or_else(|| format!("{text:?} is not a tier; use anonymous, standard, premium or internal"))
}

fn parse_interval(text: &str) -> Result<Interval, String> {
    interval::parse(text).ok_or_else(|| format!("{text:?} is not an interval; use 1m, 5m, 15m, 1h or 1d"))
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(args) = &cli.command
        && let Some(threads) = args.worker_threads
    {
        runtime.worker_threads(threads.get());
    }
    runtime.build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let service_name = format!("wizdata-{}", format!("{:?}", args.role).to_lowercase());
            let _telemetry = wizdata_common::telemetry::init(&args.telemetry, &service_name);
            // Before anything else, so a SIGTERM during start-up still stops us cleanly.
            let stop = wizdata_common::server::shutdown_signal();
            let mesh = Mesh::build(&args).await.inspect_err(|error| tracing::error!(%error, "cannot start"))?;
            tracing::info!(role = ?args.role, port = mesh.port(), "WizData mesh serving");
            mesh.run_until(stop).await?;
        }
        Command::Feed(FeedCommand::Simulate(args)) => {
            let _telemetry = wizdata_common::telemetry::init(&args.telemetry, "wizdata-feed");
            let channel = tool_channel(&args.target)?;
            let channel = Credentials::from_optional(args.api_key.as_ref())?.on(channel);
            wizdata_market_data::simulator::run(channel, args.feed, wizdata_common::server::shutdown_signal()).await?;
        }
        Command::Feed(FeedCommand::Binance(args)) => args.run(wizdata_feeds::binance::run).await?,
        Command::Feed(FeedCommand::Coinbase(args)) => args.run(wizdata_feeds::coinbase::run).await?,
        Command::Feed(FeedCommand::Kraken(args)) => args.run(wizdata_feeds::kraken::run).await?,
        Command::Feed(FeedCommand::Coingecko(args)) => args.run(wizdata_feeds::coingecko::run).await?,
        Command::Feed(FeedCommand::Alphavantage(args)) => args.run(wizdata_feeds::alphavantage::run).await?,
        Command::Import(ImportCommand::Candles(args)) => return import_candles(args).await,
        Command::Keys(KeysCommand::Create(args)) => return create_key(args).await,
        Command::Bench(args) => {
            let credentials = Credentials::from_optional(args.api_key.as_ref())?;
            let channel = credentials.clone().on(tool_channel(&args.target)?);
            match args.what {
                BenchCommand::Subscribe(bench) => bench::subscribe(&args.target, credentials, bench).await?,
                BenchCommand::Soak(bench) => bench::soak(&args.target, credentials, bench).await?,
                BenchCommand::Ingest(bench) => bench::ingest(channel, bench).await?,
                BenchCommand::Candles(bench) => bench::candles(channel, bench).await?,
                BenchCommand::Unary(bench) => {
                    let gateway = credentials.on(tool_channel(&bench.gateway)?);
                    bench::unary(channel, gateway, bench).await?
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The command-line tools' channel to a mesh process or gateway, resolved
/// with the system's DNS.
fn tool_channel(target: &str) -> anyhow::Result<ServiceChannel> {
    channel_to(target, "", std::time::Duration::from_secs(5), &Resolver::new(&DiscoveryConfig::default()))
}

async fn import_candles(args: ImportCandlesArgs) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(&args.file)
        .map_err(|error| anyhow::anyhow!("cannot open {}: {error}", args.file.display()))?;
    let candles = match history::parse_candles(std::io::BufReader::new(file), args.interval) {
        Ok(candles) => candles,
        Err(errors) => {
            for error in &errors {
                eprintln!("{}:{error}", args.file.display());
            }
            eprintln!("{} bad rows; nothing imported", errors.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let channel = tool_channel(&args.target)?;
    let mut client = MarketDataServiceClient::new(Credentials::from_optional(args.api_key.as_ref())?.on(channel))
        .max_decoding_message_size(64 * 1024 * 1024);
    match history::import(&mut client, &args.symbol, args.interval, candles).await {
        Ok(summary) => {
            println!("imported {} candles of {} ({} replaced)", summary.imported, args.symbol, summary.replaced);
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            eprintln!("import failed: {:?}: {}", status.code(), status.message());
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn create_key(args: CreateKeyArgs) -> anyhow::Result<ExitCode> {
    let known = AccessRules::contract().scopes();
    let scopes: Vec<String> = match args.scopes.iter().map(|scope| scope.trim()).collect::<Vec<_>>().as_slice() {
        ["all"] => known.iter().map(|scope| (*scope).to_owned()).collect(),
        requested => {
            if let Some(unknown) = requested.iter().find(|scope| !known.contains(*scope)) {
                eprintln!(
                    "{unknown:?} is not a scope; scopes are: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
            requested.iter().map(|scope| (*scope).to_owned()).collect()
        }
    };
    let expire_time = match args.expires_in {
        Some(lifetime) => Some(chrono::Utc::now() + chrono::Duration::from_std(lifetime)?),
        None => None,
    };
    let db = wizdata_common::db::connect(&args.database).await?;
    wizdata_common::db::migrate::<wizdata_auth::Migrator>(&db).await?;
    let key = wizdata_auth::NewApiKey { name: args.name, owner: args.owner, scopes, tier: args.tier, expire_time };
    let (created, secret) = wizdata_auth::keys::create(&db, key).await?;
    eprintln!(
        "created {} for {} with scopes {}; the secret is shown once:",
        created.key_id, created.owner, created.scopes
    );
    println!("{}", secret.expose_secret());
    Ok(ExitCode::SUCCESS)
}

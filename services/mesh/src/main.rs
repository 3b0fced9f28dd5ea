mod bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::r#type::v1::Interval;
use wizdata_common::config::TelemetryConfig;
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
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The mesh to load.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Sustained IngestTicks throughput.
    Ingest(bench::IngestBench),
    /// GetCandles latency for a large range.
    Candles(bench::CandlesBench),
}

#[derive(Subcommand)]
enum FeedCommand {
    /// Geometric-Brownian trades and quotes for registry symbols, through
    /// IngestTicks.
    Simulate(Box<SimulateArgs>),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The mesh (or market data service) to feed.
    #[arg(long, env = "WIZDATA_TARGET", default_value = "http://127.0.0.1:50051")]
    target: String,
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
}

fn parse_interval(text: &str) -> Result<Interval, String> {
    interval::parse(text).ok_or_else(|| format!("{text:?} is not an interval; use 1m, 5m, 15m, 1h or 1d"))
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve(args) => {
            wizdata_common::telemetry::init(&args.telemetry);
            // Before anything else, so a SIGTERM during start-up still stops us cleanly.
            let stop = wizdata_common::server::shutdown_signal();
            let mesh = Mesh::build(&args).await.inspect_err(|error| tracing::error!(%error, "cannot start"))?;
            tracing::info!(role = ?args.role, port = mesh.port(), "WizData mesh serving");
            mesh.run_until(stop).await?;
        }
        Command::Feed(FeedCommand::Simulate(args)) => {
            wizdata_common::telemetry::init(&args.telemetry);
            let channel = channel_to(&args.target, std::time::Duration::from_secs(5))?;
            wizdata_market_data::simulator::run(channel, args.feed, wizdata_common::server::shutdown_signal()).await?;
        }
        Command::Import(ImportCommand::Candles(args)) => return import_candles(args).await,
        Command::Bench(args) => {
            let channel = channel_to(&args.target, std::time::Duration::from_secs(5))?;
            match args.what {
                BenchCommand::Ingest(bench) => bench::ingest(channel, bench).await?,
                BenchCommand::Candles(bench) => bench::candles(channel, bench).await?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
    let mut client = MarketDataServiceClient::new(channel_to(&args.target, std::time::Duration::from_secs(5))?)
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

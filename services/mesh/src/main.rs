use clap::{Parser, Subcommand};
use wizdata_mesh::{Mesh, ServeArgs};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            wizdata_common::telemetry::init(&args.telemetry);
            let mesh = Mesh::build(&args).await.inspect_err(|error| tracing::error!(%error, "cannot start"))?;
            tracing::info!(role = ?args.role, port = mesh.port(), "WizData mesh serving");
            mesh.run_until_stopped().await
        }
    }
}

//! Starts the mesh in-process on a free port, over real sockets, on a fresh
//! database (SQLite, or PostgreSQL when WIZDATA_TEST_DATABASE_URL is set).

#![allow(dead_code)] // each test binary uses a different part of the harness

use clap::Parser;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use wizdata_common::config::DatabaseConfig;
use wizdata_common::testing::TestDatabase;
use wizdata_mesh::{Mesh, ServeArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A running mesh process, stopped when dropped.
pub struct TestMesh {
    pub port: u16,
    pub health: wizdata_common::health::Health,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Serve arguments for a test: loopback port 0, quick health checks, and the
/// given database; `extra` adds or overrides flags.
pub fn serve_args(role: &str, database: &DatabaseConfig, extra: &[&str]) -> ServeArgs {
    let mut argv =
        vec!["test", role, "--grpc-addr", "127.0.0.1:0", "--db-health-interval", "500ms", "--drain-timeout", "5s"];
    argv.extend_from_slice(extra);
    let mut args = Cli::parse_from(argv).serve;
    args.database = database.clone();
    args
}

impl TestMesh {
    pub async fn start(args: ServeArgs) -> Self {
        let mesh = Mesh::build(&args).await.expect("mesh builds");
        let port = mesh.port();
        let health = mesh.health();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mesh.run_until(async {
            let _ = stopped.await;
        }));
        Self { port, health, stop: Some(stop), task: Some(task) }
    }

    /// `serve all` on `database`.
    pub async fn all(database: &TestDatabase) -> Self {
        Self::start(serve_args("all", &database.config, &[])).await
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.expect("connect to the mesh")
    }

    /// Stops the mesh gracefully and returns how `run_until` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.expect("mesh task does not panic")
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The fields named by a status's BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

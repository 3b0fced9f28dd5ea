//! Test support for the services' own suites and the end-to-end suite.
//!
//! Tests run on embedded SQLite by default. When
//! `WIZDATA_TEST_DATABASE_URL` is set they run on PostgreSQL instead, each in
//! a fresh database dropped afterwards, and fail (never skip) when it is
//! unreachable.

use std::net::SocketAddr;

use clap::Parser;
use sea_orm::{ConnectionTrait, Database};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::{DatabaseConfig, ServerConfig};

pub const TEST_DATABASE_URL: &str = "WIZDATA_TEST_DATABASE_URL";
pub const TEST_REDIS_URL: &str = "WIZDATA_TEST_REDIS_URL";

/// A server config listening on a free loopback port.
pub fn server_config() -> ServerConfig {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        server: ServerConfig,
    }
    Args::parse_from(["test", "--grpc-addr", "127.0.0.1:0", "--drain-timeout", "5s"]).server
}

/// A fresh, empty database for one test.
pub struct TestDatabase {
    pub config: DatabaseConfig,
    _data_dir: tempfile::TempDir,
    postgres: Option<PostgresDatabase>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// PostgreSQL when `WIZDATA_TEST_DATABASE_URL` is set, SQLite otherwise.
    pub async fn new() -> Self {
        match std::env::var(TEST_DATABASE_URL) {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(admin_url).await,
            _ => Self::sqlite(),
        }
    }

    /// Embedded SQLite in a temporary directory.
    pub fn sqlite() -> Self {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let config = database_config(data_dir.path().to_str().expect("utf-8 temp path"), None);
        Self { config, _data_dir: data_dir, postgres: None }
    }

    /// A new database on the PostgreSQL server at `admin_url`.
    pub async fn postgres(admin_url: String) -> Self {
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("{TEST_DATABASE_URL} is set but PostgreSQL is unreachable: {error}"));
        let name = format!("wizdata_test_{}", random_suffix());
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let config = database_config(data_dir.path().to_str().expect("utf-8 temp path"), Some(url));
        Self { config, _data_dir: data_dir, postgres: Some(PostgresDatabase { admin_url, name }) }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The PostgreSQL URL this test's database lives at.
    pub fn postgres_url(&self) -> Option<String> {
        self.config.database_url.as_ref().map(|url| url.expose_secret().to_owned())
    }

    /// A proxy in front of this PostgreSQL database that a test can cut,
    /// and the database's URL through it; `None` on SQLite, which cannot
    /// become unreachable.
    pub async fn behind_proxy(&self) -> Option<(TcpProxy, String)> {
        let url = self.postgres_url()?;
        let host_port = url.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port in the URL");
        let target = tokio::net::lookup_host(host_port).await.expect("the host resolves").next().expect("an address");
        let proxy = TcpProxy::start(target).await;
        let through = via_proxy(&url, proxy.local_addr());
        Some((proxy, through))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(PostgresDatabase { admin_url, name }) = self.postgres.take() else { return };
        // Drop may run inside a runtime (or during a panic); a thread with its
        // own runtime can always block on the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let admin = Database::connect(&admin_url).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                admin.close().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop a test database: {error}");
        }
    }
}

fn database_config(data_dir: &str, url: Option<String>) -> DatabaseConfig {
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        database: DatabaseConfig,
    }
    let mut args = Args::parse_from(["test", "--data-dir", data_dir, "--db-timeout", "2s"]).database;
    args.database_url = url.map(SecretString::from);
    args
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (server, _old_database) = base.rsplit_once('/').expect("a PostgreSQL URL has a path");
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

fn random_suffix() -> String {
    crate::ids::random_id("", 8)
}

/// A TCP forwarder between a service and a dependency that a test can cut
/// and restore, to make the dependency unreachable without stopping it for
/// every other test. Cut, it is what a stopped server looks like: its
/// connections close and new ones are refused.
pub struct TcpProxy {
    local_addr: SocketAddr,
    target: SocketAddr,
    open: watch::Sender<bool>,
    accepting: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let local_addr = listener.local_addr().expect("proxy address");
        let (open, _) = watch::channel(true);
        let accepting = Self::accept(listener, target, open.subscribe());
        Self { local_addr, target, open, accepting: std::sync::Mutex::new(Some(accepting)) }
    }

    fn accept(listener: TcpListener, target: SocketAddr, open: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut closed = open.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every forwarded connection and stops listening, so new ones
    /// are refused.
    pub fn cut(&self) {
        if let Some(accepting) = self.accepting.lock().expect("proxy lock").take() {
            accepting.abort();
        }
        self.open.send_replace(false);
    }

    /// Listens and forwards again, on the same address.
    pub fn restore(&self) {
        self.open.send_replace(true);
        let mut accepting = self.accepting.lock().expect("proxy lock");
        if accepting.is_none() {
            let listener = std::net::TcpListener::bind(self.local_addr).expect("the proxy's address is free again");
            listener.set_nonblocking(true).expect("a non-blocking listener");
            let listener = TcpListener::from_std(listener).expect("a Tokio listener");
            *accepting = Some(Self::accept(listener, self.target, self.open.subscribe()));
        }
    }
}

/// Rewrites a PostgreSQL URL to go through `proxy` instead of its host.
pub fn via_proxy(url: &str, proxy: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let credentials = authority.rsplit_once('@').map(|(credentials, _)| format!("{credentials}@")).unwrap_or_default();
    format!("{scheme}://{credentials}{proxy}/{path}")
}

/// A Redis key prefix of one test's own on the server named by
/// `WIZDATA_TEST_REDIS_URL`; its keys are deleted when dropped.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    /// `None` when `WIZDATA_TEST_REDIS_URL` is unset; panics when it is set
    /// but Redis does not answer (a test must fail, not silently skip).
    pub async fn from_env() -> Option<Self> {
        let url = std::env::var(TEST_REDIS_URL).ok().filter(|url| !url.is_empty())?;
        Some(Self::at(url).await)
    }

    pub async fn at(url: String) -> Self {
        use fred::interfaces::ClientLike;
        let client = fred::types::Builder::from_config(
            fred::types::config::Config::from_url(&url).expect("WIZDATA_TEST_REDIS_URL is a redis:// URL"),
        )
        .build()
        .expect("Redis client");
        let reachable = tokio::time::timeout(std::time::Duration::from_secs(3), client.init()).await;
        assert!(matches!(reachable, Ok(Ok(_))), "{TEST_REDIS_URL} is set but Redis is unreachable");
        let _ = client.quit().await;
        Self { url, prefix: format!("wizdata-test-{}:", random_suffix()) }
    }

    /// A proxy in front of this Redis that a test can cut and restore, and
    /// the URL that reaches Redis through it.
    pub async fn behind_proxy(&self) -> (TcpProxy, String) {
        let host_port = self.url.trim_start_matches("redis://").split('/').next().unwrap_or_default().to_owned();
        let target =
            tokio::net::lookup_host(host_port).await.expect("the Redis host resolves").next().expect("an address");
        let proxy = TcpProxy::start(target).await;
        let url = format!("redis://{}", proxy.local_addr());
        (proxy, url)
    }

    /// Serve flags that put a service on this Redis under this prefix.
    pub fn args(&self) -> Vec<String> {
        vec!["--redis-url".into(), self.url.clone(), "--redis-prefix".into(), self.prefix.clone()]
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}*", self.prefix));
        let cleanup = std::thread::spawn(move || {
            use fred::interfaces::{ClientLike, KeysInterface};
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let client = fred::types::Builder::from_config(fred::types::config::Config::from_url(&url)?).build()?;
                client.init().await?;
                let keys: Vec<String> = client.custom(fred::cmd!("KEYS"), vec![pattern]).await?;
                if !keys.is_empty() {
                    client.del::<(), _>(keys).await?;
                }
                client.quit().await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not clean up test Redis keys: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://h/test?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
        let proxy: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(via_proxy("postgres://postgres@127.0.0.1:5432/db", proxy), "postgres://postgres@127.0.0.1:9/db");
    }
}

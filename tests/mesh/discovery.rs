//! Endpoint discovery by DNS: a name that resolves to three registry
//! replicas on 127.0.0.1-3 (one shared database) behind the gateway and
//! behind market data's registry lookups. A DNS server inside the test
//! (`wizdata_test_support::dns`) answers the name, and the test changes the
//! answer while calls flow. Each replica counts the calls it serves.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tonic::Code;
use tonic::body::Body;
use tonic_health::pb::health_check_response::ServingStatus;
use wizdata::marketdata::v1::GetQuoteRequest;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::registry_service_server::RegistryServiceServer;
use wizdata_common::auth::credentials::Credentials;
use wizdata_common::pagination::PageTokens;
use wizdata_test_support::dns::{DnsAnswer, TestDns};
use wizdata_test_support::{ClientChannel, TestDatabase, TestMesh, eventually, health_at};

const NAME: &str = "registry.mesh.test";
const REFRESH: &str = "200ms";
const REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// One registry replica: the real service on `address`, counting its calls;
/// while `hold` is write-locked, its calls wait.
struct Replica {
    calls: Arc<AtomicUsize>,
    hold: Arc<tokio::sync::RwLock<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The registry, counting its calls and waiting on `hold` before serving each.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
    hold: Arc<tokio::sync::RwLock<()>>,
}

impl<S> tonic::server::NamedService for Counted<S> {
    const NAME: &'static str = wizdata::registry::v1::registry_service_server::SERVICE_NAME;
}

impl<S> tower::Service<http::Request<Body>> for Counted<S>
where
    S: tower::Service<http::Request<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let mut inner = self.inner.clone();
        let hold = self.hold.clone();
        let counts = request.uri().path().starts_with("/wizdata.registry.");
        if counts {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
        Box::pin(async move {
            let _held = match counts {
                true => Some(hold.read_owned().await),
                false => None,
            };
            inner.call(request).await
        })
    }
}

/// Registry replicas on `hosts` (127.0.0.x), all on one port, all on one
/// fresh database.
async fn replicas(hosts: &[u8]) -> (u16, Vec<Replica>, TestDatabase) {
    let database = TestDatabase::new().await;
    let db = wizdata_common::db::connect(&database.config).await.unwrap();
    wizdata_common::db::migrate::<wizdata_registry::Migrator>(&db).await.unwrap();
    'port: loop {
        // A port free on 127.0.0.1, tried on the other addresses too.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let mut listeners = Vec::new();
        for host in hosts {
            let address = SocketAddr::from(([127, 0, 0, *host], port));
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => continue 'port,
            }
        }
        let started = listeners
            .into_iter()
            .map(|listener| {
                let calls = Arc::new(AtomicUsize::new(0));
                let hold = Arc::new(tokio::sync::RwLock::new(()));
                let registry = wizdata_registry::service(db.clone(), PageTokens::new(None));
                let (health_reporter, health) = tonic_health::server::health_reporter();
                let counted = Counted { inner: registry, calls: calls.clone(), hold: hold.clone() };
                let task = tokio::spawn(async move {
                    health_reporter.set_serving::<RegistryServiceServer<wizdata_registry::Registry>>().await;
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    let _ = tonic::transport::Server::builder()
                        .add_service(health)
                        .add_service(counted)
                        .serve_with_incoming(incoming)
                        .await;
                });
                Replica { calls, hold, task }
            })
            .collect();
        return (port, started, database);
    }
}

fn addresses(hosts: &[u8]) -> DnsAnswer {
    DnsAnswer::Addresses(hosts.iter().map(|host| Ipv4Addr::new(127, 0, 0, *host)).collect())
}

/// A gateway whose registry backend is `NAME` on `port`, resolved by `dns`.
async fn gateway_for(dns: &TestDns, port: u16) -> TestMesh {
    let backend = format!("registry=http://{NAME}:{port}");
    let dns_server = dns.address().to_string();
    TestMesh::serve("gateway")
        .flags(&[
            // Anonymous callers only: the auth service is never asked.
            "--auth-url",
            "http://127.0.0.1:9",
            "--default-backend",
            "http://127.0.0.1:9",
            "--backend",
            &backend,
            "--dns-server",
            &dns_server,
            "--dns-refresh-interval",
            REFRESH,
            "--dns-timeout",
            "300ms",
            "--health-interval",
            "100ms",
            "--rate-limit-anonymous",
            "1000000/1m",
            "--rate-limit-per-service",
            "1000000/1m",
            "--breaker-failures",
            "100000",
        ])
        .start()
        .await
}

async fn registry_client(url: String) -> RegistryServiceClient<ClientChannel> {
    let channel = tonic::transport::Channel::from_shared(url).unwrap().connect().await.unwrap();
    RegistryServiceClient::new(Credentials::none().on(channel))
}

/// Sends `calls` GetSymbol calls, `concurrency` at a time; returns the
/// failures' statuses.
async fn get_symbols(
    client: &RegistryServiceClient<ClientChannel>,
    calls: usize,
    concurrency: usize,
) -> Vec<tonic::Status> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..calls)
        .map(|_| {
            let mut client = client.clone();
            async move { client.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.err() }
        })
        .buffer_unordered(concurrency)
        .filter_map(|failure| async move { failure })
        .collect()
        .await
}

fn counts(replicas: &[Replica]) -> Vec<usize> {
    replicas.iter().map(|replica| replica.calls.load(Ordering::Relaxed)).collect()
}

fn assert_spread(counts: &[usize], total: usize, what: &str) {
    eprintln!("{what}: {counts:?} of {total}");
    assert_eq!(counts.iter().sum::<usize>(), total, "{what}: every call served once: {counts:?}");
    for count in counts {
        let share = *count as f64 / total as f64;
        assert!((0.25..=0.42).contains(&share), "{what}: each replica between 25% and 42%: {counts:?}");
    }
}

#[tokio::test]
async fn gateway_calls_spread_over_every_address_and_follow_the_answer_without_failing() {
    let (port, replicas, _database) = replicas(&[1, 2, 3, 4]).await;
    let dns = TestDns::start().await;
    dns.set(NAME, addresses(&[1, 2, 3]));
    let gateway = gateway_for(&dns, port).await;
    let client = registry_client(gateway.gateway_url()).await;

    let failures = get_symbols(&client, 3000, 8).await;
    assert!(failures.is_empty(), "no call fails: {} failed, the first {:?}", failures.len(), failures.first());
    assert_spread(&counts(&replicas[..3]), 3000, "through the gateway");
    assert_eq!(replicas[3].calls.load(Ordering::Relaxed), 0, "an address not in the answer gets nothing");

    // Calls held on .3 while the answer drops it and adds .4.
    let held = replicas[2].hold.clone().write_owned().await;
    let before = counts(&replicas);
    let in_flight: Vec<_> = (0..30)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), async || counts(&replicas)[2] > before[2]).await,
        "some calls reach .3 and wait there"
    );
    let changed = Instant::now();
    let queries_before = dns.queries();
    dns.set(NAME, addresses(&[1, 2, 4]));
    let moved = eventually(REFRESH_INTERVAL * 2 + Duration::from_millis(300), async || {
        let readiness = gateway.gateway_readiness().await;
        let registry = &readiness["backends"]["wizdata.registry.v1.RegistryService"];
        // Two resolutions (A and AAAA each) since the change: the first one's
        // answer is applied, so .3 has left and calls cannot wait on it.
        dns.queries() >= queries_before + 4 && registry["endpoints"] == 3 && registry["healthy_endpoints"] == 3 && {
            let sent = counts(&replicas);
            let failures = get_symbols(&client, 30, 4).await;
            assert!(failures.is_empty(), "no call fails while the answer changes: {failures:?}");
            counts(&replicas)[3] > sent[3]
        }
    })
    .await;
    assert!(
        moved,
        "calls reach the added address within two resolve intervals (+ a health check): {:?}",
        changed.elapsed()
    );

    // .3 has left: new calls never reach it, and its calls in flight finish.
    let on_three = counts(&replicas)[2];
    let failures = get_symbols(&client, 600, 8).await;
    assert!(failures.is_empty(), "no call fails after the change: {failures:?}");
    assert_eq!(counts(&replicas)[2], on_three, "the removed address receives no new calls");
    drop(held);
    for call in in_flight {
        let answer = call.await.unwrap();
        assert_eq!(answer.unwrap().into_inner().symbol.unwrap().ticker, "AAPL", "held calls finish on .3");
    }
    assert_eq!(counts(&replicas)[2], on_three, "releasing .3 served only the calls already held there");
    let now = counts(&replicas);
    assert!(now[3] > 100 && now[0] > before[0] + 100 && now[1] > before[1] + 100, "spread over the new set: {now:?}");
}

#[tokio::test]
async fn market_data_spreads_its_registry_lookups_over_every_replica() {
    let (port, replicas, _database) = replicas(&[1, 2, 3]).await;
    let dns = TestDns::start().await;
    dns.set(NAME, addresses(&[1, 2, 3]));
    let registry_url = format!("http://{NAME}:{port}");
    let dns_server = dns.address().to_string();
    let market_data = TestMesh::serve("market-data")
        .flags(&[
            "--auth-url",
            "http://127.0.0.1:9",
            "--registry-url",
            &registry_url,
            "--dns-server",
            &dns_server,
            "--dns-refresh-interval",
            REFRESH,
            // Every call asks the registry.
            "--symbol-cache-ttl",
            "0s",
        ])
        .start()
        .await;
    let channel = tonic::transport::Channel::from_shared(market_data.url()).unwrap().connect().await.unwrap();
    let client = MarketDataServiceClient::new(Credentials::none().on(channel));
    use futures_util::StreamExt;
    let answers: Vec<Code> = futures_util::stream::iter(0..3000)
        .map(|_| {
            let mut client = client.clone();
            async move {
                match client.get_quote(GetQuoteRequest { symbol: "AAPL".into() }).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    // No quote was ingested: NOT_FOUND, after the registry knew the symbol.
    assert!(answers.iter().all(|code| *code == Code::NotFound), "{:?}", answers.iter().find(|c| **c != Code::NotFound));
    assert_spread(&counts(&replicas), 3000, "market data's registry lookups");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_unavailable_at_once_until_it_does() {
    let (port, replicas, _database) = replicas(&[1, 2]).await;
    let dns = TestDns::start().await;
    let gateway = gateway_for(&dns, port).await;
    let mut client = registry_client(gateway.gateway_url()).await;
    let registry = "wizdata.registry.v1.RegistryService";

    for (answer, says) in [(DnsAnswer::NoSuchName, "NXDOMAIN"), (DnsAnswer::NoRecords, "no address")] {
        dns.set(NAME, answer);
        assert!(
            eventually(Duration::from_secs(3), async || {
                let readiness = gateway.gateway_readiness().await;
                let backend = &readiness["backends"][registry];
                backend["endpoints"] == 0 && backend["discovery_problem"].as_str().is_some_and(|why| why.contains(says))
            })
            .await,
            "the answer empties the backend"
        );
        let asked = Instant::now();
        let refused = client.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains(NAME) && refused.message().contains(says), "{}", refused.message());
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "refused at once, not after a timeout: {:?}",
            asked.elapsed()
        );
        assert!(
            eventually(Duration::from_secs(3), async || health_at(&gateway.gateway_url(), registry).await.ok()
                == Some(ServingStatus::NotServing))
            .await,
            "the gateway's health says the registry cannot be reached"
        );
    }

    dns.set(NAME, addresses(&[1, 2]));
    assert!(
        eventually(Duration::from_secs(3), async || health_at(&gateway.gateway_url(), registry).await.ok()
            == Some(ServingStatus::Serving))
        .await,
        "recovers once the name resolves"
    );
    let failures = get_symbols(&client, 100, 4).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(counts(&replicas).iter().sum::<usize>(), 100);
}

#[tokio::test]
async fn a_dns_server_that_stops_answering_leaves_the_last_endpoints_in_place() {
    let (port, replicas, _database) = replicas(&[1, 2, 3]).await;
    let dns = TestDns::start().await;
    dns.set(NAME, addresses(&[1, 2, 3]));
    let gateway = gateway_for(&dns, port).await;
    let client = registry_client(gateway.gateway_url()).await;
    assert!(get_symbols(&client, 30, 4).await.is_empty());

    dns.set(NAME, DnsAnswer::Silent);
    let asked = dns.queries();
    // Several refreshes time out meanwhile.
    assert!(eventually(Duration::from_secs(5), async || dns.queries() >= asked + 6).await, "the name is asked again");
    let failures = get_symbols(&client, 300, 4).await;
    assert!(failures.is_empty(), "calls go on to the last endpoints: {failures:?}");
    let readiness = gateway.gateway_readiness().await;
    assert_eq!(readiness["backends"]["wizdata.registry.v1.RegistryService"]["healthy_endpoints"], 3, "{readiness}");
    assert!(counts(&replicas).iter().all(|count| *count > 50), "still spread: {:?}", counts(&replicas));
}

#[tokio::test]
async fn an_address_that_accepts_but_never_speaks_http2_is_ejected_by_its_health_check() {
    let (port, replicas, _database) = replicas(&[1, 2]).await;
    // 127.0.0.5 accepts connections and never says anything.
    let silent = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 5], port))).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let accepting = accepted.clone();
    let _silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            accepting.fetch_add(1, Ordering::Relaxed);
            open.push(stream);
        }
    });
    let dns = TestDns::start().await;
    // In the first answer (so in rotation at first), and it stays in the answer.
    dns.set(NAME, addresses(&[1, 2, 5]));
    let gateway = gateway_for(&dns, port).await;
    let registry = "wizdata.registry.v1.RegistryService";
    assert!(
        eventually(Duration::from_secs(5), async || {
            let readiness = gateway.gateway_readiness().await;
            readiness["backends"][registry]["endpoints"] == 3
                && readiness["backends"][registry]["healthy_endpoints"] == 2
        })
        .await,
        "its health check takes it out: {}",
        gateway.gateway_readiness().await
    );
    assert!(accepted.load(Ordering::Relaxed) > 0, "the check did reach it");
    let client = registry_client(gateway.gateway_url()).await;
    let failures = get_symbols(&client, 300, 4).await;
    assert!(failures.is_empty(), "no call is sent to it: {failures:?}");
    assert_eq!(counts(&replicas).iter().sum::<usize>(), 300);
}

#[tokio::test]
async fn a_failed_connection_has_the_name_resolved_again_before_the_next_refresh() {
    use wizdata_common::endpoints::{DiscoveryConfig, EndpointPool, PoolSettings, Resolver};
    let dns = TestDns::start().await;
    dns.set(NAME, addresses(&[1, 2]));
    let discovery = DiscoveryConfig {
        dns_refresh_interval: Duration::from_secs(10),
        dns_server: Some(dns.address()),
        ..Default::default()
    };
    let pool =
        EndpointPool::new("s", &[format!("http://{NAME}:1")], PoolSettings::default(), Resolver::new(&discovery))
            .unwrap();
    let _upkeep = pool.spawn_upkeep(None);
    let addresses_of = |pool: &EndpointPool| {
        let mut found: Vec<SocketAddr> = pool.endpoints().into_iter().map(|(address, _)| address).collect();
        found.sort();
        found
    };
    let at = |host: u8| SocketAddr::from(([127, 0, 0, host], 1));
    assert!(eventually(Duration::from_secs(3), async || addresses_of(&pool) == [at(1), at(2)]).await);

    // The answer changes; the next refresh is 10 s away. A call that cannot
    // connect asks for the name again at once.
    dns.set(NAME, addresses(&[1, 3]));
    let asked = Instant::now();
    pool.pick().expect("an endpoint").endpoint().unreachable();
    assert!(
        eventually(Duration::from_secs(5), async || addresses_of(&pool) == [at(1), at(3)]).await,
        "resolved again well before the refresh: {:?}",
        addresses_of(&pool)
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
}

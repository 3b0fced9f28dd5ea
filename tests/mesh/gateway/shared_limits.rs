//! Two gateways sharing one Redis hold a subject to one combined limit; with
//! Redis cut mid-test they keep serving and limiting on their own, and they
//! return to the shared limit when Redis is back.

use std::time::Duration;

use secrecy::SecretString;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use wizdata::auth::v1::Tier;
use wizdata::registry::v1::GetSymbolRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::ClientChannel;
use wizdata_test_support::{TestMesh, health_at, wait_for_health_at};

/// The standard tier's limit in this test: small, with no refill to speak
/// of while it runs (one call per 6 s after the burst).
const LIMIT: u32 = 10;

const WAIT: Duration = Duration::from_secs(10);

async fn client(gateway: &TestMesh, key: &SecretString) -> RegistryServiceClient<ClientChannel> {
    let channel = tonic::transport::Channel::from_shared(gateway.gateway_url()).unwrap().connect().await.unwrap();
    RegistryServiceClient::new(Credentials::bearer(key).unwrap().on(channel))
}

/// Alternates `calls` calls between the two gateways; returns how many each allowed.
async fn spread_calls(
    first: &mut RegistryServiceClient<ClientChannel>,
    second: &mut RegistryServiceClient<ClientChannel>,
    calls: u32,
) -> (u32, u32) {
    let mut allowed = (0, 0);
    for call in 0..calls {
        let (client, count) =
            if call % 2 == 0 { (&mut *first, &mut allowed.0) } else { (&mut *second, &mut allowed.1) };
        match client.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await {
            Ok(_) => *count += 1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    allowed
}

async fn rate_limit_mode(gateway: &TestMesh) -> String {
    gateway.gateway_readiness().await["rate_limit_mode"].as_str().unwrap().to_owned()
}

async fn wait_for_mode(gateway: &TestMesh, mode: &str) {
    for _ in 0..100 {
        if rate_limit_mode(gateway).await == mode {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway never reported rate-limit mode {mode}");
}

#[tokio::test]
async fn two_gateways_share_one_limit_and_degrade_to_local_limits_without_redis() {
    let Some(redis) = wizdata_test_support::redis_or_skip("a shared limit").await else { return };
    let (proxy, via_proxy) = redis.behind_proxy().await;
    let limit = format!("{LIMIT}/1m");
    let gateway_flags = |extra: &[&str]| {
        let mut flags = vec![
            "--redis-url",
            &via_proxy,
            "--redis-prefix",
            &redis.prefix,
            "--rate-limit-standard",
            &limit,
            "--rate-limit-local-for",
            "300ms",
        ];
        flags.extend_from_slice(extra);
        flags.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // Gateway one runs in `serve all` with the services; gateway two alone in front of them.
    let flags = gateway_flags(&[]);
    let first = TestMesh::serve("all").flags(&flags.iter().map(String::as_str).collect::<Vec<_>>()).start().await;
    let services = first.url();
    let flags = gateway_flags(&["--auth-url", &services, "--default-backend", &services]);
    let second = TestMesh::serve("gateway")
        .database(first.database())
        .flags(&flags.iter().map(String::as_str).collect::<Vec<_>>())
        .start()
        .await;
    assert_eq!(rate_limit_mode(&first).await, "redis");
    assert_eq!(rate_limit_mode(&second).await, "redis");

    // Shared: 30 calls spread over both gateways, LIMIT allowed in all.
    // Each phase has a subject of its own: limits belong to subjects.
    let key = first.key_for("shared", &["registry:read"], Tier::Standard).await;
    let (mut one, mut two) = (client(&first, &key).await, client(&second, &key).await);
    let (a, b) = spread_calls(&mut one, &mut two, 3 * LIMIT).await;
    assert!((LIMIT..=LIMIT + 1).contains(&(a + b)), "one combined limit: {a} + {b}");
    assert!(a > 0 && b > 0, "both gateways served some: {a} + {b}");

    // Redis cut: both keep serving, each holding a fresh subject to the limit on its own.
    proxy.cut();
    let key = first.key_for("cut-off", &["registry:read"], Tier::Standard).await;
    let (mut one, mut two) = (client(&first, &key).await, client(&second, &key).await);
    let (a, b) = spread_calls(&mut one, &mut two, 3 * LIMIT).await;
    assert!((LIMIT..=LIMIT + 1).contains(&a) && (LIMIT..=LIMIT + 1).contains(&b), "local limits: {a} and {b}");
    assert_eq!(rate_limit_mode(&first).await, "local");
    assert_eq!(rate_limit_mode(&second).await, "local");
    let gateway_url = second.gateway_url();
    assert!(
        wait_for_health_at(&gateway_url, "dependency/redis", ServingStatus::NotServing, WAIT).await,
        "health tells"
    );
    assert_eq!(health_at(&gateway_url, "").await.unwrap(), ServingStatus::Serving, "degraded, still serving");

    // Redis back: after the local spell, the limit is shared again.
    proxy.restore();
    let key = first.key_for("reconnecting", &["registry:read"], Tier::Standard).await;
    let (mut one, mut two) = (client(&first, &key).await, client(&second, &key).await);
    // A call through each gateway lets each try Redis again.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = one.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await;
        let _ = two.get_symbol(GetSymbolRequest { ticker: "AAPL".into() }).await;
        if rate_limit_mode(&first).await == "redis" && rate_limit_mode(&second).await == "redis" {
            break;
        }
    }
    wait_for_mode(&first, "redis").await;
    wait_for_mode(&second, "redis").await;
    let key = first.key_for("shared-again", &["registry:read"], Tier::Standard).await;
    let (mut one, mut two) = (client(&first, &key).await, client(&second, &key).await);
    let (a, b) = spread_calls(&mut one, &mut two, 3 * LIMIT).await;
    assert!((LIMIT..=LIMIT + 1).contains(&(a + b)), "one combined limit again: {a} + {b}");
}

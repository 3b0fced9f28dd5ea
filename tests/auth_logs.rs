//! Its own test binary, outside tests/mesh: it installs the process-wide log
//! subscriber.
//!
//! No password, API key secret or token reaches the logs, even at debug
//! level, whatever callers send.

use std::io::Write;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::auth::v1::*;
use wizdata::registry::v1::ListSymbolsRequest;
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::TestMesh;

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn bearer(secret: &str) -> Credentials {
    Credentials::bearer(&SecretString::from(secret.to_owned())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().json().with_env_filter("debug").with_writer(move || writer.clone()).init();

    let mesh = TestMesh::all().await;
    let mut admin = AuthServiceClient::new(mesh.channel().await);
    let mut anyone = AuthServiceClient::new(mesh.anonymous_channel().await);
    let password = "Tr0ub4dor&3-horse-battery";
    let wrong_password = "wrong-Tr0ub4dor&3";
    admin
        .create_user(CreateUserRequest { username: "grace".into(), password: password.into(), scopes: vec![], tier: 0 })
        .await
        .unwrap();
    let login = |username: &str, password: &str| LoginRequest { username: username.into(), password: password.into() };
    let user_token = anyone.login(login("grace", password)).await.unwrap().into_inner().access_token;
    anyone.login(login("grace", wrong_password)).await.unwrap_err();
    anyone.login(login("nobody", wrong_password)).await.unwrap_err();
    // A password sent where a username belongs, as people do.
    anyone.login(login(password, wrong_password)).await.unwrap_err();

    let created = admin
        .create_api_key(CreateApiKeyRequest {
            name: "logged".into(),
            scopes: vec!["registry:read".into()],
            tier: 0,
            expire_time: None,
        })
        .await
        .unwrap()
        .into_inner();
    let secret = created.secret.clone();
    let token = anyone
        .exchange_api_key(ExchangeApiKeyRequest { api_key: secret.clone() })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let (head, rest) = token.split_once('.').unwrap();
    let tampered = format!("{head}.e30{}", &rest[rest.find('.').unwrap()..]);
    for credentials in
        [bearer(&secret), bearer(&token), bearer(&user_token), bearer(&tampered), bearer("wiz_not-a-real-key")]
    {
        // Directly, and through the gateway (which exchanges keys and forwards tokens).
        let mut registry = RegistryServiceClient::new(mesh.channel_as(credentials.clone()).await);
        let _ = registry.list_symbols(ListSymbolsRequest::default()).await;
        let mut registry = RegistryServiceClient::new(mesh.gateway_channel_as(credentials).await);
        let _ = registry.list_symbols(ListSymbolsRequest::default()).await;
    }
    let mut request = tonic::Request::new(WhoAmIRequest {});
    request.metadata_mut().insert("authorization", format!("Basic {secret}").parse().unwrap());
    anyone.who_am_i(request).await.unwrap_err();
    let key_id = created.api_key.unwrap().key_id;
    admin.revoke_api_key(RevokeApiKeyRequest { key_id }).await.unwrap();
    anyone.exchange_api_key(ExchangeApiKeyRequest { api_key: secret.clone() }).await.unwrap_err();
    let admin_key = mesh.admin_key.as_ref().unwrap().expose_secret().to_owned();
    mesh.stop().await.unwrap();

    let captured = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(captured.contains("call refused"), "the capture sees the auth layer's logs");
    assert!(captured.contains("API key created"), "the capture sees the auth service's logs");
    assert!(captured.contains("gateway bound"), "the capture sees the gateway's logs");
    let signature = |token: &str| token.rsplit('.').next().unwrap().to_owned();
    for (what, secret) in [
        ("password", password.to_owned()),
        ("wrong password", wrong_password.to_owned()),
        ("API key", secret.clone()),
        ("admin API key", admin_key),
        ("key-derived token", token.clone()),
        ("token signature", signature(&token)),
        ("user token signature", signature(&user_token)),
        ("tampered token", tampered.clone()),
    ] {
        assert!(!captured.contains(&secret), "the {what} appears in the logs");
    }
}

//! Authentication and authorization end to end: keys, users and tokens from
//! the auth service, enforced by every service, and the attacks each must
//! refuse.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use tonic::Code;
use tonic_types::StatusExt;
use wizdata::auth::v1::auth_service_client::AuthServiceClient;
use wizdata::auth::v1::*;
use wizdata::marketdata::v1::market_data_service_client::MarketDataServiceClient;
use wizdata::marketdata::v1::{ImportCandlesRequest, IngestTicksRequest};
use wizdata::registry::v1::registry_service_client::RegistryServiceClient;
use wizdata::registry::v1::{CreateSymbolRequest, ListSymbolsRequest, Symbol};
use wizdata_common::auth::credentials::Credentials;
use wizdata_test_support::ClientChannel;
use wizdata_test_support::{TestMesh, invalid_fields};

type Auth = AuthServiceClient<ClientChannel>;

async fn auth_as(mesh: &TestMesh, credentials: Credentials) -> Auth {
    AuthServiceClient::new(mesh.channel_as(credentials).await)
}

fn bearer(secret: &str) -> Credentials {
    Credentials::bearer(&SecretString::from(secret.to_owned())).unwrap()
}

fn key_credentials(key: &SecretString) -> Credentials {
    Credentials::bearer(key).unwrap()
}

/// The ErrorInfo reason of a refusal with `code`.
fn reason(status: &tonic::Status, code: Code) -> String {
    assert_eq!(status.code(), code, "{status:?}");
    status.get_details_error_info().unwrap_or_else(|| panic!("no ErrorInfo in {status:?}")).reason
}

fn new_symbol(ticker: &str) -> CreateSymbolRequest {
    CreateSymbolRequest {
        symbol: Some(Symbol {
            ticker: ticker.into(),
            name: format!("{ticker} Holdings"),
            exchange: "NYSE".into(),
            asset_class: wizdata::r#type::v1::AssetClass::Equity as i32,
            currency: "USD".into(),
            ..Default::default()
        }),
    }
}

async fn create_symbol(mesh: &TestMesh, credentials: Credentials, ticker: &str) -> Result<(), tonic::Status> {
    let mut registry = RegistryServiceClient::new(mesh.channel_as(credentials).await);
    registry.create_symbol(new_symbol(ticker)).await.map(drop)
}

async fn ingest_nothing(mesh: &TestMesh, credentials: Credentials) -> Result<(), tonic::Status> {
    let mut market = MarketDataServiceClient::new(mesh.channel_as(credentials).await);
    market.ingest_ticks(tokio_stream::iter(vec![IngestTicksRequest::default()])).await.map(drop)
}

async fn import_nothing(mesh: &TestMesh, credentials: Credentials) -> Result<(), tonic::Status> {
    let mut market = MarketDataServiceClient::new(mesh.channel_as(credentials).await);
    let request = ImportCandlesRequest { symbol: "AAPL".into(), interval: 5, candles: vec![] };
    market.import_candles(tokio_stream::iter(vec![request])).await.map(drop)
}

async fn exchange(mesh: &TestMesh, key: &SecretString) -> Result<String, tonic::Status> {
    let mut auth = auth_as(mesh, Credentials::none()).await;
    let request = ExchangeApiKeyRequest { api_key: key.expose_secret().to_owned() };
    auth.exchange_api_key(request).await.map(|response| response.into_inner().access_token)
}

/// WhoAmI (a public RPC) with a raw authorization header.
async fn who_am_i_with(mesh: &TestMesh, authorization: &str) -> Result<WhoAmIResponse, tonic::Status> {
    let mut request = tonic::Request::new(WhoAmIRequest {});
    request.metadata_mut().insert("authorization", authorization.parse().unwrap());
    auth_as(mesh, Credentials::none()).await.who_am_i(request).await.map(|response| response.into_inner())
}

fn token_part(token: &str, index: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(index).unwrap()).unwrap()).unwrap()
}

/// A token with any header and payload, signed by `sign` over the JWS signing input.
fn forge(header: Value, payload: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn without_credentials_reads_run_anonymous_and_writes_are_unauthenticated() {
    let mesh = TestMesh::all().await;

    let mut registry = RegistryServiceClient::new(mesh.anonymous_channel().await);
    assert!(!registry.list_symbols(ListSymbolsRequest::default()).await.unwrap().into_inner().symbols.is_empty());
    let me = auth_as(&mesh, Credentials::none()).await.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!((me.subject.as_str(), me.anonymous, me.tier()), ("anonymous", true, Tier::Anonymous));
    assert_eq!(me.scopes, ["indicator:read", "marketdata:read", "registry:read", "streaming:read"]);

    let refused = create_symbol(&mesh, Credentials::none(), "ANON").await.unwrap_err();
    assert_eq!(reason(&refused, Code::Unauthenticated), "CREDENTIALS_MISSING");
    let info = refused.get_details_error_info().unwrap();
    assert_eq!(info.metadata.get("required_scope").map(String::as_str), Some("registry:write"));
    assert_eq!(
        reason(&ingest_nothing(&mesh, Credentials::none()).await.unwrap_err(), Code::Unauthenticated),
        "CREDENTIALS_MISSING"
    );
    assert_eq!(
        reason(&import_nothing(&mesh, Credentials::none()).await.unwrap_err(), Code::Unauthenticated),
        "CREDENTIALS_MISSING"
    );
    let rotate = auth_as(&mesh, Credentials::none()).await.rotate_signing_key(RotateSigningKeyRequest {}).await;
    assert_eq!(rotate.unwrap_err().code(), Code::Unauthenticated);
    let listed = registry.list_symbols(ListSymbolsRequest::default()).await.unwrap().into_inner().symbols;
    assert!(listed.iter().all(|symbol| symbol.ticker != "ANON"), "the refused write did not happen");
}

#[tokio::test]
async fn the_anonymous_scope_set_is_configurable() {
    let mesh = TestMesh::all_with(&["--anonymous-scopes", ""]).await;
    let mut registry = RegistryServiceClient::new(mesh.anonymous_channel().await);
    let refused = registry.list_symbols(ListSymbolsRequest::default()).await.unwrap_err();
    assert_eq!(reason(&refused, Code::Unauthenticated), "CREDENTIALS_MISSING");
    let reader = mesh.key_with(&["registry:read"], Tier::Standard).await;
    let mut registry = RegistryServiceClient::new(mesh.channel_as(key_credentials(&reader)).await);
    assert!(registry.list_symbols(ListSymbolsRequest::default()).await.is_ok());
}

#[tokio::test]
async fn read_only_keys_are_denied_writes_and_write_keys_succeed() {
    let mesh = TestMesh::all().await;
    let reader = mesh.key_with(&["registry:read", "marketdata:read"], Tier::Standard).await;
    for refused in [
        create_symbol(&mesh, key_credentials(&reader), "READ").await.unwrap_err(),
        ingest_nothing(&mesh, key_credentials(&reader)).await.unwrap_err(),
        import_nothing(&mesh, key_credentials(&reader)).await.unwrap_err(),
    ] {
        assert_eq!(reason(&refused, Code::PermissionDenied), "SCOPE_MISSING");
        assert!(refused.message().contains(":write"), "{}", refused.message());
    }

    let writer = mesh.key_with(&["registry:write", "marketdata:write"], Tier::Premium).await;
    create_symbol(&mesh, key_credentials(&writer), "WRITE").await.unwrap();
    ingest_nothing(&mesh, key_credentials(&writer)).await.unwrap();
    // The exchanged token works as well as the key it came from.
    let token = exchange(&mesh, &writer).await.unwrap();
    create_symbol(&mesh, bearer(&token), "TOKEN").await.unwrap();
    let me = auth_as(&mesh, bearer(&token)).await.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!((me.subject.as_str(), me.anonymous, me.tier()), ("test-admin", false, Tier::Premium));
    assert_eq!(me.scopes, ["marketdata:write", "registry:write"]);
    assert!(me.expire_time.is_some());
    // The key works through x-api-key too.
    let mut request = tonic::Request::new(WhoAmIRequest {});
    request.metadata_mut().insert("x-api-key", writer.expose_secret().parse().unwrap());
    let me = auth_as(&mesh, Credentials::none()).await.who_am_i(request).await.unwrap().into_inner();
    assert_eq!(me.subject, "test-admin");
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revocation_stops_them_within_the_token_lifetime() {
    let mesh = TestMesh::all_with(&["--token-ttl", "2s", "--token-leeway", "0s"]).await;
    let mut admin = auth_as(&mesh, mesh.admin_credentials()).await;
    let created = admin
        .create_api_key(CreateApiKeyRequest {
            name: "ingest bot".into(),
            scopes: vec!["registry:write".into()],
            tier: Tier::Standard as i32,
            expire_time: None,
        })
        .await
        .unwrap()
        .into_inner();
    let secret = SecretString::from(created.secret.clone());
    assert!(created.secret.starts_with("wiz_") && created.secret.len() > 40);
    let key = created.api_key.unwrap();
    assert_eq!((key.owner.as_str(), key.scopes.as_slice()), ("test-admin", ["registry:write".to_owned()].as_slice()));

    let listed = admin.list_api_keys(ListApiKeysRequest::default()).await.unwrap().into_inner();
    let shown = listed.api_keys.iter().find(|listed| listed.key_id == key.key_id).expect("listed");
    assert_eq!(shown.name, "ingest bot");
    assert!(!format!("{listed:?}").contains(&created.secret), "listing never shows a secret");

    let token = exchange(&mesh, &secret).await.unwrap();
    create_symbol(&mesh, key_credentials(&secret), "BOT").await.unwrap();
    let revoked = admin.revoke_api_key(RevokeApiKeyRequest { key_id: key.key_id.clone() }).await.unwrap();
    assert!(revoked.into_inner().api_key.unwrap().revoke_time.is_some());
    assert_eq!(reason(&exchange(&mesh, &secret).await.unwrap_err(), Code::Unauthenticated), "API_KEY_REVOKED");
    // A token issued before the revocation lives out its (documented) lifetime, then stops.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired = create_symbol(&mesh, bearer(&token), "LATE").await.unwrap_err();
    assert_eq!(reason(&expired, Code::Unauthenticated), "TOKEN_EXPIRED");
    let refused = create_symbol(&mesh, key_credentials(&secret), "LATE").await.unwrap_err();
    assert_eq!(reason(&refused, Code::Unauthenticated), "API_KEY_REVOKED");
    let listed = admin.list_api_keys(ListApiKeysRequest::default()).await.unwrap().into_inner();
    assert!(listed.api_keys.iter().all(|listed| listed.key_id != key.key_id), "revoked keys are hidden by default");
    let missing = admin.revoke_api_key(RevokeApiKeyRequest { key_id: "key_nope".into() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // A key past its expiry stops too. Its expiry is two whole seconds away
    // (a time in whole seconds could already be past on a loaded machine).
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let expiring = admin
        .create_api_key(CreateApiKeyRequest {
            name: "short".into(),
            scopes: vec!["registry:read".into()],
            tier: 0,
            expire_time: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: expires.timestamp_subsec_nanos() as i32,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let until_expired = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
    tokio::time::sleep(until_expired).await;
    let secret = SecretString::from(expiring.secret);
    assert_eq!(reason(&exchange(&mesh, &secret).await.unwrap_err(), Code::Unauthenticated), "API_KEY_EXPIRED");
    assert_eq!(
        reason(
            &exchange(&mesh, &SecretString::from("wiz_unknown".to_owned())).await.unwrap_err(),
            Code::Unauthenticated
        ),
        "API_KEY_INVALID"
    );
}

#[tokio::test]
async fn key_requests_are_validated_and_grants_never_exceed_the_granter() {
    let mesh = TestMesh::all().await;
    let mut admin = auth_as(&mesh, mesh.admin_credentials()).await;
    let bad = admin
        .create_api_key(CreateApiKeyRequest {
            name: String::new(),
            scopes: vec!["registry:read".into(), "registry:reed".into()],
            tier: 42,
            expire_time: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
        })
        .await
        .unwrap_err();
    assert_eq!(invalid_fields(bad), ["name", "scopes[1]", "tier", "expire_time"]);

    let key_manager = mesh.key_with(&["auth:keys", "registry:read"], Tier::Standard).await;
    let mut manager = auth_as(&mesh, key_credentials(&key_manager)).await;
    let request = |scopes: &[&str], tier: Tier| CreateApiKeyRequest {
        name: "child".into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        tier: tier as i32,
        expire_time: None,
    };
    let beyond = manager.create_api_key(request(&["registry:write"], Tier::Standard)).await.unwrap_err();
    assert_eq!(reason(&beyond, Code::PermissionDenied), "SCOPE_NOT_GRANTABLE");
    let higher = manager.create_api_key(request(&["registry:read"], Tier::Internal)).await.unwrap_err();
    assert_eq!(reason(&higher, Code::PermissionDenied), "TIER_NOT_GRANTABLE");
    let child = manager.create_api_key(request(&["registry:read"], Tier::Standard)).await.unwrap().into_inner();
    // Keys of the same owner that the manager could not have created.
    let stronger_scope = admin.create_api_key(request(&["registry:write"], Tier::Standard)).await.unwrap();
    let higher_tier = admin.create_api_key(request(&["registry:read"], Tier::Internal)).await.unwrap();
    let stronger: Vec<String> =
        [stronger_scope, higher_tier].map(|created| created.into_inner().api_key.unwrap().key_id).into();
    // A non-admin sees and revokes only its own keys, and of those only the
    // ones it could have created, page by page.
    let mut own = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ListApiKeysRequest { page_size: 1, page_token, ..Default::default() };
        let page = manager.list_api_keys(page).await.unwrap().into_inner();
        assert!(page.api_keys.len() <= 1);
        own.extend(page.api_keys);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(own.iter().all(|key| key.owner == "test-admin"));
    assert!(own.iter().all(|key| !stronger.contains(&key.key_id)), "stronger keys are not listed: {own:?}");
    assert!(own.iter().all(|key| key.tier() != Tier::Internal && !key.scopes.contains(&"auth:admin".to_owned())));
    let all_of_owner = admin.list_api_keys(ListApiKeysRequest::default()).await.unwrap().into_inner().api_keys;
    assert!(stronger.iter().all(|id| all_of_owner.iter().any(|key| &key.key_id == id)), "the admin sees them");
    for key_id in &stronger {
        let refused = manager.revoke_api_key(RevokeApiKeyRequest { key_id: key_id.clone() }).await.unwrap_err();
        assert_eq!(reason(&refused, Code::PermissionDenied), "KEY_BEYOND_CALLER");
    }
    let revoked = admin.revoke_api_key(RevokeApiKeyRequest { key_id: stronger[0].clone() }).await.unwrap();
    assert!(revoked.into_inner().api_key.unwrap().revoke_time.is_some(), "credentials that hold them may");
    let everyone = admin.list_api_keys(ListApiKeysRequest { page_size: 1, ..Default::default() }).await.unwrap();
    assert!(!everyone.into_inner().next_page_token.is_empty(), "pages of one key");
    assert!(own.iter().any(|key| key.key_id == child.api_key.as_ref().unwrap().key_id));
    let not_admin = manager.rotate_signing_key(RotateSigningKeyRequest {}).await.unwrap_err();
    assert_eq!(reason(&not_admin, Code::PermissionDenied), "SCOPE_MISSING");

    let negative = ListApiKeysRequest { page_size: -1, ..Default::default() };
    assert_eq!(invalid_fields(admin.list_api_keys(negative).await.unwrap_err()), ["page_size"]);
    let forged = ListApiKeysRequest { page_token: "not-a-token".into(), ..Default::default() };
    assert_eq!(invalid_fields(admin.list_api_keys(forged).await.unwrap_err()), ["page_token"]);
    let unnamed = admin.revoke_api_key(RevokeApiKeyRequest { key_id: String::new() }).await.unwrap_err();
    assert_eq!(invalid_fields(unnamed), ["key_id"]);
    let empty = exchange(&mesh, &SecretString::from(String::new())).await.unwrap_err();
    assert_eq!(invalid_fields(empty), ["api_key"]);
}

#[tokio::test]
async fn users_log_in_and_repeated_failures_are_throttled_alike_for_unknown_users() {
    let mesh = TestMesh::all_with(&["--login-free-attempts", "3", "--login-backoff", "30s"]).await;
    let mut admin = auth_as(&mesh, mesh.admin_credentials()).await;
    let password = "correct horse battery staple";
    let user = admin
        .create_user(CreateUserRequest {
            username: "ada".into(),
            password: password.into(),
            scopes: vec!["registry:write".into()],
            tier: Tier::Premium as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!((user.username.as_str(), user.tier()), ("ada", Tier::Premium));
    let duplicate = CreateUserRequest { username: "ada".into(), password: password.into(), scopes: vec![], tier: 0 };
    assert_eq!(admin.create_user(duplicate).await.unwrap_err().code(), Code::AlreadyExists);
    let bad =
        CreateUserRequest { username: "A!".into(), password: "short".into(), scopes: vec!["nope".into()], tier: 0 };
    assert_eq!(invalid_fields(admin.create_user(bad).await.unwrap_err()), ["username", "password", "scopes[0]"]);

    let mut anyone = auth_as(&mesh, Credentials::none()).await;
    let login = |username: &str, password: &str| LoginRequest { username: username.into(), password: password.into() };
    let token = anyone.login(login("ada", password)).await.unwrap().into_inner().access_token;
    let me = auth_as(&mesh, bearer(&token)).await.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner();
    assert_eq!((me.subject.as_str(), me.scopes.as_slice()), ("user:ada", ["registry:write".to_owned()].as_slice()));
    create_symbol(&mesh, bearer(&token), "ADA").await.unwrap();

    // The same answer whether the user exists or not.
    let wrong = anyone.login(login("ada", "not the password")).await.unwrap_err();
    let unknown = anyone.login(login("nobody", "not the password")).await.unwrap_err();
    assert_eq!(reason(&wrong, Code::Unauthenticated), "LOGIN_FAILED");
    assert_eq!(
        (wrong.code(), wrong.message(), wrong.details()),
        (unknown.code(), unknown.message(), unknown.details())
    );

    for _ in 0..2 {
        assert_eq!(anyone.login(login("ada", "still wrong")).await.unwrap_err().code(), Code::Unauthenticated);
        assert_eq!(anyone.login(login("nobody", "still wrong")).await.unwrap_err().code(), Code::Unauthenticated);
    }
    for username in ["ada", "nobody"] {
        // Throttled now, even with the right password.
        let throttled = anyone.login(login(username, password)).await.unwrap_err();
        assert_eq!(reason(&throttled, Code::ResourceExhausted), "LOGIN_THROTTLED");
        let delay = throttled.get_details_retry_info().unwrap().retry_delay.unwrap();
        assert!(delay > Duration::ZERO && delay <= Duration::from_secs(30), "{delay:?}");
    }
    let empty = anyone.login(login("", "")).await.unwrap_err();
    assert_eq!(invalid_fields(empty), ["username", "password"]);
}

#[tokio::test]
async fn tokens_issued_before_a_rotation_keep_working() {
    let mesh = TestMesh::all().await;
    let writer = mesh.key_with(&["registry:write"], Tier::Standard).await;
    let before = exchange(&mesh, &writer).await.unwrap();
    let mut admin = auth_as(&mesh, mesh.admin_credentials()).await;
    let rotated = admin.rotate_signing_key(RotateSigningKeyRequest {}).await.unwrap().into_inner();
    let after = exchange(&mesh, &writer).await.unwrap();
    assert_ne!(token_part(&before, 0)["kid"], token_part(&after, 0)["kid"]);
    assert_eq!(token_part(&after, 0)["kid"], rotated.key_id.as_str());
    let jwks = admin.get_jwks(GetJwksRequest {}).await.unwrap().into_inner().keys;
    let kids: Vec<&str> = jwks.iter().map(|key| key.kid.as_str()).collect();
    assert!(kids.contains(&rotated.key_id.as_str()) && kids.contains(&token_part(&before, 0)["kid"].as_str().unwrap()));
    assert!(
        jwks.iter().all(|key| (key.kty.as_str(), key.crv.as_str(), key.alg.as_str()) == ("OKP", "Ed25519", "EdDSA"))
    );
    create_symbol(&mesh, bearer(&before), "OLDKEY").await.unwrap();
    create_symbol(&mesh, bearer(&after), "NEWKEY").await.unwrap();
}

#[tokio::test]
async fn forged_damaged_and_malformed_credentials_are_refused() {
    let mesh = TestMesh::all().await;
    let reader = mesh.key_with(&["registry:read"], Tier::Standard).await;
    let token = exchange(&mesh, &reader).await.unwrap();
    let header = token_part(&token, 0);
    let claims = token_part(&token, 1);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let jwks = auth_as(&mesh, Credentials::none()).await.get_jwks(GetJwksRequest {}).await.unwrap().into_inner();
    let public_x = jwks.keys.iter().find(|key| key.kid == kid).unwrap().x.clone();
    let hmac_with = |key: Vec<u8>| {
        move |input: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(input);
            mac.finalize().into_bytes().to_vec()
        }
    };
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let mut elevated = claims.clone();
    elevated["scope"] = json!("registry:read registry:write auth:admin");
    let mut later = claims.clone();
    later["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let [head, _, signature] = token.split('.').collect::<Vec<_>>().try_into().unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key",
            forge(json!({"alg": "EdDSA", "kid": "sig_forged"}), &claims, |i| stranger.sign(i).to_bytes().to_vec()),
            "TOKEN_SIGNING_KEY_UNKNOWN",
        ),
        (
            "known kid, other key",
            forge(json!({"alg": "EdDSA", "kid": kid}), &claims, |i| stranger.sign(i).to_bytes().to_vec()),
            "TOKEN_SIGNATURE_INVALID",
        ),
        ("alg none", forge(json!({"alg": "none", "kid": kid}), &claims, |_| vec![]), "TOKEN_ALGORITHM_REJECTED"),
        (
            "HS256 keyed by the public key",
            forge(
                json!({"alg": "HS256", "kid": kid}),
                &elevated,
                hmac_with(URL_SAFE_NO_PAD.decode(&public_x).unwrap()),
            ),
            "TOKEN_ALGORITHM_REJECTED",
        ),
        (
            "HS256 keyed by the JWK x",
            forge(json!({"alg": "HS256", "kid": kid}), &elevated, hmac_with(public_x.clone().into_bytes())),
            "TOKEN_ALGORITHM_REJECTED",
        ),
        (
            "scopes it was not issued",
            format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(elevated.to_string())),
            "TOKEN_SIGNATURE_INVALID",
        ),
        (
            "extended expiry",
            format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(later.to_string())),
            "TOKEN_SIGNATURE_INVALID",
        ),
        ("oversized", format!("{token}{}", "A".repeat(5000)), "TOKEN_TOO_LARGE"),
        ("two parts", "abc.def".into(), "TOKEN_MALFORMED"),
        ("garbage", "!!!.???.***".into(), "TOKEN_MALFORMED"),
    ];
    for (case, forged, expected) in cases {
        let refused = who_am_i_with(&mesh, &format!("Bearer {forged}")).await.unwrap_err();
        assert_eq!(reason(&refused, Code::Unauthenticated), expected, "{case}");
        assert!(!refused.message().contains(&forged[..20.min(forged.len())]), "{case}: the token is not echoed");
        let write = create_symbol(&mesh, bearer(&forged), "FORGED").await.unwrap_err();
        assert_eq!(write.code(), Code::Unauthenticated, "{case}");
    }
    for malformed in ["Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Bearer a b", "Token abc", "bearer  "] {
        let refused = who_am_i_with(&mesh, malformed).await.unwrap_err();
        assert_eq!(reason(&refused, Code::Unauthenticated), "CREDENTIALS_MALFORMED", "{malformed:?}");
    }
    // The genuine token still works, and holds only what it was issued.
    let me = who_am_i_with(&mesh, &format!("Bearer {token}")).await.unwrap();
    assert_eq!(me.scopes, ["registry:read"]);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let mesh = TestMesh::all_with(&["--token-ttl", "1s", "--token-leeway", "0s"]).await;
    let reader = mesh.key_with(&["registry:read"], Tier::Standard).await;
    let token = exchange(&mesh, &reader).await.unwrap();
    who_am_i_with(&mesh, &format!("Bearer {token}")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refused = who_am_i_with(&mesh, &format!("Bearer {token}")).await.unwrap_err();
    assert_eq!(reason(&refused, Code::Unauthenticated), "TOKEN_EXPIRED");
}

#[tokio::test]
async fn calls_between_services_act_with_the_callers_credentials() {
    use wizdata::indicator::v1::indicator_service_client::IndicatorServiceClient;
    use wizdata::indicator::v1::{ComputeIndicatorsRequest, IndicatorSpec};
    // Nothing is open to anonymous callers, so each hop needs the caller's own scopes.
    let mesh = TestMesh::all_with(&["--anonymous-scopes", ""]).await;
    let compute = |symbol: &str| ComputeIndicatorsRequest {
        symbol: symbol.into(),
        interval: wizdata::r#type::v1::Interval::OneDay as i32,
        indicators: vec![IndicatorSpec { name: "SMA".into(), ..Default::default() }],
        ..Default::default()
    };
    let indicators_only = mesh.key_with(&["indicator:read"], Tier::Standard).await;
    let mut client = IndicatorServiceClient::new(mesh.channel_as(key_credentials(&indicators_only)).await);
    let refused = client.compute_indicators(compute("AAPL")).await.unwrap_err();
    assert_eq!(reason(&refused, Code::PermissionDenied), "SCOPE_MISSING");
    assert!(refused.message().contains("marketdata:read"), "{}", refused.message());
    let both = mesh.key_with(&["indicator:read", "marketdata:read", "registry:read"], Tier::Standard).await;
    let mut client = IndicatorServiceClient::new(mesh.channel_as(key_credentials(&both)).await);
    client.compute_indicators(compute("AAPL")).await.unwrap();

    // Market data checks symbols with the registry as the ingesting caller.
    let trade = wizdata_test_support::trade_now("MSFT", 100.0);
    let ingest = |key: &SecretString| {
        let credentials = key_credentials(key);
        let ticks = vec![IngestTicksRequest { ticks: vec![trade.clone()] }];
        let mesh = &mesh;
        async move {
            let mut market = MarketDataServiceClient::new(mesh.channel_as(credentials).await);
            market.ingest_ticks(tokio_stream::iter(ticks)).await
        }
    };
    let writer_only = mesh.key_with(&["marketdata:write"], Tier::Internal).await;
    assert_eq!(reason(&ingest(&writer_only).await.unwrap_err(), Code::PermissionDenied), "SCOPE_MISSING");
    let feed = mesh.key_with(&["marketdata:write", "registry:read"], Tier::Internal).await;
    assert_eq!(ingest(&feed).await.unwrap().into_inner().accepted, 1);
}

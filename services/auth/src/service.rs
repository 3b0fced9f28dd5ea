//! The AuthService RPCs.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::SecretString;
use tonic::{Request, Response, Status};
use wizdata::auth::v1::auth_service_server::AuthService;
use wizdata::auth::v1::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, CreateUserRequest, CreateUserResponse, ExchangeApiKeyRequest,
    ExchangeApiKeyResponse, GetJwksRequest, GetJwksResponse, ListApiKeysRequest, ListApiKeysResponse, LoginRequest,
    LoginResponse, RevokeApiKeyRequest, RevokeApiKeyResponse, RotateSigningKeyRequest, RotateSigningKeyResponse, Tier,
    User, WhoAmIRequest, WhoAmIResponse,
};
use wizdata_common::auth::access::AccessRules;
use wizdata_common::auth::token::{Claims, ISSUER};
use wizdata_common::auth::verifier::unauthenticated;
use wizdata_common::auth::{API_KEY_PREFIX, Caller, ERROR_DOMAIN, tier_claim, tier_from_claim, tier_rank};
use wizdata_common::ids::random_id;
use wizdata_common::pagination::{PageTokens, page_size};
use wizdata_common::time::{from_timestamp, to_timestamp};
use wizdata_common::{ApiError, ErrorCode, FieldViolations};

use crate::entity::{api_key, user};
use crate::keys::{self, NewApiKey};
use crate::passwords::Passwords;
use crate::signing::SigningKeys;
use crate::throttle::LoginThrottle;

/// The scope that lets a caller manage every user and key, not only its own.
const ADMIN_SCOPE: &str = "auth:admin";
const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_KEY_NAME_CHARS: usize = 64;
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

#[derive(Clone)]
pub struct Auth {
    pub(crate) db: DatabaseConnection,
    pub(crate) keys: Arc<SigningKeys>,
    pub(crate) passwords: Passwords,
    pub(crate) throttle: Arc<LoginThrottle>,
    pub(crate) page_tokens: PageTokens,
    pub(crate) token_ttl: Duration,
}

impl Auth {
    /// A token for `subject`, expiring after the token lifetime or at
    /// `not_after`, whichever comes first.
    fn issue(
        &self,
        subject: &str,
        scopes: &str,
        tier: &str,
        key_id: Option<String>,
        not_after: Option<DateTime<Utc>>,
    ) -> (String, DateTime<Utc>) {
        let now = Utc::now();
        let lifetime =
            chrono::Duration::from_std(self.token_ttl).expect("token lifetimes are far below chrono's range");
        let expires = not_after.map_or(now + lifetime, |limit| limit.min(now + lifetime));
        let claims = Claims {
            iss: ISSUER.into(),
            sub: subject.into(),
            scope: scopes.into(),
            tier: tier.into(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: random_id("", 16),
            key_id,
        };
        (self.keys.sign(&claims), DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires))
    }

    async fn user_named(&self, username: &str) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find().filter(user::Column::Username.eq(username)).one(&self.db).await
    }
}

/// The verified caller the auth layer attached to the request.
fn caller<T>(request: &Request<T>) -> Result<Caller, ApiError> {
    Caller::of(request).cloned().ok_or_else(|| ApiError::internal("the call was not authenticated"))
}

/// The caller, who must have presented credentials: keys and users belong
/// to someone.
fn identified<T>(request: &Request<T>) -> Result<Caller, ApiError> {
    let caller = caller(request)?;
    if caller.anonymous {
        return Err(unauthenticated("CREDENTIALS_MISSING", "this call acts for a subject; send credentials"));
    }
    Ok(caller)
}

/// Checks that `requested` scopes exist (INVALID_ARGUMENT per entry) and
/// returns them with those the caller may not hand out.
fn check_scopes(
    field: &str,
    requested: &[String],
    caller: &Caller,
    violations: &mut FieldViolations,
) -> (Vec<String>, Vec<String>) {
    let known = AccessRules::contract().scopes();
    let mut scopes = Vec::new();
    let mut beyond_caller = Vec::new();
    for (index, scope) in requested.iter().enumerate() {
        if !known.contains(scope.as_str()) {
            violations.add(format!("{field}[{index}]"), format!("{scope:?} is not a scope; scopes are {known:?}"));
        } else if !caller.has_scope(scope) {
            beyond_caller.push(scope.clone());
        } else {
            scopes.push(scope.clone());
        }
    }
    scopes.sort();
    scopes.dedup();
    (scopes, beyond_caller)
}

fn check_tier(field: &str, requested: i32, violations: &mut FieldViolations) -> Tier {
    match Tier::try_from(requested) {
        Ok(Tier::Unspecified) => Tier::Standard,
        Ok(tier) => tier,
        Err(_) => {
            violations.add(field, format!("{requested} is not a tier"));
            Tier::Standard
        }
    }
}

/// PERMISSION_DENIED when a caller tries to grant more than it holds.
fn check_grant(caller: &Caller, beyond_caller: &[String], tier: Tier) -> Result<(), ApiError> {
    if !beyond_caller.is_empty() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("you cannot grant scopes your own credentials lack: {}", beyond_caller.join(", ")),
        )
        .with_error_info("SCOPE_NOT_GRANTABLE", ERROR_DOMAIN, []));
    }
    if tier_rank(tier) > tier_rank(caller.tier) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("you cannot grant the {} tier above your own ({})", tier_claim(tier), tier_claim(caller.tier)),
        )
        .with_error_info("TIER_NOT_GRANTABLE", ERROR_DOMAIN, []));
    }
    Ok(())
}

/// Whether `caller` may see and revoke `key`: a key of its own subject (or
/// any key, with the admin scope) that it could have created, so no key
/// manages a key stronger than itself.
fn may_manage(caller: &Caller, key: &api_key::Model) -> bool {
    let owned = key.owner == caller.subject || caller.has_scope(ADMIN_SCOPE);
    let scopes_held = key.scopes.split_ascii_whitespace().all(|scope| caller.has_scope(scope));
    owned && scopes_held && tier_rank(tier_from_claim(&key.tier)) <= tier_rank(caller.tier)
}

fn validate_username(username: &str) -> Result<(), String> {
    let valid_chars = username.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    let starts_alphanumeric = username.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    match username.len() {
        3..=64 if valid_chars && starts_alphanumeric => Ok(()),
        _ => Err("must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit".into()),
    }
}

fn validate_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

fn user_proto(model: &user::Model) -> User {
    User {
        user_id: model.user_id.clone(),
        username: model.username.clone(),
        scopes: model.scopes.split_ascii_whitespace().map(str::to_owned).collect(),
        tier: tier_from_claim(&model.tier).into(),
        create_time: Some(to_timestamp(model.create_time)),
    }
}

fn api_key_proto(model: &api_key::Model) -> ApiKey {
    ApiKey {
        key_id: model.key_id.clone(),
        name: model.name.clone(),
        scopes: model.scopes.split_ascii_whitespace().map(str::to_owned).collect(),
        tier: tier_from_claim(&model.tier).into(),
        owner: model.owner.clone(),
        create_time: Some(to_timestamp(model.create_time)),
        expire_time: model.expire_time.map(to_timestamp),
        revoke_time: model.revoke_time.map(to_timestamp),
    }
}

fn user_subject(username: &str) -> String {
    format!("user:{username}")
}

fn login_failed() -> ApiError {
    unauthenticated("LOGIN_FAILED", "wrong username or password")
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        let caller = identified(&request)?;
        let CreateUserRequest { username, password, scopes, tier } = request.into_inner();
        let mut violations = FieldViolations::default();
        violations.check("username", validate_username(&username));
        violations.check("password", validate_new_password(&password));
        let (scopes, beyond_caller) = check_scopes("scopes", &scopes, &caller, &mut violations);
        let tier = check_tier("tier", tier, &mut violations);
        violations.into_result()?;
        check_grant(&caller, &beyond_caller, tier)?;
        // Checked before hashing, so a taken name costs no Argon2id work.
        if self.user_named(&username).await.map_err(ApiError::from)?.is_some() {
            return Err(ApiError::already_exists("user", &username).into());
        }
        let password_hash = self.passwords.hash(SecretString::from(password)).await.map_err(|error| {
            tracing::error!(%error, "cannot hash a password");
            ApiError::internal("cannot store the password")
        })?;
        let model = user::Model {
            user_id: random_id("usr_", 8),
            username: username.clone(),
            password_hash,
            scopes: scopes.join(" "),
            tier: tier_claim(tier).to_owned(),
            create_time: Utc::now(),
        };
        let inserted = user::Entity::insert(model.clone().into_active_model()).exec_without_returning(&self.db).await;
        if let Err(error) = inserted {
            // Lost a race with a concurrent CreateUser of the same name.
            if self.user_named(&username).await.ok().flatten().is_some() {
                return Err(ApiError::already_exists("user", &username).into());
            }
            return Err(ApiError::from(error).into());
        }
        tracing::info!(username, by = caller.subject, "user created");
        Ok(Response::new(CreateUserResponse { user: Some(user_proto(&model)) }))
    }

    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        let LoginRequest { username, password } = request.into_inner();
        let mut violations = FieldViolations::default();
        if username.is_empty() {
            violations.add("username", "must not be empty");
        }
        if password.is_empty() {
            violations.add("password", "must not be empty");
        } else if password.len() > MAX_PASSWORD_BYTES {
            violations.add("password", format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
        }
        violations.into_result()?;
        let username = username.trim().to_ascii_lowercase();
        if let Err(wait) = self.throttle.check(&username) {
            return Err(ApiError::resource_exhausted(
                "too many failed logins for this username; wait before trying again",
                wait,
            )
            .with_error_info("LOGIN_THROTTLED", ERROR_DOMAIN, [])
            .into());
        }
        let user = self.user_named(&username).await.map_err(ApiError::from)?;
        let matches = self
            .passwords
            .verify(SecretString::from(password), user.as_ref().map(|user| user.password_hash.clone()))
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot verify a password");
                ApiError::internal("cannot verify the password")
            })?;
        let Some(user) = user.filter(|_| matches) else {
            self.throttle.failed(&username);
            return Err(login_failed().into());
        };
        self.throttle.succeeded(&username);
        let (access_token, expires) = self.issue(&user_subject(&user.username), &user.scopes, &user.tier, None, None);
        Ok(Response::new(LoginResponse { access_token, expire_time: Some(to_timestamp(expires)) }))
    }

    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let caller = identified(&request)?;
        let CreateApiKeyRequest { name, scopes, tier, expire_time } = request.into_inner();
        let mut violations = FieldViolations::default();
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS || name.chars().any(char::is_control) {
            violations.add("name", format!("must be 1 to {MAX_KEY_NAME_CHARS} printable characters"));
        }
        if scopes.is_empty() {
            violations.add("scopes", "name at least one scope");
        }
        let (scopes, beyond_caller) = check_scopes("scopes", &scopes, &caller, &mut violations);
        let tier = check_tier("tier", tier, &mut violations);
        let expire_time = match expire_time.as_ref().map(|time| from_timestamp(time).filter(|time| *time > Utc::now()))
        {
            None => None,
            Some(Some(time)) => Some(time),
            Some(None) => {
                violations.add("expire_time", "must be a valid time in the future");
                None
            }
        };
        violations.into_result()?;
        check_grant(&caller, &beyond_caller, tier)?;
        let (model, secret) =
            keys::create(&self.db, NewApiKey { name, owner: caller.subject.clone(), scopes, tier, expire_time })
                .await
                .map_err(ApiError::from)?;
        tracing::info!(key_id = model.key_id, owner = model.owner, "API key created");
        Ok(Response::new(CreateApiKeyResponse {
            api_key: Some(api_key_proto(&model)),
            secret: secrecy::ExposeSecret::expose_secret(&secret).to_owned(),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let caller = identified(&request)?;
        let ListApiKeysRequest { page_size: requested_size, page_token, include_revoked } = request.into_inner();
        let mut violations = FieldViolations::default();
        let size = violations.check("page_size", page_size(requested_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE));
        violations.into_result()?;
        let size = size.expect("checked above");
        let everyone = caller.has_scope(ADMIN_SCOPE);
        let owner_filter = if everyone { "*" } else { caller.subject.as_str() };
        let filters = format!("{owner_filter}\n{include_revoked}");
        let after = self.page_tokens.decode(&page_token, filters.as_bytes())?;
        // Keys stronger than the caller are skipped, so a page is read in
        // batches until it is full or the keys run out.
        let mut rows = Vec::new();
        let mut cursor = after;
        loop {
            let batch = u64::from(size) + 1;
            let mut query = api_key::Entity::find().order_by_asc(api_key::Column::KeyId).limit(batch);
            if !everyone {
                query = query.filter(api_key::Column::Owner.eq(&caller.subject));
            }
            if !include_revoked {
                query = query.filter(api_key::Column::RevokeTime.is_null());
            }
            if let Some(after) = &cursor {
                query = query.filter(api_key::Column::KeyId.gt(after.as_str()));
            }
            let found = query.all(&self.db).await.map_err(ApiError::from)?;
            let exhausted = (found.len() as u64) < batch;
            cursor = found.last().map(|key| key.key_id.clone());
            rows.extend(found.into_iter().filter(|key| may_manage(&caller, key)));
            if exhausted || rows.len() > size as usize {
                break;
            }
        }
        let next_page_token = match rows.len() > size as usize {
            true => {
                rows.truncate(size as usize);
                self.page_tokens.encode(filters.as_bytes(), &rows.last().expect("a full page").key_id)
            }
            false => String::new(),
        };
        Ok(Response::new(ListApiKeysResponse { api_keys: rows.iter().map(api_key_proto).collect(), next_page_token }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        let caller = identified(&request)?;
        let key_id = request.into_inner().key_id;
        if key_id.is_empty() {
            return Err(ApiError::invalid_field("key_id", "must not be empty").into());
        }
        let found = api_key::Entity::find_by_id(&key_id).one(&self.db).await.map_err(ApiError::from)?;
        // Someone else's key is reported as absent: its existence is not the caller's business.
        let Some(mut key) = found.filter(|key| key.owner == caller.subject || caller.has_scope(ADMIN_SCOPE)) else {
            return Err(ApiError::not_found("API key", &key_id).into());
        };
        if !may_manage(&caller, &key) {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "this key holds scopes or a tier beyond your credentials; revoke it with credentials that hold them",
            )
            .with_error_info("KEY_BEYOND_CALLER", ERROR_DOMAIN, [])
            .into());
        }
        if key.revoke_time.is_none() {
            let now = Utc::now();
            api_key::Entity::update_many()
                .col_expr(api_key::Column::RevokeTime, sea_orm::sea_query::Expr::value(now))
                .filter(api_key::Column::KeyId.eq(&key_id))
                .filter(api_key::Column::RevokeTime.is_null())
                .exec(&self.db)
                .await
                .map_err(ApiError::from)?;
            key.revoke_time = Some(now);
            tracing::info!(key_id, by = caller.subject, "API key revoked");
        }
        Ok(Response::new(RevokeApiKeyResponse { api_key: Some(api_key_proto(&key)) }))
    }

    async fn exchange_api_key(
        &self,
        request: Request<ExchangeApiKeyRequest>,
    ) -> Result<Response<ExchangeApiKeyResponse>, Status> {
        let secret = SecretString::from(request.into_inner().api_key);
        let text = secrecy::ExposeSecret::expose_secret(&secret);
        if text.is_empty() {
            return Err(ApiError::invalid_field("api_key", "must not be empty").into());
        }
        let invalid = || unauthenticated("API_KEY_INVALID", "the API key is not valid");
        if !text.starts_with(API_KEY_PREFIX) || text.len() > 128 {
            return Err(invalid().into());
        }
        let key = keys::find_by_secret(&self.db, &secret).await.map_err(ApiError::from)?.ok_or_else(invalid)?;
        if key.revoke_time.is_some() {
            return Err(unauthenticated("API_KEY_REVOKED", "the API key was revoked").into());
        }
        if key.expire_time.is_some_and(|expiry| expiry <= Utc::now()) {
            return Err(unauthenticated("API_KEY_EXPIRED", "the API key has expired").into());
        }
        let (access_token, expires) =
            self.issue(&key.owner, &key.scopes, &key.tier, Some(key.key_id.clone()), key.expire_time);
        Ok(Response::new(ExchangeApiKeyResponse { access_token, expire_time: Some(to_timestamp(expires)) }))
    }

    async fn get_jwks(&self, _: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        // Read afresh: a verifier asks when it meets a key id it does not know,
        // which may be another replica's rotation this one has not seen yet.
        if let Err(error) = self.keys.reload().await {
            tracing::warn!(%error, "cannot reload signing keys; publishing the ones in memory");
        }
        Ok(Response::new(GetJwksResponse { keys: self.keys.jwks() }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<RotateSigningKeyRequest>,
    ) -> Result<Response<RotateSigningKeyResponse>, Status> {
        let caller = identified(&request)?;
        let (key_id, created) = self.keys.rotate().await.map_err(ApiError::from)?;
        tracing::info!(key_id, by = caller.subject, "signing key rotated");
        Ok(Response::new(RotateSigningKeyResponse { key_id, create_time: Some(to_timestamp(created)) }))
    }

    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<WhoAmIResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(WhoAmIResponse {
            subject: caller.subject,
            scopes: caller.scopes.to_vec(),
            tier: caller.tier.into(),
            anonymous: caller.anonymous,
            expire_time: caller.expires_at.and_then(|exp| DateTime::from_timestamp(exp, 0)).map(to_timestamp),
        }))
    }
}

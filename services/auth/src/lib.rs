//! The auth service. Its contract is published and mounted; the RPCs arrive
//! with issue #5.

use tonic::{Request, Response, Status};
use wizdata::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use wizdata::auth::v1::{
    CreateApiKeyRequest, CreateApiKeyResponse, CreateUserRequest, CreateUserResponse, ExchangeApiKeyRequest,
    ExchangeApiKeyResponse, GetJwksRequest, GetJwksResponse, ListApiKeysRequest, ListApiKeysResponse, LoginRequest,
    LoginResponse, RevokeApiKeyRequest, RevokeApiKeyResponse, RotateSigningKeyRequest, RotateSigningKeyResponse,
    WhoAmIRequest, WhoAmIResponse,
};
use wizdata_common::ApiError;

pub const SERVICE_NAME: &str = wizdata::auth::v1::auth_service_server::SERVICE_NAME;
const BUILT_BY_ISSUE: u32 = 5;

fn not_built_yet(method: &str) -> Status {
    ApiError::not_built_yet(&format!("{SERVICE_NAME}/{method}"), BUILT_BY_ISSUE).into()
}

#[derive(Debug, Default, Clone)]
pub struct Auth;

#[tonic::async_trait]
impl AuthService for Auth {
    async fn create_user(&self, _: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        Err(not_built_yet("CreateUser"))
    }

    async fn login(&self, _: Request<LoginRequest>) -> Result<Response<LoginResponse>, Status> {
        Err(not_built_yet("Login"))
    }

    async fn create_api_key(&self, _: Request<CreateApiKeyRequest>) -> Result<Response<CreateApiKeyResponse>, Status> {
        Err(not_built_yet("CreateApiKey"))
    }

    async fn list_api_keys(&self, _: Request<ListApiKeysRequest>) -> Result<Response<ListApiKeysResponse>, Status> {
        Err(not_built_yet("ListApiKeys"))
    }

    async fn revoke_api_key(&self, _: Request<RevokeApiKeyRequest>) -> Result<Response<RevokeApiKeyResponse>, Status> {
        Err(not_built_yet("RevokeApiKey"))
    }

    async fn exchange_api_key(
        &self,
        _: Request<ExchangeApiKeyRequest>,
    ) -> Result<Response<ExchangeApiKeyResponse>, Status> {
        Err(not_built_yet("ExchangeApiKey"))
    }

    async fn get_jwks(&self, _: Request<GetJwksRequest>) -> Result<Response<GetJwksResponse>, Status> {
        Err(not_built_yet("GetJwks"))
    }

    async fn rotate_signing_key(
        &self,
        _: Request<RotateSigningKeyRequest>,
    ) -> Result<Response<RotateSigningKeyResponse>, Status> {
        Err(not_built_yet("RotateSigningKey"))
    }

    async fn who_am_i(&self, _: Request<WhoAmIRequest>) -> Result<Response<WhoAmIResponse>, Status> {
        Err(not_built_yet("WhoAmI"))
    }
}

pub fn service() -> AuthServiceServer<Auth> {
    AuthServiceServer::new(Auth)
}

//! The tower layer every server runs: authenticate the call, check the scope
//! its RPC declares, and hand the verified caller to the service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::access::{Access, AccessRules};
use super::verifier::Verifier;
use super::{Caller, ERROR_DOMAIN};
use crate::error::{ApiError, ErrorCode};

/// Enforces the contract's access rules with a [`Verifier`].
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Verifier,
    rules: &'static AccessRules,
    anonymous_scopes: Arc<[String]>,
}

impl AuthLayer {
    /// Checks every call to a WizData RPC; fails when an anonymous scope is
    /// not one the contract knows (a typo would silently grant nothing).
    pub fn new(verifier: Verifier) -> anyhow::Result<Self> {
        let rules = AccessRules::contract();
        let known = rules.scopes();
        let anonymous_scopes = verifier.anonymous().scopes.clone();
        if let Some(unknown) = anonymous_scopes.iter().find(|scope| !known.contains(scope.as_str())) {
            anyhow::bail!("anonymous scope {unknown:?} is not a scope of any RPC; known scopes: {known:?}");
        }
        Ok(Self { verifier, rules, anonymous_scopes })
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for Authenticated<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RequestBody: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        // The clone is ready only if polled; call the one that was.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            // Health and reflection are outside the contract: open to probes and explorers.
            let Some(access) = layer.rules.for_path(request.uri().path()) else {
                return inner.call(request).await;
            };
            let caller = match layer.verifier.authenticate(request.headers()).await {
                Ok(caller) => caller,
                Err(error) => return Ok(refusal(error)),
            };
            if let Access::Scope(scope) = access
                && !caller.has_scope(scope)
                && !layer.anonymous_scopes.iter().any(|held| held == scope)
            {
                return Ok(refusal(missing_scope(&caller, scope)));
            }
            request.extensions_mut().insert(caller);
            inner.call(request).await
        })
    }
}

/// UNAUTHENTICATED for an anonymous caller (credentials would help),
/// PERMISSION_DENIED for one whose credentials lack the scope.
fn missing_scope(caller: &Caller, scope: &str) -> ApiError {
    let required = [("required_scope".to_owned(), scope.to_owned())];
    if caller.anonymous {
        return ApiError::new(
            ErrorCode::Unauthenticated,
            format!("this call needs the scope {scope:?}; send credentials"),
        )
        .with_error_info("CREDENTIALS_MISSING", ERROR_DOMAIN, required);
    }
    ApiError::new(ErrorCode::PermissionDenied, format!("{} lacks the scope {scope:?} this call needs", caller.subject))
        .with_error_info("SCOPE_MISSING", ERROR_DOMAIN, required)
}

fn refusal<B: Default>(error: ApiError) -> Response<B> {
    tracing::info!(code = ?error.code(), message = error.message(), "call refused");
    tonic::Status::from(error).into_http()
}

//! The client side: credentials a WizData tool or service sends on every call.

use crate::endpoints::ServiceChannel;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

/// A channel whose calls carry [`Credentials`].
pub type AuthenticatedChannel = InterceptedService<ServiceChannel, Credentials>;

/// Sends `authorization: Bearer <key or token>` on every call, or nothing.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.authorization.is_some() { "Bearer [REDACTED]" } else { "none" };
        write!(f, "Credentials({shown})")
    }
}

impl Credentials {
    /// No credentials: calls run with the anonymous scopes.
    pub fn none() -> Self {
        Self::default()
    }

    /// An API key (`wiz_...`) or an access token, sent as a bearer credential.
    pub fn bearer(secret: &SecretString) -> anyhow::Result<Self> {
        let mut value: AsciiMetadataValue = format!("Bearer {}", secret.expose_secret().trim())
            .parse()
            .map_err(|_| anyhow::anyhow!("the credential contains characters a header cannot carry"))?;
        // Kept out of HPACK tables and Debug output.
        value.set_sensitive(true);
        Ok(Self { authorization: Some(value) })
    }

    /// `bearer` when a secret is given, `none` otherwise.
    pub fn from_optional(secret: Option<&SecretString>) -> anyhow::Result<Self> {
        secret.map_or_else(|| Ok(Self::none()), Self::bearer)
    }

    /// `channel` with these credentials on every call: a [`ServiceChannel`]
    /// (an [`AuthenticatedChannel`]), or any other tonic channel.
    pub fn on<C>(self, channel: C) -> InterceptedService<C, Credentials> {
        InterceptedService::new(channel, self)
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(authorization) = &self.authorization {
            request.metadata_mut().insert("authorization", authorization.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_never_shows_in_debug_output() {
        let credentials = Credentials::bearer(&SecretString::from("wiz_hunter2hunter2")).unwrap();
        assert_eq!(format!("{credentials:?}"), "Credentials(Bearer [REDACTED])");
        assert_eq!(format!("{:?}", Credentials::none()), "Credentials(none)");
    }
}

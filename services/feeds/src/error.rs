//! What goes wrong with a provider, typed until the feed's loop decides:
//! reconnect after a backoff, wait out a rate limit, or stop.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the provider closed the connection{}", .0.as_deref().map(|why| format!(": {why}")).unwrap_or_default())]
    Closed(Option<String>),
    #[error("nothing received for {0:?}: the connection is stalled")]
    Stalled(Duration),
    #[error("the connection reached its age limit of {0:?}")]
    Aged(Duration),
    #[error("the provider refused the subscription: {0}")]
    Subscription(String),
    #[error("rate limited by the provider; retry in {0:?}")]
    RateLimited(Duration),
    #[error("the provider rejected the credentials: {0}")]
    Unauthorized(String),
    #[error("the provider answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("unexpected answer from the provider: {0}")]
    Protocol(String),
    #[error("the mesh refused the data: {0}")]
    Mesh(String),
}

impl FeedError {
    /// Whether retrying cannot help until an operator acts.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FeedError::Unauthorized(_))
    }
}

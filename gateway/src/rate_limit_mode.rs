//! Who decides rate limits: Redis for every gateway at once, or this gateway
//! alone. Its own module, so the limiter and the metrics both name it
//! without depending on each other.

/// Who decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redis: one limit across every gateway.
    Shared,
    /// This gateway alone: Redis is unset, slow or down.
    Local,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "redis",
            Self::Local => "local",
        }
    }
}

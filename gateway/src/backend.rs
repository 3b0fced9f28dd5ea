//! A backend service as the gateway sees it: its endpoint pool (discovery,
//! balance and health, shared with every service's channels to the others)
//! and a circuit breaker that fails calls at once while the service keeps
//! failing, instead of making every caller wait to find out.

use std::sync::Arc;
use std::time::Duration;

pub use wizdata_common::endpoints::{BackendError, Lease, Payload};
use wizdata_common::endpoints::{EndpointPool, PoolSettings, Resolver};
use wizdata_common::health::Health;

use crate::breaker::Breaker;
use crate::config::GatewayConfig;

pub struct Backend {
    pub service: &'static str,
    pub pool: Arc<EndpointPool>,
    pub breaker: Breaker,
}

impl Backend {
    pub fn new(
        service: &'static str,
        urls: &[String],
        config: &GatewayConfig,
        resolver: Resolver,
    ) -> anyhow::Result<Self> {
        let settings = PoolSettings {
            connect_timeout: config.connect_timeout,
            max_answer_header_bytes: config.max_answer_header_bytes,
            health_interval: config.health_interval,
        };
        Ok(Self {
            service,
            pool: EndpointPool::new(service, urls, settings, resolver)?,
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
        })
    }

    /// Keeps the endpoints current, reports in `health` whether the
    /// service can be reached through the gateway, and exports whether its
    /// circuit is open (the breaker itself is only read on calls).
    pub fn spawn_upkeep(self: &Arc<Self>, health: Health, interval: Duration) -> [tokio::task::JoinHandle<()>; 2] {
        let backend = self.clone();
        let breaker_state = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                crate::metrics::breaker_open(backend.service, backend.breaker.is_open());
            }
        });
        [self.pool.spawn_upkeep(Some(health)), breaker_state]
    }
}

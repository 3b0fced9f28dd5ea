//! The WizData gateway: one ingress for every protocol.
//!
//! One port speaks native gRPC (HTTP/2 cleartext, passed through), gRPC-Web
//! binary and text (tonic-web), Connect, REST/JSON from the contract's
//! `google.api.http` annotations, and Server-Sent Events, over HTTP/1.1 and
//! HTTP/2, with CORS for browsers; every protocol is translated to gRPC at
//! the edge and takes the same pipeline. Each call is routed by its service to one of that
//! service's endpoints (power of two choices over the healthy ones), its
//! caller identified (a bearer token passes through; an API key is
//! exchanged for a token once and cached; no credentials means anonymous,
//! keyed by client address) and held to the caller's rate limits, shared
//! by every gateway through Redis.
//!
//! `Gateway::build` binds first (port 0 in tests) so `port()` is known;
//! `run_until` serves until stopped.

pub mod backend;
pub mod breaker;
pub mod config;
pub mod dashboard;
pub mod frames;
pub mod http2;
pub mod metrics;
mod native;
pub mod proxy;
pub mod rate_limit_mode;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod transcode;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response};
use tokio::task::JoinHandle;
use tonic::body::Body;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use wizdata_common::auth::verifier::Verifier;
use wizdata_common::endpoints::Resolver;
use wizdata_common::health::Health;
use wizdata_common::redis::Redis;

use crate::backend::Backend;
pub use crate::config::GatewayConfig;
use crate::dashboard::Dashboard;
use crate::proxy::{CallLimits, ClientAddr, Proxy};
use crate::ratelimit::{Mode, RateLimiter};
use crate::routes::Methods;
use crate::server::{AllowedOrigins, Front, Listener, Ops};
use crate::transcode::BodyLimits;

/// What the gateway needs from the process around it.
pub struct GatewayDeps {
    /// Checks credentials (and exchanges API keys) with the auth service.
    pub verifier: Verifier,
    /// The shared rate-limit store; `None` limits per gateway.
    pub redis: Option<Redis>,
    /// Endpoints of services without a --backend of their own, when
    /// --default-backend is unset (in `serve all`: this process).
    pub default_backend: Option<String>,
    /// Resolves backend URLs whose host is a name, shared with the process's
    /// own channels.
    pub resolver: Resolver,
    /// Largest message a call may carry, in bytes.
    pub max_message_bytes: usize,
    /// On stop: how long health reports NOT_SERVING before the listener
    /// closes, and how long calls in flight may take to finish.
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
}

/// A bound, not yet serving, gateway.
pub struct Gateway {
    listener: Listener,
    front: Front,
    ops: Arc<Ops>,
    health: Health,
    config: GatewayConfig,
    shutdown_delay: Duration,
    drain_timeout: Duration,
    background: Vec<JoinHandle<()>>,
}

impl Gateway {
    pub async fn build(config: &GatewayConfig, deps: GatewayDeps) -> anyhow::Result<Self> {
        let listener = Listener::bind(config).await?;
        let methods = Methods::contract();
        let origins = AllowedOrigins::new(&config.allowed_origins)?;

        let mut urls_by_service: HashMap<&'static str, Vec<String>> = HashMap::new();
        for route in &config.backends {
            let service = methods.service_named(&route.service).ok_or_else(|| {
                anyhow::anyhow!(
                    "--backend names {:?}, which is not a service; services: {:?}",
                    route.service,
                    methods.services()
                )
            })?;
            urls_by_service.insert(service, route.urls.clone());
        }
        let default_backend = match (&config.default_backend[..], &deps.default_backend) {
            ([], Some(url)) => vec![url.clone()],
            (urls, _) => urls.to_vec(),
        };
        let (health, health_service) = Health::with_service();
        let mut backends = foldhash::HashMap::default();
        let mut background = Vec::new();
        for service in methods.services() {
            let urls = urls_by_service.get(service).unwrap_or(&default_backend);
            if urls.is_empty() {
                anyhow::bail!("no endpoint for {service}: give --backend or --default-backend");
            }
            let backend = Arc::new(Backend::new(service, urls, config, deps.resolver.clone())?);
            background.extend(backend.spawn_upkeep(health.clone(), config.health_interval));
            backends.insert(*service, backend);
        }

        crate::metrics::describe(methods.services());
        let limiter = RateLimiter::new(config, deps.redis.clone());
        background.push(watch_rate_limit_mode(limiter.clone(), deps.redis.is_some(), health.clone()));
        let limits = CallLimits {
            max_message_bytes: deps.max_message_bytes,
            max_deadline: config.max_deadline,
            retries: config.retries,
            client_timeout: config.client_timeout,
            max_streams_per_subject: config.gateway_max_streams_per_subject,
        };
        let proxy = Proxy::new(backends.clone(), deps.verifier, limiter.clone(), limits, config.retry_budget_percent);
        // The gateway's own health, and reflection over every service it routes.
        let own = tonic::service::Routes::new(health_service)
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        let proxy_for_stack = proxy.clone();
        let grpc = BoxCloneSyncService::new(tower::service_fn(move |request: Request<Body>| {
            let own = own.clone();
            let proxy = proxy_for_stack.clone();
            async move {
                let path = request.uri().path();
                let response: Response<Body> =
                    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
                        own.oneshot(request).await?
                    } else {
                        let client = request.extensions().get::<ClientAddr>().cloned();
                        proxy.handle(request, client).await
                    };
                Ok::<_, Infallible>(response)
            }
        }));
        let body_limits =
            BodyLimits { max_message_bytes: deps.max_message_bytes, client_timeout: config.client_timeout };
        let dashboard = Arc::new(Dashboard::load(&config.dashboard_dir)?);
        tracing::info!(dir = ?config.dashboard_dir, files = dashboard.file_count(), "dashboard at /");
        let ops = Arc::new(Ops { backends: backends.into_values().collect(), limiter, stopping: Default::default() });
        health.set_serving("", true).await;
        Ok(Self {
            listener,
            front: Front::new(grpc, proxy, ops.clone(), origins, body_limits, dashboard),
            ops,
            health,
            config: config.clone(),
            shutdown_delay: deps.shutdown_delay,
            drain_timeout: deps.drain_timeout,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().port()
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Serves until `stop` resolves, then shuts down gracefully: health and
    /// /readyz turn NOT_SERVING, after the shutdown delay the listener
    /// closes, and calls in flight get the drain timeout to finish.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Self { listener, front, ops, health, config, shutdown_delay, drain_timeout, background } = self;
        let stop = async move {
            stop.await;
            tracing::info!("gateway shutting down: health is NOT_SERVING");
            ops.stopping.store(true, Ordering::Relaxed);
            health.begin_shutdown().await;
            tokio::time::sleep(shutdown_delay).await;
        };
        listener.serve(front, &config, stop, drain_timeout).await;
        for task in background {
            task.abort();
        }
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Reflection of every service the gateway routes, beside its own.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    wizdata_common::server::reflection(Methods::contract().services())
}

/// Reports the rate limiter's mode as `dependency/redis` in health while a
/// Redis is configured, and now and then forgets idle subjects' local state.
fn watch_rate_limit_mode(limiter: RateLimiter, has_redis: bool, health: Health) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        for tick in 0u64.. {
            ticker.tick().await;
            let mode = limiter.mode();
            crate::metrics::rate_limit_mode(mode);
            if has_redis {
                health.set_dependency("redis", mode == Mode::Shared).await;
                crate::metrics::redis_reachable(mode == Mode::Shared);
            }
            if tick % 120 == 119 {
                limiter.forget_idle_subjects();
            }
        }
    })
}

//! grpc.health.v1 statuses for every service a process serves, and for ""
//! (the whole process: SERVING only while every one of its services is).
//!
//! Dependencies a process can do without for a while (Redis: caches fall back
//! to the database, the bus to nothing) are reported under their own name,
//! `dependency/<name>`, and do not pull "" down: a load balancer should keep
//! routing to a degraded process, while an operator can see what is missing.
//! Real feeds running in-process are reported the same way, as
//! `feed/<provider>`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthReporter;

#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    serving: BTreeMap<String, bool>,
    /// Optional dependencies and in-process feeds, by their reported names.
    dependencies: BTreeMap<String, bool>,
    /// Services another process serves and this one routes to (the
    /// gateway): reported under their own names, without deciding "".
    routed: BTreeMap<String, bool>,
    shutting_down: bool,
    /// What watchers were last told, per name: only differences are sent.
    published: BTreeMap<String, ServingStatus>,
}

impl Health {
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        Self { reporter, state: Arc::default() }
    }

    /// A status table and the grpc.health.v1 service that reports it, for a
    /// process that serves without a `GrpcServer` (the gateway).
    pub fn with_service() -> (Self, HealthServer<impl tonic_health::pb::health_server::Health>) {
        let (reporter, service) = tonic_health::server::health_reporter();
        (Self::new(reporter), service)
    }

    /// Marks `service` (its full name, e.g. "wizdata.registry.v1.RegistryService")
    /// as able or unable to serve. After shutdown began, everything stays
    /// NOT_SERVING.
    pub async fn set_serving(&self, service: &str, serving: bool) {
        let mut state = self.state.lock().await;
        // Watch streams get a message per change, not per check (as the
        // health protocol says), so an unchanged status is not re-published.
        if state.serving.insert(service.to_owned(), serving) == Some(serving) {
            return;
        }
        self.publish(&mut state).await;
    }

    /// Reports whether the optional dependency `name` is reachable, as
    /// `dependency/<name>`, without changing the process's overall status.
    pub async fn set_dependency(&self, name: &str, reachable: bool) {
        self.set_beside_overall(dependency_service_name(name), reachable).await;
    }

    /// Reports whether the feed from `provider` running in this process is
    /// connected, as `feed/<provider>`, without changing the process's
    /// overall status: market data serves on without a feed.
    pub async fn set_feed(&self, provider: &str, connected: bool) {
        self.set_beside_overall(feed_service_name(provider), connected).await;
    }

    /// Sets a status reported beside the process's own, which it never
    /// pulls down: an optional dependency's or a feed's.
    async fn set_beside_overall(&self, service: String, up: bool) {
        let mut state = self.state.lock().await;
        if state.dependencies.insert(service, up) == Some(up) {
            return;
        }
        self.publish(&mut state).await;
    }

    /// Reports whether `service`, served elsewhere, can be reached through
    /// this process, without changing this process's overall status.
    pub async fn set_routed(&self, service: &str, reachable: bool) {
        let mut state = self.state.lock().await;
        if state.routed.insert(service.to_owned(), reachable) == Some(reachable) {
            return;
        }
        self.publish(&mut state).await;
    }

    /// Every service, and "", turns NOT_SERVING for good.
    pub async fn begin_shutdown(&self) {
        let mut state = self.state.lock().await;
        state.shutting_down = true;
        self.publish(&mut state).await;
    }

    async fn publish(&self, state: &mut State) {
        let status = |serving: bool| {
            if serving && !state.shutting_down { ServingStatus::Serving } else { ServingStatus::NotServing }
        };
        let mut statuses: Vec<(String, ServingStatus)> =
            state.serving.iter().map(|(service, serving)| (service.clone(), status(*serving))).collect();
        statuses.extend(state.routed.iter().map(|(service, reachable)| (service.clone(), status(*reachable))));
        statuses.extend(state.dependencies.iter().map(|(dependency, reachable)| {
            (dependency.clone(), if *reachable { ServingStatus::Serving } else { ServingStatus::NotServing })
        }));
        statuses.push((String::new(), status(state.serving.values().all(|serving| *serving))));
        for (name, status) in statuses {
            if state.published.insert(name.clone(), status) != Some(status) {
                self.reporter.set_service_status(&name, status).await;
            }
        }
    }
}

/// The health-check name a dependency is reported under.
pub fn dependency_service_name(name: &str) -> String {
    format!("dependency/{name}")
}

/// The health-check name a feed running in-process is reported under.
pub fn feed_service_name(provider: &str) -> String {
    format!("feed/{provider}")
}

/// What a dependency's reachability decides.
#[derive(Clone, Copy, Debug)]
pub enum Reports {
    /// `service` cannot work without it: its health follows the dependency.
    Service(&'static str),
    /// The process degrades without it: only `dependency/<name>` follows it.
    Dependency,
}

/// Probes the dependency `name` every `interval`, logs each change once, and
/// reports it as `reports` says. A probe that takes longer than the interval
/// (at least a second) counts as a failure.
pub fn watch<P, F>(
    health: Health,
    name: &'static str,
    reports: Reports,
    interval: Duration,
    probe: P,
) -> tokio::task::JoinHandle<()>
where
    P: Fn() -> F + Send + 'static,
    F: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_reachable = true;
        loop {
            ticker.tick().await;
            let reachable = tokio::time::timeout(interval.max(Duration::from_secs(1)), probe()).await.unwrap_or(false);
            // What the "unreachable" alerts watch.
            metrics::gauge!("dependency_up", "dependency" => name).set(f64::from(u8::from(reachable)));
            if reachable != was_reachable {
                match (reachable, reports) {
                    (true, _) => tracing::info!(dependency = name, "reachable again; back to normal"),
                    (false, Reports::Service(service)) => {
                        tracing::warn!(dependency = name, service, "unreachable; the service is NOT_SERVING")
                    }
                    (false, Reports::Dependency) => {
                        tracing::warn!(dependency = name, "unreachable; running degraded until it returns")
                    }
                }
                was_reachable = reachable;
            }
            match reports {
                Reports::Service(service) => health.set_serving(service, reachable).await,
                Reports::Dependency => health.set_dependency(name, reachable).await,
            }
        }
    })
}

//! grpc.health.v1 statuses for every service a process serves, and for ""
//! (the whole process: SERVING only while every one of its services is).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    serving: BTreeMap<String, bool>,
    shutting_down: bool,
}

impl Health {
    pub(crate) fn new(reporter: HealthReporter) -> Self {
        Self { reporter, state: Arc::default() }
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
        self.publish(&state).await;
    }

    /// Every service, and "", turns NOT_SERVING for good.
    pub(crate) async fn begin_shutdown(&self) {
        let mut state = self.state.lock().await;
        state.shutting_down = true;
        self.publish(&state).await;
    }

    async fn publish(&self, state: &State) {
        let status = |serving: bool| {
            if serving && !state.shutting_down { ServingStatus::Serving } else { ServingStatus::NotServing }
        };
        for (service, serving) in &state.serving {
            self.reporter.set_service_status(service, status(*serving)).await;
        }
        let all_serving = state.serving.values().all(|serving| *serving);
        self.reporter.set_service_status("", status(all_serving)).await;
    }
}

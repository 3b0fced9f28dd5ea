//! The gateway's own metrics, recorded through the process's Prometheus
//! recorder (`wizdata_common::metrics`) beside the standard gRPC ones.

use std::sync::LazyLock;

use crate::rate_limit_mode::Mode;

/// One rate-limit decision, by outcome and by who decided.
pub fn rate_limit_decision(allowed: bool, mode: Mode) {
    // Every call makes one: its four counters are looked up once, not per call.
    static DECISIONS: LazyLock<[[metrics::Counter; 2]; 2]> = LazyLock::new(|| {
        wizdata_common::metrics::handle();
        [Mode::Shared, Mode::Local].map(|mode| [true, false].map(|allowed| decisions(allowed, mode)))
    });
    DECISIONS[usize::from(mode == Mode::Local)][usize::from(!allowed)].increment(1);
}

fn decisions(allowed: bool, mode: Mode) -> metrics::Counter {
    let outcome = if allowed { "allowed" } else { "limited" };
    metrics::counter!("gateway_rate_limit_decisions_total", "outcome" => outcome, "mode" => mode.as_str())
}

/// Who decides rate limits now: 1 for the current mode, 0 for the other.
pub fn rate_limit_mode(current: Mode) {
    for mode in [Mode::Shared, Mode::Local] {
        metrics::gauge!("gateway_rate_limit_mode", "mode" => mode.as_str()).set(f64::from(u8::from(mode == current)));
    }
}

/// A read sent again after UNAVAILABLE, or refused by the retry budget.
pub fn retry(sent: bool) {
    match sent {
        true => metrics::counter!("gateway_retries_total").increment(1),
        false => metrics::counter!("gateway_retries_refused_total").increment(1),
    }
}

/// A call failed at once because its backend's circuit is open.
pub fn breaker_rejection(service: &'static str) {
    metrics::counter!("gateway_breaker_rejections_total", "grpc_service" => service).increment(1);
}

/// Whether the shared rate-limit store answers: `dependency_up`, as every
/// process reports its dependencies.
pub fn redis_reachable(reachable: bool) {
    metrics::gauge!("dependency_up", "dependency" => "redis").set(f64::from(u8::from(reachable)));
}

/// Whether `service`'s circuit is open now: 1 while calls fail at once.
pub fn breaker_open(service: &'static str, open: bool) {
    metrics::gauge!("gateway_breaker_open", "grpc_service" => service).set(f64::from(u8::from(open)));
}

/// A call failed at once because no endpoint of its backend is healthy.
pub fn no_healthy_endpoint(service: &'static str) {
    metrics::counter!("gateway_no_healthy_endpoint_total", "grpc_service" => service).increment(1);
}

/// Describes the gateway's metrics once, for the exposition's HELP lines,
/// and exports each counter at zero, so `rate()` and alerts see a series
/// from the start rather than from its first event.
pub fn describe(services: &[&'static str]) {
    for mode in [Mode::Shared, Mode::Local] {
        for allowed in [true, false] {
            decisions(allowed, mode).increment(0);
        }
    }
    metrics::counter!("gateway_retries_total").increment(0);
    metrics::counter!("gateway_retries_refused_total").increment(0);
    for service in services {
        metrics::counter!("gateway_breaker_rejections_total", "grpc_service" => *service).increment(0);
        metrics::counter!("gateway_no_healthy_endpoint_total", "grpc_service" => *service).increment(0);
    }
    metrics::describe_counter!(
        "gateway_rate_limit_decisions_total",
        "Rate-limit decisions by outcome and by who decided."
    );
    metrics::describe_gauge!("gateway_rate_limit_mode", "Who decides rate limits now: 1 for the current mode.");
    metrics::describe_counter!("gateway_retries_total", "Reads sent again after UNAVAILABLE.");
    metrics::describe_counter!("gateway_retries_refused_total", "Retries the retry budget refused.");
    metrics::describe_counter!("gateway_breaker_rejections_total", "Calls failed at once by an open backend circuit.");
    metrics::describe_gauge!("gateway_breaker_open", "1 while the backend's circuit is open.");
    metrics::describe_counter!(
        "gateway_no_healthy_endpoint_total",
        "Calls failed at once: no endpoint of the backend was healthy."
    );
}

//! Logging and tracing, initialised once per process.
//!
//! Logs go to stderr (JSON by default) with the fields of the spans they
//! were logged in, the call span's `trace_id` among them. With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are exported over OTLP
//! (gRPC), which Jaeger and every OpenTelemetry collector accept. The W3C
//! `traceparent` of an incoming call becomes its span's parent
//! ([`accept_trace_context`]), and calls made while serving it carry the
//! span's context on ([`inject_trace_context`]), so one call through the
//! gateway is one trace across the services it reaches.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};

/// Keeps the span exporter running; flushes what is buffered when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every finished span now (tests, and before exiting).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber (and, with an OTLP endpoint, the span
/// exporter) for a process named `service_name`. A second call (tests start
/// many servers in one process) leaves the first in place. Call it from
/// within the Tokio runtime: the exporter runs on it.
pub fn init(config: &TelemetryConfig, service_name: &str) -> Telemetry {
    init_writing_to(config, service_name, std::io::stderr)
}

/// [`init`], with the log lines written to `writer` (tests read them).
pub fn init_writing_to<W>(config: &TelemetryConfig, service_name: &str, writer: W) -> Telemetry
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans get trace ids (for the logs, and to pass on) even when nothing
    // is exported.
    let provider = match config.otlp_endpoint.as_deref().filter(|endpoint| !endpoint.is_empty()) {
        Some(endpoint) => span_exporter(endpoint, service_name).unwrap_or_else(|error| {
            eprintln!("tracing export disabled: {error}");
            SdkTracerProvider::builder().build()
        }),
        None => SdkTracerProvider::builder().build(),
    };
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("wizdata"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let installed = match config.log_format {
        LogFormat::Json => registry.with(fmt.json().flatten_event(true).with_current_span(true)).try_init(),
        LogFormat::Pretty => registry.with(fmt).try_init(),
    };
    if installed.is_err() {
        // Someone else's subscriber (a test's): ours would see nothing.
        return Telemetry { provider: None };
    }
    Telemetry { provider: Some(provider) }
}

fn span_exporter(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
    // The batch processor on the Tokio runtime: the tonic exporter needs its
    // reactor, which the SDK's own export thread does not have.
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build())
}

/// Makes `span` a child of the trace context an incoming call carries in its
/// `traceparent` header (a new trace when it carries none), and records the
/// trace id in the span's `trace_id` field, so logs name their trace.
pub fn accept_trace_context(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Adds the current span's trace context (`traceparent`) to the headers of
/// a call made while serving another, so it joins the caller's trace.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

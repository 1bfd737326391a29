//! OpenTelemetry traces, off unless the standard `OTEL_*` environment asks
//! for them (see [`wanted`]); then spans go out over OTLP/gRPC.
//!
//! The spans:
//! - `batchgate.submit`, one per `Submit` call, a child of the W3C
//!   `traceparent` the client sent (or the root of a new trace); it ends
//!   when the item is answered and records the batch it rode in;
//! - `batchgate.stream`, one per `StreamSubmit` stream, likewise (its items
//!   share it: a span per streamed item would cost more than the item);
//! - `batchgate.batch`, one per batch, the root of a trace of its own with a
//!   link to each item's span (a batch serves many traces), and inside it
//! - `batchgate.backend_call`, one per call to a remote backend (retries
//!   and bisected halves each make one), whose context travels to the
//!   backend as `traceparent` (gRPC metadata, an HTTP header).
//!
//! When traces are off nothing here costs more than a flag check.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the spans made here: the trace layer takes them, the log
/// layer leaves them out (formatting their fields for logs nobody reads
/// would cost as much as the trace itself).
pub const TARGET: &str = "batchgate::otel";

/// Whether traces are on (set once, by [`init`]).
static ON: AtomicBool = AtomicBool::new(false);

/// Whether traces are on.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether the environment (`var` reads one variable) asks for traces:
/// not when `OTEL_SDK_DISABLED=true`; when `OTEL_TRACES_EXPORTER` names
/// `otlp` (`none` turns them off); otherwise when an OTLP endpoint is set
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
pub fn wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    match var("OTEL_TRACES_EXPORTER") {
        Some(exporters) => exporters.split(',').any(|e| e.trim() == "otlp"),
        None => {
            var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    }
}

/// The running trace pipeline; [`Traces::shutdown`] sends what is left.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Sends the spans ended so far, and waits for it.
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        })
        .await;
    }

    /// Sends what is left and stops.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "stopping traces failed");
            }
        })
        .await;
    }
}

/// Builds the OTLP exporter the environment describes (endpoint, headers,
/// timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the sampler)
/// and turns traces on. Must run inside the tokio runtime, which then
/// carries the exports.
///
/// # Errors
/// The exporter could not be built (e.g. a malformed endpoint).
pub fn init() -> Result<(opentelemetry_sdk::trace::Tracer, Traces), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OpenTelemetry exporter: {e}"))?;
    let exporter = InRuntime {
        inner: exporter,
        runtime: tokio::runtime::Handle::current(),
    };
    let resource = Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "batchgate".to_owned()),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("batchgate");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ON.store(true, Ordering::Relaxed);
    Ok((tracer, Traces { provider }))
}

/// The OTLP exporter, run on the server's tokio runtime: the batch span
/// processor calls it from a thread of its own, and tonic needs a runtime.
#[derive(Debug)]
struct InRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: tokio::runtime::Handle,
}

impl SpanExporter for InRuntime {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        Entered {
            runtime: &self.runtime,
            inner: Box::pin(self.inner.export(batch)),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.runtime.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.runtime.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A future polled inside the runtime's context (its I/O and timers).
struct Entered<'a, F> {
    runtime: &'a tokio::runtime::Handle,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let _entered = self.runtime.enter();
        self.inner.as_mut().poll(cx)
    }
}

/// A count or id as an OpenTelemetry integer attribute (which is signed:
/// the exporter would send an unsigned value as text).
fn int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Reads `traceparent`/`tracestate` from gRPC request metadata.
struct FromMetadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for FromMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Collects the headers a context propagates as.
#[derive(Default)]
struct Headers(Vec<(&'static str, String)>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        // TraceContextPropagator sets only these two.
        let key = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((key, value));
    }
}

/// The span of one `Submit` call to `queue`, a child of the client's
/// `traceparent` if it sent one; `None` when traces are off.
pub fn submit_span(queue: &str, metadata: &tonic::metadata::MetadataMap) -> Option<tracing::Span> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "batchgate.submit",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = "Submit",
        batchgate.queue = %queue,
        batchgate.batch_id = tracing::field::Empty,
        batchgate.batch_size = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    Some(child_of_client(span, metadata))
}

/// The span of one `StreamSubmit` stream, likewise.
pub fn stream_span(metadata: &tonic::metadata::MetadataMap) -> Option<tracing::Span> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "batchgate.stream",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = "StreamSubmit",
    );
    Some(child_of_client(span, metadata))
}

/// Makes `span` a child of the `traceparent` in `metadata`, if valid.
fn child_of_client(span: tracing::Span, metadata: &tonic::metadata::MetadataMap) -> tracing::Span {
    let parent = TraceContextPropagator::new().extract(&FromMetadata(metadata));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records on a `Submit` span the batch its item rode in and the status
/// code it was answered with.
pub fn record_answer(span: &tracing::Span, batch: Option<(u64, u32)>, code: tonic::Code) {
    if let Some((id, size)) = batch {
        span.record("batchgate.batch_id", int(id));
        span.record("batchgate.batch_size", i64::from(size));
    }
    span.record("rpc.grpc.status_code", code as i32);
}

/// The span context of `span`, for an item's link from its batch.
pub fn link_of(span: &tracing::Span) -> Option<ItemTrace> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(ItemTrace(span_context))
}

/// Where an item's span is, for its batch span's link.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemTrace(SpanContext);

/// Most links a batch span carries (OpenTelemetry's default limit).
const MAX_LINKS: usize = 128;

/// The span of a batch: a new trace, linked to its items' spans (each
/// distinct span once, at most [`MAX_LINKS`]).
pub fn batch_span<'a>(
    queue: &str,
    batch: u64,
    size: usize,
    trigger: &str,
    items: impl Iterator<Item = Option<&'a ItemTrace>>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "batchgate.batch",
        otel.kind = "internal",
        batchgate.queue = %queue,
        batchgate.batch_id = int(batch),
        batchgate.batch_size = int(size),
        batchgate.trigger = trigger,
    );
    let mut linked: Vec<&SpanContext> = Vec::new();
    for ItemTrace(item) in items.flatten() {
        if linked.len() == MAX_LINKS {
            break;
        }
        if !linked.contains(&item) {
            linked.push(item);
            span.add_link(item.clone());
        }
    }
    span
}

/// The span of one call to a backend endpoint, inside its batch's span,
/// and the `traceparent` (and `tracestate`) headers that carry it; `None`
/// when traces are off.
pub fn backend_span(
    endpoint: &str,
    items: usize,
) -> Option<(tracing::Span, Vec<(&'static str, String)>)> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!(
        target: TARGET,
        "batchgate.backend_call",
        otel.kind = "client",
        server.address = %endpoint,
        batchgate.items = int(items),
        otel.status_code = tracing::field::Empty,
    );
    let mut headers = Headers::default();
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    Some((span, headers.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_environment_turns_traces_on_and_off() {
        assert!(!wanted(env(&[])), "off by default");
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(wanted(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(wanted(env(&[("OTEL_TRACES_EXPORTER", "console, otlp")])));
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        assert!(!wanted(env(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])));
        assert!(!wanted(env(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(wanted(env(&[endpoint, ("OTEL_SDK_DISABLED", "false")])));
    }

    #[test]
    fn with_traces_off_no_span_is_made() {
        let metadata = tonic::metadata::MetadataMap::new();
        assert!(submit_span("q", &metadata).is_none());
        assert!(stream_span(&metadata).is_none());
        assert!(backend_span("http://b", 1).is_none());
    }
}

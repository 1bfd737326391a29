//! Logging: `tracing` with a compact human format, or JSON lines; and,
//! when the environment asks for them, OpenTelemetry traces (see
//! [`crate::otel`]), which see batchgate's own spans whatever the log level.
//! The level comes from `RUST_LOG` (default `info`, plus tonic's report of
//! a connection that failed, e.g. one the HTTP/2 layer closed with GOAWAY,
//! which tonic logs at debug level).

use std::io::IsTerminal;

use tracing_subscriber::{
    EnvFilter, Layer, filter::Targets, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::otel;

use serde::{Deserialize, Serialize};

/// How log lines look.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One compact human-readable line per event.
    #[default]
    Compact,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The log filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,tonic::transport::server=debug";

/// Installs the global subscriber (a second call does nothing) and, when
/// the `OTEL_*` environment asks for traces, the trace pipeline; returns
/// it, to be shut down (flushed) on exit. Must run inside the tokio runtime.
pub fn init(format: LogFormat) -> Option<otel::Traces> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        .add_directive(
            format!("{}=off", otel::TARGET)
                .parse()
                .expect("a valid directive"),
        );
    let logs = match format {
        LogFormat::Compact => fmt::layer()
            .compact()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let (traces_layer, traces) = if otel::wanted(|name| std::env::var(name).ok()) {
        match otel::init() {
            Ok((tracer, traces)) => {
                let spans = Targets::new().with_target(otel::TARGET, tracing::Level::INFO);
                // Only the spans and attributes of `otel`: no source
                // location, thread or busy/idle time per span.
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_location(false)
                    .with_threads(false)
                    .with_tracked_inactivity(false)
                    .with_filter(spans);
                (Some(layer), Some(traces))
            }
            Err(e) => {
                eprintln!("batchgate: traces stay off: {e}");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces_layer)
        .try_init();
    traces
}

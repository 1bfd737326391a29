//! Logging: `tracing` with a compact human format, or JSON lines.
//! The level comes from `RUST_LOG` (default `info`, plus tonic's report of
//! a connection that failed, e.g. one the HTTP/2 layer closed with GOAWAY,
//! which tonic logs at debug level).

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

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

/// Installs the global subscriber; a second call does nothing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

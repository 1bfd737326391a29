//! Configuration: a TOML document (the embedded default, or `--config FILE`),
//! then environment variables and flags on top, then [`Config::validate`].
//!
//! The embedded default is `examples/batchgate.toml`, so the commented example
//! and what `batchgate serve` runs with can never drift apart.

mod file;
mod jobs;
mod server;
#[cfg(test)]
mod tests;

pub use self::file::{Config, DEFAULT_CONFIG_TOML, QueueConfig, validate_queue_name};
pub use self::jobs::{DEFAULT_PATH as DEFAULT_JOBS_PATH, JobsConfig, NatsConfig, StoreKind};
pub use self::server::{
    DEFAULT_HTTP2_CONNECTION_WINDOW, DEFAULT_HTTP2_STREAM_WINDOW, ENV_CONTROL_TOKEN, ServerConfig,
};
pub use crate::{
    handler::config::{HandlerConfig, HandlerKind, validate_endpoint},
    oip::ModelSpec,
    queue::{Mode, Policy},
    telemetry::LogFormat,
    tls::TlsConfig,
    validation::ConfigError,
};

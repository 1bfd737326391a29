//! Configuration: a TOML document (the embedded default, or `--config FILE`),
//! then environment variables and flags on top, then [`Config::validate`].
//!
//! The embedded default is `examples/batchgate.toml`, so the commented example
//! and what `batchgate serve` runs with can never drift apart.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

use crate::validation::{at_most, duration_at_most, invalid};
pub use crate::{
    handler::config::{HandlerConfig, HandlerKind, validate_endpoint},
    oip::ModelSpec,
    queue::{Mode, Policy},
    telemetry::LogFormat,
    tls::TlsConfig,
    validation::ConfigError,
};

/// The configuration `batchgate serve` runs with when given no file.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../examples/batchgate.toml");

/// Default HTTP/2 stream window (bytes); see [`ServerConfig::http2_stream_window`].
pub const DEFAULT_HTTP2_STREAM_WINDOW: u32 = 64 * 1024;
/// Default HTTP/2 connection window (bytes); see
/// [`ServerConfig::http2_connection_window`].
pub const DEFAULT_HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Smallest HTTP/2 window accepted (bytes).
const MIN_HTTP2_WINDOW: u32 = 1024;
/// Largest HTTP/2 window (bytes): 2^31 - 1, the protocol's limit.
const MAX_HTTP2_WINDOW: u32 = (1 << 31) - 1;

/// Everything the server needs to start.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and process-wide limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Queues by name; a name is what clients put in `SubmitRequest.queue`.
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
}

/// Listeners and process-wide limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the gRPC data plane (Batcher, health, reflection).
    pub grpc_addr: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    pub metrics_addr: SocketAddr,
    /// How long in-flight batches may run after a shutdown signal before the
    /// items still waiting are answered UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Unanswered items one StreamSubmit stream may hold; when reached the
    /// server stops reading that stream until results go out.
    pub stream_window: usize,
    /// HTTP/2 flow-control window of one stream, in bytes: what a client may
    /// send on a stream that the server has stopped reading. Small enough
    /// that a stream of tiny items cannot pile up more unread DATA frames
    /// than the HTTP/2 layer tolerates (it closes the connection with
    /// ENHANCE_YOUR_CALM when unread small frames exceed a budget of half
    /// the connection window).
    pub http2_stream_window: u32,
    /// HTTP/2 flow-control window of a whole connection, in bytes. The
    /// budget for unread small DATA frames is half of it, so it bounds how
    /// many streams of tiny items may be held back at once on one
    /// connection.
    pub http2_connection_window: u32,
    /// Largest gRPC message the server decodes (bytes); larger messages fail
    /// the call (on a stream: the whole stream) with OUT_OF_RANGE.
    pub max_message_bytes: usize,
    /// HTTP/2 streams (calls) one connection may have open at once; the
    /// client is told in SETTINGS, a stream past it is refused
    /// (REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// Largest header list (HPACK-decoded) a request may carry, bytes.
    pub max_header_list_bytes: u32,
    /// Streams a client may open and reset before the server accepts them
    /// (the rapid-reset bound, CVE-2023-44487); past it the connection is
    /// closed with ENHANCE_YOUR_CALM.
    pub max_pending_reset_streams: usize,
    /// Streams the server may reset for a client's protocol errors on one
    /// connection before it closes the connection.
    pub max_error_reset_streams: usize,
    /// Calls one connection may have in the services at once; past it a
    /// call is answered RESOURCE_EXHAUSTED at once (load shedding).
    pub max_requests_per_connection: usize,
    /// Open connections on the gRPC listener; one more is closed as soon
    /// as it is accepted.
    pub max_connections: usize,
    /// How often an idle connection is pinged (HTTP/2 PING); "0s": never.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Address of the BatchControl service; unset: served on `grpc_addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_addr: Option<SocketAddr>,
    /// File holding the bearer token every control call must carry (the
    /// `BATCHGATE_CONTROL_TOKEN` variable takes precedence). Unset and no
    /// variable: the control plane needs no token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_token_file: Option<std::path::PathBuf>,
    /// A plaintext listener serving only `grpc.health.v1.Health`, for
    /// probes that cannot speak TLS (Kubernetes' gRPC probes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_addr: Option<SocketAddr>,
    /// TLS for the gRPC and control listeners; unset: plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            shutdown_grace: Duration::from_secs(10),
            stream_window: 1024,
            http2_stream_window: DEFAULT_HTTP2_STREAM_WINDOW,
            http2_connection_window: DEFAULT_HTTP2_CONNECTION_WINDOW,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 1024,
            max_header_list_bytes: 64 * 1024,
            max_pending_reset_streams: 20,
            max_error_reset_streams: 1024,
            max_requests_per_connection: 1024,
            max_connections: 16_384,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            log_format: LogFormat::Compact,
            control_addr: None,
            control_token_file: None,
            health_addr: None,
            tls: None,
        }
    }
}

/// A queue: its batching policy (owned by the queue) and the handler its
/// batches go to (owned by the handler).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueConfig {
    /// The policy fields, written at the top level of the queue's table.
    #[serde(flatten)]
    pub policy: Policy,
    /// What processes this queue's batches.
    pub handler: HandlerConfig,
    /// The Open Inference Protocol model this queue serves (its name is
    /// the queue's); unset: not served over the v2 protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v2: Option<ModelSpec>,
}

impl<'de> Deserialize<'de> for QueueConfig {
    /// The table minus `handler` is the policy, read with its own unknown
    /// field check (serde's `flatten` would let unknown fields through).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let handler = match table.remove("handler") {
            Some(h) => serde_json::from_value(h).map_err(D::Error::custom)?,
            None => HandlerConfig::default(),
        };
        let v2 = match table.remove("v2") {
            Some(m) => {
                Some(serde_json::from_value(m).map_err(|e| D::Error::custom(format!("v2: {e}")))?)
            }
            None => None,
        };
        let policy =
            serde_json::from_value(serde_json::Value::Object(table)).map_err(D::Error::custom)?;
        Ok(Self {
            policy,
            handler,
            v2,
        })
    }
}

impl QueueConfig {
    /// Checks this queue's values; `path` prefixes the field names and
    /// `max_message_bytes` is the server's `max_message_bytes`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        self.policy.validate(path, max_message_bytes)?;
        if let Some(model) = &self.v2 {
            model.validate(path, max_message_bytes)?;
        } else if self.handler.kind == HandlerKind::Kserve {
            return Err(invalid(
                format!("{path}.handler"),
                "kind \"kserve\" needs the queue's v2 = { inputs, outputs } (the tensors of a row it stacks)",
            ));
        }
        self.handler.validate(&format!("{path}.handler"))
    }
}

/// Upper bounds of the server fields.
mod limits {
    use std::time::Duration;

    /// `shutdown_grace`.
    pub const MAX_SHORT: Duration = Duration::from_secs(3600);
    /// `server.stream_window`.
    pub const MAX_STREAM_WINDOW: usize = 1 << 20;
    /// `server.max_message_bytes`.
    pub const MAX_MESSAGE_BYTES: usize = 1 << 30;
}

/// Checks the transport limits of `server` (see the README's Limits).
fn validate_transport(s: &ServerConfig) -> Result<(), ConfigError> {
    let range = |field: &str, value: u64, lo: u64, hi: u64| {
        if (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(invalid(
                format!("server.{field}"),
                format!("must be in {lo} ..= {hi}, got {value}"),
            ))
        }
    };
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    range(
        "max_concurrent_streams",
        s.max_concurrent_streams.into(),
        1,
        65_536,
    )?;
    range(
        "max_header_list_bytes",
        s.max_header_list_bytes.into(),
        1024,
        16 << 20,
    )?;
    range(
        "max_pending_reset_streams",
        n(s.max_pending_reset_streams),
        1,
        10_000,
    )?;
    range(
        "max_error_reset_streams",
        n(s.max_error_reset_streams),
        1,
        100_000,
    )?;
    range(
        "max_requests_per_connection",
        n(s.max_requests_per_connection),
        1,
        65_536,
    )?;
    range("max_connections", n(s.max_connections), 1, 1_000_000)?;
    duration_at_most(
        "server.keepalive_interval",
        s.keepalive_interval,
        limits::MAX_SHORT,
    )?;
    duration_at_most(
        "server.keepalive_timeout",
        s.keepalive_timeout,
        limits::MAX_SHORT,
    )?;
    if !s.keepalive_interval.is_zero() && s.keepalive_timeout.is_zero() {
        return Err(invalid(
            "server.keepalive_timeout",
            "must be > 0 when keepalive_interval is set",
        ));
    }
    Ok(())
}

/// Longest queue name; names are metric label values, so they stay short.
const MAX_QUEUE_NAME: usize = 64;

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] on bad TOML, unknown fields or wrong types.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Parses a JSON document with the same shape as the TOML (what the
    /// Helm chart renders from its values).
    ///
    /// # Errors
    /// [`ConfigError::Parse`] on bad JSON, unknown fields or wrong types.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Reads and parses a config file: JSON if its name ends in `.json`,
    /// else TOML.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the file cannot be read, else as
    /// [`Config::from_toml`] or [`Config::from_json`].
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// The embedded default configuration (an `echo` and a `sim` queue).
    ///
    /// # Panics
    /// Never in a released build: a unit test parses the embedded text.
    pub fn embedded_default() -> Self {
        Self::from_toml(DEFAULT_CONFIG_TOML).expect("embedded default config parses")
    }

    /// The configuration as TOML, the way a config file writes it (a
    /// handler shows only its kind's fields).
    ///
    /// # Errors
    /// A message if a value cannot be written as TOML.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|e| e.to_string())
    }

    /// Checks every value the types alone cannot, naming the first bad field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with the field's dotted path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.stream_window == 0 {
            return Err(invalid("server.stream_window", "must be ≥ 1"));
        }
        at_most(
            "server.stream_window",
            s.stream_window,
            limits::MAX_STREAM_WINDOW,
            "",
        )?;
        at_most(
            "server.max_message_bytes",
            s.max_message_bytes,
            limits::MAX_MESSAGE_BYTES,
            " bytes",
        )?;
        duration_at_most("server.shutdown_grace", s.shutdown_grace, limits::MAX_SHORT)?;
        if !(MIN_HTTP2_WINDOW..=MAX_HTTP2_WINDOW).contains(&s.http2_stream_window) {
            return Err(invalid(
                "server.http2_stream_window",
                format!("must be between {MIN_HTTP2_WINDOW} and {MAX_HTTP2_WINDOW} bytes"),
            ));
        }
        if !(s.http2_stream_window..=MAX_HTTP2_WINDOW).contains(&s.http2_connection_window) {
            return Err(invalid(
                "server.http2_connection_window",
                format!(
                    "must be between server.http2_stream_window ({}) and {MAX_HTTP2_WINDOW} bytes",
                    s.http2_stream_window
                ),
            ));
        }
        validate_transport(s)?;
        if s.max_message_bytes < 1024 {
            return Err(invalid("server.max_message_bytes", "must be ≥ 1024"));
        }
        if s.grpc_addr.port() != 0 && s.grpc_addr == s.metrics_addr {
            return Err(invalid(
                "server.metrics_addr",
                "must differ from server.grpc_addr",
            ));
        }
        if let Some(control) = s.control_addr
            && control.port() != 0
            && (control == s.grpc_addr || control == s.metrics_addr)
        {
            return Err(invalid(
                "server.control_addr",
                "must differ from server.grpc_addr and server.metrics_addr",
            ));
        }
        for (name, queue) in &self.queues {
            validate_queue_name(name)?;
            queue.validate(&format!("queues.{name}"), s.max_message_bytes)?;
        }
        Ok(())
    }
}

impl Config {
    /// Checks that every file the configuration names can be read and
    /// holds what it should (a PEM block, a non-empty token), so a
    /// missing certificate or token file stops the server before it binds
    /// a port, naming the field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field of the first bad file.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if let Some(tls) = &s.tls {
            check_pem("server.tls.cert_file", &tls.cert_file)?;
            check_pem("server.tls.key_file", &tls.key_file)?;
            if let Some(ca) = &tls.client_ca_file {
                check_pem("server.tls.client_ca_file", ca)?;
            }
        }
        let token_from_env = std::env::var(ENV_CONTROL_TOKEN).is_ok_and(|t| !t.trim().is_empty());
        if let Some(path) = &s.control_token_file
            && !token_from_env
        {
            let token = read_file("server.control_token_file", path)?;
            if String::from_utf8_lossy(&token).trim().is_empty() {
                return Err(invalid(
                    "server.control_token_file",
                    format!("{} is empty", path.display()),
                ));
            }
        }
        for (name, queue) in &self.queues {
            if let Some(ca) = &queue.handler.tls_ca_file {
                check_pem(&format!("queues.{name}.handler.tls_ca_file"), ca)?;
            }
        }
        Ok(())
    }
}

fn read_file(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(field, format!("cannot read {}: {e}", path.display())))
}

fn check_pem(field: &str, path: &Path) -> Result<(), ConfigError> {
    let text = read_file(field, path)?;
    if !String::from_utf8_lossy(&text).contains("-----BEGIN ") {
        return Err(invalid(
            field,
            format!("{} holds no PEM block (-----BEGIN …)", path.display()),
        ));
    }
    Ok(())
}

/// The variable that carries the control-plane token.
pub const ENV_CONTROL_TOKEN: &str = "BATCHGATE_CONTROL_TOKEN";

impl ServerConfig {
    /// The control-plane token: `BATCHGATE_CONTROL_TOKEN` if set, else the
    /// contents of `control_token_file`, else none.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if the token file cannot be read.
    pub fn control_token(&self) -> Result<Option<String>, ConfigError> {
        if let Ok(token) = std::env::var(ENV_CONTROL_TOKEN)
            && !token.trim().is_empty()
        {
            return Ok(Some(token));
        }
        let Some(path) = &self.control_token_file else {
            return Ok(None);
        };
        std::fs::read_to_string(path).map(Some).map_err(|e| {
            invalid(
                "server.control_token_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })
    }
}

/// Checks a queue name: it becomes a metric label and a log field.
///
/// # Errors
/// [`ConfigError::Invalid`] for an empty, long or oddly spelled name.
pub fn validate_queue_name(name: &str) -> Result<(), ConfigError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > MAX_QUEUE_NAME || !ok_chars {
        return Err(invalid(
            format!("queues.{}", crate::error::quoted(name)),
            format!("name must be 1..={MAX_QUEUE_NAME} characters of A-Z a-z 0-9 _ - ."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::{collection::vec, prelude::*, sample::select};

    /// A TOML value of any shape a field could be given.
    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            (0u64..70_000).prop_map(|v| v.to_string()),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:?}")),
            "\"[0-9]{1,14}(ns|us|ms|s|m|h|d|y)\"",
            "\"[a-z0-9:/._-]{0,12}\"",
            Just("true".to_owned()),
            vec(0u64..100_000, 0..5).prop_map(|v| format!("{v:?}")),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
        ]
    }

    fn lines(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
        vec((select(fields), any_value()), 0..6).prop_map(|kv| {
            kv.into_iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect()
        })
    }

    const SERVER_FIELDS: &[&str] = &[
        "stream_window",
        "http2_stream_window",
        "http2_connection_window",
        "max_message_bytes",
        "max_concurrent_streams",
        "max_header_list_bytes",
        "max_pending_reset_streams",
        "max_error_reset_streams",
        "max_requests_per_connection",
        "max_connections",
        "keepalive_interval",
        "keepalive_timeout",
        "shutdown_grace",
        "log_format",
        "grpc_addr",
    ];
    const QUEUE_FIELDS: &[&str] = &[
        "max_batch_size",
        "max_batch_bytes",
        "max_delay",
        "min_batch_size",
        "strict",
        "mode",
        "max_queue_items",
        "max_in_flight_batches",
        "item_timeout",
        "priority_levels",
        "allowed_batch_sizes",
        "target_latency",
        "shed",
        "shards",
        "key_attribute",
        "max_keys",
        "weights",
        "cost",
        "cost_attribute",
        "max_batch_cost",
        "cost_model",
        "oversize",
        "cost_buckets",
    ];
    const HANDLER_FIELDS: &[&str] = &[
        "base",
        "per_item",
        "per_cost",
        "padded",
        "endpoints",
        "max_in_flight",
        "timeout",
        "retries",
        "retry_backoff",
        "retry_backoff_max",
        "bisect",
        "eject_after",
        "eject_for",
        "encoding",
        "model",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]
        /// Fuzz: any document of known fields with values of any shape is
        /// refused with a message (naming the field when it is a value
        /// problem) or is a valid config, never a panic.
        #[test]
        fn fuzz_config(
            server in lines(SERVER_FIELDS),
            queue in lines(QUEUE_FIELDS),
            kind in select(&["echo", "sim", "grpc", "http", "kserve", "nope"][..]),
            handler in vec((select(HANDLER_FIELDS), any_value()), 0..3),
        ) {
            let handler: Vec<String> = handler.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let doc = format!(
                "[server]\n{server}\n[queues.q]\n{queue}handler = {{ kind = \"{kind}\"{}{} }}\n",
                if handler.is_empty() { "" } else { ", " },
                handler.join(", ")
            );
            match Config::from_toml(&doc) {
                Ok(config) => match config.validate() {
                    Ok(()) => {}
                    Err(ConfigError::Invalid { field, problem }) => {
                        prop_assert!(!field.is_empty() && !problem.is_empty());
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                },
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    use super::*;

    #[test]
    fn embedded_default_parses_validates_and_has_echo_and_sim() {
        let config = Config::embedded_default();
        config.validate().unwrap();
        assert_eq!(config.queues["echo"].handler.kind, HandlerKind::Echo);
        assert_eq!(config.queues["sim"].handler.kind, HandlerKind::Sim);
        assert_eq!(config.server.grpc_addr.port(), 50051);
        assert_eq!(config.server.metrics_addr.port(), 9464);
    }

    #[test]
    fn durations_and_defaults() {
        let config = Config::from_toml(
            r#"
            [queues.q]
            max_delay = "750us"
            handler = { kind = "sim", base = "5ms", per_item = "20us" }
            "#,
        )
        .unwrap();
        let q = &config.queues["q"];
        assert_eq!(q.policy.max_delay, Duration::from_micros(750));
        assert_eq!(
            q.policy.max_batch_size,
            QueueConfig::default().policy.max_batch_size
        );
        assert_eq!(q.handler.kind, HandlerKind::Sim);
        assert_eq!(q.handler.base, Duration::from_millis(5));
        assert_eq!(q.handler.per_item, Duration::from_micros(20));
    }

    #[test]
    fn validation_names_the_field() {
        let mut config = Config::from_toml("[queues.sim]\nmax_batch_size = 0\n").unwrap();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "queues.sim.max_batch_size must be ≥ 1"
        );
        config.queues.get_mut("sim").unwrap().policy.max_batch_size = 8;
        config.queues.get_mut("sim").unwrap().policy.min_batch_size = 9;
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "queues.sim.min_batch_size must be in 1..=8 (max_batch_size)"
        );
    }

    #[test]
    fn bad_names_types_and_unknown_fields_are_refused() {
        let err = Config::from_toml("[queues.\"a b\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("name must be"), "{err}");
        let err = Config::from_toml("[queues.q]\nmax_batch_size = \"big\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
        let err = Config::from_toml("[queues.q]\nmax_batch_sise = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_batch_sise"), "{err}");
        let err = Config::from_toml("[queues.q]\nhandler = { kind = \"gpu\" }\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
    }

    #[test]
    fn json_has_the_same_shape() {
        let config = Config::from_json(
            r#"{"server": {"grpc_addr": "0.0.0.0:50051", "tls": {"cert_file": "/t/c.pem", "key_file": "/t/k.pem"}},
                "queues": {"q": {"max_delay": "3ms", "handler": {"kind": "sim", "base": "1ms"}}}}"#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.queues["q"].policy.max_delay,
            Duration::from_millis(3)
        );
        assert!(config.server.tls.unwrap().client_ca_file.is_none());
        assert!(Config::from_json(r#"{"queues": {"q": {"max_batch_size": "x"}}}"#).is_err());
    }

    #[test]
    fn remote_handlers_need_good_endpoints() {
        let config = Config::from_toml(
            "[queues.r]\nhandler = { kind = \"grpc\", endpoints = [\"http://127.0.0.1:7000\", \"tcp://x\"] }\n",
        )
        .unwrap();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "queues.r.handler.endpoints[1] \"tcp://x\" must start with http:// or https://"
        );
        let config = Config::from_toml(
            "[queues.r]\nhandler = { kind = \"http\", endpoints = [\"http://127.0.0.1:7000/batch\"], max_in_flight = 0 }\n",
        )
        .unwrap();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "queues.r.handler.max_in_flight must be ≥ 1"
        );
    }

    /// The first validation error of a config text, as printed.
    fn first_error(toml: &str) -> String {
        match Config::from_toml(toml) {
            Ok(config) => config
                .validate()
                .map_or_else(|e| e.to_string(), |()| "valid".into()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_field_has_a_sane_upper_bound() {
        let cases = [
            (
                "[server]\nmax_concurrent_streams = 0\n",
                "server.max_concurrent_streams must be in 1 ..= 65536, got 0",
            ),
            (
                "[server]\nmax_concurrent_streams = 100000\n",
                "server.max_concurrent_streams must be in 1 ..= 65536, got 100000",
            ),
            (
                "[server]\nmax_header_list_bytes = 100\n",
                "server.max_header_list_bytes must be in 1024 ..= 16777216, got 100",
            ),
            (
                "[server]\nmax_pending_reset_streams = 0\n",
                "server.max_pending_reset_streams must be in 1 ..= 10000, got 0",
            ),
            (
                "[server]\nmax_error_reset_streams = 1000000\n",
                "server.max_error_reset_streams must be in 1 ..= 100000, got 1000000",
            ),
            (
                "[server]\nmax_requests_per_connection = 0\n",
                "server.max_requests_per_connection must be in 1 ..= 65536, got 0",
            ),
            (
                "[server]\nmax_connections = 0\n",
                "server.max_connections must be in 1 ..= 1000000, got 0",
            ),
            (
                "[server]\nkeepalive_interval = \"2h\"\n",
                "server.keepalive_interval must be ≤ 1h",
            ),
            (
                "[server]\nkeepalive_timeout = \"0s\"\n",
                "server.keepalive_timeout must be > 0 when keepalive_interval is set",
            ),
            (
                "[queues.q]\nmax_batch_size = 200\nmax_queue_items = 100\n",
                "queues.q.max_batch_size must be ≤ max_queue_items (100): a batch that size could never fill",
            ),
            (
                "[queues.q]\nmax_delay = \"500000000y\"\n",
                "queues.q.max_delay must be ≤ 1h",
            ),
            (
                "[queues.q]\nitem_timeout = \"500000000y\"\n",
                "queues.q.item_timeout must be ≤ 1day",
            ),
            (
                "[queues.q]\nmax_queue_items = 18446744073709551615\n",
                "queues.q.max_queue_items must be ≤ 10000000",
            ),
            (
                "[queues.q]\nmax_in_flight_batches = 5000\n",
                "queues.q.max_in_flight_batches must be ≤ 1024",
            ),
            (
                "[queues.q]\nmax_batch_size = 2000000\nmax_queue_items = 10000000\n",
                "queues.q.max_batch_size must be ≤ 1000000",
            ),
            (
                "[queues.q]\nhandler = { kind = \"sim\", base = \"2h\" }\n",
                "queues.q.handler.base must be ≤ 1h",
            ),
            (
                "[queues.q]\nhandler = { kind = \"grpc\", timeout = \"500000000y\" }\n",
                "queues.q.handler.timeout must be ≤ 1day",
            ),
            (
                "[queues.q]\nhandler = { kind = \"grpc\", retries = 1000 }\n",
                "queues.q.handler.retries must be ≤ 100",
            ),
            (
                "[queues.q]\nhandler = { kind = \"grpc\", retry_backoff = \"2s\", retry_backoff_max = \"1s\" }\n",
                "queues.q.handler.retry_backoff must be ≤ retry_backoff_max",
            ),
            (
                "[queues.q]\nhandler = { kind = \"http\", eject_after = 0 }\n",
                "queues.q.handler.eject_after must be ≥ 1",
            ),
            (
                "[queues.q]\nhandler = { kind = \"http\", max_in_flight = 100000 }\n",
                "queues.q.handler.max_in_flight must be ≤ 1024",
            ),
            (
                "[queues.q]\nmax_batch_cost = 9007199254740993\n",
                "queues.q.max_batch_cost must be ≤ 9007199254740992",
            ),
            (
                "[queues.q]\ncost_buckets = [64, 32]\n",
                "queues.q.cost_buckets must be strictly ascending, got [64, 32]",
            ),
            (
                "[queues.q]\ncost_buckets = [0, 32]\n",
                "queues.q.cost_buckets bounds must be ≥ 1",
            ),
            (
                "[server]\nshutdown_grace = \"500000000y\"\n",
                "server.shutdown_grace must be ≤ 1h",
            ),
            (
                "[server]\nstream_window = 100000000\n",
                "server.stream_window must be ≤ 1048576",
            ),
            (
                "[server]\nmax_message_bytes = 100000000000\n",
                "server.max_message_bytes must be ≤ 1073741824 bytes",
            ),
            (
                "[server]\nhttp2_stream_window = 100\n",
                "server.http2_stream_window must be between 1024 and 2147483647 bytes",
            ),
            (
                "[server]\nhttp2_stream_window = 1048576\nhttp2_connection_window = 65536\n",
                "server.http2_connection_window must be between server.http2_stream_window (1048576) and 2147483647 bytes",
            ),
        ];
        for (toml, want) in cases {
            assert_eq!(first_error(toml), want, "{toml}");
        }
    }

    #[test]
    fn max_batch_bytes_fits_in_a_message() {
        let err = first_error(
            "[server]\nmax_message_bytes = 65536\n[queues.q]\nmax_batch_bytes = 65537\n",
        );
        assert!(
            err.starts_with("queues.q.max_batch_bytes must be ≤ server.max_message_bytes (65536)"),
            "{err}"
        );
        assert_eq!(
            first_error(
                "[server]\nmax_message_bytes = 65536\n[queues.q]\nmax_batch_bytes = 65536\n"
            ),
            "valid"
        );
    }

    #[test]
    fn named_files_are_checked_before_anything_binds() {
        let dir = std::env::temp_dir().join(format!("batchgate-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ok.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let missing = dir.join("missing.pem");
        let check = |toml: String| {
            Config::from_toml(&toml)
                .unwrap()
                .check_files()
                .map_err(|e| e.to_string())
        };
        let (pem, not_pem, missing) = (pem.display(), not_pem.display(), missing.display());
        let err = check(format!(
            "[server.tls]\ncert_file = \"{missing}\"\nkey_file = \"{pem}\"\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with(&format!("server.tls.cert_file cannot read {missing}")),
            "{err}"
        );
        let err = check(format!(
            "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{not_pem}\"\n"
        ))
        .unwrap_err();
        assert_eq!(
            err,
            format!("server.tls.key_file {not_pem} holds no PEM block (-----BEGIN …)")
        );
        let err = check(format!(
            "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{pem}\"\nclient_ca_file = \"{missing}\"\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("server.tls.client_ca_file cannot read"),
            "{err}"
        );
        let err = check(format!(
            "[queues.r]\nhandler = {{ kind = \"grpc\", tls_ca_file = \"{missing}\" }}\n"
        ))
        .unwrap_err();
        assert!(
            err.starts_with("queues.r.handler.tls_ca_file cannot read"),
            "{err}"
        );
        check(format!(
            "[server.tls]\ncert_file = \"{pem}\"\nkey_file = \"{pem}\"\n"
        ))
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_printed_config_reads_back_the_same() {
        let mut config = Config::from_toml(
            r#"
            [server]
            control_addr = "127.0.0.1:50052"
            [queues.r]
            max_delay = "1m 30s"
            handler = { kind = "grpc", endpoints = ["http://127.0.0.1:7000"], retries = 5 }
            [queues.h]
            handler = { kind = "http", json_payloads = true }
            "#,
        )
        .unwrap();
        config.queues.insert(
            "sim".into(),
            Config::embedded_default().queues["sim"].clone(),
        );
        let text = config.to_toml().unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), config, "{text}");
        assert!(text.contains("max_delay = \"1m 30s\""), "{text}");
        assert!(
            !text.contains("json_payloads = false"),
            "grpc shows no http fields: {text}"
        );
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json(&json).unwrap(), config);
    }

    #[test]
    fn handler_fields_of_another_kind_are_refused() {
        let err = Config::from_toml(
            "[queues.s]\nhandler = { kind = \"sim\", endpoints = [\"http://x:1\"] }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("handler field `endpoints` does not apply to kind \"sim\" (it takes only base, per_item, per_cost, padded)"),
            "{err}"
        );
        let err = Config::from_toml("[queues.e]\nhandler = { kind = \"echo\", base = \"1ms\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("(it takes no other fields)"), "{err}");
        let err =
            Config::from_toml("[queues.g]\nhandler = { kind = \"grpc\", json_payloads = true }\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("`json_payloads` does not apply to kind \"grpc\""),
            "{err}"
        );
        let err = Config::from_toml("[queues.g]\nhandler = { kind = \"grpc\", colour = 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}

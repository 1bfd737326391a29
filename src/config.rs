//! Configuration: a TOML document (the embedded default, or `--config FILE`),
//! then environment variables and flags on top, then [`Config::validate`].
//!
//! The embedded default is `examples/batchgate.toml`, so the commented example
//! and what `batchgate serve` runs with can never drift apart.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

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

/// Server TLS: certificate files (PEM), so they can come from a Secret.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert_file: std::path::PathBuf,
    /// Its private key.
    pub key_file: std::path::PathBuf,
    /// CA bundle for client certificates; set: every client must present a
    /// certificate it signed (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<std::path::PathBuf>,
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
            log_format: LogFormat::Compact,
            control_addr: None,
            control_token_file: None,
            health_addr: None,
            tls: None,
        }
    }
}

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

/// A queue: its batching policy and the handler its batches go to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// A batch closes when it holds this many items (trigger `size`).
    pub max_batch_size: usize,
    /// A batch closes when its payloads reach this many bytes (trigger
    /// `bytes`); a single payload larger than this is refused.
    pub max_batch_bytes: usize,
    /// A batch closes when its oldest item has waited this long (trigger
    /// `delay`), provided it holds `min_batch_size` items.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// A delay-triggered batch needs at least this many items; fewer wait on
    /// (until size, bytes, flush, their own timeout or drain).
    pub min_batch_size: usize,
    /// With `strict`, only live items (not cancelled, not expired) count
    /// towards `min_batch_size`.
    pub strict: bool,
    /// `auto` dispatches by the triggers above; `manual` only on flush.
    pub mode: Mode,
    /// Items the queue may hold; beyond it Submit gets RESOURCE_EXHAUSTED.
    pub max_queue_items: usize,
    /// Batches of this queue the handler may process at once.
    pub max_in_flight_batches: usize,
    /// How long an item may wait when its request names no timeout.
    #[serde(with = "humantime_serde")]
    pub item_timeout: Duration,
    /// Number of priority levels: items may carry priority 0..levels-1.
    pub priority_levels: u32,
    /// What processes this queue's batches.
    pub handler: HandlerConfig,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 64,
            max_batch_bytes: 4 * 1024 * 1024,
            max_delay: Duration::from_millis(2),
            min_batch_size: 1,
            strict: false,
            mode: Mode::Auto,
            max_queue_items: 100_000,
            max_in_flight_batches: 4,
            item_timeout: Duration::from_secs(30),
            priority_levels: 4,
            handler: HandlerConfig::default(),
        }
    }
}

/// When a queue dispatches.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Size, bytes and delay triggers dispatch.
    #[default]
    Auto,
    /// Only an explicit flush (or drain) dispatches.
    Manual,
}

/// The kinds of handler.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    /// Returns every payload and its attributes unchanged.
    #[default]
    Echo,
    /// A simulated model: each batch takes `base + per_item × n`, then echoes.
    Sim,
    /// A remote backend implementing `batchgate.v1.Backend` over gRPC.
    Grpc,
    /// A remote backend taking one JSON POST per batch.
    Http,
}

impl HandlerKind {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Sim => "sim",
            HandlerKind::Grpc => "grpc",
            HandlerKind::Http => "http",
        }
    }

    /// Parses a name as written in the config.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "echo" => Ok(HandlerKind::Echo),
            "sim" => Ok(HandlerKind::Sim),
            "grpc" => Ok(HandlerKind::Grpc),
            "http" => Ok(HandlerKind::Http),
            other => Err(format!(
                "unknown handler kind {other:?} (echo, sim, grpc, http)"
            )),
        }
    }

    /// Whether batches go to remote endpoints.
    pub fn is_remote(self) -> bool {
        matches!(self, HandlerKind::Grpc | HandlerKind::Http)
    }
}

/// Which handler processes a queue's batches, and its settings. A field
/// that does not apply to the kind is refused when the config is read (a
/// `sim` with `endpoints` is a mistake, not something to ignore).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "RawHandler", into = "RawHandler")]
pub struct HandlerConfig {
    /// `echo`, `sim`, `grpc` or `http`.
    pub kind: HandlerKind,
    /// sim: fixed cost of one batch.
    pub base: Duration,
    /// sim: added cost of each item in the batch.
    pub per_item: Duration,
    /// grpc/http: endpoint URLs (more may register at runtime).
    pub endpoints: Vec<String>,
    /// grpc/http: batches one endpoint may process at once.
    pub max_in_flight: usize,
    /// grpc/http: longest a backend call may take (the batch's earliest item
    /// deadline may cut it shorter).
    pub timeout: Duration,
    /// grpc/http: retries of a batch that failed for availability reasons
    /// (connection, UNAVAILABLE, 5xx), each on another endpoint if any.
    pub retries: u32,
    /// grpc/http: wait before the first retry; each further retry waits
    /// twice as long (up to `retry_backoff_max`), plus a random jitter of
    /// up to the same again, and never past the batch's deadline.
    pub retry_backoff: Duration,
    /// grpc/http: longest wait between two retries.
    pub retry_backoff_max: Duration,
    /// grpc/http: split a batch the backend rejected as a whole, so a poison
    /// item fails alone.
    pub bisect: bool,
    /// grpc/http: consecutive failures after which an endpoint is ejected.
    pub eject_after: u32,
    /// grpc/http: how long an ejected endpoint gets no batches.
    pub eject_for: Duration,
    /// grpc: call `ProcessBatchStream` and forward each result as it comes.
    pub streaming: bool,
    /// http: payloads are JSON documents, sent and returned as raw JSON
    /// instead of base64 strings.
    pub json_payloads: bool,
    /// grpc: CA bundle (PEM) to verify `https://` endpoints; unset: the
    /// public web PKI roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            kind: HandlerKind::Echo,
            base: Duration::from_millis(5),
            per_item: Duration::from_micros(20),
            endpoints: Vec::new(),
            max_in_flight: 4,
            timeout: Duration::from_secs(30),
            retries: 2,
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_secs(1),
            bisect: true,
            eject_after: 3,
            eject_for: Duration::from_secs(5),
            streaming: false,
            json_payloads: false,
            tls_ca_file: None,
        }
    }
}

/// The handler table as written: every field optional, so reading can tell
/// a field that was given from a default, and printing can leave out the
/// fields of other kinds.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHandler {
    #[serde(default)]
    pub(crate) kind: HandlerKind,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) base: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) per_item: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_in_flight: Option<usize>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retries: Option<u32>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) retry_backoff: Option<Duration>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) retry_backoff_max: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bisect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) eject_after: Option<u32>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) eject_for: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) streaming: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) json_payloads: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tls_ca_file: Option<std::path::PathBuf>,
}

/// The handler fields each kind takes (besides `kind`).
fn fields_of(kind: HandlerKind) -> &'static [&'static str] {
    match kind {
        HandlerKind::Echo => &[],
        HandlerKind::Sim => &["base", "per_item"],
        HandlerKind::Grpc => &[
            "endpoints",
            "max_in_flight",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "bisect",
            "eject_after",
            "eject_for",
            "streaming",
            "tls_ca_file",
        ],
        HandlerKind::Http => &[
            "endpoints",
            "max_in_flight",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "bisect",
            "eject_after",
            "eject_for",
            "json_payloads",
        ],
    }
}

impl TryFrom<RawHandler> for HandlerConfig {
    type Error = String;

    fn try_from(raw: RawHandler) -> Result<Self, String> {
        let given = [
            ("base", raw.base.is_some()),
            ("per_item", raw.per_item.is_some()),
            ("endpoints", raw.endpoints.is_some()),
            ("max_in_flight", raw.max_in_flight.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("retries", raw.retries.is_some()),
            ("retry_backoff", raw.retry_backoff.is_some()),
            ("retry_backoff_max", raw.retry_backoff_max.is_some()),
            ("bisect", raw.bisect.is_some()),
            ("eject_after", raw.eject_after.is_some()),
            ("eject_for", raw.eject_for.is_some()),
            ("streaming", raw.streaming.is_some()),
            ("json_payloads", raw.json_payloads.is_some()),
            ("tls_ca_file", raw.tls_ca_file.is_some()),
        ];
        let allowed = fields_of(raw.kind);
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            let takes = if allowed.is_empty() {
                "no other fields".to_owned()
            } else {
                format!("only {}", allowed.join(", "))
            };
            return Err(format!(
                "handler field `{field}` does not apply to kind \"{}\" (it takes {takes})",
                raw.kind.as_str()
            ));
        }
        let d = HandlerConfig::of(raw.kind);
        Ok(HandlerConfig {
            kind: raw.kind,
            base: raw.base.unwrap_or(d.base),
            per_item: raw.per_item.unwrap_or(d.per_item),
            endpoints: raw.endpoints.unwrap_or(d.endpoints),
            max_in_flight: raw.max_in_flight.unwrap_or(d.max_in_flight),
            timeout: raw.timeout.unwrap_or(d.timeout),
            retries: raw.retries.unwrap_or(d.retries),
            retry_backoff: raw.retry_backoff.unwrap_or(d.retry_backoff),
            retry_backoff_max: raw.retry_backoff_max.unwrap_or(d.retry_backoff_max),
            bisect: raw.bisect.unwrap_or(d.bisect),
            eject_after: raw.eject_after.unwrap_or(d.eject_after),
            eject_for: raw.eject_for.unwrap_or(d.eject_for),
            streaming: raw.streaming.unwrap_or(d.streaming),
            json_payloads: raw.json_payloads.unwrap_or(d.json_payloads),
            tls_ca_file: raw.tls_ca_file.or(d.tls_ca_file),
        })
    }
}

impl From<HandlerConfig> for RawHandler {
    /// The fields of the handler's kind, every one with its effective value.
    fn from(h: HandlerConfig) -> Self {
        let kind = h.kind;
        let remote = kind.is_remote();
        RawHandler {
            kind,
            base: (kind == HandlerKind::Sim).then_some(h.base),
            per_item: (kind == HandlerKind::Sim).then_some(h.per_item),
            endpoints: remote.then_some(h.endpoints),
            max_in_flight: remote.then_some(h.max_in_flight),
            timeout: remote.then_some(h.timeout),
            retries: remote.then_some(h.retries),
            retry_backoff: remote.then_some(h.retry_backoff),
            retry_backoff_max: remote.then_some(h.retry_backoff_max),
            bisect: remote.then_some(h.bisect),
            eject_after: remote.then_some(h.eject_after),
            eject_for: remote.then_some(h.eject_for),
            streaming: (kind == HandlerKind::Grpc).then_some(h.streaming),
            json_payloads: (kind == HandlerKind::Http).then_some(h.json_payloads),
            tls_ca_file: if kind == HandlerKind::Grpc {
                h.tls_ca_file
            } else {
                None
            },
        }
    }
}

impl HandlerConfig {
    /// A handler of `kind` with default settings.
    pub fn of(kind: HandlerKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Checks the settings that apply to the kind; `path` prefixes names.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        if self.kind == HandlerKind::Sim {
            duration_at_most(&field("base"), self.base, limits::MAX_SHORT)?;
            duration_at_most(&field("per_item"), self.per_item, limits::MAX_SHORT)?;
        }
        if !self.kind.is_remote() {
            return Ok(());
        }
        if self.max_in_flight == 0 {
            return Err(invalid(field("max_in_flight"), "must be ≥ 1"));
        }
        at_most(
            &field("max_in_flight"),
            self.max_in_flight,
            limits::MAX_IN_FLIGHT,
            "",
        )?;
        if self.timeout.is_zero() {
            return Err(invalid(field("timeout"), "must be > 0"));
        }
        duration_at_most(&field("timeout"), self.timeout, limits::MAX_TIMEOUT)?;
        at_most(&field("retries"), self.retries, limits::MAX_RETRIES, "")?;
        duration_at_most(
            &field("retry_backoff"),
            self.retry_backoff,
            limits::MAX_SHORT,
        )?;
        duration_at_most(
            &field("retry_backoff_max"),
            self.retry_backoff_max,
            limits::MAX_SHORT,
        )?;
        if self.retry_backoff > self.retry_backoff_max {
            return Err(invalid(
                field("retry_backoff"),
                "must be ≤ retry_backoff_max",
            ));
        }
        if self.eject_after == 0 {
            return Err(invalid(field("eject_after"), "must be ≥ 1"));
        }
        at_most(
            &field("eject_after"),
            self.eject_after,
            limits::MAX_EJECT_AFTER,
            "",
        )?;
        duration_at_most(&field("eject_for"), self.eject_for, limits::MAX_TIMEOUT)?;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            validate_endpoint(endpoint)
                .map_err(|problem| invalid(format!("{path}.endpoints[{i}]"), problem))?;
        }
        Ok(())
    }
}

/// Checks an endpoint URL: `http://host:port` (or `https://`), nothing else.
///
/// # Errors
/// What is wrong with it.
pub fn validate_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// A configuration that cannot run: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    /// The TOML did not parse or had unknown or mistyped fields.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A field has a value the server cannot run with.
    #[error("{field} {problem}")]
    Invalid { field: String, problem: String },
}

fn invalid(field: impl fmt::Display, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// Upper bounds of the numeric fields: generous for any real deployment,
/// small enough that no arithmetic on them overflows (a duration added to
/// the clock, a count of items held in memory).
pub mod limits {
    use std::time::Duration;

    /// `max_delay`.
    pub const MAX_DELAY: Duration = Duration::from_secs(3600);
    /// `item_timeout`, a handler's `timeout`, `eject_for`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// `shutdown_grace`, `retry_backoff`, `retry_backoff_max`, sim `base`
    /// and `per_item`.
    pub const MAX_SHORT: Duration = Duration::from_secs(3600);
    /// `max_queue_items`.
    pub const MAX_QUEUE_ITEMS: usize = 10_000_000;
    /// `max_batch_size`.
    pub const MAX_BATCH_SIZE: usize = 1_000_000;
    /// `max_in_flight_batches` and a handler's `max_in_flight`.
    pub const MAX_IN_FLIGHT: usize = 1024;
    /// A handler's `retries`.
    pub const MAX_RETRIES: u32 = 100;
    /// A handler's `eject_after`.
    pub const MAX_EJECT_AFTER: u32 = 10_000;
    /// `server.stream_window`.
    pub const MAX_STREAM_WINDOW: usize = 1 << 20;
    /// `server.max_message_bytes`.
    pub const MAX_MESSAGE_BYTES: usize = 1 << 30;
}

/// Checks `value <= max` for field `field`.
fn at_most<T: PartialOrd + fmt::Debug>(
    field: &str,
    value: T,
    max: T,
    unit: &str,
) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(field, format!("must be ≤ {max:?}{unit}")));
    }
    Ok(())
}

/// Checks that a duration is at most `max`, printing it as the config
/// writes durations.
fn duration_at_most(field: &str, value: Duration, max: Duration) -> Result<(), ConfigError> {
    if value > max {
        return Err(invalid(
            field,
            format!("must be ≤ {}", humantime::format_duration(max)),
        ));
    }
    Ok(())
}

/// Longest queue name; names are metric label values, so they stay short.
const MAX_QUEUE_NAME: usize = 64;
/// Most priority levels a queue may have (each is a FIFO of its own).
const MAX_PRIORITY_LEVELS: u32 = 64;

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

impl QueueConfig {
    /// Checks this queue's values; `path` prefixes the field names and
    /// `max_message_bytes` is the server's `max_message_bytes`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        if self.max_batch_size == 0 {
            return Err(invalid(field("max_batch_size"), "must be ≥ 1"));
        }
        at_most(
            &field("max_batch_size"),
            self.max_batch_size,
            limits::MAX_BATCH_SIZE,
            "",
        )?;
        if self.max_batch_size > self.max_queue_items {
            return Err(invalid(
                field("max_batch_size"),
                format!(
                    "must be ≤ max_queue_items ({}): a batch that size could never fill",
                    self.max_queue_items
                ),
            ));
        }
        if self.max_batch_bytes == 0 {
            return Err(invalid(field("max_batch_bytes"), "must be ≥ 1"));
        }
        if self.max_batch_bytes > max_message_bytes {
            return Err(invalid(
                field("max_batch_bytes"),
                format!(
                    "must be ≤ server.max_message_bytes ({max_message_bytes}): a batch goes to a remote backend as one message, and gRPC servers refuse messages over their limit (4 MiB by default); raise server.max_message_bytes first"
                ),
            ));
        }
        duration_at_most(&field("max_delay"), self.max_delay, limits::MAX_DELAY)?;
        if self.min_batch_size == 0 || self.min_batch_size > self.max_batch_size {
            return Err(invalid(
                field("min_batch_size"),
                format!("must be in 1..={} (max_batch_size)", self.max_batch_size),
            ));
        }
        if self.max_queue_items == 0 {
            return Err(invalid(field("max_queue_items"), "must be ≥ 1"));
        }
        at_most(
            &field("max_queue_items"),
            self.max_queue_items,
            limits::MAX_QUEUE_ITEMS,
            "",
        )?;
        if self.max_in_flight_batches == 0 {
            return Err(invalid(field("max_in_flight_batches"), "must be ≥ 1"));
        }
        at_most(
            &field("max_in_flight_batches"),
            self.max_in_flight_batches,
            limits::MAX_IN_FLIGHT,
            "",
        )?;
        if self.item_timeout.is_zero() {
            return Err(invalid(field("item_timeout"), "must be > 0"));
        }
        duration_at_most(
            &field("item_timeout"),
            self.item_timeout,
            limits::MAX_TIMEOUT,
        )?;
        if self.priority_levels == 0 || self.priority_levels > MAX_PRIORITY_LEVELS {
            return Err(invalid(
                field("priority_levels"),
                format!("must be in 1..={MAX_PRIORITY_LEVELS}"),
            ));
        }
        self.handler.validate(&field("handler"))
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(q.max_delay, Duration::from_micros(750));
        assert_eq!(q.max_batch_size, QueueConfig::default().max_batch_size);
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
        config.queues.get_mut("sim").unwrap().max_batch_size = 8;
        config.queues.get_mut("sim").unwrap().min_batch_size = 9;
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
        assert_eq!(config.queues["q"].max_delay, Duration::from_millis(3));
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
            err.contains("handler field `endpoints` does not apply to kind \"sim\" (it takes only base, per_item)"),
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

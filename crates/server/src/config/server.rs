//! The `[server]` table: listeners, HTTP/2 windows and transport limits,
//! TLS and the control token, with their defaults and checks.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

use super::{LogFormat, TlsConfig};
use crate::{
    limits::server as limits,
    validation::{ConfigError, invalid},
};

/// Default HTTP/2 stream window (bytes); see [`ServerConfig::http2_stream_window`].
pub const DEFAULT_HTTP2_STREAM_WINDOW: u32 = 64 * 1024;
/// Default HTTP/2 connection window (bytes); see
/// [`ServerConfig::http2_connection_window`].
pub const DEFAULT_HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Largest HTTP/2 window (bytes): 2^31 - 1, the protocol's limit.
const MAX_HTTP2_WINDOW: u32 = limits::HTTP2_WINDOW.max;

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
    /// Bytes the server may hold for items not yet answered (payload,
    /// attributes and a measured per-item overhead), all queues together;
    /// a request that would pass it is refused RESOURCE_EXHAUSTED before
    /// any item is built. Keep it well under the process's memory limit.
    pub max_pending_bytes: usize,
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
    /// The Open Inference Protocol's REST side (HTTP/1.1, plaintext);
    /// unset: not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    /// The console (`/ui/`) on a port of its own; unset: on the metrics
    /// port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<SocketAddr>,
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
            max_pending_bytes: 256 * 1024 * 1024,
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
            http_addr: None,
            admin_addr: None,
            tls: None,
        }
    }
}

/// Checks the transport limits of `server` (see the README's Limits).
fn validate_transport(s: &ServerConfig) -> Result<(), ConfigError> {
    let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    for (field, value, bound) in [
        (
            "max_concurrent_streams",
            u64::from(s.max_concurrent_streams),
            limits::MAX_CONCURRENT_STREAMS,
        ),
        (
            "max_header_list_bytes",
            u64::from(s.max_header_list_bytes),
            limits::MAX_HEADER_LIST_BYTES,
        ),
        (
            "max_pending_reset_streams",
            n(s.max_pending_reset_streams),
            limits::MAX_PENDING_RESET_STREAMS,
        ),
        (
            "max_error_reset_streams",
            n(s.max_error_reset_streams),
            limits::MAX_ERROR_RESET_STREAMS,
        ),
        (
            "max_requests_per_connection",
            n(s.max_requests_per_connection),
            limits::MAX_REQUESTS_PER_CONNECTION,
        ),
        (
            "max_connections",
            n(s.max_connections),
            limits::MAX_CONNECTIONS,
        ),
    ] {
        bound.check(&format!("server.{field}"), value)?;
    }
    limits::SHORT.check("server.keepalive_interval", s.keepalive_interval)?;
    limits::SHORT.check("server.keepalive_timeout", s.keepalive_timeout)?;
    if !s.keepalive_interval.is_zero() && s.keepalive_timeout.is_zero() {
        return Err(invalid(
            "server.keepalive_timeout",
            "must be > 0 when keepalive_interval is set",
        ));
    }
    Ok(())
}

/// The variable that carries the control-plane token.
pub const ENV_CONTROL_TOKEN: &str = "BATCHGATE_CONTROL_TOKEN";

impl ServerConfig {
    /// Checks the server fields: windows, message size, the transport
    /// limits (see the README's Limits) and that no two listeners share an
    /// address.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad `server.` field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
        limits::STREAM_WINDOW.check("server.stream_window", s.stream_window)?;
        limits::SHORT.check("server.shutdown_grace", s.shutdown_grace)?;
        limits::HTTP2_WINDOW.check("server.http2_stream_window", s.http2_stream_window)?;
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
        limits::MAX_MESSAGE_BYTES.check("server.max_message_bytes", s.max_message_bytes)?;
        if s.max_pending_bytes < s.max_message_bytes {
            return Err(invalid(
                "server.max_pending_bytes",
                format!(
                    "must be ≥ server.max_message_bytes ({}): one item of the largest message must fit",
                    s.max_message_bytes
                ),
            ));
        }
        limits::MAX_PENDING_BYTES.check("server.max_pending_bytes", s.max_pending_bytes)?;
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
        let others = [
            Some(s.grpc_addr),
            Some(s.metrics_addr),
            s.control_addr,
            s.health_addr,
        ];
        if let Some(http) = s.http_addr
            && http.port() != 0
            && others.contains(&Some(http))
        {
            return Err(invalid(
                "server.http_addr",
                "must differ from the server's other addresses",
            ));
        }
        if let Some(admin) = s.admin_addr
            && admin.port() != 0
            && (others.contains(&Some(admin)) || s.http_addr == Some(admin))
        {
            return Err(invalid(
                "server.admin_addr",
                "must differ from the server's other addresses",
            ));
        }
        Ok(())
    }

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

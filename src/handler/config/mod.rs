//! A queue's handler settings, as the config file (and CreateQueue) give
//! them: which kind, and the fields of that kind.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod each;
mod raw;

pub use self::each::Rate;
pub(crate) use self::raw::RawHandler;
pub use self::raw::fields_of;
use crate::validation::{ConfigError, at_most, duration_at_most, invalid, quoted};

/// Upper bounds of the handler fields.
pub mod limits {
    use std::time::Duration;

    /// A handler's `timeout` and `eject_for`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// `retry_backoff`, `retry_backoff_max`, sim `base` and `per_item`.
    pub const MAX_SHORT: Duration = Duration::from_secs(3600);
    /// A handler's `max_in_flight`.
    pub const MAX_IN_FLIGHT: usize = 1024;
    /// A handler's `retries`.
    pub const MAX_RETRIES: u32 = 100;
    /// A handler's `eject_after`.
    pub const MAX_EJECT_AFTER: u32 = 10_000;
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
    /// A remote Open Inference Protocol (KServe v2) server: a batch is one
    /// ModelInfer, the items' rows stacked along dim 0.
    Kserve,
    /// Each item is its own HTTP request (an API without a batch
    /// endpoint), within a concurrency and a rate limit.
    #[serde(rename = "http_each")]
    HttpEach,
}

impl HandlerKind {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Echo => "echo",
            HandlerKind::Sim => "sim",
            HandlerKind::Grpc => "grpc",
            HandlerKind::Http => "http",
            HandlerKind::Kserve => "kserve",
            HandlerKind::HttpEach => "http_each",
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
            "kserve" => Ok(HandlerKind::Kserve),
            "http_each" => Ok(HandlerKind::HttpEach),
            other => Err(format!(
                "unknown handler kind {other:?} (echo, sim, grpc, http, kserve, http_each)"
            )),
        }
    }

    /// Whether batches go to remote endpoints.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            HandlerKind::Grpc | HandlerKind::Http | HandlerKind::Kserve
        )
    }

    /// Whether its endpoints speak gRPC (so `dns:///` names, `tls_ca_file`
    /// and `resolve_every` apply).
    pub fn is_grpc(self) -> bool {
        matches!(self, HandlerKind::Grpc | HandlerKind::Kserve)
    }
}

/// How a gRPC handler puts a batch on the wire.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One `BackendItem` message per item.
    #[default]
    Items,
    /// Every payload in one buffer with offsets (`PackedItems`), answered
    /// the same way: no per-item message on either side.
    Packed,
}

impl Encoding {
    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Items => "items",
            Encoding::Packed => "packed",
        }
    }

    /// Parses a name as written in the config.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "items" => Ok(Encoding::Items),
            "packed" => Ok(Encoding::Packed),
            other => Err(format!("unknown encoding {other:?} (items, packed)")),
        }
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
    /// sim: added cost of each unit of the items' cost (a token, say).
    pub per_cost: Duration,
    /// sim: the items' cost counts padded (largest item cost times items),
    /// as a model that pads to the longest item pays.
    pub padded: bool,
    /// grpc/http: endpoint URLs (more may register at runtime); grpc also
    /// `dns:///NAME:PORT`, every address of NAME an endpoint.
    pub endpoints: Vec<String>,
    /// grpc: how often `dns:///` endpoint names are looked up again.
    pub resolve_every: Duration,
    /// grpc/http: batches one endpoint may process at once.
    pub max_in_flight: usize,
    /// grpc/http/kserve: batches each endpoint of the config (and each
    /// address of a `dns:///` name) really works on at once, as a
    /// registering backend declares it; 0: not said. A queue with
    /// `pace = "backend"` paces by the sum over its endpoints.
    pub parallelism: usize,
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
    /// grpc: `items` (a message per item) or `packed` (one buffer).
    pub encoding: Encoding,
    /// http: payloads are JSON documents, sent and returned as raw JSON
    /// instead of base64 strings.
    pub json_payloads: bool,
    /// grpc: CA bundle (PEM) to verify `https://` endpoints; unset: the
    /// public web PKI roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// kserve: the model to call on the server (empty: the queue's name).
    pub model: String,
    /// http_each: the URL each item requests; `{name}` placeholders take
    /// the item's attribute `name`, percent-encoded.
    pub url: String,
    /// http_each: the request's method (GET, POST, ...).
    pub method: String,
    /// http_each: request headers; a value `env:NAME` or `file:PATH` is
    /// read from the environment or a file when the handler is built.
    pub headers: std::collections::BTreeMap<String, String>,
    /// http_each: requests started per period, shared by every batch of
    /// the queue (None: no rate limit).
    pub rate: Option<Rate>,
    /// http_each: requests the rate lets go at once after a quiet time
    /// (1: evenly spaced, so no second holds more than the rate and one).
    pub burst: u32,
    /// http_each: response headers copied into the item's attributes.
    pub keep_headers: Vec<String>,
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            kind: HandlerKind::Echo,
            base: Duration::from_millis(5),
            per_item: Duration::from_micros(20),
            per_cost: Duration::ZERO,
            padded: false,
            endpoints: Vec::new(),
            resolve_every: Duration::from_secs(5),
            max_in_flight: 4,
            parallelism: 0,
            timeout: Duration::from_secs(30),
            retries: 2,
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_secs(1),
            bisect: true,
            eject_after: 3,
            eject_for: Duration::from_secs(5),
            streaming: false,
            encoding: Encoding::Items,
            json_payloads: false,
            tls_ca_file: None,
            model: String::new(),
            url: String::new(),
            method: "GET".to_owned(),
            headers: std::collections::BTreeMap::new(),
            rate: None,
            burst: 1,
            keep_headers: Vec::new(),
        }
    }
}

impl HandlerConfig {
    /// A handler of `kind` with default settings.
    pub fn of(kind: HandlerKind) -> Self {
        let d = Self::default();
        match kind {
            // Requests, not batches, at once; an API that says 429 gets
            // one retry more.
            HandlerKind::HttpEach => Self {
                kind,
                max_in_flight: 16,
                retries: 3,
                retry_backoff: Duration::from_millis(100),
                retry_backoff_max: Duration::from_secs(30),
                ..d
            },
            _ => Self { kind, ..d },
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
            duration_at_most(&field("per_cost"), self.per_cost, limits::MAX_SHORT)?;
        }
        if self.kind == HandlerKind::HttpEach {
            each::validate(
                &field,
                &self.url,
                &self.method,
                &self.headers,
                self.burst,
                &self.keep_headers,
            )?;
        } else if !self.kind.is_remote() {
            return Ok(());
        }
        at_most(&field("model"), self.model.len(), 256, " bytes")?;
        if self.max_in_flight == 0 {
            return Err(invalid(field("max_in_flight"), "must be ≥ 1"));
        }
        at_most(
            &field("max_in_flight"),
            self.max_in_flight,
            limits::MAX_IN_FLIGHT,
            "",
        )?;
        at_most(
            &field("parallelism"),
            self.parallelism,
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
            let checked = match DnsName::parse(endpoint) {
                Some(_) if !self.kind.is_grpc() => Err(format!(
                    "{endpoint:?}: dns:/// endpoints are for grpc and kserve handlers (an http endpoint is a URL with a path)"
                )),
                Some(name) => name.map(|_| ()),
                None => validate_endpoint(endpoint),
            };
            checked.map_err(|problem| invalid(format!("{path}.endpoints[{i}]"), problem))?;
        }
        if self.resolve_every < std::time::Duration::from_millis(10) {
            return Err(invalid(field("resolve_every"), "must be ≥ 10ms"));
        }
        duration_at_most(
            &field("resolve_every"),
            self.resolve_every,
            limits::MAX_SHORT,
        )?;
        Ok(())
    }
}

/// The scheme of an endpoint resolved through DNS.
pub const DNS_SCHEME: &str = "dns:///";

/// A `dns:///NAME:PORT` endpoint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    /// The name to resolve.
    pub host: String,
    /// The port every address gets.
    pub port: u16,
}

impl DnsName {
    /// Parses `dns:///NAME:PORT`; `None` for another kind of endpoint.
    ///
    /// # Errors
    /// A `dns:///` endpoint without a name or a valid port.
    pub fn parse(endpoint: &str) -> Option<Result<Self, String>> {
        let rest = endpoint.strip_prefix(DNS_SCHEME)?;
        Some(match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(['/', ' ']) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .map(|port| Self {
                    host: host.to_owned(),
                    port,
                })
                .ok_or_else(|| {
                    format!("{} has no valid port (dns:///NAME:PORT)", quoted(endpoint))
                }),
            _ => Err(format!("{} must be dns:///NAME:PORT", quoted(endpoint))),
        })
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
        .ok_or_else(|| format!("{} must start with http:// or https://", quoted(url)))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{} has no host", quoted(url)));
    }
    // A port, where given, is 1..=65535 (`[v6]:port` too).
    if let Some((host, port)) = authority.rsplit_once(':')
        && !port.contains(']')
    {
        if host.is_empty() {
            return Err(format!("{} has no host", quoted(url)));
        }
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("{} has no valid port (1..=65535)", quoted(url)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_need_a_host_and_a_real_port() {
        for good in [
            "http://a:1",
            "https://backend.ns:65535/batch",
            "http://[::1]:7000",
            "http://host",
        ] {
            assert_eq!(validate_endpoint(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("http://a:99999", "no valid port"),
            ("http://a:0", "no valid port"),
            ("http://a:x", "no valid port"),
            ("http://:80", "no host"),
            ("ftp://a:1", "must start with"),
        ] {
            let err = validate_endpoint(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("http://{}:99999", "h".repeat(1 << 20));
        assert!(validate_endpoint(&long).unwrap_err().len() < 200);
    }

    #[test]
    fn dns_endpoints_parse() {
        assert_eq!(DnsName::parse("http://a:1"), None);
        assert_eq!(
            DnsName::parse("dns:///backends.ns.svc.cluster.local:7000"),
            Some(Ok(DnsName {
                host: "backends.ns.svc.cluster.local".into(),
                port: 7000
            }))
        );
        for bad in [
            "dns:///",
            "dns:///name",
            "dns:///name:0",
            "dns:///name:x",
            "dns:///:80",
            "dns:///a/b:80",
        ] {
            assert!(matches!(DnsName::parse(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn dns_endpoints_are_for_grpc_with_a_sane_interval() {
        let grpc = |endpoint: &str| HandlerConfig {
            endpoints: vec![endpoint.to_owned()],
            ..HandlerConfig::of(HandlerKind::Grpc)
        };
        assert!(grpc("dns:///backends:7000").validate("h").is_ok());
        let err = |c: HandlerConfig| c.validate("h").unwrap_err().to_string();
        assert!(err(grpc("dns:///backends")).contains("h.endpoints[0]"));
        let http = HandlerConfig {
            kind: HandlerKind::Http,
            ..grpc("dns:///backends:7000")
        };
        assert!(err(http).contains("dns:/// endpoints are for grpc and kserve handlers"));
        let eager = HandlerConfig {
            resolve_every: std::time::Duration::from_millis(1),
            ..grpc("dns:///backends:7000")
        };
        assert!(err(eager).contains("h.resolve_every must be ≥ 10ms"));
    }
}

//! A queue's handler settings: [`HandlerConfig`], its defaults per kind
//! and its checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Encoding, HandlerKind, Rate, RawHandler, each,
    endpoint::{DnsName, validate_endpoint},
};
use crate::{
    limits::handler as limits,
    validation::{ConfigError, invalid},
};

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
            limits::SHORT.check(&field("base"), self.base)?;
            limits::SHORT.check(&field("per_item"), self.per_item)?;
            limits::SHORT.check(&field("per_cost"), self.per_cost)?;
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
        limits::MODEL_BYTES.check(&field("model"), self.model.len())?;
        limits::MAX_IN_FLIGHT.check(&field("max_in_flight"), self.max_in_flight)?;
        limits::PARALLELISM.check(&field("parallelism"), self.parallelism)?;
        if self.timeout.is_zero() {
            return Err(invalid(field("timeout"), "must be > 0"));
        }
        limits::TIMEOUT.check(&field("timeout"), self.timeout)?;
        limits::RETRIES.check(&field("retries"), self.retries)?;
        limits::SHORT.check(&field("retry_backoff"), self.retry_backoff)?;
        limits::SHORT.check(&field("retry_backoff_max"), self.retry_backoff_max)?;
        if self.retry_backoff > self.retry_backoff_max {
            return Err(invalid(
                field("retry_backoff"),
                "must be ≤ retry_backoff_max",
            ));
        }
        limits::EJECT_AFTER.check(&field("eject_after"), self.eject_after)?;
        limits::TIMEOUT.check(&field("eject_for"), self.eject_for)?;
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
        limits::SHORT.check(&field("resolve_every"), self.resolve_every)?;
        Ok(())
    }
}

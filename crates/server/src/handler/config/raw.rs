//! The handler table as the config writes it, every field optional, and
//! its conversion both ways: reading refuses a field of another kind;
//! printing leaves such fields out.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Encoding, HandlerConfig, HandlerKind, Rate};

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
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) per_cost: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) padded: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoints: Option<Vec<String>>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) resolve_every: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_in_flight: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parallelism: Option<usize>,
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
    pub(crate) encoding: Option<Encoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) json_payloads: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tls_ca_file: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keep_headers: Option<Vec<String>>,
}

/// The handler fields each kind takes (besides `kind`).
pub fn fields_of(kind: HandlerKind) -> &'static [&'static str] {
    match kind {
        HandlerKind::Echo => &[],
        HandlerKind::Sim => &["base", "per_item", "per_cost", "padded"],
        HandlerKind::Grpc => &[
            "endpoints",
            "resolve_every",
            "max_in_flight",
            "parallelism",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "bisect",
            "eject_after",
            "eject_for",
            "streaming",
            "encoding",
            "tls_ca_file",
        ],
        HandlerKind::Http => &[
            "endpoints",
            "max_in_flight",
            "parallelism",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "bisect",
            "eject_after",
            "eject_for",
            "json_payloads",
        ],
        HandlerKind::Kserve => &[
            "endpoints",
            "resolve_every",
            "max_in_flight",
            "parallelism",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "bisect",
            "eject_after",
            "eject_for",
            "tls_ca_file",
            "model",
        ],
        HandlerKind::HttpEach => &[
            "url",
            "method",
            "headers",
            "rate",
            "burst",
            "keep_headers",
            "max_in_flight",
            "timeout",
            "retries",
            "retry_backoff",
            "retry_backoff_max",
            "tls_ca_file",
        ],
    }
}

impl TryFrom<RawHandler> for HandlerConfig {
    type Error = String;

    fn try_from(raw: RawHandler) -> Result<Self, String> {
        let given = [
            ("base", raw.base.is_some()),
            ("per_item", raw.per_item.is_some()),
            ("per_cost", raw.per_cost.is_some()),
            ("padded", raw.padded.is_some()),
            ("endpoints", raw.endpoints.is_some()),
            ("resolve_every", raw.resolve_every.is_some()),
            ("max_in_flight", raw.max_in_flight.is_some()),
            ("parallelism", raw.parallelism.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("retries", raw.retries.is_some()),
            ("retry_backoff", raw.retry_backoff.is_some()),
            ("retry_backoff_max", raw.retry_backoff_max.is_some()),
            ("bisect", raw.bisect.is_some()),
            ("eject_after", raw.eject_after.is_some()),
            ("eject_for", raw.eject_for.is_some()),
            ("streaming", raw.streaming.is_some()),
            ("encoding", raw.encoding.is_some()),
            ("json_payloads", raw.json_payloads.is_some()),
            ("tls_ca_file", raw.tls_ca_file.is_some()),
            ("model", raw.model.is_some()),
            ("url", raw.url.is_some()),
            ("method", raw.method.is_some()),
            ("headers", raw.headers.is_some()),
            ("rate", raw.rate.is_some()),
            ("burst", raw.burst.is_some()),
            ("keep_headers", raw.keep_headers.is_some()),
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
            per_cost: raw.per_cost.unwrap_or(d.per_cost),
            padded: raw.padded.unwrap_or(d.padded),
            endpoints: raw.endpoints.unwrap_or(d.endpoints),
            resolve_every: raw.resolve_every.unwrap_or(d.resolve_every),
            max_in_flight: raw.max_in_flight.unwrap_or(d.max_in_flight),
            parallelism: raw.parallelism.unwrap_or(d.parallelism),
            timeout: raw.timeout.unwrap_or(d.timeout),
            retries: raw.retries.unwrap_or(d.retries),
            retry_backoff: raw.retry_backoff.unwrap_or(d.retry_backoff),
            retry_backoff_max: raw.retry_backoff_max.unwrap_or(d.retry_backoff_max),
            bisect: raw.bisect.unwrap_or(d.bisect),
            eject_after: raw.eject_after.unwrap_or(d.eject_after),
            eject_for: raw.eject_for.unwrap_or(d.eject_for),
            streaming: raw.streaming.unwrap_or(d.streaming),
            encoding: raw.encoding.unwrap_or(d.encoding),
            json_payloads: raw.json_payloads.unwrap_or(d.json_payloads),
            tls_ca_file: raw.tls_ca_file.or(d.tls_ca_file),
            model: raw.model.unwrap_or(d.model),
            url: raw.url.unwrap_or(d.url),
            // Methods are case-sensitive; the usual ones are written in
            // capitals, so "get" means GET.
            method: raw.method.map_or(d.method, |m| m.to_ascii_uppercase()),
            headers: raw.headers.unwrap_or(d.headers),
            rate: raw.rate.or(d.rate),
            burst: raw.burst.unwrap_or(d.burst),
            keep_headers: raw.keep_headers.unwrap_or(d.keep_headers),
        })
    }
}

impl From<HandlerConfig> for RawHandler {
    /// The fields of the handler's kind, every one with its effective value.
    fn from(h: HandlerConfig) -> Self {
        let kind = h.kind;
        let each = kind == HandlerKind::HttpEach;
        let remote = kind.is_remote();
        let sent = remote || each;
        RawHandler {
            kind,
            base: (kind == HandlerKind::Sim).then_some(h.base),
            per_item: (kind == HandlerKind::Sim).then_some(h.per_item),
            per_cost: (kind == HandlerKind::Sim).then_some(h.per_cost),
            padded: (kind == HandlerKind::Sim).then_some(h.padded),
            endpoints: remote.then_some(h.endpoints),
            resolve_every: kind.is_grpc().then_some(h.resolve_every),
            max_in_flight: sent.then_some(h.max_in_flight),
            parallelism: remote.then_some(h.parallelism),
            timeout: sent.then_some(h.timeout),
            retries: sent.then_some(h.retries),
            retry_backoff: sent.then_some(h.retry_backoff),
            retry_backoff_max: sent.then_some(h.retry_backoff_max),
            bisect: remote.then_some(h.bisect),
            eject_after: remote.then_some(h.eject_after),
            eject_for: remote.then_some(h.eject_for),
            streaming: (kind == HandlerKind::Grpc).then_some(h.streaming),
            encoding: (kind == HandlerKind::Grpc).then_some(h.encoding),
            json_payloads: (kind == HandlerKind::Http).then_some(h.json_payloads),
            tls_ca_file: if kind.is_grpc() || each {
                h.tls_ca_file
            } else {
                None
            },
            model: (kind == HandlerKind::Kserve).then_some(h.model),
            url: each.then_some(h.url),
            method: each.then_some(h.method),
            headers: each.then_some(h.headers),
            rate: if each { h.rate } else { None },
            burst: each.then_some(h.burst),
            keep_headers: each.then_some(h.keep_headers),
        }
    }
}

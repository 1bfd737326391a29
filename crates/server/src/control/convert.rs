//! Conversions between the control API's messages and the configuration.

use std::time::Duration;

use tonic::Status;

use crate::{
    config::{HandlerConfig, HandlerKind, Mode, QueueConfig},
    handler::config::{Encoding, RawHandler},
    metrics::{Percentiles, QueueCounts},
    pb,
    queue::{ActorStats, Named},
};

fn parse_mode(name: &str) -> Result<Mode, Status> {
    Mode::parse(name).map_err(Status::invalid_argument)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A policy field as the control API carries it.
macro_rules! pb_value {
    (count, $v:expr) => {
        to_u32($v)
    };
    (bytes, $v:expr) => {
        $v as u64
    };
    (micros, $v:expr) => {
        micros($v)
    };
    (millis, $v:expr) => {
        millis($v)
    };
    (flag, $v:expr) => {
        $v
    };
    (mode, $v:expr) => {
        $v.as_str().to_owned()
    };
    (levels, $v:expr) => {
        $v
    };
    (sizes, $v:expr) => {
        pb::BatchSizes {
            sizes: $v.iter().map(|&n| to_u32(n)).collect(),
        }
    };
    (text, $v:expr) => {
        $v.clone()
    };
    (weights, $v:expr) => {
        pb::KeyWeights {
            weights: $v.iter().map(|(k, &w)| (k.clone(), w)).collect(),
        }
    };
    (name, $v:expr) => {
        Named::as_str($v).to_owned()
    };
    (amount, $v:expr) => {
        $v
    };
    (bounds, $v:expr) => {
        pb::CostBuckets { bounds: $v.clone() }
    };
}

/// A policy field from the control API, as the policy holds it (a mode
/// was checked by [`PolicyChange::new`]).
macro_rules! policy_value {
    (count, $v:expr) => {
        $v as usize
    };
    (bytes, $v:expr) => {
        usize::try_from($v).unwrap_or(usize::MAX)
    };
    (micros, $v:expr) => {
        Duration::from_micros($v)
    };
    (millis, $v:expr) => {
        Duration::from_millis($v)
    };
    (flag, $v:expr) => {
        $v
    };
    (mode, $v:expr) => {
        parse_mode(&$v).unwrap_or_default()
    };
    (levels, $v:expr) => {
        $v
    };
    (sizes, $v:expr) => {
        $v.sizes.iter().map(|&n| n as usize).collect()
    };
    (text, $v:expr) => {
        $v
    };
    (weights, $v:expr) => {
        $v.weights.into_iter().collect()
    };
    (name, $v:expr) => {
        Named::parse(&$v).unwrap_or_default()
    };
    (amount, $v:expr) => {
        $v
    };
    (bounds, $v:expr) => {
        $v.bounds
    };
}

/// Checks a named policy field of a change (`name` kind), so that
/// [`PolicyChange::apply`] never meets an unknown name.
macro_rules! check_pb {
    ($change:ident, $p:ident; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        $( check_field!($kind, $change.$pb, $p.$name); )*
    };
}

macro_rules! check_field {
    (name, $v:expr, $slot:expr) => {
        if let Some(v) = &$v {
            check_name(&$slot, v)?;
        }
    };
    ($kind:ident, $v:expr, $slot:expr) => {};
}

/// Whether `name` names a setting of `_slot`'s type.
fn check_name<T: Named>(_slot: &T, name: &str) -> Result<(), Status> {
    T::parse(name).map(|_| ()).map_err(Status::invalid_argument)
}

macro_rules! to_pb {
    ($p:ident; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        pb::QueuePolicy { $( $pb: Some(pb_value!($kind, $p.$name)), )* }
    };
}

macro_rules! apply_pb {
    ($change:ident, $p:ident; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        $( if let Some(v) = $change.$pb.clone() { $p.$name = policy_value!($kind, v); } )*
    };
}

/// The whole policy of `c`, every field set.
pub fn policy(c: &QueueConfig) -> pb::QueuePolicy {
    let p = &c.policy;
    crate::policy_fields!(to_pb, p)
}

/// A policy change from the control API: the fields it sets.
pub struct PolicyChange {
    policy: pb::QueuePolicy,
}

impl PolicyChange {
    /// Checks the change's mode name, if it sets one.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a mode that is neither auto nor manual.
    pub fn new(policy: Option<pb::QueuePolicy>) -> Result<Self, Status> {
        let policy = policy.unwrap_or_default();
        if let Some(mode) = &policy.mode {
            parse_mode(mode)?;
        }
        let (change, p) = (&policy, crate::queue::Policy::default());
        crate::policy_fields!(check_pb, change, p);
        Ok(Self { policy })
    }

    /// Sets the fields the change sets; the others stay.
    pub fn apply(&self, c: &mut QueueConfig) {
        let (change, p) = (&self.policy, &mut c.policy);
        crate::policy_fields!(apply_pb, change, p);
    }
}

/// A handler's settings as the API shows them.
pub fn handler(h: &HandlerConfig) -> pb::HandlerSpec {
    pb::HandlerSpec {
        kind: h.kind.as_str().to_owned(),
        sim_base_us: if h.kind == HandlerKind::Sim {
            micros(h.base)
        } else {
            0
        },
        sim_per_item_us: if h.kind == HandlerKind::Sim {
            micros(h.per_item)
        } else {
            0
        },
        sim_per_cost_ns: if h.kind == HandlerKind::Sim {
            u64::try_from(h.per_cost.as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        },
        sim_padded: h.kind == HandlerKind::Sim && h.padded,
        endpoints: h.endpoints.clone(),
        max_in_flight: to_u32(h.max_in_flight),
        timeout_ms: millis(h.timeout),
        retries: Some(h.retries),
        bisect: Some(h.bisect),
        streaming: h.streaming,
        json_payloads: h.json_payloads,
        encoding: if h.kind == HandlerKind::Grpc {
            h.encoding.as_str().to_owned()
        } else {
            String::new()
        },
        url: h.url.clone(),
        method: if h.kind == HandlerKind::HttpEach {
            h.method.clone()
        } else {
            String::new()
        },
        // Names only: a value may be a secret (or say where one is).
        headers: h
            .headers
            .keys()
            .map(|k| (k.clone(), "(set)".to_owned()))
            .collect(),
        rate: h.rate.map(|r| r.to_string()).unwrap_or_default(),
        burst: if h.kind == HandlerKind::HttpEach {
            h.burst
        } else {
            0
        },
        keep_headers: h.keep_headers.clone(),
    }
}

/// The handler config a CreateQueue asks for (defaults where unset).
///
/// # Errors
/// INVALID_ARGUMENT for an unknown kind.
pub fn handler_config(spec: Option<pb::HandlerSpec>) -> Result<HandlerConfig, Status> {
    let Some(spec) = spec else {
        return Ok(HandlerConfig::default());
    };
    let kind = if spec.kind.is_empty() {
        HandlerKind::Echo
    } else {
        HandlerKind::parse(&spec.kind).map_err(Status::invalid_argument)?
    };
    // Unset (zero, empty, false) fields take the kind's defaults; a field
    // of another kind is refused, exactly as in a config file.
    let encoding = match spec.encoding.as_str() {
        "" => None,
        name => Some(Encoding::parse(name).map_err(Status::invalid_argument)?),
    };
    if let Some((name, _)) = spec
        .headers
        .iter()
        .find(|(_, v)| v.starts_with("env:") || v.starts_with("file:"))
    {
        return Err(Status::invalid_argument(format!(
            "handler header {name:?}: env: and file: values read the server's environment and files; set them in the config file"
        )));
    }
    let rate = match spec.rate.as_str() {
        "" => None,
        text => Some(
            text.parse::<crate::handler::config::Rate>()
                .map_err(|e| Status::invalid_argument(format!("handler rate: {e}")))?,
        ),
    };
    let raw = RawHandler {
        kind,
        encoding,
        url: (!spec.url.is_empty()).then_some(spec.url),
        method: (!spec.method.is_empty()).then_some(spec.method),
        headers: (!spec.headers.is_empty()).then(|| spec.headers.into_iter().collect()),
        rate,
        burst: (spec.burst > 0).then_some(spec.burst),
        keep_headers: (!spec.keep_headers.is_empty()).then_some(spec.keep_headers),
        // A sim's costs are always taken as given (0 is a valid cost).
        base: (kind == HandlerKind::Sim || spec.sim_base_us > 0)
            .then(|| Duration::from_micros(spec.sim_base_us)),
        per_item: (kind == HandlerKind::Sim || spec.sim_per_item_us > 0)
            .then(|| Duration::from_micros(spec.sim_per_item_us)),
        per_cost: (kind == HandlerKind::Sim || spec.sim_per_cost_ns > 0)
            .then(|| Duration::from_nanos(spec.sim_per_cost_ns)),
        padded: (kind == HandlerKind::Sim || spec.sim_padded).then_some(spec.sim_padded),
        endpoints: (!spec.endpoints.is_empty()).then_some(spec.endpoints),
        max_in_flight: (spec.max_in_flight > 0).then_some(spec.max_in_flight as usize),
        timeout: (spec.timeout_ms > 0).then(|| Duration::from_millis(spec.timeout_ms)),
        retries: spec.retries,
        bisect: spec.bisect,
        streaming: spec.streaming.then_some(true),
        json_payloads: spec.json_payloads.then_some(true),
        ..RawHandler::default()
    };
    HandlerConfig::try_from(raw).map_err(Status::invalid_argument)
}

fn percentiles(p: Percentiles) -> pb::Percentiles {
    pb::Percentiles {
        p50: p.p50,
        p90: p.p90,
        p99: p.p99,
        max: p.max,
    }
}

/// Live stats from the actor's report and the queue's counters.
pub fn stats(actor: Option<ActorStats>, counts: QueueCounts) -> pb::QueueStats {
    let [ok, error, rejected, timeout, cancelled, shed] = counts.items;
    pb::QueueStats {
        depth: actor.map_or(0, |a| a.depth as u64),
        in_flight_batches: actor.map_or(0, |a| to_u32(a.in_flight)),
        items_ok: ok,
        items_error: error,
        items_rejected: rejected,
        items_timeout: timeout,
        items_cancelled: cancelled,
        items_shed: shed,
        learned: actor.and_then(|a| a.learned).map(|l| pb::Learned {
            base_us: l.base_us,
            per_item_ns: l.per_item_ns,
            samples: l.samples,
            arrivals_per_sec: l.arrivals_per_sec,
            batch_cap: to_u32(l.batch_cap),
            parallelism: to_u32(l.parallelism),
            parallelism_learned: l.parallelism_learned,
            backend_idle: f64::from(l.backend_idle_permille) / 1000.0,
            backend_wait_us: l.backend_wait_us,
        }),
        batches: counts.batches,
        batch_size: Some(percentiles(counts.batch_size)),
        handler_ms: Some(percentiles(counts.handler_ms)),
        item_ms: Some(percentiles(counts.item_ms)),
        batches_by_trigger: crate::contract::Trigger::ALL
            .iter()
            .zip(counts.by_trigger)
            .map(|(t, n)| (t.as_str().to_owned(), n))
            .collect(),
        wait_ms: Some(percentiles(counts.wait_ms)),
        batch_cost: Some(percentiles(counts.batch_cost)),
        padding_ratio: Some(percentiles(counts.padding_ratio)),
        batch_size_histogram: counts
            .size_histogram
            .into_iter()
            .map(|(le, batches)| pb::SizeBucket { le, batches })
            .collect(),
        key_shares: counts
            .key_shares
            .into_iter()
            .map(|(key, items)| pb::KeyShare { key, items })
            .collect(),
    }
}

/// The state the actor's report implies.
pub fn state(actor: Option<ActorStats>) -> pb::QueueState {
    match actor {
        None => pb::QueueState::Drained,
        Some(a) if a.draining => pb::QueueState::Draining,
        Some(a) if a.paused => pb::QueueState::Paused,
        Some(_) => pb::QueueState::Active,
    }
}

//! Conversions between the control API's messages and the configuration.

use std::time::Duration;

use tonic::Status;

use crate::{
    config::{HandlerConfig, HandlerKind, Mode, QueueConfig},
    handler::config::RawHandler,
    metrics::{Percentiles, QueueCounts},
    pb,
    queue::ActorStats,
};

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Auto => "auto",
        Mode::Manual => "manual",
    }
}

fn parse_mode(name: &str) -> Result<Mode, Status> {
    match name {
        "auto" => Ok(Mode::Auto),
        "manual" => Ok(Mode::Manual),
        other => Err(Status::invalid_argument(format!(
            "mode {other:?} is neither \"auto\" nor \"manual\""
        ))),
    }
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

/// The full policy of a queue.
pub fn policy(c: &QueueConfig) -> pb::QueuePolicy {
    pb::QueuePolicy {
        max_batch_size: Some(to_u32(c.policy.max_batch_size)),
        max_batch_bytes: Some(c.policy.max_batch_bytes as u64),
        max_delay_us: Some(micros(c.policy.max_delay)),
        min_batch_size: Some(to_u32(c.policy.min_batch_size)),
        strict: Some(c.policy.strict),
        mode: Some(mode_name(c.policy.mode).to_owned()),
        max_queue_items: Some(to_u32(c.policy.max_queue_items)),
        max_in_flight_batches: Some(to_u32(c.policy.max_in_flight_batches)),
        item_timeout_ms: Some(millis(c.policy.item_timeout)),
        priority_levels: Some(c.policy.priority_levels),
    }
}

/// A policy change, checked for what types alone cannot express, ready to
/// apply to a configuration.
pub struct PolicyChange {
    policy: pb::QueuePolicy,
    mode: Option<Mode>,
}

impl PolicyChange {
    /// Checks the fields that need parsing.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an unknown mode.
    pub fn new(policy: Option<pb::QueuePolicy>) -> Result<Self, Status> {
        let policy = policy.unwrap_or_default();
        let mode = policy.mode.as_deref().map(parse_mode).transpose()?;
        Ok(Self { policy, mode })
    }

    /// Sets the fields that are set.
    pub fn apply(&self, c: &mut QueueConfig) {
        let p = &self.policy;
        let size = |n: u32| n as usize;
        if let Some(v) = p.max_batch_size {
            c.policy.max_batch_size = size(v);
        }
        if let Some(v) = p.max_batch_bytes {
            c.policy.max_batch_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = p.max_delay_us {
            c.policy.max_delay = Duration::from_micros(v);
        }
        if let Some(v) = p.min_batch_size {
            c.policy.min_batch_size = size(v);
        }
        if let Some(v) = p.strict {
            c.policy.strict = v;
        }
        if let Some(mode) = self.mode {
            c.policy.mode = mode;
        }
        if let Some(v) = p.max_queue_items {
            c.policy.max_queue_items = size(v);
        }
        if let Some(v) = p.max_in_flight_batches {
            c.policy.max_in_flight_batches = size(v);
        }
        if let Some(v) = p.item_timeout_ms {
            c.policy.item_timeout = Duration::from_millis(v);
        }
        if let Some(v) = p.priority_levels {
            c.policy.priority_levels = v;
        }
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
        endpoints: h.endpoints.clone(),
        max_in_flight: to_u32(h.max_in_flight),
        timeout_ms: millis(h.timeout),
        retries: Some(h.retries),
        bisect: Some(h.bisect),
        streaming: h.streaming,
        json_payloads: h.json_payloads,
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
    let raw = RawHandler {
        kind,
        // A sim's costs are always taken as given (0 is a valid cost).
        base: (kind == HandlerKind::Sim || spec.sim_base_us > 0)
            .then(|| Duration::from_micros(spec.sim_base_us)),
        per_item: (kind == HandlerKind::Sim || spec.sim_per_item_us > 0)
            .then(|| Duration::from_micros(spec.sim_per_item_us)),
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
    let [ok, error, rejected, timeout, cancelled] = counts.items;
    pb::QueueStats {
        depth: actor.map_or(0, |a| a.depth as u64),
        in_flight_batches: actor.map_or(0, |a| to_u32(a.in_flight)),
        items_ok: ok,
        items_error: error,
        items_rejected: rejected,
        items_timeout: timeout,
        items_cancelled: cancelled,
        batches: counts.batches,
        batch_size: Some(percentiles(counts.batch_size)),
        handler_ms: Some(percentiles(counts.handler_ms)),
        item_ms: Some(percentiles(counts.item_ms)),
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

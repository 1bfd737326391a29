//! When a batch closes: a pure function of the policy and a view of what is
//! pending. No runtime, no clock reads, no I/O, so every rule is tested with
//! plain `#[test]`s.
//!
//! The rules, in order:
//! 1. Nothing pending: idle (no timer, an idle queue never wakes).
//! 2. Manual mode: idle; only flush or drain dispatch (the actor handles both).
//! 3. `max_batch_size` items pending: dispatch, trigger `size`.
//! 4. `max_batch_bytes` bytes pending: dispatch, trigger `bytes`; with
//!    `max_batch_cost`, the pending items cost at least that much (see
//!    `cost.rs`): dispatch, trigger `cost` (the batch takes the items that
//!    fit; the next one starts the next batch).
//! 5. The oldest pending item has waited `max_delay`: dispatch, trigger
//!    `delay`, provided `min_batch_size` items are pending; otherwise idle
//!    until more items come.
//! 6. Otherwise wake when the oldest item's `max_delay` is up.
//!
//! With `allowed_batch_sizes` ([`batch_len`] and [`pad_to`]): a batch
//! closed by size has `max_batch_size` items (the largest allowed size). A
//! batch closed by delay takes the largest allowed size that is pending and
//! holds the rest back for one more `max_delay` (new items may fill it to
//! an allowed size); when fewer than the smallest allowed size are pending,
//! when the largest allowed size pending is below `min_batch_size`, or when
//! the items were held back once already, it takes them all. Bytes, flush
//! and drain take what they take. A batch whose count is not allowed goes
//! out with `pad_to`, the next allowed size: the backend pads to it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cost::{CostModel, CostSource, Oversize};
pub use crate::contract::Trigger;
use crate::{
    error::Refusal,
    validation::{ConfigError, at_most, duration_at_most, invalid},
};

/// Upper bounds of the policy fields: generous for any real deployment,
/// small enough that no arithmetic on them overflows (a duration added to
/// the clock, a count of items held in memory).
mod limits {
    use std::time::Duration;

    /// `max_delay`.
    pub const MAX_DELAY: Duration = Duration::from_secs(3600);
    /// `item_timeout`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// `max_queue_items`.
    pub const MAX_QUEUE_ITEMS: usize = 10_000_000;
    /// `max_batch_size`.
    pub const MAX_BATCH_SIZE: usize = 1_000_000;
    /// `max_in_flight_batches`.
    pub const MAX_IN_FLIGHT: usize = 1024;
    /// Most priority levels a queue may have (each is a FIFO of its own).
    pub const MAX_PRIORITY_LEVELS: u32 = 64;
    /// Most entries of `allowed_batch_sizes`.
    pub const MAX_ALLOWED_SIZES: usize = 64;
    /// `shards`.
    pub const MAX_SHARDS: usize = 64;
    /// `max_keys`.
    pub const MAX_KEYS: usize = 100_000;
    /// Entries of `weights` (each named key has metric series of its own).
    pub const MAX_NAMED_KEYS: usize = 256;
    /// A weight.
    pub const MAX_WEIGHT: u32 = 1000;
    /// Bytes of a batch key (and of `key_attribute`).
    pub const MAX_KEY_BYTES: usize = 256;
    /// `idempotency_window`.
    pub const MAX_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// `idempotency_max_keys`.
    pub const MAX_IDEMPOTENCY_KEYS: usize = 10_000_000;
}

pub use limits::MAX_KEY_BYTES;
/// Bytes of an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

/// The policy fields, written once for every place that lists them one by
/// one (the control API's `QueuePolicy` both ways, `ctl`'s flags and its
/// `describe`): name in [`Policy`], name in `QueuePolicy`, kind (how the
/// value travels: `count` u32, `bytes` u64, `micros`/`millis` a duration
/// in those units, `flag` bool, `mode` a name, `levels` u32, `sizes` a
/// list of counts, `text` a string, `weights` a map of key to weight) and the help
/// text. `policy_fields!(m, args…)` expands to `m!(args…; (field, …), …)`.
#[macro_export]
macro_rules! policy_fields {
    ($m:ident $(, $arg:tt)*) => {
        $m! { $($arg),* ;
            (max_batch_size, max_batch_size, count,
                "Close a batch at this many items (trigger size)."),
            (max_batch_bytes, max_batch_bytes, bytes,
                "Close a batch before its payloads pass this many bytes (trigger bytes)."),
            (max_delay, max_delay_us, micros,
                "Close a batch when its oldest item has waited this long, e.g. \"2ms\" (trigger delay)."),
            (min_batch_size, min_batch_size, count,
                "A delay-triggered batch needs at least this many items."),
            (strict, strict, flag,
                "Count only live items towards min_batch_size (true or false)."),
            (mode, mode, mode,
                "auto (size, bytes, delay), manual (only a flush), target (a latency target) or aimd (Clipper-style, for comparison)."),
            (max_queue_items, max_queue_items, count,
                "Items the queue may hold; more are refused RESOURCE_EXHAUSTED."),
            (max_in_flight_batches, max_in_flight_batches, count,
                "Batches of the queue processed at once."),
            (item_timeout, item_timeout_ms, millis,
                "How long an item may wait when its request sets no timeout, e.g. \"30s\"."),
            (priority_levels, priority_levels, levels,
                "Priority levels (items carry 0 .. levels-1)."),
            (target_latency, target_latency_us, micros,
                "mode = \"target\": the end-to-end time an item should see at p99, e.g. \"20ms\"."),
            (shed, shed, flag,
                "mode = \"target\": refuse (RESOURCE_EXHAUSTED) items predicted to miss the target (true or false)."),
            (allowed_batch_sizes, allowed_batch_sizes, sizes,
                "Batch sizes a batch may have, ascending and ending with max_batch_size, e.g. \"1,8,32,64\" (\"\" for any); other counts go out padded to the next."),
            (shards, shards, count,
                "Actors (each on its own task, so on its own core) batching this queue; items spill to the next only when one is saturated. Fixed when the queue is created."),
            (key_attribute, key_attribute, text,
                "Batch by key: the attribute holding an item's key when its request and header name none (\"\" for none)."),
            (max_keys, max_keys, count,
                "Batch by key: most keys with items pending at once; more are refused RESOURCE_EXHAUSTED."),
            (weights, weights, weights,
                "Batch by key: weights in the fair share, e.g. \"tenant-a=3,tenant-b=2\" (others 1; \"\" for all 1); named keys get metric series of their own."),
            (cost, cost, name,
                "Cost budget: an item's cost when its request and cost_attribute give none: unit (1) or bytes (its payload's length)."),
            (cost_attribute, cost_attribute, text,
                "Cost budget: the attribute holding an item's cost, a whole number such as a token count (\"\" for none)."),
            (max_batch_cost, max_batch_cost, amount,
                "Cost budget: close a batch before its cost would pass this (trigger cost; 0 for no budget)."),
            (cost_model, cost_model, name,
                "Cost budget: a batch's cost: sum (items' costs added) or padded (largest cost times items)."),
            (oversize, oversize, name,
                "Cost budget: an item costing more than max_batch_cost is refused (INVALID_ARGUMENT) or sent alone: refuse or alone."),
            (cost_buckets, cost_buckets, bounds,
                "Length buckets: ascending upper bounds of item cost, e.g. \"32,64,128,256\" (\"\" for none); items of one bucket batch together."),
            (idempotency_window, idempotency_window_ms, millis,
                "How long an idempotency key's answer is kept for retries, e.g. \"60s\" (0 turns keys off)."),
            (idempotency_max_keys, idempotency_max_keys, count,
                "Most idempotency keys in flight or remembered at once; an item with a new key past it is refused RESOURCE_EXHAUSTED."),
        }
    };
}

/// Checks an item of `queue` against the policy's per-item limits: its
/// priority must be a level, its payload must fit in a batch.
///
/// # Errors
/// The [`Refusal`] (INVALID_ARGUMENT) naming the limit.
pub fn check_item(
    policy: &Policy,
    queue: &str,
    priority: u32,
    payload_len: usize,
) -> Result<(), Refusal> {
    if priority >= policy.priority_levels {
        return Err(Refusal::BadPriority {
            queue: queue.to_owned(),
            priority,
            max: policy.priority_levels - 1,
        });
    }
    if payload_len > policy.max_batch_bytes {
        return Err(Refusal::PayloadTooLarge {
            queue: queue.to_owned(),
            size: payload_len,
            limit: policy.max_batch_bytes,
        });
    }
    Ok(())
}

/// The batching policy of one queue: the fields of a `[queues.NAME]` table
/// besides `handler`, and what the actor applies.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
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
    /// `auto` dispatches by the triggers above; `manual` only on flush;
    /// `target` chases `target_latency`; `aimd` is Clipper's rule.
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
    /// `mode = "target"`: the p99 end-to-end time to aim for (`aimd`: the
    /// batch time it backs off past).
    #[serde(with = "humantime_serde")]
    pub target_latency: Duration,
    /// `mode = "target"`: refuse items predicted to miss the target.
    pub shed: bool,
    /// The batch sizes a backend wants (ascending, the last one
    /// `max_batch_size`); empty: any size. See the module docs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_batch_sizes: Vec<usize>,
    /// Actors batching this queue, each with its own pending items and
    /// `max_in_flight_batches`; items go to the first whose inbox has room
    /// (see `QueueHandle`). Fixed when the queue is created.
    pub shards: usize,
    /// Batch by key: the attribute holding an item's key when neither its
    /// request nor its call's header names one (empty: none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_attribute: String,
    /// Batch by key: most keys with items pending at once; an item of
    /// another key is refused RESOURCE_EXHAUSTED.
    pub max_keys: usize,
    /// Batch by key: each key's weight in the fair share (default 1); the
    /// keys named here get metric series of their own, the others share
    /// `key="other"`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub weights: std::collections::BTreeMap<String, u32>,
    /// Cost budget: an item's cost when neither its request nor
    /// `cost_attribute` gives one (see `cost.rs`).
    pub cost: CostSource,
    /// Cost budget: the attribute holding an item's cost (empty: none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cost_attribute: String,
    /// Cost budget: a batch's cost never passes this (0: no budget).
    pub max_batch_cost: u64,
    /// Cost budget: how a batch's cost follows from its items'.
    pub cost_model: CostModel,
    /// Cost budget: what happens to an item costing more than the budget.
    pub oversize: Oversize,
    /// Length buckets: ascending upper bounds of item cost (empty: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cost_buckets: Vec<u64>,
    /// Idempotency keys: how long a key's answer is kept after it was
    /// given, for a retry to get it again (zero: keys are ignored).
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// Idempotency keys: most keys in flight or remembered at once.
    pub idempotency_max_keys: usize,
}

impl Default for Policy {
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
            target_latency: Duration::from_millis(20),
            shed: false,
            allowed_batch_sizes: Vec::new(),
            shards: 1,
            key_attribute: String::new(),
            max_keys: 1024,
            weights: std::collections::BTreeMap::new(),
            cost: CostSource::Unit,
            cost_attribute: String::new(),
            max_batch_cost: 0,
            cost_model: CostModel::Sum,
            oversize: Oversize::Refuse,
            cost_buckets: Vec::new(),
            idempotency_window: Duration::from_secs(60),
            idempotency_max_keys: 100_000,
        }
    }
}

/// A policy setting chosen by name (`cost_model = "padded"`), as the
/// config, the control API and `ctl` write it.
pub trait Named: Sized + Copy {
    /// Every name, in order.
    const NAMES: &'static [&'static str];
    /// The name.
    fn as_str(self) -> &'static str;
    /// The setting of a name.
    ///
    /// # Errors
    /// The unknown name, with the valid ones.
    fn parse(name: &str) -> Result<Self, String>;
}

/// What the policy needs to know about the pending items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingView {
    /// Items pending (live or not, unless the caller counted only live ones).
    pub len: usize,
    /// Sum of their payload sizes.
    pub bytes: usize,
    /// How long the oldest of them has waited.
    pub oldest_age: Duration,
    /// What they cost together under the queue's cost model (0 without a
    /// budget).
    pub cost: u64,
}

/// The policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Close a batch now.
    Dispatch(Trigger),
    /// Nothing to do until this much time has passed (or something changes).
    WakeIn(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// Applies the rules in the module docs.
pub fn decide(policy: &Policy, pending: PendingView) -> Decision {
    if pending.len == 0 || policy.mode == Mode::Manual {
        return Decision::Idle;
    }
    if pending.len >= policy.max_batch_size {
        return Decision::Dispatch(Trigger::Size);
    }
    if pending.bytes >= policy.max_batch_bytes {
        return Decision::Dispatch(Trigger::Bytes);
    }
    if policy.max_batch_cost > 0 && pending.cost >= policy.max_batch_cost {
        return Decision::Dispatch(Trigger::Cost);
    }
    match policy.max_delay.checked_sub(pending.oldest_age) {
        Some(left) if !left.is_zero() => Decision::WakeIn(left),
        _ if pending.len >= policy.min_batch_size => Decision::Dispatch(Trigger::Delay),
        _ => Decision::Idle,
    }
}

/// How many items the next batch takes, and whether the items left after
/// it are held back for one more `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// At most this many items (fewer if fewer are live or `max_batch_bytes`
    /// stops it).
    pub len: usize,
    /// The rest waits a new `max_delay` before a delay trigger sends it.
    pub hold_rest: bool,
}

/// The size of a batch closing with `trigger` while `pending` items wait;
/// `held` says whether the pending items were held back once already.
pub fn batch_len(policy: &Policy, trigger: Trigger, pending: usize, held: bool) -> Take {
    let all = Take {
        len: policy.max_batch_size,
        hold_rest: false,
    };
    let allowed = &policy.allowed_batch_sizes;
    if allowed.is_empty() || trigger != Trigger::Delay || held || pending >= policy.max_batch_size {
        return all;
    }
    match allowed.iter().rev().find(|&&size| size <= pending) {
        Some(&size) if size >= policy.min_batch_size => Take {
            len: size,
            hold_rest: size < pending,
        },
        _ => all,
    }
}

/// The allowed size a batch of `len` items is padded to, when `len` is not
/// itself allowed.
pub fn pad_to(policy: &Policy, len: usize) -> Option<usize> {
    let allowed = &policy.allowed_batch_sizes;
    if allowed.is_empty() || allowed.binary_search(&len).is_ok() {
        return None;
    }
    allowed.iter().copied().find(|&size| size >= len)
}

impl Policy {
    /// Whether batches follow a cost budget (`max_batch_cost` set).
    pub fn budgeted(&self) -> bool {
        self.max_batch_cost > 0
    }

    /// The most units one batch may hold: cost with a budget, else items
    /// (what `mode = "target"` learns its handler time against).
    pub fn unit_cap(&self) -> usize {
        if self.budgeted() {
            usize::try_from(self.max_batch_cost).unwrap_or(usize::MAX)
        } else {
            self.max_batch_size
        }
    }

    /// Checks the policy's values; `path` prefixes the field names and
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
        if self.shards == 0 {
            return Err(invalid(field("shards"), "must be ≥ 1"));
        }
        self.validate_keys(&field)?;
        super::cost::validate(self, &field)?;
        at_most(&field("shards"), self.shards, limits::MAX_SHARDS, "")?;
        duration_at_most(
            &field("idempotency_window"),
            self.idempotency_window,
            limits::MAX_IDEMPOTENCY_WINDOW,
        )?;
        if self.idempotency_max_keys == 0 {
            return Err(invalid(field("idempotency_max_keys"), "must be ≥ 1"));
        }
        at_most(
            &field("idempotency_max_keys"),
            self.idempotency_max_keys,
            limits::MAX_IDEMPOTENCY_KEYS,
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
        if self.priority_levels == 0 || self.priority_levels > limits::MAX_PRIORITY_LEVELS {
            return Err(invalid(
                field("priority_levels"),
                format!("must be in 1..={}", limits::MAX_PRIORITY_LEVELS),
            ));
        }
        if self.target_latency.is_zero() {
            return Err(invalid(field("target_latency"), "must be > 0"));
        }
        duration_at_most(
            &field("target_latency"),
            self.target_latency,
            limits::MAX_TIMEOUT,
        )?;
        if self.mode.adaptive() && !self.allowed_batch_sizes.is_empty() {
            return Err(invalid(
                field("allowed_batch_sizes"),
                format!(
                    "does not apply to mode = \"{}\" (its batch sizes follow the learned handler time)",
                    self.mode.as_str()
                ),
            ));
        }
        self.validate_allowed_sizes(&field("allowed_batch_sizes"))
    }

    fn validate_keys(&self, field: &impl Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(invalid(field("max_keys"), "must be ≥ 1"));
        }
        at_most(&field("max_keys"), self.max_keys, limits::MAX_KEYS, "")?;
        at_most(
            &field("key_attribute"),
            self.key_attribute.len(),
            limits::MAX_KEY_BYTES,
            " bytes",
        )?;
        if self.weights.len() > limits::MAX_NAMED_KEYS {
            return Err(invalid(
                field("weights"),
                format!(
                    "names {} keys; at most {} (each has metric series of its own)",
                    self.weights.len(),
                    limits::MAX_NAMED_KEYS
                ),
            ));
        }
        for (key, &weight) in &self.weights {
            if key.is_empty() || key.len() > limits::MAX_KEY_BYTES {
                return Err(invalid(
                    field("weights"),
                    format!("a key must be 1..={} bytes", limits::MAX_KEY_BYTES),
                ));
            }
            if weight == 0 || weight > limits::MAX_WEIGHT {
                return Err(invalid(
                    field("weights"),
                    format!(
                        "{key:?} = {weight}: a weight must be in 1..={}",
                        limits::MAX_WEIGHT
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_allowed_sizes(&self, field: &str) -> Result<(), ConfigError> {
        let sizes = &self.allowed_batch_sizes;
        if sizes.is_empty() {
            return Ok(());
        }
        at_most(field, sizes.len(), limits::MAX_ALLOWED_SIZES, " entries")?;
        if sizes[0] == 0 {
            return Err(invalid(field, "sizes must be ≥ 1"));
        }
        if sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                field,
                format!("must be strictly ascending, got {sizes:?}"),
            ));
        }
        if sizes.last() != Some(&self.max_batch_size) {
            return Err(invalid(
                field,
                format!(
                    "must end with max_batch_size ({}): a batch closed by size has that many items",
                    self.max_batch_size
                ),
            ));
        }
        Ok(())
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
    /// Batches to `target_latency` with a learned handler time (see
    /// `target.rs`).
    Target,
    /// Clipper's additive-increase, multiplicative-decrease batch size, as
    /// a comparison policy.
    Aimd,
}

impl Mode {
    /// Every mode, by name.
    pub const NAMES: [&'static str; 4] = ["auto", "manual", "target", "aimd"];

    /// The lower-case name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Manual => "manual",
            Mode::Target => "target",
            Mode::Aimd => "aimd",
        }
    }

    /// Parses a name as written in the config.
    ///
    /// # Errors
    /// The unknown name.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "auto" => Ok(Mode::Auto),
            "manual" => Ok(Mode::Manual),
            "target" => Ok(Mode::Target),
            "aimd" => Ok(Mode::Aimd),
            other => Err(format!(
                "mode {other:?} is not one of auto, manual, target, aimd"
            )),
        }
    }

    /// Whether batches follow a learned handler time (target, aimd).
    pub fn adaptive(self) -> bool {
        matches!(self, Mode::Target | Mode::Aimd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_batch_size: 4,
            max_batch_bytes: 100,
            max_delay: Duration::from_millis(2),
            min_batch_size: 1,
            strict: false,
            mode: Mode::Auto,
            max_queue_items: 10,
            max_in_flight_batches: 1,
            item_timeout: Duration::from_secs(1),
            priority_levels: 1,
            target_latency: Duration::from_millis(20),
            shed: false,
            allowed_batch_sizes: Vec::new(),
            shards: 1,
            key_attribute: String::new(),
            max_keys: 1024,
            weights: Default::default(),
            ..Policy::default()
        }
    }

    fn view(len: usize, bytes: usize, age_us: u64) -> PendingView {
        PendingView {
            len,
            bytes,
            oldest_age: Duration::from_micros(age_us),
            cost: 0,
        }
    }

    #[test]
    fn cost_closes_at_the_budget() {
        let p = Policy {
            max_batch_cost: 100,
            ..policy()
        };
        let at = |cost| {
            decide(
                &p,
                PendingView {
                    cost,
                    ..view(2, 2, 0)
                },
            )
        };
        assert!(matches!(at(99), Decision::WakeIn(_)));
        assert_eq!(at(100), Decision::Dispatch(Trigger::Cost));
        assert_eq!(at(101), Decision::Dispatch(Trigger::Cost));
        // Without a budget the cost is never looked at.
        assert!(matches!(
            decide(
                &policy(),
                PendingView {
                    cost: 1_000,
                    ..view(2, 2, 0)
                }
            ),
            Decision::WakeIn(_)
        ));
    }

    #[test]
    fn empty_queue_is_idle() {
        assert_eq!(decide(&policy(), view(0, 0, 0)), Decision::Idle);
    }

    #[test]
    fn size_closes_at_max_batch_size() {
        assert_eq!(
            decide(&policy(), view(3, 3, 0)),
            Decision::WakeIn(Duration::from_millis(2))
        );
        assert_eq!(
            decide(&policy(), view(4, 4, 0)),
            Decision::Dispatch(Trigger::Size)
        );
    }

    #[test]
    fn bytes_close_at_max_batch_bytes() {
        assert_eq!(
            decide(&policy(), view(2, 100, 0)),
            Decision::Dispatch(Trigger::Bytes)
        );
        assert!(matches!(
            decide(&policy(), view(2, 99, 0)),
            Decision::WakeIn(_)
        ));
    }

    #[test]
    fn delay_counts_from_the_oldest_item() {
        assert_eq!(
            decide(&policy(), view(1, 1, 1_500)),
            Decision::WakeIn(Duration::from_micros(500))
        );
        assert_eq!(
            decide(&policy(), view(1, 1, 2_000)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn delay_waits_for_min_batch_size() {
        let p = Policy {
            min_batch_size: 3,
            ..policy()
        };
        assert_eq!(decide(&p, view(2, 2, 5_000)), Decision::Idle);
        assert_eq!(
            decide(&p, view(3, 3, 5_000)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn manual_mode_never_dispatches_by_itself() {
        let p = Policy {
            mode: Mode::Manual,
            ..policy()
        };
        assert_eq!(decide(&p, view(100, 1_000, 60_000_000)), Decision::Idle);
    }

    #[test]
    fn zero_delay_dispatches_at_once() {
        let p = Policy {
            max_delay: Duration::ZERO,
            ..policy()
        };
        assert_eq!(
            decide(&p, view(1, 1, 0)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn items_are_checked_against_priority_levels_and_batch_bytes() {
        let mut policy = policy();
        policy.priority_levels = 2;
        policy.max_batch_bytes = 10;
        assert_eq!(check_item(&policy, "q", 1, 10), Ok(()));
        assert!(matches!(
            check_item(&policy, "q", 2, 1),
            Err(Refusal::BadPriority { max: 1, .. })
        ));
        assert!(matches!(
            check_item(&policy, "q", 0, 11),
            Err(Refusal::PayloadTooLarge {
                size: 11,
                limit: 10,
                ..
            })
        ));
    }

    fn sized(allowed: &[usize]) -> Policy {
        Policy {
            max_batch_size: *allowed.last().unwrap(),
            max_queue_items: 1000,
            allowed_batch_sizes: allowed.to_vec(),
            ..policy()
        }
    }

    fn take(len: usize, hold_rest: bool) -> Take {
        Take { len, hold_rest }
    }

    #[test]
    fn without_allowed_sizes_every_batch_takes_up_to_max() {
        let p = policy();
        for trigger in Trigger::ALL {
            assert_eq!(batch_len(&p, trigger, 3, false), take(4, false));
        }
        assert_eq!(pad_to(&p, 3), None);
    }

    #[test]
    fn delay_takes_the_largest_allowed_size_pending_and_holds_the_rest() {
        let p = sized(&[1, 8, 32]);
        assert_eq!(batch_len(&p, Trigger::Delay, 13, false), take(8, true));
        assert_eq!(batch_len(&p, Trigger::Delay, 31, false), take(8, true));
        assert_eq!(batch_len(&p, Trigger::Delay, 8, false), take(8, false));
        assert_eq!(batch_len(&p, Trigger::Delay, 5, false), take(1, true));
        // Held back once: all of them go, padded.
        assert_eq!(batch_len(&p, Trigger::Delay, 13, true), take(32, false));
        assert_eq!(pad_to(&p, 13), Some(32));
        assert_eq!(pad_to(&p, 8), None);
    }

    #[test]
    fn fewer_than_the_smallest_allowed_size_go_at_once_padded() {
        let p = sized(&[8, 32]);
        assert_eq!(batch_len(&p, Trigger::Delay, 3, false), take(32, false));
        assert_eq!(pad_to(&p, 3), Some(8));
    }

    #[test]
    fn an_allowed_size_below_min_batch_size_is_not_taken() {
        let p = Policy {
            min_batch_size: 10,
            ..sized(&[8, 32])
        };
        assert_eq!(batch_len(&p, Trigger::Delay, 12, false), take(32, false));
        assert_eq!(pad_to(&p, 12), Some(32));
        let p = Policy {
            min_batch_size: 8,
            ..sized(&[8, 32])
        };
        assert_eq!(batch_len(&p, Trigger::Delay, 12, false), take(8, true));
    }

    #[test]
    fn size_bytes_flush_and_drain_take_what_they_take() {
        let p = sized(&[1, 8, 32]);
        for trigger in [
            Trigger::Size,
            Trigger::Bytes,
            Trigger::Flush,
            Trigger::Drain,
        ] {
            assert_eq!(batch_len(&p, trigger, 13, false), take(32, false));
        }
    }

    #[test]
    fn allowed_sizes_must_ascend_and_end_with_max_batch_size() {
        let check = |allowed: Vec<usize>, max: usize| {
            Policy {
                max_batch_size: max,
                max_queue_items: 1000,
                allowed_batch_sizes: allowed,
                ..policy()
            }
            .validate("queues.q", 1 << 20)
        };
        assert!(check(vec![], 4).is_ok());
        assert!(check(vec![1, 2, 4], 4).is_ok());
        assert!(check(vec![4], 4).is_ok());
        let message = |r: Result<(), ConfigError>| r.unwrap_err().to_string();
        assert!(message(check(vec![1, 2], 4)).contains("must end with max_batch_size (4)"));
        assert!(message(check(vec![2, 1, 4], 4)).contains("strictly ascending"));
        assert!(message(check(vec![2, 2, 4], 4)).contains("strictly ascending"));
        assert!(message(check(vec![0, 4], 4)).contains("≥ 1"));
        assert!(message(check((1..=65).collect(), 65)).contains("entries"));
    }

    #[test]
    fn adaptive_modes_take_a_target_and_no_allowed_sizes() {
        assert_eq!(Mode::parse("target"), Ok(Mode::Target));
        assert_eq!(Mode::parse("aimd"), Ok(Mode::Aimd));
        assert!(
            Mode::parse("fast")
                .unwrap_err()
                .contains("auto, manual, target, aimd")
        );
        let target = Policy {
            mode: Mode::Target,
            ..policy()
        };
        assert!(target.validate("queues.q", 1 << 20).is_ok());
        let zero = Policy {
            target_latency: Duration::ZERO,
            ..target.clone()
        };
        assert!(
            zero.validate("queues.q", 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("target_latency must be > 0")
        );
        let sized = Policy {
            allowed_batch_sizes: vec![2, 4],
            ..target
        };
        assert!(
            sized
                .validate("queues.q", 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("does not apply to mode = \"target\"")
        );
    }
}

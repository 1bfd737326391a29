//! The batching policy's data: its fields with their defaults, and the
//! modes.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::queue::{
    cost::{CostModel, CostSource, Oversize},
    pace::Pace,
};

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
    /// `backend`: a batch goes when the backend is predicted free for it
    /// (by the parallelism its endpoints declare, else what it learns, at
    /// most `max_in_flight_batches`); `off`: whenever
    /// a slot of `max_in_flight_batches` is free (see `pace.rs`).
    pub pace: Pace,
    /// Jobs: a batch that online items do not fill may be filled up with
    /// waiting job items; `false`: job items ride only in batches of their
    /// own, never beside online items.
    pub top_up: bool,
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
            pace: Pace::Off,
            top_up: true,
        }
    }
}

pub use crate::validation::Named;

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

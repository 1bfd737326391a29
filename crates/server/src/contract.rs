//! The handler contract: what a queue hands a handler ([`Batch`]), what a
//! handler answers per item ([`ItemOutput`] or a status), and the
//! answering side it writes to ([`ResultSink`]).
//!
//! Both sides depend on this module and on nothing of each other: the
//! queue implements [`ResultSink`] (it knows where each item's answer
//! goes), handlers only read the batch and write results. Data flows one
//! way, api → queue → handler, and answers come back through the sink; the
//! API turns them into protobuf.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use tokio::time::Instant;
use tonic::Status;

/// Why a batch closed; mirrors `batchgate.v1.Trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `max_batch_size` items were pending.
    Size,
    /// `max_batch_bytes` bytes were pending.
    Bytes,
    /// The oldest item waited `max_delay`.
    Delay,
    /// An explicit flush.
    Flush,
    /// The queue drains (deletion or shutdown).
    Drain,
    /// `mode = "target"` or `"aimd"` sent what was pending: a handler slot
    /// was free and waiting would gain nothing, or the oldest item could
    /// wait no longer.
    Target,
    /// The next item would have passed `max_batch_cost`.
    Cost,
    /// `pace = "backend"`: the backend was about to be free for it.
    Pace,
}

impl Trigger {
    /// Every trigger, for pre-registering one metric handle each.
    pub const ALL: [Trigger; 8] = [
        Trigger::Size,
        Trigger::Bytes,
        Trigger::Delay,
        Trigger::Flush,
        Trigger::Drain,
        Trigger::Target,
        Trigger::Cost,
        Trigger::Pace,
    ];

    /// Lower-case name, used as a metric label and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Size => "size",
            Trigger::Bytes => "bytes",
            Trigger::Delay => "delay",
            Trigger::Flush => "flush",
            Trigger::Drain => "drain",
            Trigger::Target => "target",
            Trigger::Cost => "cost",
            Trigger::Pace => "pace",
        }
    }
}

/// The items of one batch, as a handler sees them.
#[derive(Debug)]
pub struct Batch {
    /// Server-unique batch id.
    pub id: u64,
    /// The queue the batch comes from.
    pub queue: Arc<str>,
    /// Why it closed.
    pub trigger: Trigger,
    /// The items, indexed as the [`ResultSink`] expects.
    pub items: Vec<BatchItem>,
    /// The earliest deadline of its items: a remote handler's call timeout.
    pub deadline: Instant,
    /// With `allowed_batch_sizes`, when the item count is not allowed: the
    /// allowed size the backend should pad the batch to.
    pub pad_to: Option<usize>,
    /// The batch key every item of it shares, if they have one.
    pub key: Option<Arc<str>>,
    /// What the batch costs under the queue's cost model (its item count
    /// when the queue has no costs).
    pub cost: u64,
}

/// One item of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Opaque bytes from the client.
    pub payload: Bytes,
    /// String attributes from the client.
    pub attributes: HashMap<String, String>,
    /// The client's request id, passed on to remote backends.
    pub trace_id: Option<String>,
    /// What it costs the backend, as the queue counts it (1 by default; see
    /// the queue's `cost_attribute`).
    pub cost: u64,
}

/// A handler's result for one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemOutput {
    /// Bytes returned to the client.
    pub payload: Bytes,
    /// Attributes returned to the client.
    pub attributes: HashMap<String, String>,
}

/// One item's result: its output, or the status it failed with.
pub type ItemResult = Result<ItemOutput, Status>;

/// A result a handler sent that the sink could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The index names no item of the batch.
    #[error("result for item {index}, but the batch has {len} items")]
    OutOfRange { index: usize, len: usize },
    /// The item was answered already; the first answer stands.
    #[error("second result for item {0}")]
    Duplicate(usize),
    /// The item's deadline passed while the handler worked; it was
    /// answered DEADLINE_EXCEEDED and its late result is dropped.
    #[error("result for item {0} after its deadline")]
    Expired(usize),
}

/// Where a handler puts each item's result, in any order, the moment it
/// exists. Each item is answered at most once (a second answer is refused
/// and the first stands); whatever a handler leaves unanswered, the queue
/// answers for it, so no caller is left hanging.
pub trait ResultSink: Send {
    /// Items in the batch.
    fn len(&self) -> usize;

    /// Whether the batch has no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether item `index` still waits for its result.
    fn is_open(&self, index: usize) -> bool;

    /// Answers item `index` at once.
    ///
    /// # Errors
    /// [`SinkError`] if `index` is out of range or was answered before; the
    /// earlier answer stands and nothing is sent.
    fn send(&mut self, index: usize, result: ItemResult) -> Result<(), SinkError>;

    /// Answers many items at once (one clock read for all of them); results
    /// the sink cannot take are skipped, as [`ResultSink::send`] would
    /// refuse them. Returns how many were skipped.
    fn send_all(&mut self, results: &mut dyn Iterator<Item = (usize, ItemResult)>) -> usize;

    /// Fails every item not answered yet with `status`.
    fn fail_unanswered(&mut self, status: &Status);
}

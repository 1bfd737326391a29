//! What a queue's handles ask of its actor, and what the actor reports.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{item::Item, policy::Policy};
use crate::{
    error::Refusal,
    handler::Handler,
    metrics::{Outcome, QueueMetrics},
};

/// Commands a queue actor takes.
#[derive(Debug)]
pub enum Command {
    /// Accept (or refuse) one item.
    Submit(Item),
    /// Accept (or refuse) several items, in order.
    SubmitMany(Vec<Item>),
    /// Dispatch everything pending now, ignoring `min_batch_size` and mode;
    /// answers with the number of items that were pending.
    Flush(oneshot::Sender<usize>),
    /// Refuse new items, dispatch everything pending, finish in-flight
    /// batches, then stop. With `force` (a forced delete), pending items
    /// are answered UNAVAILABLE (queue deleted) instead of dispatched; `dropped` learns how many.
    Drain {
        force: bool,
        dropped: Option<oneshot::Sender<u64>>,
    },
    /// Stop dispatching (items still accepted, timeouts still run).
    Pause,
    /// Dispatch again after a pause.
    Resume,
    /// Apply a new policy, and a new handler if given, from the next batch
    /// on (batches in flight finish on the handler they started with).
    Update(Policy, Option<Arc<dyn Handler>>),
    /// Report the queue's state.
    Stats(oneshot::Sender<ActorStats>),
}

/// What a queue actor reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorStats {
    /// Items waiting.
    pub depth: usize,
    /// Batches being processed.
    pub in_flight: usize,
    /// Paused by the control plane.
    pub paused: bool,
    /// Draining: refusing new items.
    pub draining: bool,
    /// What `mode = "target"` / `"aimd"` learned (none in other modes).
    pub learned: Option<Learned>,
}

/// What an adaptive queue learned about its handler and its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Learned {
    /// Fitted fixed cost of a batch, microseconds.
    pub base_us: u64,
    /// Fitted cost per item, nanoseconds.
    pub per_item_ns: u64,
    /// Batches the fit has seen.
    pub samples: u64,
    /// Items arriving per second.
    pub arrivals_per_sec: u64,
    /// The largest batch it would send now.
    pub batch_cap: usize,
    /// `pace = "backend"`: the parallelism it paces by (0: it does not).
    pub parallelism: usize,
    /// `pace = "backend"`: whether that parallelism was learned.
    pub parallelism_learned: bool,
    /// `pace = "backend"`: the share of the slots' time they stood empty
    /// over the last measuring window, in thousandths.
    pub backend_idle_permille: u32,
    /// `pace = "backend"`: the mean wait of a batch in the backend over
    /// that window, microseconds.
    pub backend_wait_us: u64,
}

impl ActorStats {
    /// Two shards' reports as one queue's: counts summed, paused or
    /// draining if either is; what was learned is the first shard's, with
    /// the arrival rates summed.
    pub(super) fn merge(self, other: Self) -> Self {
        Self {
            depth: self.depth + other.depth,
            in_flight: self.in_flight + other.in_flight,
            paused: self.paused || other.paused,
            draining: self.draining || other.draining,
            learned: match (self.learned, other.learned) {
                (Some(mine), Some(theirs)) => Some(Learned {
                    arrivals_per_sec: mine.arrivals_per_sec + theirs.arrivals_per_sec,
                    ..mine
                }),
                (mine, theirs) => mine.or(theirs),
            },
        }
    }
}

impl Command {
    /// Answers a command the stopped actor can no longer carry out: items
    /// are refused UNAVAILABLE (counted as rejected), questions get empty
    /// answers.
    pub(super) fn refuse(self, queue: &str, metrics: &QueueMetrics, paused: bool) {
        match self {
            Command::Submit(item) => refuse_gone(queue, metrics, [item]),
            Command::SubmitMany(items) => refuse_gone(queue, metrics, items),
            Command::Flush(reply) => {
                let _ = reply.send(0);
            }
            Command::Drain { dropped, .. } => {
                if let Some(dropped) = dropped {
                    let _ = dropped.send(0);
                }
            }
            Command::Stats(reply) => {
                let _ = reply.send(ActorStats {
                    depth: 0,
                    in_flight: 0,
                    paused,
                    draining: true,
                    learned: None,
                });
            }
            Command::Pause | Command::Resume | Command::Update(..) => {}
        }
    }
}

/// Answers items a queue that has stopped can no longer take: UNAVAILABLE,
/// counted as rejected.
pub(super) fn refuse_gone(
    queue: &str,
    metrics: &QueueMetrics,
    items: impl IntoIterator<Item = Item>,
) {
    let status = tonic::Status::from(Refusal::Draining(queue.to_owned()));
    let mut n = 0;
    for item in items {
        item.reply.err(status.clone(), None);
        n += 1;
    }
    if n > 0 {
        metrics.items(Outcome::Rejected, n);
    }
}

//! A queue's backlog: its pending items together with their deadlines and
//! the checks for callers that went away.
//!
//! [`Pending`] is the plain store (FIFOs by priority, running totals); this
//! adds time: when the earliest item expires, when to look next for items
//! whose caller cancelled or disconnected, and how a batch is taken out,
//! dropping such items and answering expired ones on the way. Every method
//! reports what it dropped, and the actor counts it.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    cost::{CostModel, CostTally},
    item::Item,
    pending::{Pending, Waiting},
};
use crate::{contract::BatchItem, error::Refusal};

/// Least time between two sweeps of a full queue for cancelled items.
const FULL_SWEEP_EVERY: Duration = Duration::from_millis(10);
/// How often a queue holding items looks for those whose caller went away
/// (a client that cancelled or disconnected), so they leave the depth, the
/// memory and the next flush within this time even in a paused, manual or
/// `min_batch_size`-held queue. A look walks the pending items without
/// moving them: about a millisecond per million.
pub const GONE_SWEEP_EVERY: Duration = Duration::from_millis(50);

/// Items taken out without being dispatched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Dropped {
    /// Their caller went away: dropped unanswered.
    pub cancelled: u64,
    /// Their deadline passed: answered DEADLINE_EXCEEDED.
    pub expired: u64,
}

impl std::ops::AddAssign for Dropped {
    fn add_assign(&mut self, other: Self) {
        self.cancelled += other.cancelled;
        self.expired += other.expired;
    }
}

/// The pending items of one queue, with their deadlines.
#[derive(Debug)]
pub(super) struct Backlog {
    /// The items.
    pending: Pending,
    /// Earliest deadline of a pending item (a lower bound: items that left
    /// since may have had it).
    next_expiry: Option<Instant>,
    /// When a full queue was last swept for cancelled items.
    last_full_sweep: Option<Instant>,
    /// When to look next for items whose caller went away (set while
    /// anything is pending).
    next_gone_sweep: Option<Instant>,
}

impl Backlog {
    /// An empty backlog with `levels` priority levels.
    pub(super) fn new(levels: u32) -> Self {
        Self {
            pending: Pending::new(levels),
            next_expiry: None,
            last_full_sweep: None,
            next_gone_sweep: None,
        }
    }

    /// The items, to read.
    pub(super) fn pending(&self) -> &Pending {
        &self.pending
    }

    /// Adds an item at `priority`.
    pub(super) fn push(&mut self, priority: usize, item: Waiting) {
        let deadline = item.deadline;
        self.next_expiry = Some(self.next_expiry.map_or(deadline, |at| at.min(deadline)));
        self.pending.push(priority, item);
    }

    /// Queues `item` of `cost`, accepted `now`; `item_timeout` is the
    /// queue's default for an item that names no timeout.
    pub(super) fn push_item(
        &mut self,
        item: Item,
        cost: u64,
        now: Instant,
        item_timeout: Duration,
    ) {
        let waiting = Waiting {
            item: BatchItem {
                payload: item.payload,
                attributes: item.attributes,
                trace_id: item.trace_id,
                cost,
            },
            reply: item.reply,
            enqueued_at: now,
            deadline: now + item.timeout.unwrap_or(item_timeout),
            answer_by: item.answer_within.map(|d| now + d),
            trace: item.trace,
            charge: item.charge,
        };
        self.push(item.priority as usize, waiting);
    }

    /// Whether one more item fits under `limit` beside the `others` the
    /// queue's other shards hold, after making room if the backlog is full
    /// (see [`Backlog::make_room`]); the refusal says so if not.
    pub(super) fn room_for_one(
        &mut self,
        limit: usize,
        others: usize,
        now: Instant,
        queue: &str,
    ) -> (Result<(), Refusal>, Dropped) {
        let mut dropped = Dropped::default();
        if self.pending.len() + others >= limit {
            dropped = self.make_room(now, queue);
        }
        let room = if self.pending.len() + others >= limit {
            Err(Refusal::QueueFull {
                queue: queue.to_owned(),
                limit,
            })
        } else {
            Ok(())
        };
        (room, dropped)
    }

    /// Changes the number of priority levels.
    pub(super) fn set_levels(&mut self, levels: u32) {
        self.pending.set_levels(levels);
    }

    /// Keeps the items' costs (for a budget) or stops.
    pub(super) fn set_costed(&mut self, costed: bool) {
        self.pending.set_costed(costed);
    }

    /// Takes every item, in dispatch order.
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = Waiting> + use<> {
        self.next_expiry = None;
        self.pending.take_all()
    }

    /// Does what is due at `now`: answers expired items, drops those whose
    /// caller went away when it is time to look.
    pub(super) fn tidy(&mut self, now: Instant, queue: &str) -> Dropped {
        let mut dropped = Dropped::default();
        if self.next_expiry.is_some_and(|at| at <= now) {
            dropped += self.sweep(now, queue);
        }
        if self.next_gone_sweep.is_some_and(|at| at <= now) {
            self.next_gone_sweep = None;
            dropped.cancelled += self.pending.drop_gone(|w| w.reply.is_gone()) as u64;
        }
        dropped
    }

    /// In a full queue, drops cancelled and expired items (at most every
    /// [`FULL_SWEEP_EVERY`], so a flood of refusals stays cheap).
    pub(super) fn make_room(&mut self, now: Instant, queue: &str) -> Dropped {
        let may_sweep = self
            .last_full_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_EVERY);
        if !may_sweep {
            return Dropped::default();
        }
        self.last_full_sweep = Some(now);
        self.sweep(now, queue)
    }

    /// Removes cancelled and expired items (answering the expired ones) and
    /// recomputes the earliest deadline.
    pub(super) fn sweep(&mut self, now: Instant, queue: &str) -> Dropped {
        let mut dropped = Dropped::default();
        self.pending.sweep(|w| {
            if w.reply.is_gone() {
                dropped.cancelled += 1;
                None
            } else if w.deadline <= now {
                dropped.expired += 1;
                expire(queue, w, now);
                None
            } else {
                Some(w)
            }
        });
        self.next_expiry = self.pending.earliest_deadline();
        dropped
    }

    /// Takes the next batch's items in dispatch order, at most `limit`'s
    /// items and (beyond the first) its bytes and cost, answering expired
    /// and dropping cancelled items on the way.
    pub(super) fn take_batch(
        &mut self,
        limit: Limit,
        now: Instant,
        queue: &str,
    ) -> (Vec<Waiting>, Dropped) {
        let max_items = limit.items;
        let mut items = Vec::with_capacity(max_items.min(self.pending.len()));
        let mut bytes = 0;
        let mut cost = CostTally::default();
        let mut dropped = Dropped::default();
        // Whether an online item was taken: without top-up, background
        // items then stay for a batch of their own.
        let mut online = false;
        while items.len() < max_items {
            let background = self.pending.next_is_background();
            if online && background && !limit.top_up {
                break;
            }
            let Some(next) = self.pending.peek() else {
                break;
            };
            let (size, next_cost) = (next.item.payload.len(), next.item.cost);
            if !items.is_empty() && bytes + size > limit.bytes {
                break;
            }
            let with_next = cost.with(next_cost);
            if !items.is_empty()
                && limit
                    .cost
                    .is_some_and(|(budget, model)| with_next.cost(model, None) > u128::from(budget))
            {
                break;
            }
            let Some(w) = self.pending.pop() else {
                break;
            };
            if w.reply.is_gone() {
                dropped.cancelled += 1;
            } else if w.deadline <= now {
                dropped.expired += 1;
                expire(queue, w, now);
            } else {
                bytes += size;
                cost = with_next;
                online |= !background;
                items.push(w);
            }
        }
        if self.pending.is_empty() {
            self.next_expiry = None;
        }
        (items, dropped)
    }

    /// How many of the first `want` items (in dispatch order) are live.
    pub(super) fn count_live(&self, want: usize, now: Instant) -> usize {
        self.pending
            .count_live(want, |w| w.deadline > now && !w.reply.is_gone())
    }

    /// The instants the backlog needs a wake-up for: the earliest expiry
    /// and, while anything is pending, the next look for gone callers.
    pub(super) fn wakeups(&mut self, now: Instant) -> [Option<Instant>; 2] {
        self.next_gone_sweep = match self.next_gone_sweep {
            _ if self.pending.is_empty() => None,
            None => Some(now + GONE_SWEEP_EVERY),
            at => at,
        };
        if self.pending.is_empty() {
            self.next_expiry = None;
        }
        [self.next_expiry, self.next_gone_sweep]
    }
}

/// What one batch may take: items, payload bytes and, with a budget, cost
/// under a model (the first item is taken whatever its bytes or cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limit {
    /// Most items.
    pub items: usize,
    /// Most payload bytes.
    pub bytes: usize,
    /// Most cost, and how it is counted.
    pub cost: Option<(u64, CostModel)>,
    /// Whether background (job) items may join online items.
    pub top_up: bool,
}

/// Answers an item whose deadline passed while it waited.
fn expire(queue: &str, w: Waiting, now: Instant) {
    let refusal = Refusal::Expired {
        queue: queue.to_owned(),
        waited: now.saturating_duration_since(w.enqueued_at),
    };
    w.reply.err(refusal.into(), None);
}

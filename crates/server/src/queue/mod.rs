//! Queues: the policy (pure), the pending items, the per-queue actor that
//! owns them, and the batches it dispatches.
//!
//! A [`QueueHandle`] is the cheap, cloneable way in; the actor behind it is
//! the only owner of the queue's state.
//!
//! # How things move
//! - **An item**: [`QueueHandle::submit`] (or `submit_many`) first asks the
//!   queue's `idempotency` store about its key (a retry joins or replays
//!   the first; it never reaches an actor), then `shards` picks the shard
//!   (its batch key's hash, or the next one when an inbox is backed up) and
//!   the item goes as a [`Command`] into that shard's `inbox`, a bounded
//!   channel: a full inbox makes the submitter wait (backpressure). The
//!   actor (`actor/`) admits it (`actor/admit.rs`: draining, priority and
//!   size, shedding, its cost, the queue's `max_queue_items`) into a lane
//!   (`lanes`: one per batch key and cost bucket, `actor/keys.rs`), where
//!   it waits in the lane's `backlog` (`pending`, with expiry and callers
//!   gone swept out).
//! - **A batch**: each turn the actor asks every lane whether its batch is
//!   due (`actor/dispatch.rs`: `policy` for size, bytes, cost and delay;
//!   `target` and `fit` for the adaptive modes), `lanes` picks among the
//!   due lanes by fair share, the backlog gives up the items that fit, and
//!   `batch` assembles them and runs the handler, inline when it answers at
//!   once, else as a task the actor awaits; its time is learned
//!   (`actor/learn.rs`). The `alarm` wakes the actor when the soonest
//!   delay, deadline or wake-up is due; an idle queue sets none.
//! - **An answer**: the handler writes each item's result into the batch's
//!   [`BatchSink`] as it has it; the sink answers the item's [`Reply`] (a
//!   unary call's channel, a stream's answers, a keyed item's store and
//!   waiting retries) and answers whatever is left when it is dropped.
//! - **A command** (flush, drain, pause, resume, update, stats) goes to
//!   every shard's inbox and is handled in the actor's turn, between items.

mod actor;
mod alarm;
mod backlog;
mod batch;
pub mod budget;
pub mod climb;
mod command;
pub mod cost;
mod fit;
mod handle;
mod idempotency;
mod inbox;
mod item;
mod lanes;
pub mod pace;
mod pending;
mod policy;
mod shards;
mod spec;
mod target;

pub use self::{
    backlog::GONE_SWEEP_EVERY,
    batch::BatchSink,
    command::{ActorStats, Command, Learned},
    cost::{CostModel, CostSource, Oversize},
    handle::{QueueHandle, SPILL_AT},
    item::{
        Answer, BACKGROUND, BatchFacts, Gathered, Item, Reply, StreamAnswer, StreamAnswers,
        StreamLink, StreamReply,
    },
    pace::Pace,
    policy::{
        Decision, Mode, Named, POLICY_FIELDS, PendingView, Policy, PolicyField, check_item, decide,
        item_cost,
    },
    spec::QueueSpec,
};

//! The actor's state, owned by its task: what it runs ([`QueueSpec`]),
//! where ([`Place`]), its inbox, the items waiting in their lanes, the
//! batches in flight with pacing's slots, the flags commands set, and what
//! was learned ([`Learner`], whose fields are `learner`'s alone).

use std::{collections::HashMap, sync::Arc};

use tokio::{
    task::{self, JoinSet},
    time::Instant,
};

use super::learner::Learner;
use crate::{
    metrics::Outcome,
    queue::{
        QueueSpec,
        alarm::Alarm,
        backlog::Dropped,
        batch::Done,
        inbox::Inbox,
        lanes::Lanes,
        pace::{Pace, Slots},
        policy::{Policy, Trigger},
        shards::Load,
    },
};

/// A lane's next batch: its trigger and, when the mode chose it, its size;
/// or when to look again (`None`: only when something happens).
pub(super) type NextBatch = Result<(Trigger, Option<usize>), Option<Instant>>;

/// Which shard of its queue an actor is, and what the shards share.
pub(in crate::queue) struct Place {
    /// This shard's index, 0 first.
    pub(in crate::queue) index: usize,
    /// Every shard's published depth and batches in flight.
    pub(in crate::queue) load: Arc<Load>,
}

/// The queue's state (one shard's), owned by its task.
pub(super) struct Actor {
    /// Name, policy, handler, metrics and the server-wide parts.
    pub(super) spec: QueueSpec,
    /// Which shard this is.
    pub(super) place: Place,
    /// Commands from the handles.
    pub(super) inbox: Inbox,
    /// Items waiting for a batch, by batch key.
    pub(super) lanes: Lanes,
    /// Each lane's next trigger this dispatch round (kept to reuse its
    /// memory).
    pub(super) verdicts: Vec<NextBatch>,
    /// Whether keyed lanes existed last turn (their depth gauges then need
    /// setting).
    pub(super) keyed_shown: bool,
    /// Batches being processed, each ending with its id.
    pub(super) in_flight: JoinSet<(u64, Done)>,
    /// `pace = "backend"`: the backend's slots as predicted.
    pub(super) slots: Option<Slots>,
    /// `pace = "backend"`: the batch each task runs (a task that fails
    /// ends without saying).
    pub(super) tasks: HashMap<task::Id, u64>,
    /// The next moment something is due.
    pub(super) alarm: Alarm,
    /// Items still to be dispatched with trigger `flush`.
    pub(super) flush_left: usize,
    /// Set by `Drain`: refuse new items, dispatch everything, then stop.
    pub(super) draining: bool,
    /// Set by `Pause`: dispatch only on flush or drain.
    pub(super) paused: bool,
    /// What the adaptive modes and pacing learned.
    pub(super) learner: Learner,
}

impl Actor {
    /// A new shard of `spec`'s queue, nothing waiting or learned.
    pub(super) fn new(spec: QueueSpec, place: Place, inbox: Inbox) -> Self {
        let actor = Actor {
            place,
            lanes: Lanes::new(spec.policy.priority_levels, spec.policy.budgeted()),
            verdicts: Vec::new(),
            keyed_shown: false,
            alarm: Alarm::new(spec.precise.clone()),
            slots: slots_for(&spec.policy),
            learner: Learner::new(&spec.policy),
            spec,
            inbox,
            in_flight: JoinSet::new(),
            tasks: HashMap::new(),
            flush_left: 0,
            draining: false,
            paused: false,
        };
        actor.show_pace();
        actor
    }

    /// Sets the gauge of the parallelism paced by (0: not paced).
    pub(super) fn show_pace(&self) {
        let parallelism = self.slots.as_ref().map_or(0, Slots::parallelism);
        self.spec.metrics.pace_parallelism.set(parallelism as f64);
    }

    /// Counts the items the backlog dropped or expired.
    pub(super) fn count(&self, dropped: Dropped) {
        if dropped.cancelled > 0 {
            self.spec
                .metrics
                .items(Outcome::Cancelled, dropped.cancelled);
        }
        if dropped.expired > 0 {
            self.spec.metrics.items(Outcome::Timeout, dropped.expired);
        }
    }
}

/// The slots a policy paces by, if it does.
pub(super) fn slots_for(policy: &Policy) -> Option<Slots> {
    // One until what the backend declares or the climb learns says more.
    (policy.pace == Pace::Backend).then(|| Slots::new(1))
}

//! The actor's side of learning: a finished batch's slot and units go to
//! its [`Learner`](super::learner::Learner); GetQueue's view of what was
//! learned.

use tokio::time::Instant;

use super::{learner::Ended, state::Actor};
use crate::queue::{batch::Done, command::Learned};

impl Actor {
    /// What a batch of `size` items costing `cost` counts as in the fit:
    /// its cost with a budget, else its items.
    pub(super) fn fit_units(&self, size: usize, cost: u64) -> usize {
        if self.spec.policy.budgeted() {
            usize::try_from(cost).unwrap_or(usize::MAX)
        } else {
            size
        }
    }

    /// Learns from a finished batch (`id`: the one that ran as a task):
    /// the adaptive modes and pacing fit its time, `aimd` its next size.
    /// With pacing the time fitted is the batch's service time, from when
    /// its slot was free for it.
    pub(super) fn finished(&mut self, id: Option<u64>, done: Done) {
        let units = self.fit_units(done.size, done.cost);
        let line = self.learner.line();
        let now = Instant::now();
        let slot = match (&mut self.slots, id) {
            (Some(slots), Some(id)) => slots.finish(id, now, line),
            _ => None,
        };
        if let Some(f) = slot {
            self.spec.metrics.pace_wait.record(f.waited.as_secs_f64());
        }
        let ended = Ended {
            units,
            took: done.took,
            pacing: self.slots.is_some(),
            slot,
        };
        let declared = self.declared_parallelism();
        (self.learner).finished(&self.spec.policy, now, ended, declared);
    }

    /// A batch whose task failed: its slot is free again.
    pub(super) fn forget(&mut self, id: u64) {
        let line = self.learner.line();
        if let Some(slots) = &mut self.slots {
            slots.finish(id, Instant::now(), line);
        }
    }

    /// What an adaptive or paced queue learned, for GetQueue.
    pub(super) fn learned(&self, now: Instant) -> Option<Learned> {
        let policy = &self.spec.policy;
        if !policy.mode.adaptive() && self.slots.is_none() {
            return None;
        }
        let paced = self.slots.is_some().then(|| self.paced_parallelism());
        let learned = self.declared_parallelism().is_none();
        Some(self.learner.shown(policy, now, paced, learned))
    }
}

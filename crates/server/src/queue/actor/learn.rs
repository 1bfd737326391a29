//! The adaptive modes' and pacing's learning: each finished batch's time
//! goes into the fit (and, for `aimd`, the next size cap); GetQueue shows
//! what was learned.

use tokio::time::Instant;

use super::Actor;
use crate::queue::{
    batch::Done,
    command::Learned,
    policy::Mode,
    target::{self, Known},
};

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
        let line = self.fit.line();
        let now = Instant::now();
        let finished = match (&mut self.slots, id) {
            (Some(slots), Some(id)) => slots.finish(id, now, line),
            _ => None,
        };
        if let Some(f) = finished {
            self.spec.metrics.pace_wait.record(f.waited.as_secs_f64());
            let declared = self.declared_parallelism();
            self.climb.finished(now, units, f.waited, declared);
        }
        let mode = self.spec.policy.mode;
        if mode.adaptive() || self.slots.is_some() {
            self.fit
                .observe(units, finished.map_or(done.took, |f| f.service));
        }
        if mode == Mode::Aimd {
            self.aimd_size = target::aimd_next(&self.spec.policy, self.aimd_size, done.took);
        }
    }

    /// A batch whose task failed: its slot is free again.
    pub(super) fn forget(&mut self, id: u64) {
        let line = self.fit.line();
        if let Some(slots) = &mut self.slots {
            slots.finish(id, Instant::now(), line);
        }
    }

    /// What an adaptive queue learned, for GetQueue.
    pub(super) fn learned(&self, now: Instant) -> Option<Learned> {
        let policy = &self.spec.policy;
        if !policy.mode.adaptive() && self.slots.is_none() {
            return None;
        }
        let line = self.fit.line();
        let micros = |s: f64| (s * 1e6).round() as u64;
        let paced = self.slots.is_some();
        let shown = self.climb.shown().filter(|_| paced);
        Some(Learned {
            parallelism: if paced { self.paced_parallelism() } else { 0 },
            parallelism_learned: paced && self.declared_parallelism().is_none(),
            backend_idle_permille: shown.map_or(0, |s| (s.idle_share * 1000.0).round() as u32),
            backend_wait_us: shown.map_or(0, |s| micros(s.mean_wait.as_secs_f64())),
            base_us: line.map_or(0, |l| micros(l.base)),
            per_item_ns: line.map_or(0, |l| (l.per_item * 1e9).round() as u64),
            samples: self.fit.samples(),
            arrivals_per_sec: self.rate.per_sec(now).round() as u64,
            batch_cap: match policy.mode {
                Mode::Aimd => self.aimd_size,
                Mode::Auto | Mode::Manual => policy.unit_cap(),
                Mode::Target => target::batch_limit(
                    policy,
                    Known {
                        line,
                        rate: self.rate.per_sec(now),
                    },
                ),
            },
        })
    }
}

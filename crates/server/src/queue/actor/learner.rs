//! What the actor learns ([`Learner`]): each finished batch's time goes
//! into the fit of handler time against batch size, arrivals into the
//! rate, `aimd`'s next size cap and pacing's climb follow; GetQueue shows
//! it. Its fields are this file's alone: dispatch and admission read what
//! was learned through its methods, and only a finished batch, an arrival,
//! an idle slot or a policy change teaches it.

use std::time::Duration;

use tokio::time::Instant;

use crate::queue::{
    climb::Climb,
    command::Learned,
    fit::{Fit, Line, Rate},
    pace::Finished,
    policy::{Mode, Policy},
    target::{self, Known},
};

/// A batch that ended, as the learner takes it.
pub(super) struct Ended {
    /// Its items, or its cost with a budget.
    pub(super) units: usize,
    /// From its start to its end.
    pub(super) took: Duration,
    /// Whether the queue paces by the backend.
    pub(super) pacing: bool,
    /// Its paced slot's account of it (a batch that ran as a task).
    pub(super) slot: Option<Finished>,
}

/// The adaptive modes' and pacing's learned state.
pub(super) struct Learner {
    /// Adaptive modes and pacing: the handler's time against batch size.
    fit: Fit,
    /// Adaptive modes: online items (or cost units) arriving per second.
    rate: Rate,
    /// `mode = "aimd"`: the current batch size cap.
    aimd_size: usize,
    /// `pace = "backend"`: the parallelism learned when none is declared.
    climb: Climb,
}

impl Learner {
    /// Nothing learned yet, for a queue of `policy`.
    pub(super) fn new(policy: &Policy) -> Self {
        Self {
            fit: Fit::default(),
            rate: Rate::default(),
            aimd_size: 1,
            climb: Climb::new(policy.max_in_flight_batches),
        }
    }

    /// The learned handler line (none before the first batch).
    pub(super) fn line(&self) -> Option<Line> {
        self.fit.line()
    }

    /// Batches the fit has seen.
    pub(super) fn samples(&self) -> u64 {
        self.fit.samples()
    }

    /// What target mode decides by.
    pub(super) fn known(&self, now: Instant) -> Known {
        Known {
            line: self.fit.line(),
            rate: self.rate.per_sec(now),
        }
    }

    /// `aimd`'s batch size cap.
    pub(super) fn aimd_size(&self) -> usize {
        self.aimd_size
    }

    /// The parallelism the climb tries now.
    pub(super) fn climbing(&self) -> usize {
        self.climb.parallelism()
    }

    /// `units` online items (or cost) arrived.
    pub(super) fn arrived(&mut self, now: Instant, units: usize) {
        self.rate.add(now, units);
    }

    /// A paced slot stood empty `idle` before its next batch.
    pub(super) fn idle(&mut self, idle: Duration) {
        self.climb.idle(idle);
    }

    /// A batch ended `now`: the adaptive modes and pacing fit its time
    /// (with a slot's account, its service time, from when its slot was
    /// free for it), the climb its wait, `aimd` its next size; `declared`:
    /// the parallelism the queue's endpoints declare.
    pub(super) fn finished(
        &mut self,
        policy: &Policy,
        now: Instant,
        ended: Ended,
        declared: Option<usize>,
    ) {
        if let Some(f) = ended.slot {
            self.climb.finished(now, ended.units, f.waited, declared);
        }
        if policy.mode.adaptive() || ended.pacing {
            let took = ended.slot.map_or(ended.took, |f| f.service);
            self.fit.observe(ended.units, took);
        }
        if policy.mode == Mode::Aimd {
            self.aimd_size = target::aimd_next(policy, self.aimd_size, ended.took);
        }
    }

    /// The policy changes from `old` to `new` (`handler`: the handler is
    /// replaced too): forgets what no longer holds.
    pub(super) fn update(&mut self, old: &Policy, new: &Policy, handler: bool) {
        // What was learned was the old handler's time, or per item where
        // it is now per cost unit (or the other way).
        if handler || old.budgeted() != new.budgeted() {
            self.fit = Fit::default();
        }
        if old.budgeted() != new.budgeted() {
            self.rate = Rate::default();
        }
        if old.mode != new.mode {
            self.aimd_size = 1;
        }
        if (old.pace, old.max_in_flight_batches) != (new.pace, new.max_in_flight_batches) {
            self.climb = Climb::new(new.max_in_flight_batches);
        }
    }

    /// What was learned, for GetQueue: `paced` the parallelism paced by
    /// (None: not paced), `learned` whether the climb found it.
    pub(super) fn shown(
        &self,
        policy: &Policy,
        now: Instant,
        paced: Option<usize>,
        learned: bool,
    ) -> Learned {
        let line = self.fit.line();
        let micros = |s: f64| (s * 1e6).round() as u64;
        let shown = self.climb.shown().filter(|_| paced.is_some());
        Learned {
            parallelism: paced.unwrap_or(0),
            parallelism_learned: paced.is_some() && learned,
            backend_idle_permille: shown.map_or(0, |s| (s.idle_share * 1000.0).round() as u32),
            backend_wait_us: shown.map_or(0, |s| micros(s.mean_wait.as_secs_f64())),
            base_us: line.map_or(0, |l| micros(l.base)),
            per_item_ns: line.map_or(0, |l| (l.per_item * 1e9).round() as u64),
            samples: self.fit.samples(),
            arrivals_per_sec: self.rate.per_sec(now).round() as u64,
            batch_cap: match policy.mode {
                Mode::Aimd => self.aimd_size,
                Mode::Auto | Mode::Manual => policy.unit_cap(),
                Mode::Target => target::batch_limit(policy, self.known(now)),
            },
        }
    }
}

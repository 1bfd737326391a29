//! The adaptive modes' learning: each finished batch's time goes into the
//! fit (and, for `aimd`, the next size cap); GetQueue shows what was
//! learned.

use tokio::time::Instant;

use super::Actor;
use crate::queue::{
    batch::Done,
    command::Learned,
    policy::Mode,
    target::{self, Known},
};

impl Actor {
    /// Adaptive modes: learns from a finished batch.
    pub(super) fn learn(&mut self, done: Done) {
        // With a budget the line is time against cost, else against items.
        let units = if self.spec.policy.budgeted() {
            usize::try_from(done.cost).unwrap_or(usize::MAX)
        } else {
            done.size
        };
        match self.spec.policy.mode {
            Mode::Target => self.fit.observe(units, done.took),
            Mode::Aimd => {
                self.fit.observe(units, done.took);
                self.aimd_size = target::aimd_next(&self.spec.policy, self.aimd_size, done.took);
            }
            Mode::Auto | Mode::Manual => {}
        }
    }

    /// What an adaptive queue learned, for GetQueue.
    pub(super) fn learned(&self, now: Instant) -> Option<Learned> {
        let policy = &self.spec.policy;
        if !policy.mode.adaptive() {
            return None;
        }
        let line = self.fit.line();
        let micros = |s: f64| (s * 1e6).round() as u64;
        Some(Learned {
            base_us: line.map_or(0, |l| micros(l.base)),
            per_item_ns: line.map_or(0, |l| (l.per_item * 1e9).round() as u64),
            samples: self.fit.samples(),
            arrivals_per_sec: self.rate.per_sec(now).round() as u64,
            batch_cap: match policy.mode {
                Mode::Aimd => self.aimd_size,
                _ => target::batch_limit(
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

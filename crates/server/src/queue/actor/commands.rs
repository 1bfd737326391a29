//! What each command does to the actor's state: items join, flush,
//! drain, pause and resume, a policy or handler change, stats.

use tokio::time::Instant;
use tonic::Status;

use super::state::{Actor, slots_for};
use crate::{
    error::Refusal,
    metrics::Outcome,
    queue::command::{ActorStats, Command},
};

impl Actor {
    pub(super) fn handle(&mut self, command: Command, now: Instant) {
        match command {
            Command::Submit(item) => self.accept(item, now),
            Command::SubmitMany(items) => {
                for item in items {
                    self.accept(item, now);
                }
            }
            Command::Flush(reply) => {
                // Only live items count, and only they are flushed.
                let dropped = self.lanes.sweep(now, &self.spec.name);
                self.count(dropped);
                self.flush_left = self.lanes.len();
                let _ = reply.send(self.flush_left);
            }
            Command::Drain { force, dropped } => {
                self.draining = true;
                let mut n = 0;
                if force {
                    let status = Status::from(Refusal::Deleted(self.spec.name.to_string()));
                    n = self.answer_all(&status);
                }
                if let Some(dropped) = dropped {
                    let _ = dropped.send(n);
                }
            }
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Update(policy, handler) => {
                (self.learner).update(&self.spec.policy, &policy, handler.is_some());
                if let Some(handler) = handler {
                    tracing::info!(queue = %self.spec.name, kind = handler.kind(), "handler replaced");
                    self.spec.handler = handler;
                }
                self.lanes.set_levels(policy.priority_levels);
                if policy.budgeted() != self.spec.policy.budgeted() {
                    self.lanes.set_costed(policy.budgeted());
                }
                self.lanes
                    .reweigh(|key| policy.weights.get(key).copied().unwrap_or(1));
                if (policy.pace, policy.max_in_flight_batches)
                    != (
                        self.spec.policy.pace,
                        self.spec.policy.max_in_flight_batches,
                    )
                {
                    // Batches running now end unbooked.
                    self.slots = slots_for(&policy);
                    self.tasks.clear();
                    self.show_pace();
                }
                self.spec
                    .metrics
                    .max_items
                    .set(policy.max_queue_items as f64);
                self.spec.policy = policy;
            }
            Command::Stats(reply) => {
                let _ = reply.send(ActorStats {
                    depth: self.lanes.len(),
                    in_flight: self.in_flight.len(),
                    paused: self.paused,
                    draining: self.draining,
                    learned: self.learned(now),
                });
            }
        }
    }

    /// Answers every pending item with `status` (counted as errors);
    /// returns how many.
    fn answer_all(&mut self, status: &Status) -> u64 {
        let mut n = 0;
        for w in self.lanes.take_all() {
            w.reply.err(status.clone(), None);
            n += 1;
        }
        self.spec.metrics.items(Outcome::Error, n);
        n
    }

    /// The grace period is over: answer everything still waiting.
    pub(super) fn abort_pending(&mut self) {
        self.draining = true;
        self.answer_all(&Status::from(Refusal::Aborted));
    }
}

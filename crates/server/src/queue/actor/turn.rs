//! The actor's loop: each turn reads the clock once and goes admit →
//! dispatch → wait, taking the commands already waiting in the same turn.

use tokio::time::Instant;

use super::state::{Actor, Place};
use crate::queue::{QueueSpec, command::Command, inbox::Inbox};

/// Commands handled per turn before the actor dispatches, so one busy
/// producer cannot starve dispatch.
pub(super) const MAX_COMMANDS_PER_TURN: usize = 256;

/// Runs a queue actor until it has drained (after `Drain`, or when every
/// handle is gone) or the abort token fired and its batches ended.
pub async fn run(spec: QueueSpec, place: Place, inbox: Inbox) {
    Actor::new(spec, place, inbox).turns().await;
}

impl Actor {
    /// Turn after turn until drained.
    async fn turns(&mut self) {
        // The (depth, in-flight) the gauges show.
        let mut shown = (usize::MAX, usize::MAX);
        let mut aborted = false;
        // Registered once; polled only when nothing else is ready.
        let abort = self.spec.abort.clone();
        let abort = abort.cancelled();
        tokio::pin!(abort);
        self.spec
            .metrics
            .max_items
            .set(self.spec.policy.max_queue_items as f64);
        loop {
            let now = Instant::now();
            let dropped = self.lanes.tidy(now, &self.spec.name);
            self.count(dropped);
            let delay_due = self.dispatch_ready(now);
            self.show_keys();
            // Gauges only when they change: a set costs a clock read.
            let shown_now = (self.lanes.len(), self.in_flight.len());
            if shown_now != shown {
                shown = shown_now;
                let (depth, in_flight) =
                    self.place.load.publish(self.place.index, shown.0, shown.1);
                self.spec.metrics.depth.set(depth as f64);
                self.spec.metrics.in_flight.set(in_flight as f64);
            }
            if self.draining && self.lanes.is_empty() && self.in_flight.is_empty() {
                break;
            }
            let others = self.lanes.wakeups(now);
            self.alarm.set(now, delay_due, &others);
            tokio::select! {
                biased;
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    match done {
                        Ok((task, (id, done))) => {
                            self.tasks.remove(&task);
                            self.finished(Some(id), done);
                        }
                        Err(e) => {
                            tracing::error!(queue = %self.spec.name, error = %e, "batch task failed");
                            if let Some(id) = self.tasks.remove(&e.id()) {
                                self.forget(id);
                            }
                        }
                    }
                }
                () = self.alarm.ring(), if self.alarm.is_set() => {}
                command = self.inbox.recv(), if self.inbox.is_open() => match command {
                    Some(command) => self.take(command).await,
                    // Every handle is gone: nobody can submit, drain.
                    None => self.draining = true,
                },
                () = &mut abort, if !aborted => {
                    aborted = true;
                    self.abort_pending();
                }
            }
        }
        let paused = self.paused;
        for command in self.inbox.close() {
            command.refuse(&self.spec.name, &self.spec.metrics, paused);
        }
        let (depth, in_flight) = self.place.load.publish(self.place.index, 0, 0);
        self.spec.metrics.depth.set(depth as f64);
        self.spec.metrics.in_flight.set(in_flight as f64);
        tracing::debug!(queue = %self.spec.name, shard = self.place.index, "queue drained");
    }

    /// Handles `first` and the commands already waiting behind it.
    async fn take(&mut self, first: Command) {
        let now = Instant::now();
        self.handle(first, now);
        let taken = 1 + self.take_waiting(now, MAX_COMMANDS_PER_TURN - 1);
        self.inbox.give_back_room();
        if self.filling() && taken < MAX_COMMANDS_PER_TURN {
            // Let the submitters that are ready run first, so their items
            // arrive together rather than one wake-up each.
            tokio::task::yield_now().await;
            self.take_waiting(Instant::now(), MAX_COMMANDS_PER_TURN - taken);
            self.inbox.give_back_room();
        }
    }

    /// Handles commands already waiting, at most `max`, stopping early once
    /// a full batch is pending; returns how many it handled.
    fn take_waiting(&mut self, now: Instant, max: usize) -> usize {
        let mut taken = 0;
        while taken < max && self.lanes.len() < self.spec.policy.max_batch_size {
            let Some(command) = self.inbox.try_recv() else {
                break;
            };
            self.handle(command, now);
            taken += 1;
        }
        taken
    }

    /// Whether items are pending that can only leave in a batch still
    /// filling up (not full, not forced out by flush or drain).
    fn filling(&self) -> bool {
        let len = self.lanes.len();
        len > 0 && len < self.spec.policy.max_batch_size && self.flush_left == 0 && !self.draining
    }
}

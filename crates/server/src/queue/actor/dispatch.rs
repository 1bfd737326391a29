//! Dispatch: which lane's batch is due (by the queue's mode), how much of
//! the lane it takes, and launching it on the handler.

use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::Instrument;

use super::state::{Actor, NextBatch};
use crate::{
    otel,
    queue::{
        backlog::Limit,
        batch::{self, Head},
        cost,
        lanes::Lane,
        pending::Waiting,
        policy::{self, Decision, Mode, PendingView, Take, Trigger},
        target::{self, Verdict},
    },
    ready::ready_now,
};

/// Whether the handler can take a batch now.
enum Room {
    /// A slot is free: the policy decides.
    Free,
    /// `pace = "backend"`: a busy slot is about to be free, so whatever
    /// is pending goes (trigger `pace`) to arrive as it frees.
    Pacing,
    /// Not now; look again then (`None`: when a batch ends).
    Full(Option<Instant>),
}

impl Actor {
    /// The parallelism its endpoints declare, if they do.
    pub(super) fn declared_parallelism(&self) -> Option<usize> {
        (self.spec.handler.endpoints()).and_then(|pool| pool.parallelism())
    }

    /// The parallelism a paced queue paces by: what its endpoints
    /// declare, else what the climb tries (at most
    /// `max_in_flight_batches`).
    pub(super) fn paced_parallelism(&self) -> usize {
        self.declared_parallelism()
            .unwrap_or_else(|| self.learner.climbing())
    }

    /// Whether the handler can take a batch now.
    fn room(&mut self, now: Instant) -> Room {
        if self.slots.is_none() {
            return if self.in_flight.len() < self.spec.policy.max_in_flight_batches {
                Room::Free
            } else {
                Room::Full(None)
            };
        }
        let parallelism = self.paced_parallelism();
        let line = self.learner.line();
        let Some(slots) = &mut self.slots else {
            return Room::Full(None);
        };
        if slots.parallelism() != parallelism {
            slots.resize(parallelism);
            (self.spec.metrics.pace_parallelism).set(slots.parallelism() as f64);
        }
        match slots.may_send(now, line) {
            Ok(()) if slots.has_idle() => Room::Free,
            Ok(()) => Room::Pacing,
            Err(at) => Room::Full(at),
        }
    }

    /// Dispatches every batch that is due and may start, taking turns
    /// between the lanes that have one (see `lanes`); returns when the
    /// soonest lane's oldest item's `max_delay` will be up, or the
    /// backend's pace lets the next batch go, if a timer is needed for it.
    pub(super) fn dispatch_ready(&mut self, now: Instant) -> Option<Instant> {
        loop {
            let room = self.room(now);
            if self.lanes.is_empty() {
                self.flush_left = 0;
                for lane in self.lanes.all_mut() {
                    lane.held_at = None;
                }
                return None;
            }
            let pacing = match room {
                Room::Free => false,
                Room::Pacing => true,
                Room::Full(at) => return at,
            };
            let mut verdicts = std::mem::take(&mut self.verdicts);
            verdicts.clear();
            verdicts.extend(
                self.lanes
                    .all()
                    .iter()
                    .map(|l| match self.next_trigger(l, now) {
                        Err(wake) if pacing => self.paced(l, now).ok_or(wake),
                        next => next,
                    }),
            );
            let picked = self
                .lanes
                .pick(self.spec.policy.unit_cap(), |i| verdicts[i].is_ok());
            let verdict = picked.map(|i| (i, verdicts[i]));
            let wake = verdicts.iter().filter_map(|v| v.err().flatten()).min();
            self.verdicts = verdicts;
            let Some((i, Ok((trigger, len)))) = verdict else {
                return wake;
            };
            if let Some((head, items)) = self.take_from(i, trigger, len, now) {
                self.launch(head, items, now);
            }
        }
    }

    /// `pace = "backend"` with the backend about to be free: the batch
    /// `lane` sends although its own trigger is not due (nothing gained by
    /// holding it while the backend would idle), up to the mode's size.
    fn paced(&self, lane: &Lane, now: Instant) -> Option<(Trigger, Option<usize>)> {
        if lane.backlog.pending().is_empty() || self.paused {
            return None;
        }
        let policy = &self.spec.policy;
        let len = match policy.mode {
            Mode::Manual => return None,
            Mode::Auto => None,
            Mode::Target => Some(target::batch_limit(policy, self.learner.known(now))),
            Mode::Aimd => Some(self.learner.aimd_size()),
        };
        Some((Trigger::Pace, len))
    }

    /// Takes lane `i`'s next batch for `trigger` (of `len` items or cost
    /// units when the mode chose), counting what it dropped on the way;
    /// `None` when nothing live was left to take.
    fn take_from(
        &mut self,
        i: usize,
        trigger: Trigger,
        len: Option<usize>,
        now: Instant,
    ) -> Option<(Head, Vec<Waiting>)> {
        let policy = &self.spec.policy;
        let lane = self.lanes.get_mut(i);
        let pending = lane.backlog.pending().len();
        // The mode may choose the size: in items, or for a target with
        // a budget, in cost.
        let in_cost = policy.budgeted() && policy.mode == Mode::Target;
        let take = match len {
            Some(len) if !in_cost => Take {
                len,
                hold_rest: false,
            },
            _ => policy::batch_len(policy, trigger, pending, lane.held_at.is_some()),
        };
        lane.held_at = take.hold_rest.then_some(now);
        let budget = policy.max_batch_cost;
        let chosen = len.filter(|_| in_cost).map_or(budget, |units| units as u64);
        let limit = Limit {
            items: take.len,
            bytes: policy.max_batch_bytes,
            cost: policy
                .budgeted()
                .then_some((budget.min(chosen), policy.cost_model)),
            top_up: policy.top_up,
        };
        let (items, dropped) = lane.backlog.take_batch(limit, now, &self.spec.name);
        if lane.backlog.pending().is_empty() {
            lane.held_at = None;
        }
        let key = lane.key.clone();
        if let Some(series) = &lane.series {
            series.items.increment(items.len() as u64);
        }
        let pad_to = policy::pad_to(policy, items.len());
        let tally = items
            .iter()
            .fold(cost::CostTally::default(), |t, w| t.with(w.item.cost));
        let batch_cost = cost::clamp(tally.cost(policy.cost_model, pad_to));
        let units = if policy.budgeted() {
            usize::try_from(batch_cost).unwrap_or(usize::MAX)
        } else {
            items.len()
        };
        self.lanes.sent(i, units);
        self.count(dropped);
        if self.flush_left > 0 {
            self.flush_left = self.flush_left.saturating_sub(items.len());
        }
        if items.is_empty() {
            return None;
        }
        let head = Head {
            trigger,
            pad_to,
            key,
            cost: tally,
        };
        Some((head, items))
    }

    /// The trigger of `lane`'s next batch and, when the mode chose it, its
    /// size; or when to look again (`None`: only when something happens).
    pub(super) fn next_trigger(&self, lane: &Lane, now: Instant) -> NextBatch {
        let pending = lane.backlog.pending();
        if pending.is_empty() {
            return Err(None);
        }
        if self.draining {
            return Ok((Trigger::Drain, None));
        }
        if self.flush_left > 0 {
            return Ok((Trigger::Flush, None));
        }
        if self.paused {
            return Err(None);
        }
        let policy = &self.spec.policy;
        match policy.mode {
            Mode::Target => {
                let known = self.learner.known(now);
                let age = now.saturating_duration_since(pending.oldest().unwrap_or(now));
                let units = self.units(lane);
                return match target::decide(policy, known, units, age) {
                    Verdict::Dispatch(trigger, len) => Ok((trigger, Some(len))),
                    Verdict::WakeIn(after) => Err(Some(now + after)),
                    Verdict::Idle => Err(None),
                };
            }
            Mode::Aimd => {
                let cap = self.learner.aimd_size();
                let len = pending.len().min(cap);
                let trigger = if len == cap {
                    Trigger::Size
                } else {
                    Trigger::Target
                };
                return Ok((trigger, Some(len)));
            }
            Mode::Auto | Mode::Manual => {}
        }
        // Items held back wait a new `max_delay` from when they were.
        let oldest = pending.oldest().unwrap_or(now);
        let waiting_since = lane.held_at.map_or(oldest, |held| held.max(oldest));
        let mut view = PendingView {
            len: pending.len(),
            bytes: pending.bytes(),
            oldest_age: now.saturating_duration_since(waiting_since),
            cost: pending
                .tally()
                .map_or(0, |t| cost::clamp(t.cost(policy.cost_model, None))),
        };
        let mut decision = policy::decide(policy, view);
        if decision == Decision::Dispatch(Trigger::Delay) && policy.strict {
            view.len = lane.backlog.count_live(policy.min_batch_size, now);
            decision = policy::decide(policy, view);
        }
        match decision {
            Decision::Dispatch(trigger) => Ok((trigger, None)),
            Decision::WakeIn(after) => Err(Some(now + after)),
            Decision::Idle => Err(None),
        }
    }

    /// What `lane`'s pending items amount to for `mode = "target"`: their
    /// cost with a budget (at least 1 while any is pending), else their
    /// count.
    pub(super) fn units(&self, lane: &Lane) -> usize {
        let pending = lane.backlog.pending();
        match pending.tally() {
            Some(t) if self.spec.policy.budgeted() => {
                let cost = cost::clamp(t.cost(self.spec.policy.cost_model, None));
                usize::try_from(cost)
                    .unwrap_or(usize::MAX)
                    .max(pending.len().min(1))
            }
            _ => pending.len(),
        }
    }

    pub(super) fn launch(&mut self, head: Head, items: Vec<Waiting>, now: Instant) {
        let spec = &self.spec;
        let id = spec.batch_ids.fetch_add(1, Ordering::Relaxed);
        let trigger = head.trigger;
        // Traces on: the batch's span, linked to its items' calls.
        let traced = otel::enabled().then(|| {
            let traces = items.iter().map(|w| w.trace.as_ref());
            otel::batch_span(&spec.name, id, items.len(), trigger.as_str(), traces)
        });
        let (batch, sink) = batch::assemble(
            id,
            spec.name.clone(),
            head,
            spec.policy.cost_model,
            items,
            now,
            spec.metrics.clone(),
        );
        let (size, cost) = (batch.pad_to.unwrap_or(batch.items.len()), batch.cost);
        // One span per batch, entered whenever the batch (and so its
        // handler) runs. Without traces, debug level: free at the default
        // `info` filter.
        let span = traced.unwrap_or_else(|| {
            tracing::debug_span!(
                "batch",
                queue = %spec.name,
                batch = id,
                size = batch.items.len(),
                trigger = trigger.as_str()
            )
        });
        let mut run = Box::pin(
            batch::process(spec.handler.clone(), batch, sink, spec.abort.clone()).instrument(span),
        );
        // A handler that finishes at once (echo) is done here, without a
        // task of its own; one that must wait goes on as a task.
        // The first poll runs here, in the actor: a handler that panics in
        // it fails its batch (the sink answers every item as it drops),
        // not the queue.
        let first =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ready_now(run.as_mut())));
        match first {
            Err(_) => {
                tracing::error!(queue = %self.spec.name, batch = id, "batch handler panicked");
            }
            Ok(Some(done)) => self.finished(None, done),
            Ok(None) => {
                let task = self.in_flight.spawn(async move { (id, run.await) });
                let units = self.fit_units(size, cost);
                let line = self.learner.line();
                if let Some(slots) = &mut self.slots {
                    if let Some(idle) = slots.book(id, units, now, line) {
                        self.spec.metrics.pace_idle.record(idle.as_secs_f64());
                        self.learner.idle(idle);
                    }
                    self.tasks.insert(task.id(), id);
                }
            }
        }
    }
}

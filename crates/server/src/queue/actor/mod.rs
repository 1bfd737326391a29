//! The queue actor: the one task that owns a queue's backlog, its alarm and
//! its in-flight batches. Callers talk to it only through [`Command`]s on
//! its [`Inbox`], so the queue's state is never locked.
//!
//! Each turn reads the clock once and goes admit → dispatch → wait: the
//! backlog does what is due (expiry, callers gone), as many batches go out
//! as the policy and `max_in_flight_batches` allow, and the alarm is set for
//! the next moment something is due (none for an empty queue). Commands
//! already waiting are taken in the same turn, up to
//! [`MAX_COMMANDS_PER_TURN`] and no more once a full batch is pending; while
//! a batch is still filling the actor yields once, so ready submitters'
//! items arrive in one turn. It drains on `Drain` or when every handle is
//! gone.
//!
//! This file has the loop and the commands; the rest of the actor's work is
//! in its parts: `admit` (whether and where an item joins), `keys` (lanes
//! by batch key, their gauges), `dispatch` (which batch is due, taking and
//! launching it) and `learn` (the adaptive modes' fit).

mod admit;
mod dispatch;
mod keys;
mod learn;

use std::{collections::HashMap, sync::Arc};

use tokio::{
    task::{self, JoinSet},
    time::Instant,
};
use tonic::Status;

use super::{
    QueueSpec,
    alarm::Alarm,
    backlog::Dropped,
    batch::Done,
    climb::Climb,
    command::{ActorStats, Command},
    fit::{Fit, Rate},
    inbox::Inbox,
    lanes::Lanes,
    pace::{Pace, Slots},
    policy::{Policy, Trigger},
    shards::Load,
};
use crate::{error::Refusal, metrics::Outcome};

/// Commands handled per turn before the actor dispatches, so one busy
/// producer cannot starve dispatch.
const MAX_COMMANDS_PER_TURN: usize = 256;

/// A lane's next batch: its trigger and, when the mode chose it, its size;
/// or when to look again (`None`: only when something happens).
type NextBatch = Result<(Trigger, Option<usize>), Option<Instant>>;

/// Which shard of its queue an actor is, and what the shards share.
pub(super) struct Place {
    /// This shard's index, 0 first.
    pub(super) index: usize,
    /// Every shard's published depth and batches in flight.
    pub(super) load: Arc<Load>,
}

/// The queue's state (one shard's), owned by its task.
struct Actor {
    /// Name, policy, handler, metrics and the server-wide parts.
    spec: QueueSpec,
    /// Which shard this is.
    place: Place,
    /// Commands from the handles.
    inbox: Inbox,
    /// Items waiting for a batch, by batch key.
    lanes: Lanes,
    /// Each lane's next trigger this dispatch round (kept to reuse its
    /// memory).
    verdicts: Vec<NextBatch>,
    /// Whether keyed lanes existed last turn (their depth gauges then need
    /// setting).
    keyed_shown: bool,
    /// Batches being processed, each ending with its id.
    in_flight: JoinSet<(u64, Done)>,
    /// `pace = "backend"`: the backend's slots as predicted.
    slots: Option<Slots>,
    /// `pace = "backend"`: the parallelism learned when none is declared.
    climb: Climb,
    /// `pace = "backend"`: the batch each task runs (a task that fails
    /// ends without saying).
    tasks: HashMap<task::Id, u64>,
    /// The next moment something is due.
    alarm: Alarm,
    /// Items still to be dispatched with trigger `flush`.
    flush_left: usize,
    /// Set by `Drain`: refuse new items, dispatch everything, then stop.
    draining: bool,
    /// Set by `Pause`: dispatch only on flush or drain.
    paused: bool,
    /// Adaptive modes: the handler's time against batch size.
    fit: Fit,
    /// Adaptive modes: items arriving per second.
    rate: Rate,
    /// `mode = "aimd"`: the current batch size cap.
    aimd_size: usize,
}

/// Runs a queue actor until it has drained (after `Drain`, or when every
/// handle is gone) or the abort token fired and its batches ended.
pub(super) async fn run(spec: QueueSpec, place: Place, inbox: Inbox) {
    let mut actor = Actor {
        place,
        lanes: Lanes::new(spec.policy.priority_levels, spec.policy.budgeted()),
        verdicts: Vec::new(),
        keyed_shown: false,
        alarm: Alarm::new(spec.precise.clone()),
        spec,
        inbox,
        in_flight: JoinSet::new(),
        slots: None,
        climb: Climb::new(1),
        tasks: HashMap::new(),
        flush_left: 0,
        draining: false,
        paused: false,
        fit: Fit::default(),
        rate: Rate::default(),
        aimd_size: 1,
    };
    actor.slots = slots_for(&actor.spec.policy);
    actor.climb = Climb::new(actor.spec.policy.max_in_flight_batches);
    actor.show_pace();
    actor.run().await;
}

/// The slots a policy paces by, if it does.
fn slots_for(policy: &Policy) -> Option<Slots> {
    // One until what the backend declares or the climb learns says more.
    (policy.pace == Pace::Backend).then(|| Slots::new(1))
}

impl Actor {
    /// Sets the gauge of the parallelism paced by (0: not paced).
    fn show_pace(&self) {
        let parallelism = self.slots.as_ref().map_or(0, Slots::parallelism);
        self.spec.metrics.pace_parallelism.set(parallelism as f64);
    }

    async fn run(&mut self) {
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

    fn handle(&mut self, command: Command, now: Instant) {
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
                if let Some(handler) = handler {
                    tracing::info!(queue = %self.spec.name, kind = handler.kind(), "handler replaced");
                    self.spec.handler = handler;
                    // What was learned was the old handler's time.
                    self.fit = Fit::default();
                }
                self.lanes.set_levels(policy.priority_levels);
                if policy.budgeted() != self.spec.policy.budgeted() {
                    self.lanes.set_costed(policy.budgeted());
                    // What was learned was per item, or per cost unit.
                    self.fit = Fit::default();
                    self.rate = Rate::default();
                }
                self.lanes
                    .reweigh(|key| policy.weights.get(key).copied().unwrap_or(1));
                if policy.mode != self.spec.policy.mode {
                    self.aimd_size = 1;
                }
                if (policy.pace, policy.max_in_flight_batches)
                    != (
                        self.spec.policy.pace,
                        self.spec.policy.max_in_flight_batches,
                    )
                {
                    // Batches running now end unbooked.
                    self.slots = slots_for(&policy);
                    self.climb = Climb::new(policy.max_in_flight_batches);
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
    fn abort_pending(&mut self) {
        self.draining = true;
        self.answer_all(&Status::from(Refusal::Aborted));
    }

    /// Counts the items the backlog dropped or expired.
    fn count(&self, dropped: Dropped) {
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

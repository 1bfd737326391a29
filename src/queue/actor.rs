//! The queue actor: the one task that owns a queue's pending items, its
//! timer and its in-flight batches. Callers talk to it only through
//! [`Command`]s on its inbox, so the queue's state is never locked. Item
//! commands need room in the inbox (a semaphore, first come first served);
//! the actor gives the room back in bulk, once per turn, not per item.
//!
//! Each turn of its loop it reads the clock once, takes the commands
//! already waiting (up to [`MAX_COMMANDS_PER_TURN`], and no more once a
//! full batch is pending), expires items whose deadline passed, dispatches
//! as many batches as the policy and `max_in_flight_batches` allow, and arms
//! its single timer for the next moment something is due: the oldest item's
//! `max_delay`, the earliest item deadline, or the next look for items
//! whose callers went away ([`GONE_SWEEP_EVERY`] while anything is
//! pending, so a held queue sheds them too). An empty queue arms no timer.
//! While a batch is still filling it yields once before dispatching, so the
//! submitters that are ready run first and their items arrive in one turn
//! rather than one wake-up each.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Semaphore, mpsc, oneshot},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use super::{
    batch,
    item::Item,
    pending::{Pending, Waiting},
    policy::{self, Decision, PendingView, Policy, Trigger},
    timer::{PRECISE_WINDOW, PreciseTimer},
};
use crate::{
    error::Refusal,
    handler::Handler,
    metrics::{Outcome, QueueMetrics},
    ready::ready_now,
};

/// Commands a queue actor takes.
#[derive(Debug)]
pub enum Command {
    /// Accept (or refuse) one item.
    Submit(Item),
    /// Accept (or refuse) several items, in order.
    SubmitMany(Vec<Item>),
    /// Dispatch everything pending now, ignoring `min_batch_size` and mode;
    /// answers with the number of items that were pending.
    Flush(oneshot::Sender<usize>),
    /// Refuse new items, dispatch everything pending, finish in-flight
    /// batches, then stop. With `force` (a forced delete), pending items
    /// are answered UNAVAILABLE (queue deleted) instead of dispatched; `dropped` learns how many.
    Drain {
        force: bool,
        dropped: Option<oneshot::Sender<u64>>,
    },
    /// Stop dispatching (items still accepted, timeouts still run).
    Pause,
    /// Dispatch again after a pause.
    Resume,
    /// Apply a new policy from the next batch on.
    Update(Policy),
    /// Report the queue's state.
    Stats(oneshot::Sender<ActorStats>),
}

/// What a queue actor reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorStats {
    /// Items waiting.
    pub depth: usize,
    /// Batches being processed.
    pub in_flight: usize,
    /// Paused by the control plane.
    pub paused: bool,
    /// Draining: refusing new items.
    pub draining: bool,
}

/// Commands handled per turn before the actor dispatches, so one busy
/// producer cannot starve dispatch.
const MAX_COMMANDS_PER_TURN: usize = 256;
/// Least time between two sweeps of a full queue for cancelled items.
const FULL_SWEEP_EVERY: Duration = Duration::from_millis(10);
/// How often a queue holding items looks for those whose caller went away
/// (a client that cancelled or disconnected), so they leave the depth, the
/// memory and the next flush within this time even in a paused, manual or
/// `min_batch_size`-held queue. A look walks the pending items without
/// moving them: about a millisecond per million.
pub const GONE_SWEEP_EVERY: Duration = Duration::from_millis(50);

/// What a queue actor is built from.
#[derive(Debug)]
pub struct ActorParts {
    /// Queue name, for answers, logs and metrics.
    pub name: Arc<str>,
    /// Batching policy.
    pub policy: Policy,
    /// Where batches go.
    pub handler: Arc<dyn Handler>,
    /// Commands from the queue's handles.
    pub commands: mpsc::UnboundedReceiver<Command>,
    /// Room for item commands in the inbox; the actor gives back a permit
    /// for each item command it takes, in bulk once per turn.
    pub room: Room,
    /// Pre-registered metric handles.
    pub metrics: Arc<QueueMetrics>,
    /// Server-wide batch id source.
    pub batch_ids: Arc<AtomicU64>,
    /// Cancelled when the shutdown grace is over: in-flight batches are
    /// abandoned and their items answered UNAVAILABLE.
    pub abort: CancellationToken,
    /// Sub-millisecond wake-ups for the last stretch of `max_delay`.
    pub precise: Option<Arc<PreciseTimer>>,
}

/// The room in a queue's inbox, closed when the actor ends in any way (even
/// dropped without being run), so no submitter waits for room forever.
#[derive(Debug)]
pub struct Room(pub Arc<Semaphore>);

impl Drop for Room {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The queue's state, owned by its task.
struct Actor {
    parts: ActorParts,
    /// Items waiting for a batch.
    pending: Pending,
    /// Batches being processed.
    in_flight: JoinSet<()>,
    /// Items still to be dispatched with trigger `flush`.
    flush_left: usize,
    /// Set by `Drain`: refuse new items, dispatch everything, then stop.
    draining: bool,
    /// Set by `Pause`: dispatch only on flush or drain.
    paused: bool,
    /// False once every handle is gone and the channel is empty.
    inbox_open: bool,
    /// Earliest deadline of a pending item (a lower bound: items that left
    /// since may have had it).
    next_expiry: Option<Instant>,
    /// When a full queue was last swept for cancelled items.
    last_full_sweep: Option<Instant>,
    /// Item commands taken since room was last given back.
    taken_items: usize,
    /// When to look next for items whose caller went away (set while
    /// anything is pending).
    next_gone_sweep: Option<Instant>,
}

/// Runs a queue actor until it has drained (after `Drain`, or when every
/// handle is gone) or the abort token fired and its batches ended.
pub async fn run(parts: ActorParts) {
    let levels = parts.policy.priority_levels;
    let mut actor = Actor {
        parts,
        pending: Pending::new(levels),
        in_flight: JoinSet::new(),
        flush_left: 0,
        draining: false,
        paused: false,
        inbox_open: true,
        next_expiry: None,
        last_full_sweep: None,
        taken_items: 0,
        next_gone_sweep: None,
    };
    actor.run().await;
}

impl Actor {
    async fn run(&mut self) {
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        // The (depth, in-flight) the gauges show.
        let mut shown = (usize::MAX, usize::MAX);
        // The precise wake-up asked for, and the due instant it is for.
        let mut precise_wait: Option<tokio::sync::oneshot::Receiver<()>> = None;
        let mut precise_for: Option<Instant> = None;
        let mut aborted = false;
        // Registered once; polled only when nothing else is ready.
        let abort = self.parts.abort.clone();
        let abort = abort.cancelled();
        tokio::pin!(abort);
        loop {
            let now = Instant::now();
            if self.next_expiry.is_some_and(|at| at <= now) {
                self.sweep(now);
            }
            if self.next_gone_sweep.is_some_and(|at| at <= now) {
                self.drop_gone();
            }
            let delay_due = self.dispatch_ready(now);
            // Gauges only when they change: a set costs a clock read.
            let shown_now = (self.pending.len(), self.in_flight.len());
            if shown_now != shown {
                shown = shown_now;
                self.parts.metrics.depth.set(shown.0 as f64);
                self.parts.metrics.in_flight.set(shown.1 as f64);
            }
            if self.draining && self.pending.is_empty() && self.in_flight.is_empty() {
                break;
            }
            // tokio's timer until PRECISE_WINDOW before the batch is due,
            // then the precise timer for the rest.
            let coarse_delay = match (delay_due, &self.parts.precise) {
                (Some(due), Some(precise))
                    if due.saturating_duration_since(now) <= PRECISE_WINDOW =>
                {
                    if precise_for != Some(due) {
                        precise_wait = Some(precise.wake_at(due.into_std()));
                        precise_for = Some(due);
                    }
                    None
                }
                (Some(due), Some(_)) => Some(due - PRECISE_WINDOW),
                (due, _) => due,
            };
            if coarse_delay.is_some() || delay_due.is_none() {
                precise_wait = None;
                precise_for = None;
            }
            self.next_gone_sweep = match self.next_gone_sweep {
                _ if self.pending.is_empty() => None,
                None => Some(now + GONE_SWEEP_EVERY),
                at => at,
            };
            let wake = [coarse_delay, self.next_expiry, self.next_gone_sweep]
                .into_iter()
                .flatten()
                .min();
            if wake != armed {
                if let Some(at) = wake {
                    timer.as_mut().reset(at);
                }
                armed = wake;
            }
            tokio::select! {
                biased;
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Err(e) = done {
                        tracing::error!(queue = %self.parts.name, error = %e, "batch task failed");
                    }
                }
                () = &mut timer, if armed.is_some() => armed = None,
                _ = async { precise_wait.as_mut().expect("guarded").await }, if precise_wait.is_some() => {
                    precise_wait = None;
                }
                command = self.parts.commands.recv(), if self.inbox_open => match command {
                    Some(command) => {
                        let now = Instant::now();
                        self.handle(command, now);
                        let taken = 1 + self.take_waiting(now, MAX_COMMANDS_PER_TURN - 1);
                        self.give_back_room();
                        if self.filling() && taken < MAX_COMMANDS_PER_TURN {
                            // Let the submitters that are ready run first, so
                            // their items arrive together rather than one
                            // wake-up each.
                            tokio::task::yield_now().await;
                            self.take_waiting(Instant::now(), MAX_COMMANDS_PER_TURN - taken);
                            self.give_back_room();
                        }
                    }
                    // Every handle is gone: nobody can submit, drain.
                    None => {
                        self.inbox_open = false;
                        self.draining = true;
                    }
                },
                () = &mut abort, if !aborted => {
                    aborted = true;
                    self.abort_pending();
                }
            }
        }
        self.refuse_remaining_commands();
        self.parts.metrics.depth.set(0.0);
        self.parts.metrics.in_flight.set(0.0);
        tracing::debug!(queue = %self.parts.name, "queue drained");
    }

    /// Handles commands already waiting, at most `max`, stopping early once
    /// a full batch is pending; returns how many it handled.
    fn take_waiting(&mut self, now: Instant, max: usize) -> usize {
        let mut taken = 0;
        while taken < max && self.pending.len() < self.parts.policy.max_batch_size {
            match self.parts.commands.try_recv() {
                Ok(command) => self.handle(command, now),
                Err(_) => break,
            }
            taken += 1;
        }
        taken
    }

    /// Whether items are pending that can only leave in a batch still
    /// filling up (not full, not forced out by flush or drain).
    fn filling(&self) -> bool {
        let len = self.pending.len();
        len > 0 && len < self.parts.policy.max_batch_size && self.flush_left == 0 && !self.draining
    }

    /// Gives the inbox room of the item commands taken back to submitters,
    /// in one go.
    fn give_back_room(&mut self) {
        if self.taken_items > 0 {
            self.parts.room.0.add_permits(self.taken_items);
            self.taken_items = 0;
        }
    }

    fn handle(&mut self, command: Command, now: Instant) {
        match command {
            Command::Submit(item) => {
                self.taken_items += 1;
                self.accept(item, now);
            }
            Command::SubmitMany(items) => {
                self.taken_items += 1;
                for item in items {
                    self.accept(item, now);
                }
            }
            Command::Flush(reply) => {
                // Only live items count, and only they are flushed.
                self.sweep(now);
                self.flush_left = self.pending.len();
                let _ = reply.send(self.flush_left);
            }
            Command::Drain { force, dropped } => {
                self.draining = true;
                let mut n = 0;
                if force {
                    n = self.pending.len() as u64;
                    let status = Status::from(Refusal::Deleted(self.parts.name.to_string()));
                    for w in self.pending.take_all() {
                        w.reply.err(status.clone(), None);
                    }
                    self.parts.metrics.items(Outcome::Error, n);
                }
                if let Some(dropped) = dropped {
                    let _ = dropped.send(n);
                }
            }
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::Update(policy) => {
                self.pending.set_levels(policy.priority_levels);
                self.parts.policy = policy;
            }
            Command::Stats(reply) => {
                let _ = reply.send(ActorStats {
                    depth: self.pending.len(),
                    in_flight: self.in_flight.len(),
                    paused: self.paused,
                    draining: self.draining,
                });
            }
        }
    }

    /// Queues an item, or answers it with the reason it cannot be queued.
    fn accept(&mut self, item: Item, now: Instant) {
        if let Err(refusal) = self.admit(&item, now) {
            self.parts.metrics.items(Outcome::Rejected, 1);
            item.reply.err(refusal.into(), None);
            return;
        }
        let policy = &self.parts.policy;
        let deadline = now + item.timeout.unwrap_or(policy.item_timeout);
        self.next_expiry = Some(self.next_expiry.map_or(deadline, |at| at.min(deadline)));
        let priority = item.priority as usize;
        self.pending.push(
            priority,
            Waiting {
                item: crate::contract::BatchItem {
                    payload: item.payload,
                    attributes: item.attributes,
                    trace_id: item.trace_id,
                },
                reply: item.reply,
                enqueued_at: now,
                deadline,
            },
        );
    }

    fn admit(&mut self, item: &Item, now: Instant) -> Result<(), Refusal> {
        let policy = &self.parts.policy;
        let queue = || self.parts.name.to_string();
        if self.draining {
            return Err(Refusal::Draining(queue()));
        }
        if item.priority >= policy.priority_levels {
            return Err(Refusal::BadPriority {
                queue: queue(),
                priority: item.priority,
                max: policy.priority_levels - 1,
            });
        }
        if item.payload.len() > policy.max_batch_bytes {
            return Err(Refusal::PayloadTooLarge {
                queue: queue(),
                size: item.payload.len(),
                limit: policy.max_batch_bytes,
            });
        }
        if self.pending.len() >= policy.max_queue_items {
            let limit = policy.max_queue_items;
            let may_sweep = self
                .last_full_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= FULL_SWEEP_EVERY);
            if may_sweep {
                self.last_full_sweep = Some(now);
                self.sweep(now);
            }
            if self.pending.len() >= limit {
                return Err(Refusal::QueueFull {
                    queue: self.parts.name.to_string(),
                    limit,
                });
            }
        }
        Ok(())
    }

    /// Dispatches every batch that is due and may start; returns when the
    /// oldest item's `max_delay` will be up, if a timer is needed for it.
    fn dispatch_ready(&mut self, now: Instant) -> Option<Instant> {
        while self.in_flight.len() < self.parts.policy.max_in_flight_batches {
            let trigger = match self.next_trigger(now) {
                Ok(trigger) => trigger,
                Err(wake) => return wake,
            };
            let items = self.take_batch(now);
            if self.flush_left > 0 {
                self.flush_left = self.flush_left.saturating_sub(items.len());
            }
            if items.is_empty() {
                continue;
            }
            self.launch(trigger, items, now);
        }
        None
    }

    /// The trigger of the next batch, or when to look again.
    fn next_trigger(&mut self, now: Instant) -> Result<Trigger, Option<Instant>> {
        if self.pending.is_empty() {
            self.flush_left = 0;
            self.next_expiry = None;
            return Err(None);
        }
        if self.draining {
            return Ok(Trigger::Drain);
        }
        if self.flush_left > 0 {
            return Ok(Trigger::Flush);
        }
        if self.paused {
            return Err(None);
        }
        let policy = &self.parts.policy;
        let oldest = self.pending.oldest().unwrap_or(now);
        let mut view = PendingView {
            len: self.pending.len(),
            bytes: self.pending.bytes(),
            oldest_age: now.saturating_duration_since(oldest),
        };
        let mut decision = policy::decide(policy, view);
        if decision == Decision::Dispatch(Trigger::Delay) && policy.strict {
            view.len = self
                .pending
                .count_live(policy.min_batch_size, |w| is_live(w, now));
            decision = policy::decide(policy, view);
        }
        match decision {
            Decision::Dispatch(trigger) => Ok(trigger),
            Decision::WakeIn(after) => Err(Some(now + after)),
            Decision::Idle => Err(None),
        }
    }

    /// Takes the next batch's items in dispatch order, within the size and
    /// byte limits, answering expired and dropping cancelled items on the way.
    fn take_batch(&mut self, now: Instant) -> Vec<Waiting> {
        let policy = &self.parts.policy;
        let mut items = Vec::with_capacity(policy.max_batch_size.min(self.pending.len()));
        let mut bytes = 0;
        let (mut cancelled, mut expired) = (0, 0);
        while items.len() < policy.max_batch_size {
            let Some(size) = self.pending.peek_size() else {
                break;
            };
            if !items.is_empty() && bytes + size > policy.max_batch_bytes {
                break;
            }
            let Some(w) = self.pending.pop() else {
                break;
            };
            if w.reply.is_gone() {
                cancelled += 1;
            } else if w.deadline <= now {
                expired += 1;
                self.expire(w, now);
            } else {
                bytes += size;
                items.push(w);
            }
        }
        self.count_dropped(cancelled, expired);
        items
    }

    fn launch(&mut self, trigger: Trigger, items: Vec<Waiting>, now: Instant) {
        let parts = &self.parts;
        let id = parts.batch_ids.fetch_add(1, Ordering::Relaxed);
        let (batch, sink) = batch::assemble(
            id,
            parts.name.clone(),
            trigger,
            items,
            now,
            parts.metrics.clone(),
        );
        tracing::trace!(queue = %parts.name, batch = id, size = batch.items.len(), trigger = trigger.as_str(), "dispatch");
        // One span per batch, entered whenever the batch (and so its
        // handler) runs. Debug level: free at the default `info` filter.
        let span = tracing::debug_span!(
            "batch",
            queue = %parts.name,
            batch = id,
            size = batch.items.len(),
            trigger = trigger.as_str()
        );
        let mut run = Box::pin(
            batch::run(parts.handler.clone(), batch, sink, parts.abort.clone()).instrument(span),
        );
        // A handler that finishes at once (echo) is done here, without a
        // task of its own; one that must wait goes on as a task.
        if ready_now(run.as_mut()).is_none() {
            self.in_flight.spawn(run);
        }
    }

    /// Removes cancelled and expired items (answering the expired ones) and
    /// recomputes the earliest deadline.
    fn sweep(&mut self, now: Instant) {
        let (mut cancelled, mut expired) = (0, 0);
        let name = &self.parts.name;
        self.pending.sweep(|w| {
            if w.reply.is_gone() {
                cancelled += 1;
                None
            } else if w.deadline <= now {
                expired += 1;
                expire(name, w, now);
                None
            } else {
                Some(w)
            }
        });
        self.next_expiry = self.pending.earliest_deadline();
        self.count_dropped(cancelled, expired);
    }

    /// Drops the items whose caller went away; the next look is
    /// [`GONE_SWEEP_EVERY`] later.
    fn drop_gone(&mut self) {
        self.next_gone_sweep = None;
        let dropped = self.pending.drop_gone(|w| w.reply.is_gone());
        self.count_dropped(dropped as u64, 0);
    }

    fn expire(&self, w: Waiting, now: Instant) {
        expire(&self.parts.name, w, now);
    }

    fn count_dropped(&self, cancelled: u64, expired: u64) {
        if cancelled > 0 {
            self.parts.metrics.items(Outcome::Cancelled, cancelled);
        }
        if expired > 0 {
            self.parts.metrics.items(Outcome::Timeout, expired);
        }
    }

    /// The grace period is over: answer everything still waiting.
    fn abort_pending(&mut self) {
        self.draining = true;
        let status = Status::from(Refusal::Aborted);
        let n = self.pending.len() as u64;
        for w in self.pending.take_all() {
            w.reply.err(status.clone(), None);
        }
        self.parts.metrics.items(Outcome::Error, n);
    }

    /// Answers the commands still in the channel once the actor stops.
    fn refuse_remaining_commands(&mut self) {
        // Submitters still waiting for room are refused when the room is
        // dropped with the actor, just after this.
        self.parts.commands.close();
        while let Ok(command) = self.parts.commands.try_recv() {
            match command {
                Command::Submit(item) => {
                    super::refuse_gone(&self.parts.name, &self.parts.metrics, [item]);
                }
                Command::SubmitMany(items) => {
                    super::refuse_gone(&self.parts.name, &self.parts.metrics, items);
                }
                Command::Flush(reply) => {
                    let _ = reply.send(0);
                }
                Command::Drain { dropped, .. } => {
                    if let Some(dropped) = dropped {
                        let _ = dropped.send(0);
                    }
                }
                Command::Stats(reply) => {
                    let _ = reply.send(ActorStats {
                        depth: 0,
                        in_flight: 0,
                        paused: self.paused,
                        draining: true,
                    });
                }
                Command::Pause | Command::Resume | Command::Update(_) => {}
            }
        }
    }
}

fn is_live(w: &Waiting, now: Instant) -> bool {
    w.deadline > now && !w.reply.is_gone()
}

/// Answers an item whose deadline passed while it waited.
fn expire(queue: &str, w: Waiting, now: Instant) {
    let refusal = Refusal::Expired {
        queue: queue.to_owned(),
        waited: now.saturating_duration_since(w.enqueued_at),
    };
    w.reply.err(refusal.into(), None);
}

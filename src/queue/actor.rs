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

use std::sync::{Arc, atomic::Ordering};

use tokio::{task::JoinSet, time::Instant};
use tonic::Status;
use tracing::Instrument;

use super::{
    QueueSpec,
    alarm::Alarm,
    backlog::{Dropped, Limit},
    batch::{self, Done, Head},
    command::{ActorStats, Command, Learned},
    cost,
    fit::{Fit, Rate},
    inbox::Inbox,
    item::Item,
    lanes::{KeySeries, Lane, Lanes, TooManyKeys},
    pending::Waiting,
    policy::{self, Decision, Mode, PendingView, Take, Trigger},
    shards::Load,
    target::{self, Known, Verdict},
};
use crate::{error::Refusal, metrics::Outcome, otel, ready::ready_now};

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
    /// Batches being processed.
    in_flight: JoinSet<Done>,
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
        flush_left: 0,
        draining: false,
        paused: false,
        fit: Fit::default(),
        rate: Rate::default(),
        aimd_size: 1,
    };
    actor.run().await;
}

impl Actor {
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
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match done {
                        Ok(done) => self.learn(done),
                        Err(e) => {
                            tracing::error!(queue = %self.spec.name, error = %e, "batch task failed");
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

    /// Queues an item, or answers it with the reason it cannot be queued.
    fn accept(&mut self, item: Item, now: Instant) {
        let spec = &self.spec;
        let admitted = if self.draining {
            Err(Refusal::Draining(spec.name.to_string()))
        } else {
            policy::check_item(&spec.policy, &spec.name, item.priority, item.payload.len())
        };
        if admitted.is_ok()
            && spec.policy.mode == Mode::Target
            && spec.policy.shed
            && let Err(refusal) = self.shed_check(&item)
        {
            self.spec.metrics.items(Outcome::Shed, 1);
            item.reply.err(refusal.into(), None);
            return;
        }
        let cost = admitted.and_then(|()| {
            cost::item_cost(
                &self.spec.policy,
                &self.spec.name,
                item.cost,
                &item.attributes,
                item.payload.len(),
            )
        });
        let lane = cost.and_then(|cost| {
            let bucket = cost::bucket_of(&self.spec.policy.cost_buckets, cost);
            self.lane_of(&item, bucket).map(|lane| (lane, cost))
        });
        let admitted = lane.and_then(|(lane, cost)| {
            let spec = &self.spec;
            let limit = spec.policy.max_queue_items;
            let total = self.lanes.len();
            let backlog = &mut self.lanes.get_mut(lane).backlog;
            let others =
                self.place.load.others_depth(self.place.index) + total - backlog.pending().len();
            let (room, dropped) = backlog.room_for_one(limit, others, now, &spec.name);
            self.count(dropped);
            room.map(|()| (lane, cost))
        });
        match admitted {
            Ok((lane, cost)) => {
                if self.spec.policy.mode.adaptive() {
                    let units = if self.spec.policy.budgeted() { cost } else { 1 };
                    self.rate
                        .add(now, usize::try_from(units).unwrap_or(usize::MAX));
                }
                self.lanes.get_mut(lane).backlog.push_item(
                    item,
                    cost,
                    now,
                    self.spec.policy.item_timeout,
                );
                if self.spec.policy.shards > 1 {
                    let depth = self.lanes.len();
                    self.place.load.set_depth(self.place.index, depth);
                }
            }
            Err(refusal) => {
                self.spec.metrics.items(Outcome::Rejected, 1);
                item.reply.err(refusal.into(), None);
            }
        }
    }

    /// The lane of an item's batch key (its request's or header's, else the
    /// queue's `key_attribute`'s; the keyless lane without one) in cost
    /// bucket `bucket`.
    fn lane_of(&mut self, item: &Item, bucket: u8) -> Result<usize, Refusal> {
        let policy = &self.spec.policy;
        let from_attribute = || {
            (!policy.key_attribute.is_empty())
                .then(|| item.attributes.get(&policy.key_attribute))
                .flatten()
                .filter(|k| !k.is_empty())
                .map(|k| std::sync::Arc::<str>::from(k.as_str()))
        };
        let key = item.key.clone().or_else(from_attribute);
        let Some(key) = key else {
            return Ok(self.lanes.keyless(bucket));
        };
        if key.len() > policy::MAX_KEY_BYTES {
            return Err(Refusal::KeyTooLong {
                len: key.len(),
                max: policy::MAX_KEY_BYTES,
            });
        }
        let metrics = &self.spec.metrics;
        let new = |key: &str| {
            let named = policy.weights.contains_key(key);
            let label = if named {
                key
            } else {
                crate::metrics::OTHER_KEYS
            };
            let (items, depth) = metrics.key_series(label);
            let weight = policy.weights.get(key).copied().unwrap_or(1);
            let series = KeySeries {
                items,
                depth,
                named,
            };
            (weight, series)
        };
        self.lanes
            .keyed(&key, bucket, policy.max_keys, new)
            .map_err(|TooManyKeys| Refusal::TooManyKeys {
                queue: self.spec.name.to_string(),
                key: key.to_string(),
                limit: policy.max_keys,
            })
    }

    /// Sets the per-key depth gauges, while keyed lanes exist (and once
    /// after): each named key its own, the others summed under `other`;
    /// then drops idle lanes other than the first (their named gauges go
    /// to 0).
    fn show_keys(&mut self) {
        if self.lanes.keys() == 0 && !self.keyed_shown {
            // Lanes of other cost buckets, without keys: no gauges.
            if self.lanes.extra() > 0 {
                self.lanes.drop_idle();
            }
            return;
        }
        let mut other: Option<(metrics::Gauge, usize)> = None;
        // A named key's lanes (one per cost bucket) add up to its depth.
        let mut named: std::collections::BTreeMap<&str, (&metrics::Gauge, usize)> =
            Default::default();
        for lane in &self.lanes.all()[1..] {
            let (Some(series), Some(key)) = (&lane.series, &lane.key) else {
                continue;
            };
            let depth = lane.backlog.pending().len();
            let sum = if series.named {
                &mut named.entry(key).or_insert((&series.depth, 0)).1
            } else {
                &mut other.get_or_insert_with(|| (series.depth.clone(), 0)).1
            };
            *sum += depth;
        }
        for (gauge, depth) in named.into_values() {
            gauge.set(depth as f64);
        }
        match other {
            Some((gauge, depth)) => gauge.set(depth as f64),
            None if self.keyed_shown => {
                let (_, gauge) = self.spec.metrics.key_series(crate::metrics::OTHER_KEYS);
                gauge.set(0.0);
            }
            None => {}
        }
        self.lanes.drop_idle();
        self.keyed_shown = self.lanes.keys() > 0;
    }

    /// Dispatches every batch that is due and may start, taking turns
    /// between the lanes that have one (see `lanes`); returns when the
    /// soonest lane's oldest item's `max_delay` will be up, if a timer is
    /// needed for it.
    fn dispatch_ready(&mut self, now: Instant) -> Option<Instant> {
        while self.in_flight.len() < self.spec.policy.max_in_flight_batches {
            if self.lanes.is_empty() {
                self.flush_left = 0;
                for lane in self.lanes.all_mut() {
                    lane.held_at = None;
                }
                return None;
            }
            let mut verdicts = std::mem::take(&mut self.verdicts);
            verdicts.clear();
            verdicts.extend(self.lanes.all().iter().map(|l| self.next_trigger(l, now)));
            let picked = self
                .lanes
                .pick(self.spec.policy.unit_cap(), |i| verdicts[i].is_ok());
            let verdict = picked.map(|i| (i, verdicts[i]));
            let wake = verdicts.iter().filter_map(|v| v.err().flatten()).min();
            self.verdicts = verdicts;
            let Some((i, Ok((trigger, len)))) = verdict else {
                return wake;
            };
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
                .fold(cost::Tally::default(), |t, w| t.with(w.item.cost));
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
                continue;
            }
            let head = Head {
                trigger,
                pad_to,
                key,
                cost: tally,
            };
            self.launch(head, items, now);
        }
        None
    }

    /// The trigger of `lane`'s next batch and, when the mode chose it, its
    /// size; or when to look again (`None`: only when something happens).
    fn next_trigger(&self, lane: &Lane, now: Instant) -> NextBatch {
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
                let known = Known {
                    line: self.fit.line(),
                    rate: self.rate.per_sec(now),
                };
                let age = now.saturating_duration_since(pending.oldest().unwrap_or(now));
                let units = self.units(lane);
                return match target::decide(policy, known, units, age) {
                    Verdict::Dispatch(trigger, len) => Ok((trigger, Some(len))),
                    Verdict::WakeIn(after) => Err(Some(now + after)),
                    Verdict::Idle => Err(None),
                };
            }
            Mode::Aimd => {
                let len = pending.len().min(self.aimd_size);
                let trigger = if len == self.aimd_size {
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
    fn units(&self, lane: &Lane) -> usize {
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

    fn launch(&mut self, head: Head, items: Vec<Waiting>, now: Instant) {
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
            batch::run(spec.handler.clone(), batch, sink, spec.abort.clone()).instrument(span),
        );
        // A handler that finishes at once (echo) is done here, without a
        // task of its own; one that must wait goes on as a task.
        match ready_now(run.as_mut()) {
            Some(done) => self.learn(done),
            None => {
                self.in_flight.spawn(run);
            }
        }
    }

    /// Adaptive modes: learns from a finished batch.
    fn learn(&mut self, done: Done) {
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
    fn learned(&self, now: Instant) -> Option<Learned> {
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

    /// `shed = true`: whether `item` can be answered within its limit,
    /// given the queue ahead of it and the learned handler time.
    fn shed_check(&self, item: &Item) -> Result<(), Refusal> {
        let policy = &self.spec.policy;
        if self.fit.samples() < target::SHED_AFTER_SAMPLES {
            return Ok(());
        }
        let pending = self.lanes.all().iter().map(|l| self.units(l)).sum();
        let predicted =
            target::predicted_wait(policy, self.fit.line(), pending, self.in_flight.len());
        let limit = target::shed_limit(policy, item.timeout.unwrap_or(policy.item_timeout));
        match predicted {
            Some(predicted) if predicted > limit => Err(Refusal::Shed {
                queue: self.spec.name.to_string(),
                predicted,
                limit,
            }),
            _ => Ok(()),
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

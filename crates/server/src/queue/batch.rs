//! A dispatched batch: what the handler reads ([`Batch`]) and the queue's
//! side of where it writes each item's result ([`BatchSink`], the
//! contract's [`ResultSink`]).
//!
//! The two are split so a handler borrows payloads while it answers items
//! one by one, in any order, as soon as each result exists. The sink answers
//! every item it still holds when it is dropped, so a handler that forgets an
//! item, returns early, panics or is cancelled can never leave a caller
//! hanging.
//!
//! The queue owns every item's deadline, before dispatch (the backlog) and
//! after it (here): while the handler runs, [`process`] answers each item whose
//! deadline passes DEADLINE_EXCEEDED with the same message the backlog
//! uses, and the handler's late result for it is refused as
//! [`SinkError::Expired`]. That is why the sink's state sits behind a lock
//! shared by the handler's [`SinkHandle`] and the deadline watch; the lock
//! is never contended for long (one per answering call).

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{
    cost::{self, CostModel, CostTally},
    item::{Answer, BatchFacts, Gathered, Reply},
    pending::Waiting,
};
use crate::{
    contract::{Batch, ItemResult, ResultSink, SinkError, Trigger},
    error::Refusal,
    handler::Handler,
    metrics::{Dispatched, Outcome, QueueMetrics, buckets::LocalDurations},
    ready::ready_now,
};

/// An item's way back, held until its result arrives.
#[derive(Debug)]
struct ReplySlot {
    /// Where the answer goes.
    reply: Reply,
    /// How long it waited for dispatch, nanoseconds (its end-to-end time is
    /// this plus the batch's time in the handler so far).
    queued_ns: u64,
    /// When it must be answered even though it is in the handler (a
    /// unary call's own deadline).
    answer_by: Option<Instant>,
    /// Its bytes of the memory budget, given back with the slot.
    _charge: super::budget::Charge,
}

/// The queue's side of a batch's answers: the sink's state, behind a lock
/// shared by the handler's [`SinkHandle`] and the deadline watch of [`process`].
#[derive(Debug)]
pub struct BatchSink {
    /// The state; locked once per answering call.
    state: Mutex<SinkState>,
}

/// The [`ResultSink`] a handler writes to.
#[derive(Debug)]
pub struct SinkHandle<'a> {
    /// The batch's sink.
    sink: &'a BatchSink,
}

/// Each item's reply, and the timings and counts its answers add to the
/// metrics.
#[derive(Debug)]
struct SinkState {
    /// Batch facts stamped on every answer.
    info: BatchFacts,
    /// When the batch was dispatched.
    dispatched_at: Instant,
    /// One slot per item; `None` once answered.
    slots: Vec<Option<ReplySlot>>,
    /// Slots still `Some`.
    open: usize,
    /// End-to-end time of each item answered so far, nanoseconds.
    item_times_ns: Vec<u64>,
    /// The same, bucketed for the metrics (added once, on drop).
    item_buckets: LocalDurations,
    /// Items answered with a result / an error, counted into the metrics
    /// once, when the sink is dropped.
    answered_ok: u64,
    answered_err: u64,
    /// Items answered DEADLINE_EXCEEDED by the deadline watch.
    answered_timeout: u64,
    /// Items whose deadline passed in the handler (a late result for one
    /// of them is refused as expired, not as a duplicate).
    expired: Vec<usize>,
    /// Where outcomes are counted.
    metrics: Arc<QueueMetrics>,
    /// Stream items' answers not yet sent: they go out one message per
    /// stream after each answering call that answers many (`send_all`,
    /// failures, expiry) and after each poll of the handler.
    gathered: Gathered,
}

impl BatchSink {
    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handler's way in.
    pub fn handle(&self) -> SinkHandle<'_> {
        SinkHandle { sink: self }
    }

    /// Sends the stream answers gathered so far.
    fn send_gathered(&self) {
        let mut state = self.lock();
        if !state.gathered.is_empty() {
            state.gathered.send();
        }
    }
}

impl ResultSink for SinkHandle<'_> {
    fn len(&self) -> usize {
        self.sink.lock().slots.len()
    }

    fn is_open(&self, index: usize) -> bool {
        self.sink.lock().is_open(index)
    }

    fn send(&mut self, index: usize, result: ItemResult) -> Result<(), SinkError> {
        self.sink.lock().send(index, result)
    }

    fn send_all(&mut self, results: &mut dyn Iterator<Item = (usize, ItemResult)>) -> usize {
        self.sink.lock().send_all(results)
    }

    fn fail_unanswered(&mut self, status: &Status) {
        self.sink.lock().fail_unanswered(status);
    }
}

impl SinkState {
    fn new(
        id: u64,
        trigger: Trigger,
        dispatched_at: Instant,
        slots: Vec<Option<ReplySlot>>,
        metrics: Arc<QueueMetrics>,
    ) -> Self {
        let info = BatchFacts {
            id,
            size: u32::try_from(slots.len()).unwrap_or(u32::MAX),
            trigger,
            queued_us: 0,
            handler_us: 0,
        };
        Self {
            info,
            dispatched_at,
            open: slots.len(),
            item_times_ns: Vec::with_capacity(slots.len()),
            item_buckets: LocalDurations::default(),
            answered_ok: 0,
            answered_err: 0,
            answered_timeout: 0,
            expired: Vec::new(),
            slots,
            metrics,
            gathered: Gathered::default(),
        }
    }

    /// The earliest time an open item must be answered by, if any must.
    fn next_answer_by(&self) -> Option<Instant> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|s| s.answer_by)
            .min()
    }

    /// Answers every open item whose deadline is `now` or earlier
    /// DEADLINE_EXCEEDED; returns the earliest deadline still open.
    fn expire_due(&mut self, now: Instant, queue: &str) -> Option<Instant> {
        let handler_ns = self.handler_ns();
        let mut next: Option<Instant> = None;
        for i in 0..self.slots.len() {
            let Some(deadline) = self.slots[i].as_ref().and_then(|s| s.answer_by) else {
                continue;
            };
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            if let Some(slot) = self.slots[i].take() {
                self.open -= 1;
                self.expired.push(i);
                let waited = Duration::from_nanos(slot.queued_ns.saturating_add(handler_ns));
                let status = Status::from(Refusal::Expired {
                    queue: queue.to_owned(),
                    waited,
                });
                self.answer(slot, Err(status), handler_ns);
                // A timeout, not a handler error.
                self.answered_err -= 1;
                self.answered_timeout += 1;
            }
        }
        self.gathered.send();
        next
    }

    /// Time since dispatch, nanoseconds: read once per call that answers,
    /// shared by every item it answers.
    fn handler_ns(&self) -> u64 {
        nanos(self.dispatched_at.elapsed())
    }

    fn answer(&mut self, slot: ReplySlot, result: ItemResult, handler_ns: u64) {
        let info = BatchFacts {
            queued_us: slot.queued_ns / 1_000,
            handler_us: handler_ns / 1_000,
            ..self.info
        };
        let total_ns = slot.queued_ns.saturating_add(handler_ns);
        self.item_buckets.record_ns(total_ns);
        self.item_times_ns.push(total_ns);
        if result.is_ok() {
            self.answered_ok += 1;
        } else {
            self.answered_err += 1;
        }
        let answer = Answer {
            result,
            batch: Some(info),
        };
        slot.reply.answer_into(answer, &mut self.gathered);
    }
}

impl SinkState {
    fn is_open(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(Option::is_some)
    }

    fn send(&mut self, index: usize, result: ItemResult) -> Result<(), SinkError> {
        let len = self.slots.len();
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(SinkError::OutOfRange { index, len })?
            .take();
        let Some(slot) = slot else {
            return Err(if self.expired.contains(&index) {
                SinkError::Expired(index)
            } else {
                SinkError::Duplicate(index)
            });
        };
        self.open -= 1;
        let handler_ns = self.handler_ns();
        self.answer(slot, result, handler_ns);
        Ok(())
    }

    fn send_all(&mut self, results: &mut dyn Iterator<Item = (usize, ItemResult)>) -> usize {
        let handler_ns = self.handler_ns();
        let mut skipped = 0;
        for (index, result) in results {
            match self.slots.get_mut(index).and_then(Option::take) {
                Some(slot) => {
                    self.open -= 1;
                    self.answer(slot, result, handler_ns);
                }
                None => skipped += 1,
            }
        }
        self.gathered.send();
        skipped
    }

    fn fail_unanswered(&mut self, status: &Status) {
        if self.open == 0 {
            return;
        }
        let handler_ns = self.handler_ns();
        for i in 0..self.slots.len() {
            if let Some(slot) = self.slots[i].take() {
                self.answer(slot, Err(status.clone()), handler_ns);
            }
        }
        self.open = 0;
        self.gathered.send();
    }
}

impl Drop for SinkState {
    fn drop(&mut self) {
        if self.open > 0 {
            self.fail_unanswered(&Status::internal(format!(
                "handler returned no result for this item (batch {})",
                self.info.id
            )));
        }
        self.gathered.send();
        self.item_buckets
            .flush_into(&self.metrics.timings.item_seconds);
        if self.answered_ok > 0 {
            self.metrics.items(Outcome::Ok, self.answered_ok);
        }
        if self.answered_err > 0 {
            self.metrics.items(Outcome::Error, self.answered_err);
        }
        if self.answered_timeout > 0 {
            self.metrics.items(Outcome::Timeout, self.answered_timeout);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What the queue decided about a batch besides its items.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    /// Why it closed.
    pub trigger: Trigger,
    /// The allowed size it is padded to, if its count is not allowed.
    pub pad_to: Option<usize>,
    /// The batch key its items share.
    pub key: Option<Arc<str>>,
    /// Its items' costs.
    pub cost: CostTally,
}

/// Builds the batch and its sink from the items leaving a queue; `model`
/// is how the queue counts a batch's cost.
pub(crate) fn assemble(
    id: u64,
    queue: Arc<str>,
    head: Head,
    model: CostModel,
    items: Vec<Waiting>,
    now: Instant,
    metrics: Arc<QueueMetrics>,
) -> (Batch, BatchSink) {
    let Head {
        trigger,
        pad_to,
        key,
        cost: tally,
    } = head;
    let mut batch_items = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    let mut deadline = now + Duration::from_secs(24 * 3600);
    let mut waits = LocalDurations::default();
    let mut queued_total = 0u64;
    for d in items {
        let queued_ns = nanos(now.saturating_duration_since(d.enqueued_at));
        waits.record_ns(queued_ns);
        queued_total = queued_total.saturating_add(queued_ns);
        deadline = deadline.min(d.deadline);
        batch_items.push(d.item);
        slots.push(Some(ReplySlot {
            reply: d.reply,
            queued_ns,
            answer_by: d.answer_by,
            _charge: d.charge,
        }));
    }
    waits.flush_into(&metrics.timings.queue_wait);
    metrics.batch_size.record(batch_items.len() as f64);
    let batch_cost = cost::clamp(tally.cost(model, pad_to));
    metrics.batch_cost.record(batch_cost as f64);
    let padding = tally.padding_ratio(pad_to);
    if let Some(ratio) = padding {
        metrics.padding_ratio.record(ratio);
    }
    metrics.dispatched(&Dispatched {
        items: batch_items.len(),
        queued_ns: queued_total,
        trigger,
        cost: batch_cost,
        padding,
        key: key.clone(),
    });
    let sink = BatchSink {
        state: Mutex::new(SinkState::new(id, trigger, now, slots, metrics)),
    };
    let batch = Batch {
        id,
        queue,
        trigger,
        items: batch_items,
        deadline,
        pad_to,
        key,
        cost: batch_cost,
    };
    (batch, sink)
}

/// Runs one batch through its handler and makes sure every item is answered:
/// a handler error fails the items it left unanswered with that status, a
/// handler that forgets items fails them INTERNAL, and `abort` (the end of
/// the shutdown grace) fails them UNAVAILABLE.
pub(crate) async fn process(
    handler: Arc<dyn Handler>,
    batch: Batch,
    sink: BatchSink,
    abort: CancellationToken,
) -> Done {
    if tracing::enabled!(tracing::Level::TRACE) {
        for (index, item) in batch.items.iter().enumerate() {
            if let Some(trace_id) = &item.trace_id {
                tracing::trace!(index, %trace_id, "item in batch");
            }
        }
    }
    let started = Instant::now();
    let outcome = {
        let mut handle = sink.handle();
        let mut work = handler.process(&batch, &mut handle);
        // A stream's answers from one poll of the handler go out together.
        let work = std::future::poll_fn(|cx| {
            let polled = work.as_mut().poll(cx);
            sink.send_gathered();
            polled
        });
        tokio::pin!(work);
        // A batch that finishes at once (echo) arms no timer and never
        // touches the abort token (checking it takes a lock).
        match ready_now(work.as_mut()) {
            Some(result) => result,
            None => {
                let mut next = sink.lock().next_answer_by();
                loop {
                    let due = next.unwrap_or(started);
                    tokio::select! {
                        biased;
                        result = &mut work => break result,
                        () = abort.cancelled() => break Err(Status::from(Refusal::Aborted)),
                        () = tokio::time::sleep_until(due), if next.is_some() => {
                            next = sink.lock().expire_due(Instant::now(), &batch.queue);
                        }
                    }
                }
            }
        }
    };
    let handler_time = started.elapsed();
    let mut state = sink.lock();
    state.metrics.handler_seconds.record(handler_time);
    match outcome {
        Err(status) => state.fail_unanswered(&status),
        Ok(()) if state.open > 0 => {
            let missing = state.open;
            tracing::warn!(
                queue = %batch.queue,
                batch = batch.id,
                missing,
                "handler returned fewer results than items"
            );
            state.fail_unanswered(&Status::internal(format!(
                "handler returned no result for this item (batch {}, {missing} of {} missing)",
                batch.id,
                batch.items.len()
            )));
        }
        Ok(()) => {}
    }
    state
        .metrics
        .remember_batch(batch.items.len(), handler_time, &state.item_times_ns);
    Done {
        size: batch.pad_to.unwrap_or(batch.items.len()),
        cost: batch.cost,
        took: handler_time,
    }
}

/// A finished batch, for the queue to learn from: the size the handler
/// processed (padded, if it was) and how long it took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    /// Items the handler processed.
    pub size: usize,
    /// The batch's cost under the queue's model.
    pub cost: u64,
    /// Time in the handler.
    pub took: Duration,
}

//! A dispatched batch: what the handler reads ([`Batch`]) and where it writes
//! each item's result ([`ResultSink`]).
//!
//! The two are split so a handler borrows payloads while it answers items
//! one by one, in any order, as soon as each result exists. The sink answers
//! every item it still holds when it is dropped, so a handler that forgets an
//! item, returns early, panics or is cancelled can never leave a caller
//! hanging.

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::{item::Reply, pending::Waiting, policy::Trigger};
use crate::{
    error::Refusal,
    handler::Handler,
    metrics::{Outcome, QueueMetrics, buckets::LocalDurations},
    pb,
};

/// The items of one batch, as a handler sees them.
#[derive(Debug)]
pub struct Batch {
    /// Server-unique batch id.
    pub id: u64,
    /// The queue the batch comes from.
    pub queue: Arc<str>,
    /// Why it closed.
    pub trigger: Trigger,
    /// The items, indexed as the [`ResultSink`] expects.
    pub items: Vec<BatchItem>,
    /// The earliest deadline of its items: a remote handler's call timeout.
    pub deadline: Instant,
}

/// One item of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Opaque bytes from the client.
    pub payload: Bytes,
    /// String attributes from the client.
    pub attributes: HashMap<String, String>,
    /// The client's request id, passed on to remote backends.
    pub trace_id: Option<String>,
}

/// A handler's result for one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemOutput {
    /// Bytes returned to the client.
    pub payload: Bytes,
    /// Attributes returned to the client.
    pub attributes: HashMap<String, String>,
}

/// A result a handler sent that the sink could not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The index names no item of the batch.
    #[error("result for item {index}, but the batch has {len} items")]
    OutOfRange { index: usize, len: usize },
    /// The item was answered already; the first answer stands.
    #[error("second result for item {0}")]
    Duplicate(usize),
}

/// An item's way back, held until its result arrives.
#[derive(Debug)]
struct Slot {
    /// Where the answer goes.
    reply: Reply,
    /// How long it waited for dispatch, nanoseconds (its end-to-end time is
    /// this plus the batch's time in the handler so far).
    queued_ns: u64,
}

/// Where a handler puts each item's result.
#[derive(Debug)]
pub struct ResultSink {
    /// Batch facts stamped on every answer.
    info: pb::BatchInfo,
    /// When the batch was dispatched.
    dispatched_at: Instant,
    /// One slot per item; `None` once answered.
    slots: Vec<Option<Slot>>,
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
    /// Where outcomes are counted.
    metrics: Arc<QueueMetrics>,
}

impl ResultSink {
    fn new(
        id: u64,
        trigger: Trigger,
        dispatched_at: Instant,
        slots: Vec<Option<Slot>>,
        metrics: Arc<QueueMetrics>,
    ) -> Self {
        let info = pb::BatchInfo {
            batch_id: id,
            batch_size: u32::try_from(slots.len()).unwrap_or(u32::MAX),
            trigger: pb::Trigger::from(trigger) as i32,
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
            slots,
            metrics,
        }
    }

    /// Items in the batch.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the batch has no items.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether every item has been answered.
    pub fn is_complete(&self) -> bool {
        self.open == 0
    }

    /// Whether item `index` still waits for its result.
    pub fn is_open(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(Option::is_some)
    }

    /// Indexes of the items still waiting for a result (for retries).
    pub fn unanswered(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|_| i))
    }

    /// Answers item `index` at once.
    ///
    /// # Errors
    /// [`SinkError`] if `index` is out of range or was answered before; the
    /// earlier answer stands and nothing is sent.
    pub fn send(
        &mut self,
        index: usize,
        result: Result<ItemOutput, Status>,
    ) -> Result<(), SinkError> {
        let len = self.slots.len();
        let slot = self
            .slots
            .get_mut(index)
            .ok_or(SinkError::OutOfRange { index, len })?
            .take()
            .ok_or(SinkError::Duplicate(index))?;
        self.open -= 1;
        let handler_ns = self.handler_ns();
        self.answer(slot, result, handler_ns);
        Ok(())
    }

    /// Answers many items at once (one clock read for all of them); results
    /// the sink cannot take are skipped, as [`ResultSink::send`] would
    /// refuse them. Returns how many were skipped.
    pub fn send_all(
        &mut self,
        results: impl IntoIterator<Item = (usize, Result<ItemOutput, Status>)>,
    ) -> usize {
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
        skipped
    }

    /// Fails every item not answered yet with `status`.
    pub fn fail_unanswered(&mut self, status: &Status) {
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
    }

    /// Time since dispatch, nanoseconds: read once per call that answers,
    /// shared by every item it answers.
    fn handler_ns(&self) -> u64 {
        nanos(self.dispatched_at.elapsed())
    }

    fn answer(&mut self, slot: Slot, result: Result<ItemOutput, Status>, handler_ns: u64) {
        let info = pb::BatchInfo {
            queued_us: slot.queued_ns / 1_000,
            handler_us: handler_ns / 1_000,
            ..self.info
        };
        let total_ns = slot.queued_ns.saturating_add(handler_ns);
        self.item_buckets.record_ns(total_ns);
        self.item_times_ns.push(total_ns);
        match result {
            Ok(out) => {
                self.answered_ok += 1;
                slot.reply.ok(pb::SubmitResponse {
                    payload: out.payload,
                    attributes: out.attributes,
                    batch: Some(info),
                });
            }
            Err(status) => {
                self.answered_err += 1;
                slot.reply.err(status, Some(info));
            }
        }
    }
}

impl Drop for ResultSink {
    fn drop(&mut self) {
        if self.open > 0 {
            self.fail_unanswered(&Status::internal(format!(
                "handler returned no result for this item (batch {})",
                self.info.batch_id
            )));
        }
        self.item_buckets
            .flush_into(&self.metrics.timings.item_seconds);
        if self.answered_ok > 0 {
            self.metrics.items(Outcome::Ok, self.answered_ok);
        }
        if self.answered_err > 0 {
            self.metrics.items(Outcome::Error, self.answered_err);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl From<Trigger> for pb::Trigger {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Size => pb::Trigger::Size,
            Trigger::Bytes => pb::Trigger::Bytes,
            Trigger::Delay => pb::Trigger::Delay,
            Trigger::Flush => pb::Trigger::Flush,
            Trigger::Drain => pb::Trigger::Drain,
        }
    }
}

/// Builds the batch and its sink from the items leaving a queue.
pub(crate) fn assemble(
    id: u64,
    queue: Arc<str>,
    trigger: Trigger,
    items: Vec<Waiting>,
    now: Instant,
    metrics: Arc<QueueMetrics>,
) -> (Batch, ResultSink) {
    let mut batch_items = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    let mut deadline = now + Duration::from_secs(24 * 3600);
    let mut waits = LocalDurations::default();
    for d in items {
        let queued_ns = nanos(now.saturating_duration_since(d.enqueued_at));
        waits.record_ns(queued_ns);
        deadline = deadline.min(d.deadline);
        batch_items.push(d.item);
        slots.push(Some(Slot {
            reply: d.reply,
            queued_ns,
        }));
    }
    waits.flush_into(&metrics.timings.queue_wait);
    metrics.batch(trigger);
    metrics.batch_size.record(batch_items.len() as f64);
    let sink = ResultSink::new(id, trigger, now, slots, metrics);
    let batch = Batch {
        id,
        queue,
        trigger,
        items: batch_items,
        deadline,
    };
    (batch, sink)
}

/// Runs one batch through its handler and makes sure every item is answered:
/// a handler error fails the items it left unanswered with that status, a
/// handler that forgets items fails them INTERNAL, and `abort` (the end of
/// the shutdown grace) fails them UNAVAILABLE.
pub(crate) async fn run(
    handler: Arc<dyn Handler>,
    batch: Batch,
    mut sink: ResultSink,
    abort: CancellationToken,
) {
    let started = Instant::now();
    // The handler goes first: a batch that finishes at once never touches
    // the abort token (checking it takes a lock).
    let outcome = tokio::select! {
        biased;
        result = handler.process(&batch, &mut sink) => result,
        () = abort.cancelled() => Err(Status::from(Refusal::Aborted)),
    };
    let handler_time = started.elapsed();
    sink.metrics.handler_seconds.record(handler_time);
    match outcome {
        Err(status) => sink.fail_unanswered(&status),
        Ok(()) if !sink.is_complete() => {
            let missing = sink.unanswered().count();
            tracing::warn!(
                queue = %batch.queue,
                batch = batch.id,
                missing,
                "handler returned fewer results than items"
            );
            sink.fail_unanswered(&Status::internal(format!(
                "handler returned no result for this item (batch {}, {missing} of {} missing)",
                batch.id,
                batch.items.len()
            )));
        }
        Ok(()) => {}
    }
    sink.metrics
        .remember_batch(batch.items.len(), handler_time, &sink.item_times_ns);
}

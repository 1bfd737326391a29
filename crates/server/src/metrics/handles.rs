//! The pre-registered metric handles of a queue and of a remote endpoint:
//! registered once, so the hot path never looks a label up.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use metrics::{Counter, Gauge, Histogram};

use super::{
    buckets::DurationHistogram,
    names::{CallOutcome, KeyOutcome, Outcome},
    recent::{Dispatched, Percentiles, QueueCounts, RECENT, Recent, push_capped},
};
use crate::contract::Trigger;

/// The per-item timing histograms of one queue.
#[derive(Debug, Default)]
pub struct ItemTimings {
    /// [`QUEUE_WAIT_SECONDS`](super::QUEUE_WAIT_SECONDS).
    pub queue_wait: DurationHistogram,
    /// [`ITEM_SECONDS`](super::ITEM_SECONDS).
    pub item_seconds: DurationHistogram,
}

/// The pre-registered metric handles of one remote endpoint.
#[derive(Debug)]
pub struct EndpointMetrics {
    /// [`BACKEND_CALLS_TOTAL`](super::BACKEND_CALLS_TOTAL) by [`CallOutcome`].
    pub(super) calls: [Counter; 4],
    /// [`BACKEND_RETRIES_TOTAL`](super::BACKEND_RETRIES_TOTAL).
    pub retries: Counter,
    /// [`BACKEND_EJECTIONS_TOTAL`](super::BACKEND_EJECTIONS_TOTAL).
    pub ejections: Counter,
    /// [`BACKEND_IN_FLIGHT`](super::BACKEND_IN_FLIGHT).
    pub in_flight: Gauge,
    /// Its series: removed when the endpoint's last handle is dropped.
    pub(super) _scope: Arc<super::Scope>,
}

/// [`CONFIG_RELOADS_TOTAL`](super::CONFIG_RELOADS_TOTAL) by result.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    /// The reload applied.
    pub ok: Counter,
    /// The new configuration was invalid (or a change was refused).
    pub error: Counter,
}

/// The series of one name a remote queue resolves through DNS.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    /// [`DNS_RESOLUTIONS_TOTAL`](super::DNS_RESOLUTIONS_TOTAL), result ok.
    pub ok: Counter,
    /// The same, result error (lookup failed or resolved to nothing).
    pub error: Counter,
}

impl EndpointMetrics {
    /// Counts one call that ended with `outcome`.
    pub fn call(&self, outcome: CallOutcome) {
        let i = CallOutcome::ALL
            .iter()
            .position(|&o| o == outcome)
            .unwrap_or_default();
        self.calls[i].increment(1);
    }
}

/// Cumulative times of a queue's items and batches (nanoseconds), as
/// Triton's model statistics report them.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Items dispatched, and their waits in the queue.
    queued: AtomicU64,
    queue_ns: AtomicU64,
    /// Items answered in a batch, the batches' handler time counted once
    /// for each of its items, and their end-to-end times.
    answered: AtomicU64,
    compute_ns: AtomicU64,
    item_ns: AtomicU64,
    /// When the last batch ended, milliseconds since the epoch.
    last_ms: AtomicU64,
    /// Open Inference Protocol requests answered and failed, the rows of
    /// those answered, and their time in all.
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    request_rows: AtomicU64,
    request_ns: AtomicU64,
}

/// A snapshot of [`Totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTotals {
    pub queued: u64,
    pub queue_ns: u64,
    pub answered: u64,
    pub compute_ns: u64,
    pub item_ns: u64,
    pub last_ms: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub request_rows: u64,
    pub request_ns: u64,
}

/// The pre-registered metric handles of one queue.
#[derive(Debug)]
pub struct QueueMetrics {
    /// [`ITEMS_TOTAL`](super::ITEMS_TOTAL) by [`Outcome`].
    pub(super) items: [Counter; 6],
    /// [`BATCHES_TOTAL`](super::BATCHES_TOTAL) by [`Trigger`].
    pub(super) batches: [Counter; Trigger::ALL.len()],
    /// [`BATCH_SIZE`](super::BATCH_SIZE).
    pub batch_size: Histogram,
    /// [`BATCH_COST`](super::BATCH_COST).
    pub batch_cost: Histogram,
    /// [`BATCH_PADDING_RATIO`](super::BATCH_PADDING_RATIO).
    pub padding_ratio: Histogram,
    /// [`QUEUE_WAIT_SECONDS`](super::QUEUE_WAIT_SECONDS) and [`ITEM_SECONDS`](super::ITEM_SECONDS).
    pub timings: Arc<ItemTimings>,
    /// [`HANDLER_SECONDS`](super::HANDLER_SECONDS).
    pub handler_seconds: Histogram,
    /// [`QUEUE_DEPTH`](super::QUEUE_DEPTH).
    pub depth: Gauge,
    /// [`QUEUE_MAX_ITEMS`](super::QUEUE_MAX_ITEMS): the queue's `max_queue_items`.
    pub max_items: Gauge,
    /// [`IN_FLIGHT_BATCHES`](super::IN_FLIGHT_BATCHES).
    pub in_flight: Gauge,
    /// [`PACE_PARALLELISM`](super::PACE_PARALLELISM).
    pub pace_parallelism: Gauge,
    /// [`PACE_BACKEND_WAIT_SECONDS`](super::PACE_BACKEND_WAIT_SECONDS).
    pub pace_wait: Histogram,
    /// [`PACE_IDLE_SECONDS`](super::PACE_IDLE_SECONDS).
    pub pace_idle: Histogram,
    /// [`IDEMPOTENT_ITEMS_TOTAL`](super::IDEMPOTENT_ITEMS_TOTAL) by [`KeyOutcome`].
    pub(super) idempotent: [Counter; 4],
    /// [`IDEMPOTENCY_KEYS`](super::IDEMPOTENCY_KEYS).
    pub idempotency_keys: Gauge,
    /// Readable copies of the item counters, by [`Outcome::ALL`](super::Outcome::ALL) order.
    pub(super) counts: [AtomicU64; 6],
    /// Readable copies of the batch counters, by [`Trigger::ALL`] order.
    pub(super) by_trigger: [AtomicU64; Trigger::ALL.len()],
    /// Cumulative times, for Triton's model statistics.
    pub(super) totals: Totals,
    /// The most recent batches, for percentiles in the control API.
    pub(super) recent: Mutex<Recent>,
    /// The queue's name (their `queue` label).
    pub(super) name: String,
    /// Its series (the key series registered when a key is first seen):
    /// removed when the queue's last handle is dropped.
    pub(super) scope: Arc<super::Scope>,
}

impl QueueMetrics {
    /// Counts `n` items that ended with `outcome`.
    pub fn items(&self, outcome: Outcome, n: u64) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.items[i].increment(n);
        self.counts[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one item with an idempotency key taken as `outcome`.
    pub fn idempotent(&self, outcome: KeyOutcome) {
        let i = KeyOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        self.idempotent[i].increment(1);
    }

    /// Counts one batch dispatched by `trigger`.
    fn batch(&self, trigger: Trigger) {
        let i = Trigger::ALL.iter().position(|t| *t == trigger).unwrap_or(0);
        self.batches[i].increment(1);
        self.by_trigger[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a finished batch's size, handler time and item times for the
    /// recent percentiles.
    pub fn remember_batch(&self, size: usize, handler: Duration, item_times_ns: &[u64]) {
        let t = &self.totals;
        let handler_ns = u64::try_from(handler.as_nanos()).unwrap_or(u64::MAX);
        t.answered.fetch_add(size as u64, Ordering::Relaxed);
        t.compute_ns
            .fetch_add(handler_ns.saturating_mul(size as u64), Ordering::Relaxed);
        t.item_ns
            .fetch_add(item_times_ns.iter().sum::<u64>(), Ordering::Relaxed);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        t.last_ms.store(now_ms, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        push_capped(&mut recent.batch_sizes, size as f64);
        push_capped(&mut recent.handler_ms, handler.as_secs_f64() * 1e3);
        for &ns in item_times_ns.iter().rev().take(RECENT).rev() {
            push_capped(&mut recent.item_ms, ns as f64 / 1e6);
        }
    }

    /// The items counter and depth gauge of batch key `label` (a key the
    /// queue's `weights` names, or [`OTHER_KEYS`](super::names::OTHER_KEYS)):
    /// the same series each time for the same label.
    pub fn key_series(&self, label: &str) -> (Counter, Gauge) {
        use metrics::{Key, Label};
        let labels = || {
            vec![
                Label::new("queue", self.name.clone()),
                Label::new("key", label.to_owned()),
            ]
        };
        let items = self
            .scope
            .counter(&Key::from_parts(super::names::KEY_ITEMS_TOTAL, labels()));
        let depth = self
            .scope
            .gauge(&Key::from_parts(super::names::KEY_DEPTH, labels()));
        (items, depth)
    }

    /// Counts a dispatched batch (its trigger, items and their waits) and
    /// keeps its wait, cost, padding and key for the recent series.
    pub fn dispatched(&self, d: &Dispatched) {
        self.batch(d.trigger);
        self.totals
            .queued
            .fetch_add(d.items as u64, Ordering::Relaxed);
        self.totals
            .queue_ns
            .fetch_add(d.queued_ns, Ordering::Relaxed);
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dispatched(d);
    }

    /// The cumulative times so far.
    pub fn totals(&self) -> QueueTotals {
        let t = &self.totals;
        QueueTotals {
            queued: t.queued.load(Ordering::Relaxed),
            queue_ns: t.queue_ns.load(Ordering::Relaxed),
            answered: t.answered.load(Ordering::Relaxed),
            compute_ns: t.compute_ns.load(Ordering::Relaxed),
            item_ns: t.item_ns.load(Ordering::Relaxed),
            last_ms: t.last_ms.load(Ordering::Relaxed),
            requests_ok: t.requests_ok.load(Ordering::Relaxed),
            requests_failed: t.requests_failed.load(Ordering::Relaxed),
            request_rows: t.request_rows.load(Ordering::Relaxed),
            request_ns: t.request_ns.load(Ordering::Relaxed),
        }
    }

    /// Counts one Open Inference Protocol request of `rows` rows that took
    /// `took`, answered (`ok`) or failed.
    pub fn request(&self, ok: bool, rows: usize, took: Duration) {
        let t = &self.totals;
        if ok {
            t.requests_ok.fetch_add(1, Ordering::Relaxed);
            t.request_rows.fetch_add(rows as u64, Ordering::Relaxed);
            t.request_ns.fetch_add(
                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        } else {
            t.requests_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counters and recent percentiles.
    pub fn counts(&self) -> QueueCounts {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let by_trigger = std::array::from_fn(|i| self.by_trigger[i].load(Ordering::Relaxed));
        QueueCounts {
            items: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            batches: by_trigger.iter().sum(),
            by_trigger,
            batch_size: Percentiles::of(&recent.batch_sizes),
            handler_ms: Percentiles::of(&recent.handler_ms),
            item_ms: Percentiles::of(&recent.item_ms),
            wait_ms: Percentiles::of(&recent.wait_ms),
            batch_cost: Percentiles::of(&recent.cost),
            padding_ratio: Percentiles::of(&recent.padding),
            size_histogram: recent.size_histogram(),
            key_shares: recent.key_shares(),
        }
    }
}

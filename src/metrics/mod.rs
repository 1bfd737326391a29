//! Prometheus metrics: names in one place, handles registered once per queue
//! (no label lookups on the hot path), and the `/metrics` HTTP endpoint.
//!
//! Each server owns its own recorder instead of installing a global one, so
//! several servers in one process (the tests) each report only their own
//! numbers. The two per-item timings use [`buckets`] instead of the
//! recorder's histograms (see there why).

pub mod buckets;

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use self::buckets::{DurationHistogram, SECONDS_BUCKETS};

use axum::{Router, routing::get};
use metrics::{Counter, Gauge, Histogram, Key, Label, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::queue::Trigger;

/// Items answered, by queue and outcome.
pub const ITEMS_TOTAL: &str = "batchgate_items_total";
/// Batches dispatched, by queue and trigger.
pub const BATCHES_TOTAL: &str = "batchgate_batches_total";
/// Items per dispatched batch.
pub const BATCH_SIZE: &str = "batchgate_batch_size";
/// Time an item waited in its queue before dispatch.
pub const QUEUE_WAIT_SECONDS: &str = "batchgate_queue_wait_seconds";
/// Time a handler took for a whole batch.
pub const HANDLER_SECONDS: &str = "batchgate_handler_duration_seconds";
/// Time from accepting an item to answering it.
pub const ITEM_SECONDS: &str = "batchgate_item_duration_seconds";
/// Items waiting in a queue.
pub const QUEUE_DEPTH: &str = "batchgate_queue_depth";
/// Batches being processed.
pub const IN_FLIGHT_BATCHES: &str = "batchgate_in_flight_batches";

/// Calls to a remote backend endpoint, by queue, endpoint and outcome.
pub const BACKEND_CALLS_TOTAL: &str = "batchgate_backend_calls_total";
/// Calls to an endpoint that failed for availability and were retried.
pub const BACKEND_RETRIES_TOTAL: &str = "batchgate_backend_retries_total";
/// Times an endpoint was ejected after failures in a row.
pub const BACKEND_EJECTIONS_TOTAL: &str = "batchgate_backend_ejections_total";
/// Batches (or parts of one) an endpoint is processing.
pub const BACKEND_IN_FLIGHT: &str = "batchgate_backend_in_flight_calls";

/// Histogram buckets for batch sizes: powers of two to 4096.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// How an item ended; the `outcome` label of [`ITEMS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned a result.
    Ok,
    /// The handler returned an error for it (or failed its batch).
    Error,
    /// Refused before queueing (full, bad input, draining).
    Rejected,
    /// Its timeout passed while it waited.
    Timeout,
    /// Its caller went away before dispatch.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in the order of [`QueueMetrics::counts`].
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Rejected,
        Outcome::Timeout,
        Outcome::Cancelled,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The per-item timing histograms of one queue.
#[derive(Debug, Default)]
pub struct ItemTimings {
    /// [`QUEUE_WAIT_SECONDS`].
    pub queue_wait: DurationHistogram,
    /// [`ITEM_SECONDS`].
    pub item_seconds: DurationHistogram,
}

/// Selects one histogram of a queue's [`ItemTimings`].
type PickTiming = fn(&ItemTimings) -> &DurationHistogram;

/// A server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    /// Where handles are registered.
    recorder: PrometheusRecorder,
    /// Renders the exposition text.
    handle: PrometheusHandle,
    /// Per-item timings by queue (kept when a queue is deleted, reused when
    /// one of the same name is created, like the recorder's series).
    timings: Mutex<BTreeMap<String, Arc<ItemTimings>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with real histograms (not summaries) and HELP text
    /// for every metric.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), SIZE_BUCKETS));
        // Both bucket lists are non-empty constants, so this cannot fail.
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let describe = |name: &'static str, unit: Unit, help: &'static str| {
            let name = metrics::KeyName::from_const_str(name);
            let help = SharedString::const_str(help);
            match name.as_str() {
                ITEMS_TOTAL
                | BATCHES_TOTAL
                | BACKEND_CALLS_TOTAL
                | BACKEND_RETRIES_TOTAL
                | BACKEND_EJECTIONS_TOTAL => recorder.describe_counter(name, Some(unit), help),
                QUEUE_DEPTH | IN_FLIGHT_BATCHES | BACKEND_IN_FLIGHT => {
                    recorder.describe_gauge(name, Some(unit), help)
                }
                _ => recorder.describe_histogram(name, Some(unit), help),
            }
        };
        describe(
            ITEMS_TOTAL,
            Unit::Count,
            "Items answered, by queue and outcome (ok, error, rejected, timeout, cancelled).",
        );
        describe(
            BATCHES_TOTAL,
            Unit::Count,
            "Batches dispatched, by queue and trigger (size, bytes, delay, flush, drain).",
        );
        describe(BATCH_SIZE, Unit::Count, "Items per dispatched batch.");
        describe(
            HANDLER_SECONDS,
            Unit::Seconds,
            "Time the handler took to process a whole batch.",
        );
        describe(QUEUE_DEPTH, Unit::Count, "Items waiting in the queue.");
        describe(
            IN_FLIGHT_BATCHES,
            Unit::Count,
            "Batches of the queue being processed by its handler.",
        );
        describe(
            BACKEND_CALLS_TOTAL,
            Unit::Count,
            "Calls to a remote backend endpoint, by queue, endpoint and outcome (ok, rejected, unavailable, deadline).",
        );
        describe(
            BACKEND_RETRIES_TOTAL,
            Unit::Count,
            "Calls to a remote backend endpoint that failed for availability and whose items were retried.",
        );
        describe(
            BACKEND_EJECTIONS_TOTAL,
            Unit::Count,
            "Times a remote backend endpoint was ejected after eject_after failures in a row.",
        );
        describe(
            BACKEND_IN_FLIGHT,
            Unit::Count,
            "Calls a remote backend endpoint is processing now.",
        );
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            timings: Mutex::default(),
        }
    }

    /// Registers the handles of one queue.
    pub fn queue(&self, queue: &str) -> QueueMetrics {
        let label = |extra: Option<(&'static str, &'static str)>| {
            let mut labels = vec![Label::new("queue", queue.to_owned())];
            if let Some((k, v)) = extra {
                labels.push(Label::new(k, v));
            }
            labels
        };
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let counter = |name: &'static str, extra| {
            self.recorder
                .register_counter(&Key::from_parts(name, label(Some(extra))), &meta)
        };
        let histogram = |name: &'static str| {
            self.recorder
                .register_histogram(&Key::from_parts(name, label(None)), &meta)
        };
        let gauge = |name: &'static str| {
            self.recorder
                .register_gauge(&Key::from_parts(name, label(None)), &meta)
        };
        QueueMetrics {
            items: Outcome::ALL.map(|o| counter(ITEMS_TOTAL, ("outcome", o.as_str()))),
            batches: Trigger::ALL.map(|t| counter(BATCHES_TOTAL, ("trigger", t.as_str()))),
            batch_size: histogram(BATCH_SIZE),
            timings: self
                .timings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(queue.to_owned())
                .or_default()
                .clone(),
            handler_seconds: histogram(HANDLER_SECONDS),
            depth: gauge(QUEUE_DEPTH),
            in_flight: gauge(IN_FLIGHT_BATCHES),
            counts: Default::default(),
            batches_count: AtomicU64::new(0),
            recent: Mutex::default(),
        }
    }

    /// Registers the handles of one remote endpoint of `queue`. Endpoint
    /// addresses come from the config or the control plane, never from
    /// data-plane clients.
    pub fn endpoint(&self, queue: &str, address: &str) -> EndpointMetrics {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let key = |name: &'static str, outcome: Option<&'static str>| {
            let mut labels = vec![
                Label::new("queue", queue.to_owned()),
                Label::new("endpoint", address.to_owned()),
            ];
            if let Some(outcome) = outcome {
                labels.push(Label::new("outcome", outcome));
            }
            Key::from_parts(name, labels)
        };
        let counter = |name, outcome| self.recorder.register_counter(&key(name, outcome), &meta);
        EndpointMetrics {
            calls: CallOutcome::ALL.map(|o| counter(BACKEND_CALLS_TOTAL, Some(o.as_str()))),
            retries: counter(BACKEND_RETRIES_TOTAL, None),
            ejections: counter(BACKEND_EJECTIONS_TOTAL, None),
            in_flight: self
                .recorder
                .register_gauge(&key(BACKEND_IN_FLIGHT, None), &meta),
        }
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        let timings = self.timings.lock().unwrap_or_else(PoisonError::into_inner);
        if timings.is_empty() {
            return out;
        }
        let families: [(&str, &str, PickTiming); 2] = [
            (
                QUEUE_WAIT_SECONDS,
                "Time an item waited in its queue before its batch was dispatched.",
                |t| &t.queue_wait,
            ),
            (
                ITEM_SECONDS,
                "Time from accepting an item to answering it.",
                |t| &t.item_seconds,
            ),
        ];
        for (name, help, pick) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (queue, t) in timings.iter() {
                pick(t).render(name, &format!("queue=\"{queue}\""), &mut out);
            }
            out.push('\n');
        }
        out
    }

    /// Serves `GET /metrics` on `listener` until `shutdown` is cancelled,
    /// folding histogram samples into buckets every second meanwhile.
    ///
    /// # Errors
    /// The listener's I/O error, if accepting fails.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let render = self.clone();
        let app = Router::new().route("/metrics", get(move || async move { render.render() }));
        let upkeep = self.handle.clone();
        let stop = shutdown.clone();
        let upkeep_task = async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                upkeep.run_upkeep();
            }
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        let (served, ()) = tokio::join!(async { server.await }, upkeep_task);
        served
    }
}

/// How a call to a remote endpoint ended; the `outcome` label of
/// [`BACKEND_CALLS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The backend answered.
    Ok,
    /// The backend refused the batch as a whole.
    Rejected,
    /// The endpoint could not serve it (connection, UNAVAILABLE, …).
    Unavailable,
    /// The call was cut at its deadline.
    Deadline,
}

impl CallOutcome {
    /// Every outcome, in the order of [`EndpointMetrics::calls`].
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Ok,
        CallOutcome::Rejected,
        CallOutcome::Unavailable,
        CallOutcome::Deadline,
    ];

    fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Deadline => "deadline",
        }
    }
}

/// The pre-registered metric handles of one remote endpoint.
#[derive(Debug)]
pub struct EndpointMetrics {
    /// [`BACKEND_CALLS_TOTAL`] by [`CallOutcome`].
    calls: [Counter; 4],
    /// [`BACKEND_RETRIES_TOTAL`].
    pub retries: Counter,
    /// [`BACKEND_EJECTIONS_TOTAL`].
    pub ejections: Counter,
    /// [`BACKEND_IN_FLIGHT`].
    pub in_flight: Gauge,
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

/// The pre-registered metric handles of one queue.
#[derive(Debug)]
pub struct QueueMetrics {
    /// [`ITEMS_TOTAL`] by [`Outcome`].
    items: [Counter; 5],
    /// [`BATCHES_TOTAL`] by [`Trigger`].
    batches: [Counter; 5],
    /// [`BATCH_SIZE`].
    pub batch_size: Histogram,
    /// [`QUEUE_WAIT_SECONDS`] and [`ITEM_SECONDS`].
    pub timings: Arc<ItemTimings>,
    /// [`HANDLER_SECONDS`].
    pub handler_seconds: Histogram,
    /// [`QUEUE_DEPTH`].
    pub depth: Gauge,
    /// [`IN_FLIGHT_BATCHES`].
    pub in_flight: Gauge,
    /// Readable copies of the item counters, by [`Outcome::ALL`] order.
    counts: [AtomicU64; 5],
    /// Readable copy of the batch counter.
    batches_count: AtomicU64,
    /// The most recent batches, for percentiles in the control API.
    recent: Mutex<Recent>,
}

/// How many recent batches (and item latencies) are kept for percentiles.
const RECENT: usize = 1024;

/// Samples of the most recent batches.
#[derive(Debug, Default)]
struct Recent {
    /// Items per batch.
    batch_sizes: VecDeque<f64>,
    /// Handler time per batch, milliseconds.
    handler_ms: VecDeque<f64>,
    /// End-to-end time per item, milliseconds.
    item_ms: VecDeque<f64>,
}

fn push_capped(ring: &mut VecDeque<f64>, value: f64) {
    if ring.len() == RECENT {
        ring.pop_front();
    }
    ring.push_back(value);
}

/// p50, p90, p99 and max of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &VecDeque<f64>) -> Self {
        let mut sorted: Vec<f64> = samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[i]
        };
        Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }
}

/// Counters and recent percentiles of a queue, for the control API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueCounts {
    /// Items by outcome, in [`Outcome::ALL`] order.
    pub items: [u64; 5],
    /// Batches dispatched.
    pub batches: u64,
    /// Recent batch sizes.
    pub batch_size: Percentiles,
    /// Recent handler times, ms.
    pub handler_ms: Percentiles,
    /// Recent item end-to-end times, ms.
    pub item_ms: Percentiles,
}

impl QueueMetrics {
    /// Counts `n` items that ended with `outcome`.
    pub fn items(&self, outcome: Outcome, n: u64) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.items[i].increment(n);
        self.counts[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one batch dispatched by `trigger`.
    pub fn batch(&self, trigger: Trigger) {
        let i = Trigger::ALL.iter().position(|t| *t == trigger).unwrap_or(0);
        self.batches[i].increment(1);
        self.batches_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps a finished batch's size, handler time and item times for the
    /// recent percentiles.
    pub fn remember_batch(&self, size: usize, handler: Duration, item_times_ns: &[u64]) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        push_capped(&mut recent.batch_sizes, size as f64);
        push_capped(&mut recent.handler_ms, handler.as_secs_f64() * 1e3);
        for &ns in item_times_ns.iter().rev().take(RECENT).rev() {
            push_capped(&mut recent.item_ms, ns as f64 / 1e6);
        }
    }

    /// Counters and recent percentiles.
    pub fn counts(&self) -> QueueCounts {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        QueueCounts {
            items: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            batches: self.batches_count.load(Ordering::Relaxed),
            batch_size: Percentiles::of(&recent.batch_sizes),
            handler_ms: Percentiles::of(&recent.handler_ms),
            item_ms: Percentiles::of(&recent.item_ms),
        }
    }
}

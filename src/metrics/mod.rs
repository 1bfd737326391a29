//! Prometheus metrics: names in one place, handles registered once per queue
//! (no label lookups on the hot path), and the `/metrics` HTTP endpoint.
//!
//! Each server owns its own recorder instead of installing a global one, so
//! several servers in one process (the tests) each report only their own
//! numbers. The two per-item timings use [`buckets`] instead of the
//! recorder's histograms (see there why).

pub mod buckets;
mod handles;
mod names;
mod recent;
mod server;

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
};

use metrics::{Key, Label, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use self::buckets::{DurationHistogram, SECONDS_BUCKETS};
pub use self::{
    handles::{DnsMetrics, EndpointMetrics, ItemTimings, QueueMetrics, ReloadMetrics},
    names::*,
    recent::{Percentiles, QueueCounts},
};
use crate::contract::Trigger;

/// Histogram buckets for batch sizes: powers of two to 4096.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Bucket bounds of [`BATCH_COST`]: powers of 4 up to about 16 million.
const COST_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];
/// Bucket bounds of [`BATCH_PADDING_RATIO`].
const PADDING_BUCKETS: &[f64] = &[1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0];

/// Selects one histogram of a queue's [`ItemTimings`].
type PickTiming = fn(&ItemTimings) -> &DurationHistogram;

/// A server's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    /// Where handles are registered (queues keep it for their key series).
    recorder: Arc<PrometheusRecorder>,
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
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), SIZE_BUCKETS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_COST.into()), COST_BUCKETS))
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(BATCH_PADDING_RATIO.into()), PADDING_BUCKETS)
            });
        // Both bucket lists are non-empty constants, so this cannot fail.
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        names::describe_all(&recorder);
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
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
            batch_cost: histogram(BATCH_COST),
            padding_ratio: histogram(BATCH_PADDING_RATIO),
            timings: self
                .timings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(queue.to_owned())
                .or_default()
                .clone(),
            handler_seconds: histogram(HANDLER_SECONDS),
            depth: gauge(QUEUE_DEPTH),
            max_items: gauge(QUEUE_MAX_ITEMS),
            in_flight: gauge(IN_FLIGHT_BATCHES),
            idempotent: KeyOutcome::ALL
                .map(|o| counter(IDEMPOTENT_ITEMS_TOTAL, ("outcome", o.as_str()))),
            idempotency_keys: gauge(IDEMPOTENCY_KEYS),
            counts: Default::default(),
            batches_count: AtomicU64::new(0),
            recent: Mutex::default(),
            recorder: self.recorder.clone(),
            name: queue.to_owned(),
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

    /// Registers the [`PENDING_BYTES`] gauge.
    pub fn pending_bytes(&self) -> metrics::Gauge {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        self.recorder
            .register_gauge(&Key::from_name(PENDING_BYTES), &meta)
    }

    /// Registers the configuration reload counters (both shown from the
    /// start, at 0).
    pub fn reloads(&self) -> ReloadMetrics {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let counter = |result: &'static str| {
            let key = Key::from_parts(CONFIG_RELOADS_TOTAL, vec![Label::new("result", result)]);
            let c = self.recorder.register_counter(&key, &meta);
            c.increment(0);
            c
        };
        ReloadMetrics {
            ok: counter("ok"),
            error: counter("error"),
        }
    }

    /// Registers the series of a DNS name that `queue`'s endpoints come
    /// from (a name from the config, never from clients).
    pub fn dns(&self, queue: &str, name: &str) -> DnsMetrics {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let counter = |result: &'static str| {
            let labels = vec![
                Label::new("queue", queue.to_owned()),
                Label::new("name", name.to_owned()),
                Label::new("result", result),
            ];
            self.recorder
                .register_counter(&Key::from_parts(DNS_RESOLUTIONS_TOTAL, labels), &meta)
        };
        DnsMetrics {
            ok: counter("ok"),
            error: counter("error"),
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
}

//! A server's metrics registry: its own recorder (real histograms, our
//! bucket bounds), the handles of queues and endpoints made once, and the
//! `/metrics` text merged from every live scope.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
};

use metrics::{Key, Label, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::{
    buckets::{DurationHistogram, SECONDS_BUCKETS},
    families::Families,
    handles::{DnsMetrics, EndpointMetrics, ItemTimings, QueueMetrics, ReloadMetrics},
    names::{self, *},
    scope::{Owner, Scope, Scopes},
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
    /// Where the server-wide series are registered.
    recorder: Arc<PrometheusRecorder>,
    /// Renders the server-wide series.
    pub(super) handle: PrometheusHandle,
    /// The scopes of queues and endpoints, while any handle holds them.
    scopes: Mutex<Scopes>,
}

/// A recorder with real histograms (not summaries) and our bucket bounds.
fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), SIZE_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_COST.into()), COST_BUCKETS))
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(BATCH_PADDING_RATIO.into()), PADDING_BUCKETS)
        });
    // The bucket lists are non-empty constants, so this cannot fail.
    match builder {
        Ok(b) => b.build_recorder(),
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
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
        let recorder = recorder();
        names::describe_all(&recorder);
        let handle = recorder.handle();
        Self {
            recorder: Arc::new(recorder),
            handle,
            scopes: Mutex::default(),
        }
    }

    /// The scope of `owner` (the live one if there is one).
    fn scope(&self, owner: Owner) -> Arc<Scope> {
        let timings = matches!(owner, Owner::Queue(_));
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_make(owner, || Scope {
                recorder: recorder(),
                timings: timings.then(Arc::default),
            })
    }

    /// Queues and endpoints whose series are shown (their handles live).
    pub fn scopes(&self) -> usize {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live()
            .len()
    }

    /// Registers the handles of one queue.
    pub fn queue(&self, queue: &str) -> QueueMetrics {
        let scope = self.scope(Owner::Queue(queue.to_owned()));
        let label = |extra: Option<(&'static str, &'static str)>| {
            let mut labels = vec![Label::new("queue", queue.to_owned())];
            if let Some((k, v)) = extra {
                labels.push(Label::new(k, v));
            }
            labels
        };
        let counter =
            |name: &'static str, extra| scope.counter(&Key::from_parts(name, label(Some(extra))));
        let histogram = |name: &'static str| scope.histogram(&Key::from_parts(name, label(None)));
        let gauge = |name: &'static str| scope.gauge(&Key::from_parts(name, label(None)));
        QueueMetrics {
            items: Outcome::ALL.map(|o| counter(ITEMS_TOTAL, ("outcome", o.as_str()))),
            batches: Trigger::ALL.map(|t| counter(BATCHES_TOTAL, ("trigger", t.as_str()))),
            batch_size: histogram(BATCH_SIZE),
            batch_cost: histogram(BATCH_COST),
            padding_ratio: histogram(BATCH_PADDING_RATIO),
            timings: scope.timings.clone().unwrap_or_default(),
            handler_seconds: histogram(HANDLER_SECONDS),
            depth: gauge(QUEUE_DEPTH),
            max_items: gauge(QUEUE_MAX_ITEMS),
            in_flight: gauge(IN_FLIGHT_BATCHES),
            pace_parallelism: gauge(PACE_PARALLELISM),
            pace_wait: histogram(PACE_BACKEND_WAIT_SECONDS),
            pace_idle: histogram(PACE_IDLE_SECONDS),
            idempotent: KeyOutcome::ALL
                .map(|o| counter(IDEMPOTENT_ITEMS_TOTAL, ("outcome", o.as_str()))),
            idempotency_keys: gauge(IDEMPOTENCY_KEYS),
            counts: Default::default(),
            by_trigger: Default::default(),
            totals: Default::default(),
            recent: Mutex::default(),
            name: queue.to_owned(),
            scope,
        }
    }

    /// Registers the handles of one remote endpoint of `queue`. Endpoint
    /// addresses come from the config or the control plane, never from
    /// data-plane clients.
    pub fn endpoint(&self, queue: &str, address: &str) -> EndpointMetrics {
        let scope = self.scope(Owner::Endpoint {
            queue: queue.to_owned(),
            address: address.to_owned(),
        });
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
        let counter = |name, outcome| scope.counter(&key(name, outcome));
        EndpointMetrics {
            calls: CallOutcome::ALL.map(|o| counter(BACKEND_CALLS_TOTAL, Some(o.as_str()))),
            retries: counter(BACKEND_RETRIES_TOTAL, None),
            ejections: counter(BACKEND_EJECTIONS_TOTAL, None),
            in_flight: scope.gauge(&key(BACKEND_IN_FLIGHT, None)),
            _scope: scope,
        }
    }

    /// Registers the [`PENDING_BYTES`] gauge.
    pub fn pending_bytes(&self) -> metrics::Gauge {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        self.recorder
            .register_gauge(&Key::from_name(PENDING_BYTES), &meta)
    }

    /// The counter of `queue`'s job items that ended as `outcome`.
    pub fn job_items(&self, queue: &str, outcome: &'static str) -> metrics::Counter {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let labels = vec![
            Label::new("queue", queue.to_owned()),
            Label::new("outcome", outcome),
        ];
        self.recorder
            .register_counter(&Key::from_parts(JOB_ITEMS_TOTAL, labels), &meta)
    }

    /// The gauge of `queue`'s job items in flight.
    pub fn job_items_in_flight(&self, queue: &str) -> metrics::Gauge {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let labels = vec![Label::new("queue", queue.to_owned())];
        self.recorder
            .register_gauge(&Key::from_parts(JOB_ITEMS_IN_FLIGHT, labels), &meta)
    }

    /// The gauge of jobs in `state`.
    pub fn jobs(&self, state: &'static str) -> metrics::Gauge {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let labels = vec![Label::new("state", state)];
        self.recorder
            .register_gauge(&Key::from_parts(JOBS, labels), &meta)
    }

    /// The gauge of job items not yet done.
    pub fn job_items_pending(&self) -> metrics::Gauge {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        self.recorder
            .register_gauge(&Key::from_name(JOB_ITEMS_PENDING), &meta)
    }

    /// The counter of `queue`'s `http_each` requests that ended with
    /// `status`.
    pub fn http_each_requests(&self, queue: &str, status: &str) -> metrics::Counter {
        self.labelled_counter(HTTP_EACH_REQUESTS_TOTAL, queue, "status", status)
    }

    /// The counter of `queue`'s `http_each` requests sent again for `reason`.
    pub fn http_each_retries(&self, queue: &str, reason: &str) -> metrics::Counter {
        self.labelled_counter(HTTP_EACH_RETRIES_TOTAL, queue, "reason", reason)
    }

    /// The histogram of `queue`'s `http_each` waits for `cause`.
    pub fn http_each_wait(&self, queue: &str, cause: &'static str) -> metrics::Histogram {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let labels = vec![
            Label::new("queue", queue.to_owned()),
            Label::new("cause", cause),
        ];
        self.recorder
            .register_histogram(&Key::from_parts(HTTP_EACH_WAIT_SECONDS, labels), &meta)
    }

    fn labelled_counter(
        &self,
        name: &'static str,
        queue: &str,
        label: &'static str,
        value: &str,
    ) -> metrics::Counter {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        let labels = vec![
            Label::new("queue", queue.to_owned()),
            Label::new(label, value.to_owned()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &meta)
    }

    /// The histogram of job store calls.
    pub fn job_store_seconds(&self) -> metrics::Histogram {
        let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
        self.recorder
            .register_histogram(&Key::from_name(JOB_STORE_SECONDS), &meta)
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

    /// The Prometheus text exposition of the server's series and those of
    /// every live queue and endpoint.
    pub fn render(&self) -> String {
        let live = self
            .scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live();
        let mut families = Families::default();
        families.add(&self.handle.render());
        for (_, scope) in &live {
            families.add(&scope.recorder.handle().render());
        }
        let mut out = families.render();
        let timings: Vec<(&str, &ItemTimings)> = live
            .iter()
            .filter_map(|(owner, scope)| match (owner, &scope.timings) {
                (Owner::Queue(name), Some(t)) => Some((name.as_str(), t.as_ref())),
                _ => None,
            })
            .collect();
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
            for (queue, t) in &timings {
                pick(t).render(name, &format!("queue=\"{queue}\""), &mut out);
            }
            out.push('\n');
        }
        out
    }
}

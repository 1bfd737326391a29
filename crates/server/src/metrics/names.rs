//! Metric names, their label values and their HELP texts, in one place.

use metrics::{Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;

/// Items answered, by queue and outcome.
pub const ITEMS_TOTAL: &str = "batchgate_items_total";
/// Batches dispatched, by queue and trigger.
pub const BATCHES_TOTAL: &str = "batchgate_batches_total";
/// Items per dispatched batch.
pub const BATCH_SIZE: &str = "batchgate_batch_size";
/// A dispatched batch's cost under its queue's cost model.
pub const BATCH_COST: &str = "batchgate_batch_cost";
/// A dispatched batch's padded cost over its summed cost.
pub const BATCH_PADDING_RATIO: &str = "batchgate_batch_padding_ratio";
/// Time an item waited in its queue before dispatch.
pub const QUEUE_WAIT_SECONDS: &str = "batchgate_queue_wait_seconds";
/// Time a handler took for a whole batch.
pub const HANDLER_SECONDS: &str = "batchgate_handler_duration_seconds";
/// Time from accepting an item to answering it.
pub const ITEM_SECONDS: &str = "batchgate_item_duration_seconds";
/// Items waiting in a queue.
pub const QUEUE_DEPTH: &str = "batchgate_queue_depth";
/// Gauge: the queue's `max_queue_items`, for "nearly full" alerts.
pub const QUEUE_MAX_ITEMS: &str = "batchgate_queue_max_items";
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
/// Counter: configuration reloads, by result (ok, error).
pub const CONFIG_RELOADS_TOTAL: &str = "batchgate_config_reloads_total";
/// Counter: lookups of a `dns:///` endpoint name, by result (ok, error).
pub const DNS_RESOLUTIONS_TOTAL: &str = "batchgate_dns_resolutions_total";
/// Counter: items dispatched, by queue and batch key (the keys a queue's
/// `weights` names; the rest under `key="other"`).
pub const KEY_ITEMS_TOTAL: &str = "batchgate_key_items_total";
/// Gauge: items pending, by queue and batch key (as above).
pub const KEY_DEPTH: &str = "batchgate_key_depth";
/// Counter: items that carried an idempotency key, by queue and outcome
/// (first, joined, replayed, refused).
pub const IDEMPOTENT_ITEMS_TOTAL: &str = "batchgate_idempotent_items_total";
/// Gauge: idempotency keys in flight or remembered, by queue.
pub const IDEMPOTENCY_KEYS: &str = "batchgate_idempotency_keys";
/// Gauge: bytes held for items not yet answered, all queues together
/// (`server.max_pending_bytes` bounds it).
pub const PENDING_BYTES: &str = "batchgate_pending_bytes";
/// Gauge: the parallelism a queue with `pace = "backend"` paces by (0: it
/// does not pace).
pub const PACE_PARALLELISM: &str = "batchgate_pace_parallelism";
/// How long a paced batch waited in the backend for the batch before it in
/// its slot, as the queue sees it.
pub const PACE_BACKEND_WAIT_SECONDS: &str = "batchgate_pace_backend_wait_seconds";
/// How long a paced slot stood empty before its next batch, as the queue
/// sees it (the sum over time and parallelism: the idle share).
pub const PACE_IDLE_SECONDS: &str = "batchgate_pace_idle_seconds";
/// Counter: job items that ended, by queue and outcome (ok, error,
/// cancelled, expired).
pub const JOB_ITEMS_TOTAL: &str = "batchgate_job_items_total";
/// Gauge: job items a queue holds now (waiting or in a batch).
pub const JOB_ITEMS_IN_FLIGHT: &str = "batchgate_job_items_in_flight";
/// Gauge: jobs by state (open ones, and those ended still kept).
pub const JOBS: &str = "batchgate_jobs";
/// Gauge: items of open jobs not yet done, every queue together (with the
/// NATS store, every replica's view of the shared jobs: what an
/// autoscaler reads).
pub const JOB_ITEMS_PENDING: &str = "batchgate_job_items_pending";
/// Histogram: how long a call to the job store took (one transaction).
pub const JOB_STORE_SECONDS: &str = "batchgate_job_store_seconds";
/// Counter: `http_each` requests by queue and status (the HTTP status,
/// or `error` for a request that got no response).
pub const HTTP_EACH_REQUESTS_TOTAL: &str = "batchgate_http_each_requests_total";
/// Counter: `http_each` requests sent again, by queue and reason (429,
/// 502, 503, 504, connect, broken).
pub const HTTP_EACH_RETRIES_TOTAL: &str = "batchgate_http_each_retries_total";
/// Histogram: how long `http_each` requests waited before going, by queue
/// and cause (rate: the queue's rate; retry_after: a pause an API asked
/// for; backoff: before a retry).
pub const HTTP_EACH_WAIT_SECONDS: &str = "batchgate_http_each_wait_seconds";
/// The `key` label of the keys a queue's `weights` does not name.
pub const OTHER_KEYS: &str = "other";

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
    /// Refused at admission: predicted to miss its target (`shed = true`).
    Shed,
}

impl Outcome {
    /// Every outcome, in the order of [`QueueMetrics::counts`](super::QueueMetrics::counts).
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Rejected,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Shed,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Shed => "shed",
        }
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
    /// Every outcome, in the order of the calls counters of [`EndpointMetrics`](super::EndpointMetrics).
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Ok,
        CallOutcome::Rejected,
        CallOutcome::Unavailable,
        CallOutcome::Deadline,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Deadline => "deadline",
        }
    }
}

/// How an item with a key was taken; the `outcome` label of
/// [`IDEMPOTENT_ITEMS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// The key's first item: executed.
    First,
    /// A retry while the first was in flight: given its answer.
    Joined,
    /// A retry after the first was answered: given a copy of its answer.
    Replayed,
    /// A new key when the store was full: refused.
    Refused,
}

impl KeyOutcome {
    /// Every outcome, in label order.
    pub const ALL: [KeyOutcome; 4] = [Self::First, Self::Joined, Self::Replayed, Self::Refused];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Joined => "joined",
            Self::Replayed => "replayed",
            Self::Refused => "refused",
        }
    }
}

/// Every metric: its name, unit and HELP text (promtool needs both).
pub(super) const DESCRIPTIONS: &[(&str, Unit, &str)] = &[
    (
        ITEMS_TOTAL,
        Unit::Count,
        "Items answered, by queue and outcome (ok, error, rejected, timeout, cancelled, shed).",
    ),
    (
        BATCHES_TOTAL,
        Unit::Count,
        "Batches dispatched, by queue and trigger (size, bytes, delay, flush, drain, target, cost).",
    ),
    (BATCH_SIZE, Unit::Count, "Items per dispatched batch."),
    (
        BATCH_COST,
        Unit::Count,
        "Cost per dispatched batch under the queue's cost_model (its item count when items carry no cost).",
    ),
    (
        BATCH_PADDING_RATIO,
        Unit::Count,
        "Per dispatched batch: largest item cost times items over the items' summed cost (1 = no padding waste).",
    ),
    (
        HANDLER_SECONDS,
        Unit::Seconds,
        "Time the handler took to process a whole batch.",
    ),
    (QUEUE_DEPTH, Unit::Count, "Items waiting in the queue."),
    (
        KEY_ITEMS_TOTAL,
        Unit::Count,
        "Items dispatched, by queue and batch key (keys named in the queue's weights; the rest under key=\"other\").",
    ),
    (
        KEY_DEPTH,
        Unit::Count,
        "Items waiting, by queue and batch key (keys named in the queue's weights; the rest under key=\"other\").",
    ),
    (
        IDEMPOTENT_ITEMS_TOTAL,
        Unit::Count,
        "Items that carried an idempotency key, by queue and outcome (first: executed; joined: a retry given the answer of the one in flight; replayed: a retry given a kept answer; refused: idempotency_max_keys reached).",
    ),
    (
        IDEMPOTENCY_KEYS,
        Unit::Count,
        "Idempotency keys in flight or kept for retries (at most idempotency_max_keys).",
    ),
    (
        PENDING_BYTES,
        Unit::Bytes,
        "Bytes held for items not yet answered (payload, attributes and a fixed per-item overhead), all queues; at most server.max_pending_bytes.",
    ),
    (
        QUEUE_MAX_ITEMS,
        Unit::Count,
        "Items the queue may hold (max_queue_items); more are refused.",
    ),
    (
        IN_FLIGHT_BATCHES,
        Unit::Count,
        "Batches of the queue being processed by its handler.",
    ),
    (
        BACKEND_CALLS_TOTAL,
        Unit::Count,
        "Calls to a remote backend endpoint, by queue, endpoint and outcome (ok, rejected, unavailable, deadline).",
    ),
    (
        BACKEND_RETRIES_TOTAL,
        Unit::Count,
        "Calls to a remote backend endpoint that failed for availability and whose items were retried.",
    ),
    (
        BACKEND_EJECTIONS_TOTAL,
        Unit::Count,
        "Times a remote backend endpoint was ejected after eject_after failures in a row.",
    ),
    (
        CONFIG_RELOADS_TOTAL,
        Unit::Count,
        "Configuration reloads (SIGHUP or a changed file), by result (ok; error: invalid, the running configuration kept).",
    ),
    (
        DNS_RESOLUTIONS_TOTAL,
        Unit::Count,
        "Lookups of a dns:/// endpoint name of a remote queue, by result (ok; error: failed or empty, the last good set kept).",
    ),
    (
        BACKEND_IN_FLIGHT,
        Unit::Count,
        "Calls a remote backend endpoint is processing now.",
    ),
    (
        PACE_PARALLELISM,
        Unit::Count,
        "pace = backend: the batches the backend works on at once that the queue paces by (declared by its endpoints, else learned, at most max_in_flight_batches); 0: not paced.",
    ),
    (
        PACE_BACKEND_WAIT_SECONDS,
        Unit::Seconds,
        "pace = backend: how long a batch waited in the backend for the one before it in its slot, as the queue sees it.",
    ),
    (
        PACE_IDLE_SECONDS,
        Unit::Seconds,
        "pace = backend: how long a slot stood empty before its next batch, as the queue sees it (sum over time and parallelism: the idle share).",
    ),
    (
        JOB_ITEMS_TOTAL,
        Unit::Count,
        "Job items that ended, by queue and outcome (ok, error, cancelled, expired).",
    ),
    (
        JOB_ITEMS_IN_FLIGHT,
        Unit::Count,
        "Job items a queue holds now, waiting or in a batch (at most jobs.max_in_flight_per_queue).",
    ),
    (
        JOBS,
        Unit::Count,
        "Open jobs by state (queued, in_progress, cancelling), as of the job runner's last look.",
    ),
    (
        JOB_ITEMS_PENDING,
        Unit::Count,
        "Items of open jobs not yet done, every queue together, as of the job runner's last look (with jobs.store = nats: the shared backlog every replica sees).",
    ),
    (
        JOB_STORE_SECONDS,
        Unit::Seconds,
        "How long storing a chunk of job items' answers took (one store transaction).",
    ),
    (
        HTTP_EACH_REQUESTS_TOTAL,
        Unit::Count,
        "http_each: requests by queue and status (the HTTP status, or error when no response came).",
    ),
    (
        HTTP_EACH_RETRIES_TOTAL,
        Unit::Count,
        "http_each: requests sent again, by queue and reason (429, 502, 503, 504, connect, broken).",
    ),
    (
        HTTP_EACH_WAIT_SECONDS,
        Unit::Seconds,
        "http_each: how long requests waited before going, by queue and cause (rate, retry_after, backoff).",
    ),
];

/// The HELP text of metric `name`, if it is one of ours.
pub(super) fn help_of(name: &str) -> Option<&'static str> {
    DESCRIPTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, _, help)| help)
}

/// Gives every metric its unit and HELP text in `recorder`.
pub(super) fn describe_all(recorder: &PrometheusRecorder) {
    for &(name, unit, help) in DESCRIPTIONS {
        let key = metrics::KeyName::from_const_str(name);
        let help = SharedString::const_str(help);
        match name {
            ITEMS_TOTAL
            | BATCHES_TOTAL
            | BACKEND_CALLS_TOTAL
            | BACKEND_RETRIES_TOTAL
            | BACKEND_EJECTIONS_TOTAL
            | DNS_RESOLUTIONS_TOTAL
            | KEY_ITEMS_TOTAL
            | IDEMPOTENT_ITEMS_TOTAL
            | JOB_ITEMS_TOTAL
            | HTTP_EACH_REQUESTS_TOTAL
            | HTTP_EACH_RETRIES_TOTAL
            | CONFIG_RELOADS_TOTAL => recorder.describe_counter(key, Some(unit), help),
            QUEUE_DEPTH | QUEUE_MAX_ITEMS | IN_FLIGHT_BATCHES | BACKEND_IN_FLIGHT | KEY_DEPTH
            | IDEMPOTENCY_KEYS | PENDING_BYTES | PACE_PARALLELISM | JOB_ITEMS_IN_FLIGHT | JOBS
            | JOB_ITEMS_PENDING => {
                recorder.describe_gauge(key, Some(unit), help);
            }
            _ => recorder.describe_histogram(key, Some(unit), help),
        }
    }
}

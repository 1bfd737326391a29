//! What a benchmark run reports: a human table and a JSON line.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::load::WorkerTally;

/// A CSV field, quoted when it needs to be.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Batch sizes the items rode in (item-weighted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchSizes {
    pub mean: f64,
    pub p50: u64,
    pub max: u64,
}

/// One run's results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// Free-form name of the series (for charts).
    pub label: String,
    /// unary or stream.
    pub mode: String,
    pub queue: String,
    /// Calls in flight (unary) or window per stream.
    pub concurrency: usize,
    pub connections: usize,
    pub streams: usize,
    /// Offered items/s (0: closed loop).
    pub rate: f64,
    pub payload_bytes: usize,
    /// Measured seconds.
    pub seconds: f64,
    /// Successful items.
    pub items: u64,
    /// Failed items by status code.
    pub errors: BTreeMap<String, u64>,
    pub items_per_sec: f64,
    /// Successful answers that arrived within the measured window, per
    /// second: past capacity, the rate the server sustained (`items_per_sec`
    /// also counts the backlog of items sent in the window, answered after).
    #[serde(default)]
    pub completed_per_sec: f64,
    pub latency_us: Latency,
    pub batch_size: BatchSizes,
    /// The load generator's own CPU use, in percent of one core.
    pub client_cpu_percent: f64,
    /// With `--within`: the items answered OK within that latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Within>,
}

/// Goodput: items answered OK within a latency limit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Within {
    /// The limit, microseconds.
    pub limit_us: u64,
    /// Items answered OK within it.
    pub items: u64,
    /// The same per second of measurement.
    pub per_sec: f64,
}

impl Within {
    /// Counts the latencies at most `limit` in `h`.
    pub fn new(h: &hdrhistogram::Histogram<u64>, limit: Duration, measured: Duration) -> Self {
        let limit_us = u64::try_from(limit.as_micros()).unwrap_or(u64::MAX);
        let items = h.count_between(0, limit_us);
        Self {
            limit_us,
            items,
            per_sec: items as f64 / measured.as_secs_f64().max(1e-9),
        }
    }
}

impl Report {
    /// Builds the report of a run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        label: String,
        plan: &super::load::Plan,
        connections: usize,
        tally: &WorkerTally,
        measured: Duration,
        cpu: Duration,
        wall: Duration,
    ) -> Self {
        let h = &tally.latency_us;
        let seconds = measured.as_secs_f64().max(1e-9);
        Self {
            label,
            mode: match (plan.streams, &plan.v2_input) {
                (0, None) => "unary",
                (0, Some(_)) => "v2",
                _ => "stream",
            }
            .to_owned(),
            queue: plan.queue.clone(),
            concurrency: plan.concurrency,
            connections,
            streams: plan.streams,
            rate: plan.rate,
            payload_bytes: plan.payload.len(),
            seconds,
            items: tally.ok,
            errors: tally.errors.clone(),
            items_per_sec: tally.ok as f64 / seconds,
            completed_per_sec: tally.ok_in_window as f64 / seconds,
            latency_us: Latency {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
                mean: h.mean(),
            },
            batch_size: BatchSizes {
                mean: tally.batch_sizes.mean(),
                p50: u64::from(tally.batch_sizes.quantile(0.5)),
                max: u64::from(tally.batch_sizes.max()),
            },
            client_cpu_percent: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9),
            within: None,
        }
    }

    /// The columns of [`Report::csv_line`].
    pub const CSV_HEADER: &'static str = "label,mode,queue,concurrency,connections,streams,rate,payload_bytes,seconds,items,failed,items_per_sec,p50_us,p90_us,p99_us,p999_us,max_us,mean_us,batch_mean,batch_p50,batch_max,client_cpu_percent";

    /// The report as one CSV line (columns as [`Report::CSV_HEADER`]).
    pub fn csv_line(&self) -> String {
        let l = &self.latency_us;
        let b = &self.batch_size;
        format!(
            "{},{},{},{},{},{},{},{},{:.3},{},{},{:.1},{},{},{},{},{},{:.1},{:.2},{},{},{:.1}",
            csv_field(&self.label),
            self.mode,
            csv_field(&self.queue),
            self.concurrency,
            self.connections,
            self.streams,
            self.rate,
            self.payload_bytes,
            self.seconds,
            self.items,
            self.failed(),
            self.items_per_sec,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            l.mean,
            b.mean,
            b.p50,
            b.max,
            self.client_cpu_percent
        )
    }

    /// The number of failed items.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// A short human-readable table.
    pub fn table(&self) -> String {
        let l = &self.latency_us;
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "{label}\n  mode {mode}, queue {queue}, concurrency {c}, connections {k}, streams {s}, rate {rate}, payload {p} B\n  \
             items/s   {ips:.0}   ({items} items in {secs:.2} s)\n  \
             latency   p50 {p50} us  p90 {p90} us  p99 {p99} us  p99.9 {p999} us  max {max} us\n  \
             batches   mean size {bm:.1}  p50 {bp}  max {bx}\n  \
             errors    {errors}\n  \
             client    {cpu}\n",
            label = self.label,
            mode = self.mode,
            queue = self.queue,
            c = self.concurrency,
            k = self.connections,
            s = self.streams,
            rate = if self.rate > 0.0 {
                format!("{:.0}/s", self.rate)
            } else {
                "closed loop".to_owned()
            },
            p = self.payload_bytes,
            ips = self.items_per_sec,
            items = self.items,
            secs = self.seconds,
            p50 = l.p50,
            p90 = l.p90,
            p99 = l.p99,
            p999 = l.p999,
            max = l.max,
            bm = self.batch_size.mean,
            bp = self.batch_size.p50,
            bx = self.batch_size.max,
            cpu = if self.client_cpu_percent.is_nan() {
                "shares this process with the server (in-process)".to_owned()
            } else {
                format!("{:.0}% of one core", self.client_cpu_percent)
            },
        )
    }
}

/// CPU time this process has used (user + system), from /proc on Linux.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start after ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 here.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports them in USER_HZ, 100 per second on every common build.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

//! Prometheus histograms for the per-item timings (queue wait, end-to-end
//! item time), filled a batch at a time.
//!
//! The `metrics` crate's histograms keep every sample until the next scrape
//! or upkeep; at a million items a second that is the largest cost on the
//! hot path and tens of megabytes between scrapes. These keep only bucket
//! counters: a batch sorts its items into a local copy of the buckets and
//! adds that to the shared atomics once.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

/// Bucket upper bounds in seconds: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets, plus one for +Inf.
const SLOTS: usize = 17;
/// The same bounds in nanoseconds, for comparing durations without floats.
const BOUNDS_NS: [u64; SLOTS - 1] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram of durations with the [`SECONDS_BUCKETS`] bounds.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Samples per bucket (not cumulative); the last is +Inf.
    counts: [AtomicU64; SLOTS],
    /// Sum of all samples, nanoseconds.
    sum_ns: AtomicU64,
}

/// Samples gathered by one batch before they are added to a histogram.
#[derive(Debug, Default, Clone)]
pub struct LocalDurations {
    counts: [u64; SLOTS],
    sum_ns: u64,
    any: bool,
}

impl LocalDurations {
    /// Adds one sample given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        let slot = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[slot] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.any = true;
    }

    /// Adds the gathered samples to `histogram` and starts afresh.
    pub fn flush_into(&mut self, histogram: &DurationHistogram) {
        if !self.any {
            return;
        }
        for (shared, &n) in histogram.counts.iter().zip(&self.counts) {
            if n > 0 {
                shared.fetch_add(n, Ordering::Relaxed);
            }
        }
        histogram.sum_ns.fetch_add(self.sum_ns, Ordering::Relaxed);
        *self = Self::default();
    }
}

impl DurationHistogram {
    /// Appends this histogram's series (bucket, sum, count) with the given
    /// label set (e.g. `queue="echo"`) to `out`.
    pub fn render(&self, name: &str, labels: &str, out: &mut String) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = SECONDS_BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_cumulative_buckets() {
        let h = DurationHistogram::default();
        let mut local = LocalDurations::default();
        local.record_ns(100_000);
        local.record_ns(101_000);
        local.record_ns(60_000_000_000);
        local.flush_into(&h);
        local.flush_into(&h);
        let mut text = String::new();
        h.render("t_seconds", "queue=\"q\"", &mut text);
        assert!(
            text.contains("t_seconds_bucket{queue=\"q\",le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{queue=\"q\",le=\"0.00025\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{queue=\"q\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{queue=\"q\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{queue=\"q\"} 3\n"), "{text}");
        assert!(
            text.contains("t_seconds_sum{queue=\"q\"} 60.000201\n"),
            "{text}"
        );
    }
}

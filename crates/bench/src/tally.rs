//! What a run measured: each item's latency in an HDR histogram, batch
//! sizes counted exactly, and the failures by status code.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use batchgate::pb;

/// What one worker measured.
#[derive(Debug)]
pub struct WorkerTally {
    /// Latency of each successful item, microseconds.
    pub latency_us: Histogram<u64>,
    /// Batch size each successful item rode in, counted exactly (sizes are
    /// small integers: an HDR histogram's rounding would report 257 for 256).
    pub batch_sizes: BatchSizeCounts,
    /// Successful items.
    pub ok: u64,
    /// Successful items whose answer came before the measured window
    /// closed (past capacity, `ok` also counts the backlog answered late).
    pub ok_in_window: u64,
    /// Failed items by gRPC status code name.
    pub errors: BTreeMap<String, u64>,
}

impl WorkerTally {
    pub(super) fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid constant bounds"),
            batch_sizes: BatchSizeCounts::default(),
            ok: 0,
            ok_in_window: 0,
            errors: BTreeMap::new(),
        }
    }

    pub(super) fn success(
        &mut self,
        latency: Duration,
        batch: Option<&pb::BatchInfo>,
        in_window: bool,
    ) {
        self.ok += 1;
        self.ok_in_window += u64::from(in_window);
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latency_us.saturating_record(us);
        if let Some(b) = batch {
            self.batch_sizes.record(b.batch_size);
        }
    }

    pub(super) fn failure(&mut self, code: tonic::Code) {
        *self
            .errors
            .entry(batchgate::error::code_name(code).to_owned())
            .or_default() += 1;
    }

    /// Adds another worker's tally.
    pub fn merge(&mut self, other: WorkerTally) {
        let _ = self.latency_us.add(&other.latency_us);
        self.batch_sizes.merge(&other.batch_sizes);
        self.ok += other.ok;
        self.ok_in_window += other.ok_in_window;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }
}

/// How many items rode in batches of each size.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchSizeCounts(BTreeMap<u32, u64>);

impl BatchSizeCounts {
    /// Counts one item that rode in a batch of `size`.
    pub fn record(&mut self, size: u32) {
        *self.0.entry(size).or_default() += 1;
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, other: &Self) {
        for (&size, &n) in &other.0 {
            *self.0.entry(size).or_default() += n;
        }
    }

    /// Items counted.
    pub fn items(&self) -> u64 {
        self.0.values().sum()
    }

    /// The item-weighted mean batch size (0 when nothing was counted).
    pub fn mean(&self) -> f64 {
        let items = self.items();
        if items == 0 {
            return 0.0;
        }
        let total: u128 = self
            .0
            .iter()
            .map(|(&s, &n)| u128::from(s) * u128::from(n))
            .sum();
        total as f64 / items as f64
    }

    /// The smallest size at or below which at least `q` of the items rode.
    pub fn quantile(&self, q: f64) -> u32 {
        let items = self.items();
        let want = ((items as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&size, &n) in &self.0 {
            seen += n;
            if seen >= want {
                return size;
            }
        }
        0
    }

    /// The largest size seen (0 when nothing was counted).
    pub fn max(&self) -> u32 {
        self.0.keys().next_back().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_counted_exactly() {
        let mut a = BatchSizeCounts::default();
        for _ in 0..1000 {
            a.record(256);
        }
        assert_eq!((a.mean(), a.quantile(0.5), a.max()), (256.0, 256, 256));
        let mut b = BatchSizeCounts::default();
        b.record(1);
        b.record(3);
        a.merge(&b);
        assert_eq!(a.items(), 1002);
        assert_eq!(a.quantile(0.0005), 1);
        assert_eq!(a.max(), 256);
        let mean = (256.0 * 1000.0 + 4.0) / 1002.0;
        assert!((a.mean() - mean).abs() < 1e-9);
        assert_eq!(BatchSizeCounts::default().mean(), 0.0);
    }
}

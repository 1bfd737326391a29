//! The most recent batches of a queue, for the percentiles the control API
//! shows (a bounded ring per series; Prometheus has the full histograms).

use std::collections::VecDeque;

/// How many recent batches (and item latencies) are kept for percentiles.
pub(super) const RECENT: usize = 1024;

/// Samples of the most recent batches.
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// Items per batch.
    pub(super) batch_sizes: VecDeque<f64>,
    /// Handler time per batch, milliseconds.
    pub(super) handler_ms: VecDeque<f64>,
    /// End-to-end time per item, milliseconds.
    pub(super) item_ms: VecDeque<f64>,
}

pub(super) fn push_capped(ring: &mut VecDeque<f64>, value: f64) {
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
    /// Items by outcome, in [`Outcome::ALL`](super::Outcome::ALL) order.
    pub items: [u64; 6],
    /// Batches dispatched.
    pub batches: u64,
    /// Recent batch sizes.
    pub batch_size: Percentiles,
    /// Recent handler times, ms.
    pub handler_ms: Percentiles,
    /// Recent item end-to-end times, ms.
    pub item_ms: Percentiles,
}

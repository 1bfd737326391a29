//! The most recent batches of a queue, for the percentiles the control API
//! shows (a bounded ring per series; Prometheus has the full histograms).

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

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
    /// Mean queue wait of a dispatched batch's items, milliseconds.
    pub(super) wait_ms: VecDeque<f64>,
    /// Cost per dispatched batch.
    pub(super) cost: VecDeque<f64>,
    /// Padding ratio per dispatched batch that has a cost.
    pub(super) padding: VecDeque<f64>,
    /// Batch key and item count per dispatched batch with a key.
    pub(super) keys: VecDeque<(Arc<str>, u32)>,
}

/// Keys [`QueueCounts::key_shares`] names; the others add up under
/// [`OTHER_KEY`].
const SHARES_SHOWN: usize = 8;

/// What the key shares call the keys past the largest [`SHARES_SHOWN`].
pub const OTHER_KEY: &str = "other";

/// One dispatched batch, as the recent series keep it.
#[derive(Debug)]
pub struct Dispatched {
    /// Its items.
    pub items: usize,
    /// Their waits in the queue added up, nanoseconds.
    pub queued_ns: u64,
    /// What closed it.
    pub trigger: crate::contract::Trigger,
    /// Its cost.
    pub cost: u64,
    /// Its padded cost over its true cost, when it has a cost.
    pub padding: Option<f64>,
    /// Its batch key.
    pub key: Option<Arc<str>>,
}

impl Recent {
    /// Keeps a dispatched batch's wait, cost, padding and key.
    pub(super) fn dispatched(&mut self, d: &Dispatched) {
        if d.items > 0 {
            let mean_ns = d.queued_ns / d.items as u64;
            push_capped(&mut self.wait_ms, mean_ns as f64 / 1e6);
        }
        push_capped(&mut self.cost, d.cost as f64);
        if let Some(ratio) = d.padding {
            push_capped(&mut self.padding, ratio);
        }
        if let Some(key) = &d.key {
            let n = u32::try_from(d.items).unwrap_or(u32::MAX);
            push_capped(&mut self.keys, (key.clone(), n));
        }
    }

    /// The recent batch sizes as `(le, batches)`: power-of-two buckets from
    /// 1 to the largest size seen, each batch in the first bucket that
    /// holds it.
    pub(super) fn size_histogram(&self) -> Vec<(u64, u64)> {
        let mut counts: Vec<u64> = Vec::new();
        for &size in &self.batch_sizes {
            let le = (size.max(1.0) as u64).next_power_of_two();
            let i = le.trailing_zeros() as usize;
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] += 1;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, n)| (1u64 << i, n))
            .collect()
    }

    /// The recent batches' items by key, largest first: the
    /// [`SHARES_SHOWN`] largest keys, then the rest as [`OTHER_KEY`].
    pub(super) fn key_shares(&self) -> Vec<(String, u64)> {
        let mut by_key: HashMap<&str, u64> = HashMap::new();
        for (key, n) in &self.keys {
            *by_key.entry(key).or_default() += u64::from(*n);
        }
        let mut shares: Vec<(&str, u64)> = by_key.into_iter().collect();
        shares.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let rest: u64 = shares.iter().skip(SHARES_SHOWN).map(|s| s.1).sum();
        let mut shown: Vec<(String, u64)> = shares
            .into_iter()
            .take(SHARES_SHOWN)
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        if rest > 0 {
            shown.push((OTHER_KEY.to_owned(), rest));
        }
        shown
    }
}

pub(super) fn push_capped<T>(ring: &mut VecDeque<T>, value: T) {
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
    /// Batches dispatched by trigger, in [`Trigger::ALL`](crate::contract::Trigger::ALL) order.
    pub by_trigger: [u64; 8],
    /// Recent mean queue waits per batch, ms.
    pub wait_ms: Percentiles,
    /// Recent batch costs.
    pub batch_cost: Percentiles,
    /// Recent padding ratios.
    pub padding_ratio: Percentiles,
    /// Recent batch sizes as `(le, batches)`, ascending.
    pub size_histogram: Vec<(u64, u64)>,
    /// Recent items by batch key, largest first.
    pub key_shares: Vec<(String, u64)>,
    /// Recent batch sizes.
    pub batch_size: Percentiles,
    /// Recent handler times, ms.
    pub handler_ms: Percentiles,
    /// Recent item end-to-end times, ms.
    pub item_ms: Percentiles,
}

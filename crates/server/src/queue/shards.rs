//! What the shards of one queue share: each shard's depth and batches in
//! flight, published by its actor once per turn, so that
//! `max_queue_items` bounds the queue as a whole and the gauges show the
//! queue's totals.
//!
//! A queue with `shards = N` runs N actors, each owning its own backlog,
//! alarm and in-flight batches (one task each, so up to N cores). The
//! handle gives an item to the first shard whose actor keeps up (fewer
//! than `SPILL_AT` commands waiting in its inbox): at low load every item
//! goes to shard 0, batches stay as full as with one actor and a lone item
//! waits no longer; only when shard 0 falls behind do items spill to
//! shard 1, and so on.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The published load of every shard of a queue.
#[derive(Debug)]
pub(super) struct Load {
    /// One slot per shard.
    slots: Box<[ShardLoad]>,
    /// The queue's `max_queue_items`, for checks before an item is built.
    limit: AtomicUsize,
}

/// One shard's published load, on a cache line of its own (each is written
/// by one actor and read by the others).
#[derive(Debug, Default)]
#[repr(align(128))]
struct ShardLoad {
    /// Items pending.
    depth: AtomicUsize,
    /// Batches in flight.
    in_flight: AtomicUsize,
}

impl Load {
    /// The load of `shards` idle shards.
    pub(super) fn new(shards: usize) -> Self {
        Self {
            slots: (0..shards).map(|_| ShardLoad::default()).collect(),
            limit: AtomicUsize::new(usize::MAX),
        }
    }

    /// Sets the queue's `max_queue_items`.
    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Room under the queue's `max_queue_items` as last published, and
    /// that limit.
    pub(super) fn room(&self) -> (usize, usize) {
        let depth: usize = self
            .slots
            .iter()
            .map(|s| s.depth.load(Ordering::Relaxed))
            .sum();
        let limit = self.limit.load(Ordering::Relaxed);
        (limit.saturating_sub(depth), limit)
    }

    /// Publishes `shard`'s depth alone (after each accepted item, so that
    /// the other shards' limit checks see it at once).
    pub(super) fn set_depth(&self, shard: usize, depth: usize) {
        self.slots[shard].depth.store(depth, Ordering::Relaxed);
    }

    /// Publishes `shard`'s depth and batches in flight; returns the queue's
    /// totals.
    pub(super) fn publish(&self, shard: usize, depth: usize, in_flight: usize) -> (usize, usize) {
        let slot = &self.slots[shard];
        slot.depth.store(depth, Ordering::Relaxed);
        slot.in_flight.store(in_flight, Ordering::Relaxed);
        self.slots.iter().fold((0, 0), |(d, f), s| {
            (
                d + s.depth.load(Ordering::Relaxed),
                f + s.in_flight.load(Ordering::Relaxed),
            )
        })
    }

    /// Items pending in the shards other than `shard`, as last published.
    /// Shards accepting at the same moment on other cores can each miss
    /// the other's newest item, so a queue of N shards may pass
    /// `max_queue_items` by at most N - 1 items.
    pub(super) fn others_depth(&self, shard: usize) -> usize {
        if self.slots.len() == 1 {
            return 0;
        }
        self.slots
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != shard)
            .map(|(_, s)| s.depth.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_the_others_depth() {
        let load = Load::new(3);
        assert_eq!(load.publish(0, 5, 1), (5, 1));
        assert_eq!(load.publish(2, 7, 2), (12, 3));
        assert_eq!(load.others_depth(0), 7);
        assert_eq!(load.others_depth(1), 12);
        assert_eq!(load.publish(0, 0, 0), (7, 2));
        load.set_depth(1, 4);
        assert_eq!(load.others_depth(0), 11);
        assert_eq!(Load::new(1).others_depth(0), 0);
    }
}

//! The server-wide memory budget: bytes held for items not yet answered
//! (`server.max_pending_bytes`), taken before an item is built and given
//! back when it is answered (the way Kafka's `buffer.memory` bounds a
//! producer: a request that would pass it is refused at once, memory never
//! grows past it).
//!
//! An item's [`Charge`] is its payload, its attributes and a fixed
//! [`ITEM_OVERHEAD_BYTES`] for what the server keeps beside them (the item,
//! its place in the backlog, its slot in the batch, its answer channel). A
//! charge travels with the item (queued, then in its batch's slot) and is
//! given back when dropped, whoever drops it, so the count cannot drift.
//! A request of many items (a ModelInfer of N rows) takes all of its bytes
//! at once, or none, and then splits the charge among its items.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use metrics::Gauge;

use crate::error::Refusal;

/// What the server holds per unanswered item beside its payload and
/// attributes, bytes. Measured, not guessed: the RSS growth of 1M held
/// one-byte rows of one ModelInfer was 511-513 bytes a row in a release
/// build on x86_64 (`measure_item_overhead` in tests/inference.rs prints
/// it), so 512 holds for every item path's queued state.
pub const ITEM_OVERHEAD_BYTES: usize = 512;

/// Bytes an item of `payload` bytes and `attributes` holds while it waits.
pub fn item_bytes<'a>(
    payload: usize,
    attributes: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> usize {
    let attributes: usize = attributes.into_iter().map(|(k, v)| k.len() + v.len()).sum();
    payload
        .saturating_add(attributes)
        .saturating_add(ITEM_OVERHEAD_BYTES)
}

/// The server's budget of bytes for unanswered items.
#[derive(Debug)]
pub struct MemoryBudget {
    /// `server.max_pending_bytes`.
    limit: usize,
    /// Bytes charged now.
    used: AtomicUsize,
    /// `batchgate_pending_bytes`.
    gauge: Gauge,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, shown on `gauge`.
    pub fn new(limit: usize, gauge: Gauge) -> Arc<Self> {
        gauge.set(0.0);
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            gauge,
        })
    }

    /// A budget no test will fill, for queues built without a server.
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX, Gauge::noop())
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit, bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `bytes` from the budget, all or nothing.
    ///
    /// # Errors
    /// [`Refusal::MemoryFull`] if they do not fit beside what is held.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, Refusal> {
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            });
        match taken {
            Ok(before) => {
                self.gauge.set((before + bytes) as f64);
                Ok(Charge {
                    budget: Some(self.clone()),
                    bytes,
                })
            }
            Err(used) => Err(Refusal::MemoryFull {
                need: bytes,
                used,
                limit: self.limit,
            }),
        }
    }

    fn give_back(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.set(before.saturating_sub(bytes) as f64);
    }
}

/// Bytes taken from a [`MemoryBudget`], given back when dropped.
#[derive(Debug, Default)]
pub struct Charge {
    /// The budget they came from; `None`: nothing charged.
    budget: Option<Arc<MemoryBudget>>,
    /// Bytes held.
    bytes: usize,
}

impl Charge {
    /// A charge of nothing (items built without a server: tests, fuzzing).
    pub fn none() -> Self {
        Self::default()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves `bytes` (at most what is held) into a charge of their own, as
    /// when a request's charge is split among its items.
    pub fn split_off(&mut self, bytes: usize) -> Charge {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Charge {
            budget: self.budget.clone(),
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take()
            && self.bytes > 0
        {
            budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_or_nothing_and_given_back_on_drop() {
        let budget = MemoryBudget::new(1000, Gauge::noop());
        let a = budget.charge(600).expect("fits");
        let refused = budget.charge(500).expect_err("past the limit");
        assert_eq!(
            refused,
            Refusal::MemoryFull {
                need: 500,
                used: 600,
                limit: 1000
            }
        );
        assert_eq!(budget.used(), 600, "a refusal takes nothing");
        let b = budget.charge(400).expect("fits exactly");
        drop(a);
        assert_eq!(budget.used(), 400);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_split_charge_gives_back_each_part_once() {
        let budget = MemoryBudget::new(1000, Gauge::noop());
        let mut whole = budget.charge(900).expect("fits");
        let mut parts: Vec<Charge> = (0..3).map(|_| whole.split_off(300)).collect();
        assert_eq!(whole.bytes(), 0);
        assert_eq!(parts[0].split_off(0).bytes(), 0);
        drop(whole);
        assert_eq!(budget.used(), 900);
        drop(parts);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn overflowing_sizes_are_refused_not_wrapped() {
        let budget = MemoryBudget::new(usize::MAX, Gauge::noop());
        let _held = budget.charge(10).expect("fits");
        assert!(budget.charge(usize::MAX).is_err());
        assert_eq!(budget.used(), 10);
    }
}

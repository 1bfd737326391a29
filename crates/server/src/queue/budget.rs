//! The server-wide memory budget: bytes held for items not yet answered
//! (`server.max_pending_bytes`), taken before an item is built and given
//! back when it is answered (the way Kafka's `buffer.memory` bounds a
//! producer: a request that would pass it is refused at once, memory never
//! grows past it).
//!
//! A message is charged while it is received (`api/receive.rs`); its
//! charge then grows into its item's: the payload, the attributes and a
//! fixed [`ITEM_OVERHEAD_BYTES`] for what the server keeps beside them
//! (the item, its place in the backlog, its slot in the batch, its answer
//! channel). A stream item's charge travels with the item and is given
//! back when it is answered; a unary call (Submit, ModelInfer: all its
//! rows at once, or none) keeps its charge until its response has been
//! sent, since the answer is held that long too. A charge is given back
//! when dropped, whoever drops it, so the count cannot drift.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use metrics::Gauge;
use tokio::sync::{Notify, futures::OwnedNotified};

use crate::error::Refusal;

/// What the server holds per unanswered item beside its payload and
/// attributes, bytes. Measured, not guessed: the RSS growth of 1M held
/// one-byte rows of one ModelInfer was 511-513 bytes a row in a release
/// build on x86_64 (`measure_item_overhead` in tests/e2e/inference.rs prints
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
    /// Woken when bytes are given back while someone waits for room.
    freed: Arc<Notify>,
    /// [`RoomWait`]s alive (given-back bytes wake them only then).
    waiters: AtomicUsize,
}

/// A wait for bytes to be given back: armed when made, so bytes given
/// back after it was made and before it is polled still wake it.
#[derive(Debug)]
pub struct RoomWait {
    /// The budget waited on.
    budget: Arc<MemoryBudget>,
    /// Its wake-up.
    notified: std::pin::Pin<Box<OwnedNotified>>,
}

impl RoomWait {
    /// Polls for bytes given back since the wait was made.
    pub fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.notified.as_mut().poll(cx)
    }
}

impl Drop for RoomWait {
    fn drop(&mut self) {
        self.budget.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes, shown on `gauge`.
    pub fn new(limit: usize, gauge: Gauge) -> Arc<Self> {
        gauge.set(0.0);
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            gauge,
            freed: Arc::new(Notify::new()),
            waiters: AtomicUsize::new(0),
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

    /// Grows `charge` to `bytes` (or gives back what it holds past them),
    /// all or nothing.
    ///
    /// # Errors
    /// [`Refusal::MemoryFull`] if the growth does not fit; `charge` is
    /// unchanged then.
    pub fn top_up(self: &Arc<Self>, charge: &mut Charge, bytes: usize) -> Result<(), Refusal> {
        if charge.bytes >= bytes {
            drop(charge.split_off(charge.bytes - bytes));
            return Ok(());
        }
        let more = self.charge(bytes - charge.bytes)?;
        charge.absorb(more);
        Ok(())
    }

    /// [`MemoryBudget::top_up`] for a stream, which waits for room instead
    /// of failing (its client is held back meanwhile).
    ///
    /// # Errors
    /// [`Refusal::MemoryFull`] only for more bytes than the whole budget.
    pub async fn top_up_waiting(
        self: &Arc<Self>,
        charge: &mut Charge,
        bytes: usize,
    ) -> Result<(), Refusal> {
        loop {
            let mut room = self.room_wait();
            match self.top_up(charge, bytes) {
                Err(_) if bytes <= self.limit => {
                    std::future::poll_fn(|cx| room.poll(cx)).await;
                }
                done => return done,
            }
        }
    }

    /// Grows `charge` by `bytes` even past the limit: for an answer larger
    /// than its request, which exists already (new items are refused while
    /// it is held).
    pub fn top_up_over(self: &Arc<Self>, charge: &mut Charge, bytes: usize) {
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        self.gauge.set(before.saturating_add(bytes) as f64);
        charge.absorb(Charge {
            budget: Some(self.clone()),
            bytes,
        });
    }

    /// A wait for bytes to be given back (see [`RoomWait`]).
    pub fn room_wait(self: &Arc<Self>) -> RoomWait {
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let mut notified = Box::pin(self.freed.clone().notified_owned());
        notified.as_mut().enable();
        RoomWait {
            budget: self.clone(),
            notified,
        }
    }

    fn give_back(&self, bytes: usize) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.set(before.saturating_sub(bytes) as f64);
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.freed.notify_waiters();
        }
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

    /// Takes over `other`'s bytes (both of one budget).
    fn absorb(&mut self, mut other: Charge) {
        if self.budget.is_none() {
            self.budget = other.budget.take();
        } else {
            other.budget = None;
        }
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Moves `bytes` (at most what is held) into a charge of their own.
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
    fn a_charge_grows_and_shrinks_to_what_is_asked() {
        let budget = MemoryBudget::new(1000, Gauge::noop());
        let mut c = Charge::none();
        budget.top_up(&mut c, 300).expect("fits");
        budget.top_up(&mut c, 700).expect("fits");
        assert_eq!((c.bytes(), budget.used()), (700, 700));
        assert!(budget.top_up(&mut c, 1001).is_err());
        assert_eq!((c.bytes(), budget.used()), (700, 700), "unchanged");
        budget.top_up(&mut c, 100).expect("shrinks");
        assert_eq!(budget.used(), 100);
        budget.top_up_over(&mut c, 2000);
        assert_eq!(budget.used(), 2100, "past the limit when it must");
        assert!(budget.charge(1).is_err(), "and nothing new fits then");
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_top_up_takes_room_as_it_is_given_back() {
        let budget = MemoryBudget::new(100, Gauge::noop());
        let held = budget.charge(80).expect("fits");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut c = Charge::none();
                budget.top_up_waiting(&mut c, 50).await.map(|()| c)
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while 80 of 100 are held");
        drop(held);
        let c = waiter.await.unwrap().expect("room made");
        assert_eq!((c.bytes(), budget.used()), (50, 50));
        let mut c = Charge::none();
        assert!(
            budget.top_up_waiting(&mut c, 101).await.is_err(),
            "never fits"
        );
    }

    #[tokio::test]
    async fn a_room_wait_wakes_when_bytes_are_given_back() {
        let budget = MemoryBudget::new(100, Gauge::noop());
        let held = budget.charge(100).expect("fits");
        let mut wait = budget.room_wait();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(wait.poll(&mut cx).is_pending());
        // Given back before the next poll: not missed.
        drop(held);
        assert!(wait.poll(&mut cx).is_ready());
        drop(wait);
        assert_eq!(budget.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn overflowing_sizes_are_refused_not_wrapped() {
        let budget = MemoryBudget::new(usize::MAX, Gauge::noop());
        let _held = budget.charge(10).expect("fits");
        assert!(budget.charge(usize::MAX).is_err());
        assert_eq!(budget.used(), 10);
    }
}

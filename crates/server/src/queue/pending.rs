//! The items a queue holds before dispatch: one FIFO per priority level,
//! served highest level first, with running totals so the policy never has
//! to walk the items.

use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;

use super::{
    cost::CostTally,
    item::{BACKGROUND, Reply},
};
use crate::contract::BatchItem;

/// An accepted item waiting for its batch.
#[derive(Debug)]
pub struct Waiting {
    /// What the handler will read.
    pub item: BatchItem,
    /// Where the answer goes.
    pub reply: Reply,
    /// When the queue accepted it (queue wait and `max_delay` count from here).
    pub enqueued_at: Instant,
    /// When it expires if still waiting.
    pub deadline: Instant,
    /// When it must be answered even if dispatched (a unary call's own
    /// deadline).
    pub answer_by: Option<Instant>,
    /// Its call's span, for the batch span's link.
    pub trace: Option<crate::otel::ItemTrace>,
    /// Its bytes of the memory budget, held until it is answered.
    pub charge: super::budget::Charge,
}

/// Pending items by priority.
#[derive(Debug)]
pub struct Pending {
    /// `levels[p + 1]` holds priority `p` in arrival order; `levels[0]`
    /// the background items ([`BACKGROUND`]), below every priority.
    levels: Vec<VecDeque<Waiting>>,
    /// Items in all levels.
    len: usize,
    /// Payload bytes in all levels.
    bytes: usize,
    /// With a cost budget: the costs of the items in all levels.
    book: Option<CostBook>,
}

/// The costs of the pending items: their sum, and how many of each cost
/// (so the largest is known after any item leaves).
#[derive(Debug, Default)]
struct CostBook {
    sum: u128,
    counts: BTreeMap<u64, usize>,
}

impl CostBook {
    fn add(&mut self, cost: u64) {
        self.sum += u128::from(cost);
        *self.counts.entry(cost).or_default() += 1;
    }

    fn remove(&mut self, cost: u64) {
        self.sum -= u128::from(cost);
        if let Some(n) = self.counts.get_mut(&cost) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&cost);
            }
        }
    }

    fn max(&self) -> u64 {
        self.counts.keys().next_back().copied().unwrap_or(0)
    }
}

impl Pending {
    /// An empty store with `levels` priority levels (at least one).
    pub fn new(levels: u32) -> Self {
        let levels = (0..=levels.max(1)).map(|_| VecDeque::new()).collect();
        Self {
            levels,
            len: 0,
            bytes: 0,
            book: None,
        }
    }

    /// Keeps (or stops keeping) the items' costs, for a cost budget.
    pub fn set_costed(&mut self, costed: bool) {
        if costed == self.book.is_some() {
            return;
        }
        self.book = costed.then(|| {
            let mut book = CostBook::default();
            for w in self.levels.iter().flatten() {
                book.add(w.item.cost);
            }
            book
        });
    }

    /// The pending items' costs, when they are kept.
    pub fn tally(&self) -> Option<CostTally> {
        self.book.as_ref().map(|b| CostTally {
            n: self.len,
            sum: b.sum,
            max: b.max(),
        })
    }

    fn left(&mut self, item: &Waiting) {
        self.len -= 1;
        self.bytes -= item.item.payload.len();
        if let Some(book) = &mut self.book {
            book.remove(item.item.cost);
        }
    }

    /// Items pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Payload bytes pending.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds an item at the back of its level; `priority` must be a level,
    /// or [`BACKGROUND`].
    pub fn push(&mut self, priority: usize, item: Waiting) {
        let last = self.levels.len() - 1;
        let at = if priority == BACKGROUND as usize {
            0
        } else {
            priority.saturating_add(1).min(last)
        };
        self.len += 1;
        self.bytes += item.item.payload.len();
        if let Some(book) = &mut self.book {
            book.add(item.item.cost);
        }
        self.levels[at].push_back(item);
    }

    /// When the oldest pending item was accepted.
    pub fn oldest(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|level| level.front().map(|w| w.enqueued_at))
            .min()
    }

    /// The item [`Pending::pop`] would return.
    pub fn peek(&self) -> Option<&Waiting> {
        self.levels.iter().rev().find_map(|level| level.front())
    }

    /// Whether the item [`Pending::pop`] would return is a background one
    /// (no online item is pending).
    pub fn next_is_background(&self) -> bool {
        self.levels[1..].iter().all(VecDeque::is_empty) && !self.levels[0].is_empty()
    }

    /// Removes the next item in dispatch order: highest level, oldest first.
    pub fn pop(&mut self) -> Option<Waiting> {
        let item = self
            .levels
            .iter_mut()
            .rev()
            .find_map(|level| level.pop_front())?;
        self.left(&item);
        Some(item)
    }

    /// Counts, in dispatch order, how many of the first items satisfy `live`,
    /// stopping once `want` are found (so the cost is bounded by `want` plus
    /// the dead items passed over).
    pub fn count_live(&self, want: usize, live: impl Fn(&Waiting) -> bool) -> usize {
        self.levels
            .iter()
            .rev()
            .flat_map(|level| level.iter())
            .filter(|w| live(w))
            .take(want)
            .count()
    }

    /// Offers every item to `keep`, which returns the ones to keep; the
    /// others it has taken over (answered or dropped).
    pub fn sweep(&mut self, mut keep: impl FnMut(Waiting) -> Option<Waiting>) {
        for at in 0..self.levels.len() {
            for item in std::mem::take(&mut self.levels[at]) {
                let (size, cost) = (item.item.payload.len(), item.item.cost);
                match keep(item) {
                    Some(item) => self.levels[at].push_back(item),
                    None => {
                        self.len -= 1;
                        self.bytes -= size;
                        if let Some(book) = &mut self.book {
                            book.remove(cost);
                        }
                    }
                }
            }
        }
    }

    /// Drops, in place, every item `gone` says its caller left; returns how
    /// many. Cheaper than [`Pending::sweep`] when nothing is dropped: no
    /// item moves.
    pub fn drop_gone(&mut self, gone: impl Fn(&Waiting) -> bool) -> usize {
        let mut dropped = 0;
        for level in &mut self.levels {
            level.retain(|w| {
                if gone(w) {
                    dropped += 1;
                    self.bytes -= w.item.payload.len();
                    if let Some(book) = &mut self.book {
                        book.remove(w.item.cost);
                    }
                    false
                } else {
                    true
                }
            });
        }
        self.len -= dropped;
        dropped
    }

    /// The earliest deadline among pending items.
    pub fn earliest_deadline(&self) -> Option<Instant> {
        self.levels
            .iter()
            .flat_map(|level| level.iter().map(|w| w.deadline))
            .min()
    }

    /// Changes the number of priority levels; items of levels that no
    /// longer exist join the highest remaining level, in their order.
    pub fn set_levels(&mut self, levels: u32) {
        let levels = levels.max(1) as usize + 1;
        if levels > self.levels.len() {
            self.levels.resize_with(levels, VecDeque::new);
        } else if levels < self.levels.len() {
            let cut: Vec<_> = self.levels.drain(levels..).collect();
            let top = &mut self.levels[levels - 1];
            for level in cut {
                top.extend(level);
            }
        }
    }

    /// Takes every pending item, in dispatch order.
    pub fn take_all(&mut self) -> impl Iterator<Item = Waiting> + use<> {
        self.len = 0;
        self.bytes = 0;
        if let Some(book) = &mut self.book {
            *book = CostBook::default();
        }
        let levels = std::mem::take(&mut self.levels);
        self.levels = (0..levels.len()).map(|_| VecDeque::new()).collect();
        levels.into_iter().rev().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;
    use tokio::sync::oneshot;

    fn waiting(payload: &'static str, at: Instant) -> Waiting {
        let (tx, _rx) = oneshot::channel();
        Waiting {
            item: BatchItem {
                payload: Bytes::from_static(payload.as_bytes()),
                attributes: HashMap::new(),
                trace_id: None,
                cost: payload.len() as u64,
            },
            trace: None,
            reply: Reply::Unary(tx),
            enqueued_at: at,
            deadline: at,
            answer_by: None,
            charge: Default::default(),
        }
    }

    #[test]
    fn pops_highest_priority_first_fifo_within() {
        let t = Instant::now();
        let mut p = Pending::new(3);
        p.push(0, waiting("low-1", t));
        p.push(2, waiting("high-1", t));
        p.push(1, waiting("mid-1", t));
        p.push(2, waiting("high-2", t));
        p.push(0, waiting("low-2", t));
        assert_eq!((p.len(), p.bytes()), (5, 27));
        let order: Vec<_> = std::iter::from_fn(|| p.pop())
            .map(|w| w.item.payload)
            .collect();
        assert_eq!(order, ["high-1", "high-2", "mid-1", "low-1", "low-2"]);
        assert_eq!((p.len(), p.bytes()), (0, 0));
    }

    #[test]
    fn oldest_looks_at_every_level() {
        let t = Instant::now();
        let mut p = Pending::new(2);
        p.push(1, waiting("new", t + std::time::Duration::from_millis(5)));
        p.push(0, waiting("old", t));
        assert_eq!(p.oldest(), Some(t));
        assert_eq!(p.peek().map(|w| w.item.payload.len()), Some(3));
    }

    #[test]
    fn sweep_keeps_totals_right() {
        let t = Instant::now();
        let mut p = Pending::new(1);
        for s in ["a", "bb", "ccc"] {
            p.push(0, waiting(s, t));
        }
        p.sweep(|w| (w.item.payload.len() != 2).then_some(w));
        assert_eq!((p.len(), p.bytes()), (2, 4));
        assert_eq!(p.count_live(5, |w| w.item.payload.len() == 3), 1);
        assert_eq!(p.drop_gone(|w| w.item.payload.len() == 1), 1);
        assert_eq!((p.len(), p.bytes()), (1, 3));
        assert_eq!(p.pop().map(|w| w.item.payload), Some("ccc".into()));
    }

    #[test]
    fn costs_are_kept_through_every_way_out() {
        let t = Instant::now();
        let mut p = Pending::new(2);
        assert_eq!(p.tally(), None, "not kept without a budget");
        p.push(0, waiting("aaaa", t));
        p.set_costed(true);
        assert_eq!(p.tally().map(|c| (c.n, c.sum, c.max)), Some((1, 4, 4)));
        for s in ["a", "bb", "cccccc"] {
            p.push(1, waiting(s, t));
        }
        assert_eq!(p.tally().map(|c| (c.sum, c.max)), Some((13, 6)));
        p.sweep(|w| (w.item.payload.len() != 6).then_some(w));
        assert_eq!(p.tally().map(|c| (c.sum, c.max)), Some((7, 4)));
        assert_eq!(p.drop_gone(|w| w.item.payload.len() == 4), 1);
        assert_eq!(p.tally().map(|c| (c.n, c.sum, c.max)), Some((2, 3, 2)));
        p.pop();
        assert_eq!(p.tally().map(|c| (c.sum, c.max)), Some((2, 2)));
        let _ = p.take_all().count();
        assert_eq!(p.tally().map(|c| (c.n, c.sum, c.max)), Some((0, 0, 0)));
    }
}

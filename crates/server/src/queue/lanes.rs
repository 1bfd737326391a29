//! Batch by key: a queue's pending items in lanes, one per batch key plus
//! the lane of items without one, and the weighted deficit round robin that
//! shares the handler between the lanes that have a batch ready.
//!
//! A batch takes items of one lane only. Each lane has its own backlog
//! (priorities, deadlines) and its own `held_at`, so every trigger applies
//! per key. A keyed lane exists while it holds items: an idle key is
//! dropped at once, and items of at most `max_keys` keys are pending.
//!
//! Length buckets (`cost_buckets`) split a key's items further: a lane is
//! one (key, bucket) pair, so a batch holds items of one bucket only and
//! every trigger applies per bucket. Lanes of a bucket other than the
//! first exist, like keyed ones, only while they hold items.
//!
//! Fair share (deficit round robin, counted in items, or in cost when the
//! queue has a cost budget): lanes are visited in
//! turn; a lane with a batch ready and credit left sends it and pays its
//! item count; when no ready lane has credit left, every ready lane gets
//! its quantum (`max_batch_size` × its weight) and the visit goes on from
//! where it stopped. A lane that empties loses its credit. So while lanes
//! stay backlogged, each sends items in proportion to its weight, whatever
//! their arrival rates, and a quiet lane waits at most one round.

use std::{collections::HashMap, sync::Arc};

use metrics::{Counter, Gauge};
use tokio::time::Instant;

use super::{
    backlog::{Backlog, Dropped},
    pending::Waiting,
};

/// The metric series of a lane: its own for the keys the config names,
/// shared (`key="other"`) for the rest.
#[derive(Debug, Clone)]
pub(super) struct KeySeries {
    /// Items dispatched.
    pub items: Counter,
    /// Items pending (set by the actor from the lanes' depths).
    pub depth: Gauge,
    /// Whether the series is this key's alone.
    pub named: bool,
}

/// One lane: the items of one batch key (or of none).
#[derive(Debug)]
pub(super) struct Lane {
    /// The key; `None` for the lane of items without one.
    pub key: Option<Arc<str>>,
    /// The cost bucket (0 without buckets).
    pub bucket: u8,
    /// Its items.
    pub backlog: Backlog,
    /// When a delay batch of an allowed size left the rest pending: their
    /// `max_delay` counts again from then, once.
    pub held_at: Option<Instant>,
    /// Deficit round robin: items it may still send this round.
    credit: i64,
    /// Its weight in the fair share.
    weight: u32,
    /// Its metric series (keyed lanes only).
    pub series: Option<KeySeries>,
}

impl Lane {
    fn new(
        (key, bucket): LaneId,
        (levels, costed): (u32, bool),
        weight: u32,
        series: Option<KeySeries>,
    ) -> Self {
        let mut backlog = Backlog::new(levels);
        backlog.set_costed(costed);
        Self {
            key,
            bucket,
            backlog,
            held_at: None,
            credit: 0,
            weight,
            series,
        }
    }

    /// Pays for a batch of `n` items; an emptied lane loses what is left.
    pub(super) fn pay(&mut self, n: usize) {
        self.credit = self
            .credit
            .saturating_sub(i64::try_from(n).unwrap_or(i64::MAX));
        if self.backlog.pending().is_empty() {
            self.credit = 0;
        }
    }
}

/// Which lane: a batch key (or none) and a cost bucket.
pub(super) type LaneId = (Option<Arc<str>>, u8);

/// A queue's lanes: `[0]` holds the items without a key of the first
/// bucket and always exists.
#[derive(Debug)]
pub(super) struct Lanes {
    /// The lanes; the others from index 1.
    lanes: Vec<Lane>,
    /// Where each (key, bucket)'s lane is (all but lane 0).
    index: HashMap<LaneId, usize>,
    /// Lanes of each key.
    keys: HashMap<Arc<str>, usize>,
    /// The lane the round robin visits first.
    cursor: usize,
    /// Priority levels of new lanes.
    levels: u32,
    /// Whether lanes keep their items' costs (a cost budget).
    costed: bool,
}

/// Why an item's lane could not be had.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooManyKeys;

impl Lanes {
    /// Just the lane of items without a key; `costed`: lanes keep their
    /// items' costs.
    pub(super) fn new(levels: u32, costed: bool) -> Self {
        Self {
            lanes: vec![Lane::new((None, 0), (levels, costed), 1, None)],
            index: HashMap::new(),
            keys: HashMap::new(),
            cursor: 0,
            levels,
            costed,
        }
    }

    /// Every lane, the keyless one first.
    pub(super) fn all(&self) -> &[Lane] {
        &self.lanes
    }

    /// Every lane, mutably.
    pub(super) fn all_mut(&mut self) -> &mut [Lane] {
        &mut self.lanes
    }

    /// Lane `i`.
    pub(super) fn get_mut(&mut self, i: usize) -> &mut Lane {
        &mut self.lanes[i]
    }

    /// Keys whose lanes exist (each holds items, or did this turn).
    pub(super) fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Lanes besides the first (keyed, or of another bucket).
    pub(super) fn extra(&self) -> usize {
        self.lanes.len() - 1
    }

    /// Items pending in all lanes.
    pub(super) fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.backlog.pending().len()).sum()
    }

    /// Whether no lane holds an item.
    pub(super) fn is_empty(&self) -> bool {
        self.lanes.iter().all(|l| l.backlog.pending().is_empty())
    }

    /// The lane of items without a key in `bucket` (made if new).
    pub(super) fn keyless(&mut self, bucket: u8) -> usize {
        if bucket == 0 {
            return 0;
        }
        match self.index.get(&(None, bucket)) {
            Some(&i) => i,
            None => self.make((None, bucket), 1, None),
        }
    }

    /// The lane of `key` in `bucket` (made if new, unless it is a new key
    /// and items of `max_keys` keys are pending already); `new` gives a
    /// new key's weight and metric series.
    pub(super) fn keyed(
        &mut self,
        key: &Arc<str>,
        bucket: u8,
        max_keys: usize,
        new: impl FnOnce(&str) -> (u32, KeySeries),
    ) -> Result<usize, TooManyKeys> {
        let id = (Some(key.clone()), bucket);
        if let Some(&i) = self.index.get(&id) {
            return Ok(i);
        }
        if !self.keys.contains_key(key) && self.keys() >= max_keys {
            return Err(TooManyKeys);
        }
        *self.keys.entry(key.clone()).or_default() += 1;
        let (weight, series) = new(key);
        Ok(self.make(id, weight, Some(series)))
    }

    fn make(&mut self, id: LaneId, weight: u32, series: Option<KeySeries>) -> usize {
        let i = self.lanes.len();
        self.lanes.push(Lane::new(
            id.clone(),
            (self.levels, self.costed),
            weight,
            series,
        ));
        self.index.insert(id, i);
        i
    }

    /// Makes every lane keep its items' costs, or stop (a budget set or
    /// removed).
    pub(super) fn set_costed(&mut self, costed: bool) {
        self.costed = costed;
        for lane in &mut self.lanes {
            lane.backlog.set_costed(costed);
        }
    }

    /// Sets the weights from `weight_of` (a policy change).
    pub(super) fn reweigh(&mut self, weight_of: impl Fn(&str) -> u32) {
        for lane in &mut self.lanes[1..] {
            if let Some(key) = &lane.key {
                lane.weight = weight_of(key);
            }
        }
    }

    /// Sets every lane's priority levels.
    pub(super) fn set_levels(&mut self, levels: u32) {
        self.levels = levels;
        for lane in &mut self.lanes {
            lane.backlog.set_levels(levels);
        }
    }

    /// Drops the keyed lanes that hold nothing.
    pub(super) fn drop_idle(&mut self) {
        let mut i = 1;
        while i < self.lanes.len() {
            if self.lanes[i].backlog.pending().is_empty() {
                let gone = self.lanes.swap_remove(i);
                if let Some(key) = &gone.key
                    && let Some(n) = self.keys.get_mut(key)
                {
                    *n -= 1;
                    if *n == 0 {
                        self.keys.remove(key);
                    }
                }
                self.index.remove(&(gone.key, gone.bucket));
                if let Some(moved) = self.lanes.get(i) {
                    self.index.insert((moved.key.clone(), moved.bucket), i);
                }
                if self.cursor >= self.lanes.len() {
                    self.cursor = 0;
                }
            } else {
                i += 1;
            }
        }
    }

    /// Does what is due in every lane (see [`Backlog::tidy`]).
    pub(super) fn tidy(&mut self, now: Instant, queue: &str) -> Dropped {
        let mut dropped = Dropped::default();
        for lane in &mut self.lanes {
            dropped += lane.backlog.tidy(now, queue);
        }
        dropped
    }

    /// Removes cancelled and expired items from every lane.
    pub(super) fn sweep(&mut self, now: Instant, queue: &str) -> Dropped {
        let mut dropped = Dropped::default();
        for lane in &mut self.lanes {
            dropped += lane.backlog.sweep(now, queue);
        }
        dropped
    }

    /// The earliest of every lane's wake-ups.
    pub(super) fn wakeups(&mut self, now: Instant) -> [Option<Instant>; 2] {
        let mut soonest = [None, None];
        for lane in &mut self.lanes {
            for (s, w) in soonest.iter_mut().zip(lane.backlog.wakeups(now)) {
                *s = [*s, w].into_iter().flatten().min();
            }
        }
        soonest
    }

    /// Takes every item of every lane.
    pub(super) fn take_all(&mut self) -> Vec<Waiting> {
        self.lanes
            .iter_mut()
            .flat_map(|l| l.backlog.take_all())
            .collect()
    }

    /// The next lane to send a batch among those `ready` says have one,
    /// by weighted deficit round robin; `None` if none is ready.
    pub(super) fn pick(
        &mut self,
        quantum: usize,
        mut ready: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let n = self.lanes.len();
        if n == 1 {
            return ready(0).then_some(0);
        }
        let quantum = i64::try_from(quantum).unwrap_or(i64::MAX);
        let mut ready_lanes = Vec::new();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if ready(i) {
                if self.lanes[i].credit > 0 {
                    self.cursor = i;
                    return Some(i);
                }
                ready_lanes.push(i);
            }
        }
        // A new round: every ready lane gets its quantum.
        let first = *ready_lanes.first()?;
        for &i in &ready_lanes {
            let lane = &mut self.lanes[i];
            lane.credit = lane
                .credit
                .saturating_add(quantum.saturating_mul(i64::from(lane.weight)));
        }
        self.cursor = first;
        Some(first)
    }

    /// After lane `i` sent a batch of `n`: it pays, and the visit moves on
    /// once its credit is spent.
    pub(super) fn sent(&mut self, i: usize, n: usize) {
        let lane = &mut self.lanes[i];
        lane.pay(n);
        if lane.credit <= 0 && !self.lanes.is_empty() {
            self.cursor = (i + 1) % self.lanes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> KeySeries {
        KeySeries {
            items: Counter::noop(),
            depth: Gauge::noop(),
            named: false,
        }
    }

    #[test]
    fn lanes_by_key_with_a_cap_and_idle_ones_dropped() {
        let mut lanes = Lanes::new(1, false);
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        assert_eq!(lanes.keyless(0), 0);
        assert_eq!(lanes.keyed(&a, 0, 2, |_| (1, series())), Ok(1));
        assert_eq!(lanes.keyed(&b, 0, 2, |_| (1, series())), Ok(2));
        assert_eq!(lanes.keyed(&a, 0, 2, |_| (1, series())), Ok(1));
        assert_eq!(lanes.keyed(&c, 0, 2, |_| (1, series())), Err(TooManyKeys));
        // Another bucket of a key is another lane, not another key.
        assert_eq!(lanes.keyed(&a, 3, 2, |_| (1, series())), Ok(3));
        assert_eq!(lanes.keyless(3), 4);
        assert_eq!(lanes.keyless(3), 4);
        assert_eq!((lanes.keys(), lanes.extra()), (2, 4));
        // All hold nothing: dropped, so a third key fits.
        lanes.drop_idle();
        assert_eq!((lanes.keys(), lanes.extra()), (0, 0));
        assert_eq!(lanes.keyed(&c, 0, 2, |_| (1, series())), Ok(1));
    }

    #[test]
    fn backlogged_lanes_send_in_proportion_to_their_weights() {
        let mut lanes = Lanes::new(1, false);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        lanes.keyed(&a, 0, 8, |_| (3, series())).unwrap();
        lanes.keyed(&b, 0, 8, |_| (1, series())).unwrap();
        // Lanes 1 and 2 always have a batch of 4 ready (the backlogs stay
        // empty here, so `pay` would reset credit: charge by hand).
        let mut sent = [0usize; 3];
        for _ in 0..40 {
            let i = lanes.pick(4, |i| i > 0).unwrap();
            sent[i] += 4;
            lanes.lanes[i].credit -= 4;
            if lanes.lanes[i].credit <= 0 {
                lanes.cursor = (i + 1) % lanes.lanes.len();
            }
        }
        assert_eq!(sent, [0, 120, 40], "3:1");
    }

    #[test]
    fn no_lane_ready_picks_none() {
        let mut lanes = Lanes::new(1, false);
        assert_eq!(lanes.pick(4, |_| false), None);
        assert_eq!(lanes.pick(4, |_| true), Some(0));
    }
}

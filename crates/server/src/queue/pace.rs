//! Dispatch paced by the backend (`pace = "backend"`): the queue sends a
//! batch when the backend is about to be free for it, not as soon as a
//! slot of `max_in_flight_batches` is, so items grow the next batch in the
//! queue instead of waiting in the backend's own queue.
//!
//! The backend is taken as slots, one per batch it works on at once (its
//! parallelism: 1 for a model that runs one batch at a time; declared by
//! its endpoints, else learned by `climb.rs`). Each slot holds at most
//! two batches: one working and one arriving. The second goes when the
//! first is predicted to end within the lead (a share of its predicted
//! time: what the next batch needs to reach the backend), so the slot
//! never idles while a batch travels and never queues two. The time of a
//! batch is the queue's fit of service time against size (or cost): the
//! time from when its slot was free for it to its end, so a batch that
//! waited for the one before it does not teach the fit that batches are
//! slow. Before the fit has seen a batch nothing is predicted, and a slot
//! takes a second batch only when its first has ended.

use std::{collections::VecDeque, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{cost::named, fit::Line};
use crate::validation::Named;

/// Whether dispatch follows the backend's pace.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pace {
    /// A batch goes whenever a slot of `max_in_flight_batches` is free.
    #[default]
    Off,
    /// A batch goes when the backend is predicted free for it.
    Backend,
}

named!(Pace, "pace", (Off, "off"), (Backend, "backend"));

/// Share of the working batch's predicted time by which the next batch
/// for its slot may go ahead of the predicted end.
const LEAD_SHARE: f64 = 0.3;
/// Bounds of that lead.
const MIN_LEAD: Duration = Duration::from_micros(200);
const MAX_LEAD: Duration = Duration::from_millis(5);
/// Batches a slot holds at once: one working, one arriving.
const PER_SLOT: usize = 2;
/// Most slots a queue paces by, whatever its endpoints declare (the bound
/// of `max_in_flight_batches`): many endpoints declaring much cannot make
/// the queue hold a slot table of any size.
const MAX_SLOTS: usize = 1024;

/// A batch given to a slot.
#[derive(Debug, Clone, Copy)]
struct Booked {
    id: u64,
    units: usize,
    sent: Instant,
    /// When it is predicted to end (`None` before anything is learned).
    end: Option<Instant>,
}

/// A slot of the backend: its batches, oldest first, and when its last
/// batch ended.
#[derive(Debug, Clone, Default)]
struct BackendSlot {
    booked: VecDeque<Booked>,
    freed: Option<Instant>,
}

/// The backend's slots as the queue predicts them: the first `open` take
/// batches; any after them are closing (their batches end, then they go).
#[derive(Debug, Clone)]
pub struct Slots {
    slots: Vec<BackendSlot>,
    open: usize,
}

impl Slots {
    /// `parallelism` slots, all free.
    pub fn new(parallelism: usize) -> Self {
        let open = parallelism.clamp(1, MAX_SLOTS);
        Self {
            slots: vec![BackendSlot::default(); open],
            open,
        }
    }

    /// The slots that take batches: the parallelism paced by.
    pub fn parallelism(&self) -> usize {
        self.open
    }

    /// Paces by `parallelism` slots from now on: new slots start idle;
    /// idle surplus ones go at once, busy ones take nothing more and go
    /// when their batches have ended.
    pub fn resize(&mut self, parallelism: usize) {
        let p = parallelism.clamp(1, MAX_SLOTS);
        while self.slots.len() < p {
            self.slots.push(BackendSlot::default());
        }
        while self.slots.len() > p {
            let Some(idle) = self.slots.iter().rposition(|s| s.booked.is_empty()) else {
                break;
            };
            self.slots.remove(idle);
        }
        self.open = p;
    }

    /// The slots that take batches.
    fn taking(&self) -> &[BackendSlot] {
        &self.slots[..self.open.min(self.slots.len())]
    }

    /// Whether a slot that takes batches has none.
    pub fn has_idle(&self) -> bool {
        self.taking().iter().any(|s| s.booked.is_empty())
    }

    /// Batches booked in every slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().map(|s| s.booked.len()).sum()
    }

    /// Whether no batch is booked.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot the next batch goes to: an idle one, else the one whose
    /// working batch is predicted to end first among those with room.
    fn next_slot(&self) -> Option<usize> {
        if let Some(idle) = self.taking().iter().position(|s| s.booked.is_empty()) {
            return Some(idle);
        }
        self.taking()
            .iter()
            .enumerate()
            .filter(|(_, s)| s.booked.len() < PER_SLOT)
            .min_by_key(|(_, s)| s.booked.back().and_then(|b| b.end))
            .map(|(i, _)| i)
    }

    /// Whether a batch may go now; if not, when to look again (`None`:
    /// when a batch ends).
    pub fn may_send(&self, now: Instant, line: Option<Line>) -> Result<(), Option<Instant>> {
        let Some(i) = self.next_slot() else {
            return Err(None);
        };
        let slot = &self.slots[i];
        let Some(working) = slot.booked.back() else {
            return Ok(());
        };
        let (Some(line), Some(end)) = (line, working.end) else {
            return Err(None);
        };
        let at = end.checked_sub(lead(line, working.units)).unwrap_or(end);
        if at <= now { Ok(()) } else { Err(Some(at)) }
    }

    /// Books batch `id` of `units` sent `now` into the slot it goes to;
    /// returns how long that slot had stood empty, if it had.
    pub fn book(
        &mut self,
        id: u64,
        units: usize,
        now: Instant,
        line: Option<Line>,
    ) -> Option<Duration> {
        // The caller asked may_send first; were every slot full, the least
        // busy one takes it all the same.
        let i = self.next_slot().unwrap_or_else(|| {
            (0..self.taking().len())
                .min_by_key(|&i| self.slots[i].booked.len())
                .unwrap_or(0)
        });
        let slot = &mut self.slots[i];
        let idle = slot
            .booked
            .is_empty()
            .then_some(slot.freed)
            .flatten()
            .map(|freed| now.saturating_duration_since(freed));
        let start = slot
            .booked
            .back()
            .and_then(|b| b.end)
            .map_or(now, |end| end.max(now));
        let end = line.map(|l| start + l.time(units));
        slot.booked.push_back(Booked {
            id,
            units,
            sent: now,
            end,
        });
        idle
    }

    /// Batch `id` ended `now`: returns its service time (from when its
    /// slot was free for it) to learn from and how long it waited for
    /// that, and predicts its slot's next batch from now. `None` for a
    /// batch that was not booked.
    pub fn finish(&mut self, id: u64, now: Instant, line: Option<Line>) -> Option<Finished> {
        let which = (self.slots.iter()).position(|s| s.booked.iter().any(|b| b.id == id))?;
        let slot = &mut self.slots[which];
        let at = slot.booked.iter().position(|b| b.id == id)?;
        let done = slot.booked.remove(at)?;
        let began = slot.freed.map_or(done.sent, |freed| freed.max(done.sent));
        let finished = Finished {
            service: now.saturating_duration_since(began),
            waited: began.saturating_duration_since(done.sent),
        };
        if which >= self.open && slot.booked.is_empty() {
            // A closing slot's last batch: the slot goes.
            self.slots.remove(which);
            return Some(finished);
        }
        slot.freed = Some(now);
        let mut free = now;
        for b in &mut slot.booked {
            let start = free.max(b.sent);
            b.end = line.map(|l| start + l.time(b.units));
            free = b.end.unwrap_or(start);
        }
        Some(finished)
    }
}

/// A booked batch's end, as the slots saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// From when its slot was free for it to its end.
    pub service: Duration,
    /// From its sending to when its slot was free for it.
    pub waited: Duration,
}

/// How long before a working batch of `units` is predicted to end the
/// next batch for its slot may go.
fn lead(line: Line, units: usize) -> Duration {
    line.time(units)
        .mul_f64(LEAD_SHARE)
        .clamp(MIN_LEAD, MAX_LEAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    /// 4 ms + 0.5 ms an item.
    const LINE: Line = Line {
        base: 0.004,
        per_item: 0.000_5,
    };

    #[test]
    fn a_serial_backend_takes_one_working_and_one_arriving() {
        let t0 = Instant::now();
        let mut slots = Slots::new(1);
        assert_eq!(slots.may_send(t0, Some(LINE)), Ok(()), "idle: at once");
        // 12 items: 10 ms, lead 3 ms.
        slots.book(1, 12, t0, Some(LINE));
        assert_eq!(
            slots.may_send(t0, Some(LINE)),
            Err(Some(t0 + ms(7))),
            "the next goes 3 ms before the first is predicted to end"
        );
        assert_eq!(slots.may_send(t0 + ms(7), Some(LINE)), Ok(()));
        slots.book(2, 20, t0 + ms(7), Some(LINE));
        assert_eq!(
            slots.may_send(t0 + ms(9), Some(LINE)),
            Err(None),
            "never two waiting"
        );
        // The first ends late, at 11 ms: the second's service starts there.
        assert_eq!(
            slots.finish(1, t0 + ms(11), Some(LINE)).map(|f| f.service),
            Some(ms(11))
        );
        // 20 items: 14 ms from 11 ms, lead 4.2 ms.
        let Err(Some(at)) = slots.may_send(t0 + ms(11), Some(LINE)) else {
            panic!("one working, room for the next");
        };
        assert_eq!(at, t0 + ms(25) - Duration::from_micros(4_200));
        assert_eq!(
            slots.finish(2, t0 + ms(25), Some(LINE)),
            Some(Finished {
                service: ms(14),
                waited: ms(4)
            }),
            "service from the first's end, not from its sending"
        );
        assert!(slots.is_empty());
        assert_eq!(
            slots.book(3, 1, t0 + ms(30), Some(LINE)),
            Some(ms(5)),
            "the slot stood empty 5 ms"
        );
    }

    #[test]
    fn slots_follow_the_declared_parallelism() {
        let t0 = Instant::now();
        let mut slots = Slots::new(4);
        slots.book(1, 4, t0, None);
        slots.book(2, 4, t0, None);
        slots.resize(1);
        assert_eq!(slots.parallelism(), 1);
        assert_eq!(
            slots.slots.len(),
            2,
            "a busy slot stays until its batch ends"
        );
        assert!(!slots.has_idle());
        assert_eq!(
            slots.may_send(t0, None),
            Err(None),
            "the closing slot takes nothing"
        );
        slots.finish(2, t0 + ms(1), None);
        assert_eq!(slots.slots.len(), 1, "and goes when it ends");
        assert_eq!(slots.parallelism(), 1);
        slots.resize(3);
        assert!(slots.has_idle());
        assert_eq!(slots.parallelism(), 3);
        // 2,000 endpoints declaring 1,024 each: the table stays bounded.
        slots.resize(2_000 * 1_024);
        assert_eq!(slots.parallelism(), MAX_SLOTS);
    }

    #[test]
    fn slots_fill_idle_ones_first_and_nothing_is_predicted_before_a_fit() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.book(1, 4, t0, None);
        assert_eq!(slots.may_send(t0, None), Ok(()), "a second idle slot");
        slots.book(2, 4, t0, None);
        assert_eq!(
            slots.may_send(t0, None),
            Err(None),
            "no pipelining unlearned"
        );
        assert_eq!(slots.finish(7, t0, None), None, "an unknown batch");
        assert!(slots.finish(2, t0 + ms(3), None).is_some());
        assert_eq!(slots.may_send(t0 + ms(3), None), Ok(()));
        assert_eq!(slots.len(), 1);
    }
}

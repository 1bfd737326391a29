//! The parallelism a paced queue learns when its backend declares none:
//! how many batches the backend really works on at once, found by trying
//! one more and one fewer and keeping what carries more.
//!
//! From the queue's side a slow backend that works on four batches at once
//! and a fast one that works on one look alike until the number of batches
//! sent at once changes, so the climb changes it: it holds a parallelism
//! for a window of batches and measures what the backend carried (units per
//! second), then tries one more (from `p`, kept if it carries at least
//! half the `1/p` more a backend that wide would give) or one fewer (kept
//! if it loses less than half the `1/p` it would lose: fewer slots make
//! bigger batches for the same work), taking turns. Windows in which the
//! backend stood idle a tenth of the time or more measure the callers, not
//! the backend, and decide nothing. A probe that is not kept makes the next
//! one wait twice as long (up to 32 windows), so a settled queue probes
//! rarely; one that is kept probes again at once in the same direction.
//! `max_in_flight_batches` bounds what it tries.

use std::time::Duration;

use tokio::time::Instant;

/// Batches per slot in a measuring window.
const WINDOW_PER_SLOT: usize = 16;
/// Above this idle share a window measured the callers.
const MAX_IDLE_SHARE: f64 = 0.1;
/// One more slot is kept when it carries at least this share of the gain
/// it would bring were the backend that wide (from `p` to `p + 1`: `1/p`
/// more); one fewer when it loses less than this share of the loss it
/// would bring (`1/p`).
const SHARE_OF_IDEAL: f64 = 0.5;
/// The most windows held between probes (as a power of two).
const MAX_BACKOFF: u32 = 5;

/// What the current window tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hold,
    Up,
    Down,
}

/// One window's measure, as it goes.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Batches still to end before measuring starts (those sent before
    /// the window's parallelism took hold).
    skip: usize,
    start: Option<Instant>,
    batches: usize,
    units: f64,
    idle: Duration,
    waited: Duration,
}

/// What the last full window showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    /// The share of the slots' time they stood empty.
    pub idle_share: f64,
    /// The mean time a batch waited in the backend for the one before it.
    pub mean_wait: Duration,
}

/// The parallelism learned, and the probe under way.
#[derive(Debug, Clone)]
pub struct Climb {
    held: usize,
    trial: usize,
    most: usize,
    phase: Phase,
    /// The direction of the next probe.
    next: Phase,
    /// Units per second carried at `held` in the last busy window.
    carried: Option<f64>,
    /// Hold windows left before the next probe.
    holds_left: u32,
    backoff: u32,
    window: Window,
    shown: Option<Shown>,
}

impl Climb {
    /// Starts at one batch at a time, trying at most `most`.
    pub fn new(most: usize) -> Self {
        let mut climb = Self {
            held: 1,
            trial: 1,
            most: most.max(1),
            phase: Phase::Hold,
            next: Phase::Up,
            carried: None,
            holds_left: 0,
            backoff: 0,
            window: Window::default(),
            shown: None,
        };
        climb.open(Phase::Hold);
        climb
    }

    /// The parallelism to pace by now.
    pub fn parallelism(&self) -> usize {
        self.trial
    }

    /// The parallelism learned (what it holds between probes).
    pub fn learned(&self) -> usize {
        self.held
    }

    /// What the last full window showed.
    pub fn shown(&self) -> Option<Shown> {
        self.shown
    }

    /// A slot stood empty `idle` before its next batch.
    pub fn idle(&mut self, idle: Duration) {
        if self.window.start.is_some() {
            self.window.idle += idle;
        }
    }

    /// A batch of `units` ended `now`, having waited `waited` in the
    /// backend. With `declared` (the backend said its parallelism) it only
    /// measures.
    pub fn finished(
        &mut self,
        now: Instant,
        units: usize,
        waited: Duration,
        declared: Option<usize>,
    ) {
        let slots = declared.unwrap_or(self.trial).max(1);
        let w = &mut self.window;
        if w.skip > 0 {
            w.skip -= 1;
            if w.skip == 0 {
                w.start = Some(now);
            }
            return;
        }
        let Some(start) = w.start else {
            w.start = Some(now);
            return;
        };
        w.batches += 1;
        w.units += units as f64;
        w.waited += waited;
        if w.batches < WINDOW_PER_SLOT * slots {
            return;
        }
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let idle_share = if elapsed > 0.0 {
            (w.idle.as_secs_f64() / (elapsed * slots as f64)).min(1.0)
        } else {
            0.0
        };
        self.shown = Some(Shown {
            idle_share,
            mean_wait: w.waited / u32::try_from(w.batches).unwrap_or(u32::MAX),
        });
        let carried = (elapsed > 0.0).then(|| w.units / elapsed);
        match (declared, carried) {
            (None, Some(carried)) if idle_share < MAX_IDLE_SHARE => self.decide(carried),
            _ => {
                // The callers set the pace (or nothing to learn): hold on.
                self.trial = self.held;
                self.open(Phase::Hold);
            }
        }
    }

    /// A busy window carried `carried` units per second at `trial`.
    fn decide(&mut self, carried: f64) {
        match self.phase {
            Phase::Hold => {
                self.carried = Some(carried);
                if self.holds_left > 0 {
                    self.holds_left -= 1;
                    self.open(Phase::Hold);
                    return;
                }
                let probe = match self.next {
                    Phase::Up if self.held < self.most => Phase::Up,
                    _ if self.held > 1 => Phase::Down,
                    _ if self.held < self.most => Phase::Up,
                    _ => Phase::Hold,
                };
                self.trial = match probe {
                    Phase::Up => self.held + 1,
                    Phase::Down => self.held - 1,
                    Phase::Hold => self.held,
                };
                self.open(probe);
            }
            probe => {
                let before = self.carried.unwrap_or(0.0);
                let step = SHARE_OF_IDEAL / self.held as f64;
                let kept = match probe {
                    Phase::Up => carried >= before * (1.0 + step),
                    _ => carried >= before * (1.0 - step),
                };
                if kept {
                    self.held = self.trial;
                    self.carried = Some(carried);
                    self.backoff = 0;
                    self.next = probe;
                } else {
                    self.trial = self.held;
                    self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
                    self.next = if probe == Phase::Up {
                        Phase::Down
                    } else {
                        Phase::Up
                    };
                }
                self.holds_left = (1 << self.backoff) - 1;
                self.open(Phase::Hold);
            }
        }
    }

    /// Starts a window of `phase` at `trial`.
    fn open(&mut self, phase: Phase) {
        self.phase = phase;
        self.window = Window {
            skip: self.trial,
            ..Window::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed world: a backend of `real` parallelism, always given
    /// work, each batch of 64 units taking 10 ms; `climb` paces it for
    /// `windows` windows. Returns what it held.
    fn settle(climb: &mut Climb, real: usize, windows: usize) -> usize {
        let t0 = Instant::now();
        let mut now = t0;
        for _ in 0..windows * WINDOW_PER_SLOT * 8 {
            // `trial` slots over `real` lanes: batches end at the pace of
            // the lanes there are.
            let p = climb.parallelism();
            let spacing = Duration::from_millis(10) / u32::try_from(p.min(real)).unwrap();
            now += spacing;
            let waited = if p > real {
                Duration::from_millis(10)
            } else {
                Duration::ZERO
            };
            climb.finished(now, 64, waited, None);
        }
        climb.learned()
    }

    #[test]
    fn it_climbs_to_the_parallelism_there_is_and_no_further() {
        for real in [1, 2, 3, 6] {
            let mut climb = Climb::new(8);
            assert_eq!(settle(&mut climb, real, 60), real, "real {real}");
        }
    }

    #[test]
    fn it_comes_down_when_the_backend_loses_parallelism() {
        let mut climb = Climb::new(8);
        assert_eq!(settle(&mut climb, 4, 60), 4);
        assert_eq!(settle(&mut climb, 2, 200), 2);
    }

    #[test]
    fn max_in_flight_bounds_it() {
        let mut climb = Climb::new(3);
        assert_eq!(settle(&mut climb, 6, 60), 3);
    }

    #[test]
    fn an_idle_backend_teaches_nothing() {
        let mut climb = Climb::new(8);
        let mut now = Instant::now();
        for _ in 0..1_000 {
            climb.idle(Duration::from_millis(5));
            now += Duration::from_millis(10);
            climb.finished(now, 64, Duration::ZERO, None);
        }
        assert_eq!((climb.learned(), climb.parallelism()), (1, 1));
        let shown = climb.shown().expect("a window ended");
        assert!((shown.idle_share - 0.5).abs() < 0.01, "{shown:?}");
    }

    #[test]
    fn declared_parallelism_is_measured_not_changed() {
        let mut climb = Climb::new(8);
        let mut now = Instant::now();
        for _ in 0..1_000 {
            now += Duration::from_millis(1);
            climb.finished(now, 64, Duration::from_micros(300), Some(4));
        }
        assert_eq!(climb.parallelism(), 1);
        assert_eq!(
            climb.shown().map(|s| s.mean_wait),
            Some(Duration::from_micros(300))
        );
    }
}

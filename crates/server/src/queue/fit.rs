//! What a queue learns online for `mode = "target"`: the handler's time as
//! a function of batch size (a decayed least-squares line `a + b·n`), and
//! the rate at which items arrive (an exponentially decayed count).

use std::time::Duration;

use tokio::time::Instant;

/// Weight each older batch keeps when a new one is observed: the fit
/// follows the last few dozen batches.
const DECAY: f64 = 0.95;
/// Below this spread of batch sizes (standard deviation over mean) the
/// slope cannot be told from the intercept.
const MIN_SPREAD: f64 = 0.05;
/// Time constant of the arrival rate.
const RATE_TAU: Duration = Duration::from_millis(100);

/// A handler's time per batch: `base + per_item × n`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Fixed cost of a batch.
    pub base: f64,
    /// Added cost per item.
    pub per_item: f64,
}

impl Line {
    /// The predicted time of a batch of `n`.
    pub fn time(&self, n: usize) -> Duration {
        Duration::from_secs_f64((self.base + self.per_item * n as f64).max(0.0))
    }
}

/// Decayed sums of (size, seconds) pairs.
#[derive(Debug, Clone, Default)]
pub struct Fit {
    weight: f64,
    sum_n: f64,
    sum_t: f64,
    sum_nn: f64,
    sum_nt: f64,
    samples: u64,
    /// The slope of the last fit whose sizes varied enough to show one.
    slope: Option<f64>,
}

impl Fit {
    /// Adds a batch of `n` items that took `took`.
    pub fn observe(&mut self, n: usize, took: Duration) {
        let (n, t) = (n as f64, took.as_secs_f64());
        self.weight = self.weight * DECAY + 1.0;
        self.sum_n = self.sum_n * DECAY + n;
        self.sum_t = self.sum_t * DECAY + t;
        self.sum_nn = self.sum_nn * DECAY + n * n;
        self.sum_nt = self.sum_nt * DECAY + n * t;
        self.samples += 1;
        if let Some(per_item) = self.spread_slope() {
            self.slope = Some(per_item.max(0.0));
        }
    }

    /// The least-squares slope, when the sizes vary enough to show one.
    fn spread_slope(&self) -> Option<f64> {
        if self.weight <= 0.0 {
            return None;
        }
        let mean_n = self.sum_n / self.weight;
        let mean_t = self.sum_t / self.weight;
        let var_n = (self.sum_nn / self.weight - mean_n * mean_n).max(0.0);
        if mean_n <= 0.0 || var_n.sqrt() < MIN_SPREAD * mean_n {
            return None;
        }
        Some((self.sum_nt / self.weight - mean_n * mean_t) / var_n)
    }

    /// Batches observed.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The line, once a batch was observed. With recent batches of
    /// (nearly) one size the split between base and per-item cost cannot
    /// be seen: the slope last seen is kept, the base follows the recent
    /// times (a queue that settles on one size, as one shedding at its cap
    /// does, must not forget what a bigger batch costs). Before sizes have
    /// ever varied it is taken as all base (flat), which never makes a
    /// queue shrink its batches or shed on a guess. Neither part is
    /// negative.
    pub fn line(&self) -> Option<Line> {
        if self.samples == 0 || self.weight <= 0.0 {
            return None;
        }
        let mean_n = self.sum_n / self.weight;
        let mean_t = self.sum_t / self.weight;
        let Some(per_item) = self.spread_slope().or(self.slope) else {
            return Some(Line {
                base: mean_t,
                per_item: 0.0,
            });
        };
        let base = mean_t - per_item * mean_n;
        Some(if per_item < 0.0 {
            Line {
                base: mean_t,
                per_item: 0.0,
            }
        } else if base < 0.0 {
            Line {
                base: 0.0,
                per_item: mean_t / mean_n,
            }
        } else {
            Line { base, per_item }
        })
    }
}

/// Items per second, decayed with a 100 ms time constant.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    /// Decayed count divided by the time constant, as of `at`.
    value: f64,
    at: Option<Instant>,
}

impl Rate {
    fn decayed(&self, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.value * (-dt / RATE_TAU.as_secs_f64()).exp()
            }
        }
    }

    /// Counts `k` arrivals at `now`.
    pub fn add(&mut self, now: Instant, k: usize) {
        self.value = self.decayed(now) + k as f64 / RATE_TAU.as_secs_f64();
        self.at = Some(now);
    }

    /// The rate at `now`, items per second.
    pub fn per_sec(&self, now: Instant) -> f64 {
        self.decayed(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e3)
    }

    #[test]
    fn the_line_through_varied_sizes_is_exact() {
        let mut fit = Fit::default();
        assert_eq!(fit.line(), None);
        for n in [1, 64, 7, 200, 33, 128] {
            fit.observe(n, ms(5.0 + 0.02 * n as f64));
        }
        let line = fit.line().unwrap();
        assert!((line.base - 0.005).abs() < 1e-9, "{line:?}");
        assert!((line.per_item - 0.000_02).abs() < 1e-12, "{line:?}");
        assert!(line.time(100).abs_diff(ms(7.0)) < Duration::from_nanos(10));
    }

    #[test]
    fn one_size_is_taken_as_flat() {
        let mut fit = Fit::default();
        for _ in 0..10 {
            fit.observe(64, ms(8.0));
        }
        let line = fit.line().unwrap();
        assert!((line.base - 0.008).abs() < 1e-9);
        assert_eq!(line.per_item, 0.0);
    }

    #[test]
    fn one_size_after_varied_sizes_keeps_the_slope_and_follows_the_base() {
        let mut fit = Fit::default();
        for n in [5, 20, 12, 30, 8] {
            fit.observe(n, ms(10.0 + n as f64));
        }
        // A queue shedding at its cap: every batch 20 items, for long
        // enough that the old sizes weigh nothing.
        for _ in 0..500 {
            fit.observe(20, ms(30.0));
        }
        let line = fit.line().unwrap();
        assert!((line.per_item - 0.001).abs() < 1e-9, "{line:?}");
        assert!((line.base - 0.010).abs() < 1e-9, "{line:?}");
        // The backend slows down at that size: the base follows.
        for _ in 0..500 {
            fit.observe(20, ms(40.0));
        }
        let line = fit.line().unwrap();
        assert!((line.per_item - 0.001).abs() < 1e-9, "{line:?}");
        assert!((line.base - 0.020).abs() < 1e-6, "{line:?}");
    }

    #[test]
    fn the_fit_follows_a_handler_that_changes() {
        let mut fit = Fit::default();
        for i in 0..50 {
            fit.observe(10 + i % 20, ms(1.0 + 0.1 * (10 + i % 20) as f64));
        }
        for i in 0..200 {
            fit.observe(10 + i % 20, ms(4.0 + 0.2 * (10 + i % 20) as f64));
        }
        let line = fit.line().unwrap();
        assert!((line.base - 0.004).abs() < 1e-4, "{line:?}");
        assert!((line.per_item - 0.000_2).abs() < 1e-5, "{line:?}");
    }

    #[test]
    fn neither_part_goes_negative() {
        let mut fit = Fit::default();
        fit.observe(10, ms(5.0));
        fit.observe(100, ms(1.0));
        assert_eq!(fit.line().unwrap().per_item, 0.0);
        let mut fit = Fit::default();
        fit.observe(10, ms(1.0));
        fit.observe(100, ms(20.0));
        assert_eq!(fit.line().unwrap().base, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_settles_on_the_arrival_rate() {
        let mut rate = Rate::default();
        // 10 items every ms: 10,000 items/s.
        for _ in 0..1000 {
            rate.add(Instant::now(), 10);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let r = rate.per_sec(Instant::now());
        assert!((r - 10_000.0).abs() < 600.0, "{r}");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(rate.per_sec(Instant::now()) < 1.0);
    }
}

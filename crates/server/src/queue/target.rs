//! Batching to a latency target (`mode = "target"`), and the AIMD policy
//! in the style of Clipper (`mode = "aimd"`), kept as a comparison. Pure
//! functions of the policy, the learned handler line and the arrival
//! rate, tested with plain `#[test]`s.
//!
//! The target rule, with `T = target_latency`, `t(n) = a + b·n` the learned
//! handler time, `r` the arrival rate and `k = max_in_flight_batches`:
//! - the largest batch is `n_max`: the most items (≤ `max_batch_size`)
//!   whose `t(n) ≤ T/2`, so a batch that waited for the one before it still
//!   makes the target; past the load `n_max` can carry (the target cannot
//!   be met then), batches grow to the size that keeps up, up to
//!   `max_batch_size`, so throughput never falls below what bigger batches
//!   give; with `shed = true` they stay at `n_max` and shedding keeps the
//!   load within it;
//! - a batch goes only when a handler slot is free; `n_max` pending go at
//!   once (trigger `target`; `size`, or `cost` with a budget, when `n_max`
//!   is the queue's own cap);
//! - otherwise the batch the handler needs to keep up is `n_need`, the least
//!   `n` with `k·n / t(n) ≥ 1.25·r` (so at low load, 1); when that many are
//!   pending they go at once (trigger `target`): waiting would gain
//!   nothing;
//! - fewer wait for more, but never past the moment the oldest would miss
//!   `0.9·T` given `t(n_need)`; then they go (trigger `target`).
//!
//! With a cost budget (`max_batch_cost`) every count above is in cost
//! units instead of items: the line is time against batch cost, the rate
//! cost per second, and the caps are `max_batch_cost` (see
//! [`Policy::unit_cap`]).
//!
//! Shedding (`shed = true`): once the fit has seen [`SHED_AFTER_SAMPLES`]
//! batches, an item is refused at admission when the queue ahead of it, in
//! batches of `n_max` over `k` slots (plus half a batch while every slot is
//! busy), would answer it after `min(its own timeout, T × SHED_FACTOR)`.

use std::time::Duration;

use super::{
    fit::Line,
    policy::{Policy, Trigger},
};

/// Share of the target a single batch may take in the handler.
const BATCH_SHARE: f64 = 0.5;
/// Headroom over the arrival rate the chosen batch size must carry.
const HEADROOM: f64 = 1.25;
/// Share of the target the wait for more items may use up.
const WAIT_SHARE: f64 = 0.9;
/// An item predicted to be answered later than this many targets is shed.
pub const SHED_FACTOR: f64 = 1.0;
/// Batches the fit must have seen before the queue sheds on it.
pub const SHED_AFTER_SAMPLES: u64 = 10;
/// AIMD: items added to the batch size after a batch within the target.
const AIMD_STEP: usize = 4;
/// AIMD: factor applied to the batch size after a batch over the target.
const AIMD_BACKOFF: f64 = 0.9;

/// What the queue knows when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// The learned handler line (none before the first batch).
    pub line: Option<Line>,
    /// Items arriving per second.
    pub rate: f64,
}

/// The verdict for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send this many items now.
    Dispatch(Trigger, usize),
    /// Look again after this long (or when something changes).
    WakeIn(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// The largest batch: the most items whose predicted time is at most half
/// the target (at least 1, at most `max_batch_size`).
pub fn max_batch(policy: &Policy, line: Option<Line>) -> usize {
    let cap = policy.unit_cap();
    let Some(line) = line else {
        return cap;
    };
    let budget = policy.target_latency.as_secs_f64() * BATCH_SHARE - line.base;
    if line.per_item <= 0.0 {
        return cap;
    }
    // A hair of slack so a budget that fits exactly is not lost to rounding.
    let n = (budget / line.per_item + 1e-9).floor();
    if n < 1.0 { 1 } else { (n as usize).min(cap) }
}

/// The least batch with which `slots` handler slots keep up with `rate`
/// (with headroom); `n_max` when none does.
pub fn needed_batch(line: Option<Line>, rate: f64, slots: usize, n_max: usize) -> usize {
    let Some(line) = line else {
        return 1;
    };
    let demand = rate * HEADROOM;
    let spare = slots as f64 - demand * line.per_item;
    if spare <= 0.0 {
        return n_max;
    }
    let n = (demand * line.base / spare - 1e-9).ceil();
    (n.max(1.0) as usize).min(n_max)
}

/// The largest batch the queue sends now: `n_max`, or past the load that
/// carries (without shedding), the batch that keeps up.
pub fn batch_limit(policy: &Policy, known: Known) -> usize {
    let n_max = max_batch(policy, known.line);
    if policy.shed {
        return n_max;
    }
    let slots = policy.max_in_flight_batches;
    n_max.max(needed_batch(
        known.line,
        known.rate,
        slots,
        policy.unit_cap(),
    ))
}

/// The target rule (module docs), for a queue with `pending` items whose
/// oldest has waited `oldest_age`, while a handler slot is free.
pub fn decide(policy: &Policy, known: Known, pending: usize, oldest_age: Duration) -> Verdict {
    if pending == 0 {
        return Verdict::Idle;
    }
    let limit = batch_limit(policy, known);
    if pending >= limit {
        // What closed it: the target's own cap, else the queue's.
        let trigger = if limit < policy.unit_cap() {
            Trigger::Target
        } else if policy.budgeted() {
            Trigger::Cost
        } else {
            Trigger::Size
        };
        return Verdict::Dispatch(trigger, limit);
    }
    let n_need = needed_batch(known.line, known.rate, policy.max_in_flight_batches, limit);
    if pending >= n_need {
        return Verdict::Dispatch(Trigger::Target, pending);
    }
    let handler = known.line.map_or(Duration::ZERO, |l| l.time(n_need));
    let latest = policy.target_latency.mul_f64(WAIT_SHARE);
    match latest
        .checked_sub(handler)
        .and_then(|d| d.checked_sub(oldest_age))
    {
        Some(left) if !left.is_zero() => Verdict::WakeIn(left),
        _ => Verdict::Dispatch(Trigger::Target, pending),
    }
}

/// When an item joining `pending` items behind `in_flight` busy batches
/// would be answered, by the learned line (none before the first batch).
pub fn predicted_wait(
    policy: &Policy,
    line: Option<Line>,
    pending: usize,
    in_flight: usize,
) -> Option<Duration> {
    let line = line?;
    let n = max_batch(policy, Some(line));
    let slots = policy.max_in_flight_batches.max(1);
    let batches = (pending + 1).div_ceil(n);
    // Batches already running hold their slots for half a batch on average.
    let busy = if in_flight >= slots { 0.5 } else { 0.0 };
    let waves = (batches.div_ceil(slots)) as f64 + busy;
    Some(line.time(n).mul_f64(waves))
}

/// The most an item may be predicted to wait before it is shed.
pub fn shed_limit(policy: &Policy, own_timeout: Duration) -> Duration {
    own_timeout.min(policy.target_latency.mul_f64(SHED_FACTOR))
}

/// AIMD: the next batch size cap after a batch that took `took`.
pub fn aimd_next(policy: &Policy, size: usize, took: Duration) -> usize {
    let next = if took <= policy.target_latency {
        size + AIMD_STEP
    } else {
        (size as f64 * AIMD_BACKOFF).floor() as usize
    };
    next.clamp(1, policy.max_batch_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_batch_size: 1024,
            max_queue_items: 100_000,
            max_in_flight_batches: 1,
            target_latency: Duration::from_millis(20),
            ..Policy::default()
        }
    }

    /// The sim handler of the benchmarks: 5 ms + 20 µs per item.
    fn sim() -> Option<Line> {
        Some(Line {
            base: 0.005,
            per_item: 0.000_02,
        })
    }

    fn known(rate: f64) -> Known {
        Known { line: sim(), rate }
    }

    #[test]
    fn the_largest_batch_takes_half_the_target() {
        // 5 ms + 20 µs·n ≤ 10 ms → n ≤ 250.
        assert_eq!(max_batch(&policy(), sim()), 250);
        let capped = Policy {
            max_batch_size: 64,
            ..policy()
        };
        assert_eq!(max_batch(&capped, sim()), 64);
        assert_eq!(max_batch(&policy(), None), 1024);
        let slow = Line {
            base: 0.015,
            per_item: 0.001,
        };
        assert_eq!(max_batch(&policy(), Some(slow)), 1, "at least one item");
    }

    #[test]
    fn a_lone_item_goes_at_once() {
        for line in [None, sim()] {
            let k = Known { line, rate: 10.0 };
            assert_eq!(
                decide(&policy(), k, 1, Duration::ZERO),
                Verdict::Dispatch(Trigger::Target, 1)
            );
        }
    }

    #[test]
    fn the_needed_batch_is_what_keeps_the_handler_up() {
        // 1 slot, r = 20,000/s, headroom 1.25: n / (5 ms + 20 µs n) ≥ 25,000/s
        // → n ≥ 125 / 0.5 = 250.
        assert_eq!(needed_batch(sim(), 20_000.0, 1, 250), 250);
        // 10,000/s: n ≥ 62.5 / 0.75 → 84.
        assert_eq!(needed_batch(sim(), 10_000.0, 1, 250), 84);
        // Two slots halve the need (about).
        assert_eq!(needed_batch(sim(), 10_000.0, 2, 250), 36);
        // Past what the handler can do at all: the largest batch.
        assert_eq!(needed_batch(sim(), 60_000.0, 1, 250), 250);
    }

    #[test]
    fn fewer_wait_until_the_oldest_would_miss_the_target() {
        // 10,000/s needs 84; 10 pending wait up to 18 ms − t(84) = 11.32 ms.
        let Verdict::WakeIn(wait) =
            decide(&policy(), known(10_000.0), 10, Duration::from_millis(1))
        else {
            panic!("10 pending wait for more")
        };
        assert!(wait.abs_diff(Duration::from_micros(10_320)) < Duration::from_micros(1));
        assert_eq!(
            decide(
                &policy(),
                known(10_000.0),
                10,
                Duration::from_micros(11_321)
            ),
            Verdict::Dispatch(Trigger::Target, 10)
        );
        assert_eq!(
            decide(&policy(), known(10_000.0), 84, Duration::ZERO),
            Verdict::Dispatch(Trigger::Target, 84)
        );
        assert_eq!(
            decide(&policy(), known(10_000.0), 300, Duration::ZERO),
            Verdict::Dispatch(Trigger::Target, 250),
            "the target's cap closed it, not max_batch_size"
        );
        // At the queue's own cap: size, or cost with a budget.
        assert_eq!(
            decide(&policy(), known(60_000.0), 2000, Duration::ZERO),
            Verdict::Dispatch(Trigger::Size, 1024)
        );
        let budgeted = Policy {
            max_batch_cost: 1024,
            ..policy()
        };
        assert_eq!(
            decide(&budgeted, known(60_000.0), 2000, Duration::ZERO),
            Verdict::Dispatch(Trigger::Cost, 1024)
        );
        assert_eq!(
            decide(&budgeted, known(10_000.0), 300, Duration::ZERO),
            Verdict::Dispatch(Trigger::Target, 250)
        );
    }

    #[test]
    fn past_what_half_the_target_carries_batches_grow_unless_shedding() {
        // 30,000/s: 1.25·r·a / (1 − 1.25·r·b) = 187.5 / 0.25 = 750.
        assert_eq!(batch_limit(&policy(), known(30_000.0)), 750);
        assert_eq!(
            decide(&policy(), known(30_000.0), 800, Duration::ZERO),
            Verdict::Dispatch(Trigger::Target, 750)
        );
        let shed = Policy {
            shed: true,
            ..policy()
        };
        assert_eq!(batch_limit(&shed, known(30_000.0)), 250);
        // Below that load the limit is n_max either way.
        assert_eq!(batch_limit(&policy(), known(10_000.0)), 250);
        // Past what any batch carries: max_batch_size.
        assert_eq!(batch_limit(&policy(), known(60_000.0)), 1024);
    }

    #[test]
    fn the_predicted_wait_grows_with_the_queue() {
        let p = policy();
        assert_eq!(predicted_wait(&p, None, 1000, 1), None, "nothing learned");
        let t = |pending, busy| {
            let d = predicted_wait(&p, sim(), pending, busy).unwrap();
            (d.as_secs_f64() * 1e3).round() as u64
        };
        assert_eq!((t(0, 0), t(249, 0), t(250, 0), t(0, 1)), (10, 10, 20, 15));
        assert_eq!(
            shed_limit(&p, Duration::from_secs(30)),
            Duration::from_millis(20)
        );
        assert_eq!(
            shed_limit(&p, Duration::from_millis(5)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn aimd_adds_within_the_target_and_backs_off_past_it() {
        let p = policy();
        assert_eq!(aimd_next(&p, 10, Duration::from_millis(5)), 14);
        assert_eq!(aimd_next(&p, 100, Duration::from_millis(25)), 90);
        assert_eq!(aimd_next(&p, 1, Duration::from_millis(25)), 1);
        assert_eq!(aimd_next(&p, 1023, Duration::from_millis(1)), 1024);
    }
}

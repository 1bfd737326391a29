//! When a batch closes: a pure function of the policy and a view of what is
//! pending. No runtime, no clock reads, no I/O, so every rule is tested with
//! plain `#[test]`s.
//!
//! The rules, in order:
//! 1. Nothing pending: idle (no timer, an idle queue never wakes).
//! 2. Manual mode: idle; only flush or drain dispatch (the actor handles both).
//! 3. `max_batch_size` items pending: dispatch, trigger `size`.
//! 4. `max_batch_bytes` bytes pending: dispatch, trigger `bytes`.
//! 5. The oldest pending item has waited `max_delay`: dispatch, trigger
//!    `delay`, provided `min_batch_size` items are pending; otherwise idle
//!    until more items come.
//! 6. Otherwise wake when the oldest item's `max_delay` is up.

use std::time::Duration;

pub use crate::contract::Trigger;
use crate::{
    config::{Mode, QueueConfig},
    error::Refusal,
};

/// Checks an item of `queue` against the policy's per-item limits: its
/// priority must be a level, its payload must fit in a batch.
///
/// # Errors
/// The [`Refusal`] (INVALID_ARGUMENT) naming the limit.
pub fn check_item(
    policy: &Policy,
    queue: &str,
    priority: u32,
    payload_len: usize,
) -> Result<(), Refusal> {
    if priority >= policy.priority_levels {
        return Err(Refusal::BadPriority {
            queue: queue.to_owned(),
            priority,
            max: policy.priority_levels - 1,
        });
    }
    if payload_len > policy.max_batch_bytes {
        return Err(Refusal::PayloadTooLarge {
            queue: queue.to_owned(),
            size: payload_len,
            limit: policy.max_batch_bytes,
        });
    }
    Ok(())
}

/// The batching policy of one queue, as the actor applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Items in a full batch.
    pub max_batch_size: usize,
    /// Payload bytes in a full batch.
    pub max_batch_bytes: usize,
    /// Longest wait of the oldest item before a delay-triggered batch.
    pub max_delay: Duration,
    /// Fewest items a delay-triggered batch may have.
    pub min_batch_size: usize,
    /// Count only live items towards `min_batch_size`.
    pub strict: bool,
    /// Auto or manual dispatch.
    pub mode: Mode,
    /// Items the queue may hold.
    pub max_queue_items: usize,
    /// Batches processed at once.
    pub max_in_flight_batches: usize,
    /// Timeout of an item that names none.
    pub item_timeout: Duration,
    /// Number of priority levels.
    pub priority_levels: u32,
}

impl From<&QueueConfig> for Policy {
    fn from(c: &QueueConfig) -> Self {
        Self {
            max_batch_size: c.max_batch_size,
            max_batch_bytes: c.max_batch_bytes,
            max_delay: c.max_delay,
            min_batch_size: c.min_batch_size,
            strict: c.strict,
            mode: c.mode,
            max_queue_items: c.max_queue_items,
            max_in_flight_batches: c.max_in_flight_batches,
            item_timeout: c.item_timeout,
            priority_levels: c.priority_levels,
        }
    }
}

/// What the policy needs to know about the pending items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingView {
    /// Items pending (live or not, unless the caller counted only live ones).
    pub len: usize,
    /// Sum of their payload sizes.
    pub bytes: usize,
    /// How long the oldest of them has waited.
    pub oldest_age: Duration,
}

/// The policy's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Close a batch now.
    Dispatch(Trigger),
    /// Nothing to do until this much time has passed (or something changes).
    WakeIn(Duration),
    /// Nothing to do until something changes.
    Idle,
}

/// Applies the rules in the module docs.
pub fn decide(policy: &Policy, pending: PendingView) -> Decision {
    if pending.len == 0 || policy.mode == Mode::Manual {
        return Decision::Idle;
    }
    if pending.len >= policy.max_batch_size {
        return Decision::Dispatch(Trigger::Size);
    }
    if pending.bytes >= policy.max_batch_bytes {
        return Decision::Dispatch(Trigger::Bytes);
    }
    match policy.max_delay.checked_sub(pending.oldest_age) {
        Some(left) if !left.is_zero() => Decision::WakeIn(left),
        _ if pending.len >= policy.min_batch_size => Decision::Dispatch(Trigger::Delay),
        _ => Decision::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_batch_size: 4,
            max_batch_bytes: 100,
            max_delay: Duration::from_millis(2),
            min_batch_size: 1,
            strict: false,
            mode: Mode::Auto,
            max_queue_items: 10,
            max_in_flight_batches: 1,
            item_timeout: Duration::from_secs(1),
            priority_levels: 1,
        }
    }

    fn view(len: usize, bytes: usize, age_us: u64) -> PendingView {
        PendingView {
            len,
            bytes,
            oldest_age: Duration::from_micros(age_us),
        }
    }

    #[test]
    fn empty_queue_is_idle() {
        assert_eq!(decide(&policy(), view(0, 0, 0)), Decision::Idle);
    }

    #[test]
    fn size_closes_at_max_batch_size() {
        assert_eq!(
            decide(&policy(), view(3, 3, 0)),
            Decision::WakeIn(Duration::from_millis(2))
        );
        assert_eq!(
            decide(&policy(), view(4, 4, 0)),
            Decision::Dispatch(Trigger::Size)
        );
    }

    #[test]
    fn bytes_close_at_max_batch_bytes() {
        assert_eq!(
            decide(&policy(), view(2, 100, 0)),
            Decision::Dispatch(Trigger::Bytes)
        );
        assert!(matches!(
            decide(&policy(), view(2, 99, 0)),
            Decision::WakeIn(_)
        ));
    }

    #[test]
    fn delay_counts_from_the_oldest_item() {
        assert_eq!(
            decide(&policy(), view(1, 1, 1_500)),
            Decision::WakeIn(Duration::from_micros(500))
        );
        assert_eq!(
            decide(&policy(), view(1, 1, 2_000)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn delay_waits_for_min_batch_size() {
        let p = Policy {
            min_batch_size: 3,
            ..policy()
        };
        assert_eq!(decide(&p, view(2, 2, 5_000)), Decision::Idle);
        assert_eq!(
            decide(&p, view(3, 3, 5_000)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn manual_mode_never_dispatches_by_itself() {
        let p = Policy {
            mode: Mode::Manual,
            ..policy()
        };
        assert_eq!(decide(&p, view(100, 1_000, 60_000_000)), Decision::Idle);
    }

    #[test]
    fn zero_delay_dispatches_at_once() {
        let p = Policy {
            max_delay: Duration::ZERO,
            ..policy()
        };
        assert_eq!(
            decide(&p, view(1, 1, 0)),
            Decision::Dispatch(Trigger::Delay)
        );
    }

    #[test]
    fn items_are_checked_against_priority_levels_and_batch_bytes() {
        let mut policy = policy();
        policy.priority_levels = 2;
        policy.max_batch_bytes = 10;
        assert_eq!(check_item(&policy, "q", 1, 10), Ok(()));
        assert!(matches!(
            check_item(&policy, "q", 2, 1),
            Err(Refusal::BadPriority { max: 1, .. })
        ));
        assert!(matches!(
            check_item(&policy, "q", 0, 11),
            Err(Refusal::PayloadTooLarge {
                size: 11,
                limit: 10,
                ..
            })
        ));
    }
}

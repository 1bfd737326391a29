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

use serde::{Deserialize, Serialize};

pub use crate::contract::Trigger;
use crate::{
    error::Refusal,
    validation::{ConfigError, at_most, duration_at_most, invalid},
};

/// Upper bounds of the policy fields: generous for any real deployment,
/// small enough that no arithmetic on them overflows (a duration added to
/// the clock, a count of items held in memory).
mod limits {
    use std::time::Duration;

    /// `max_delay`.
    pub const MAX_DELAY: Duration = Duration::from_secs(3600);
    /// `item_timeout`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    /// `max_queue_items`.
    pub const MAX_QUEUE_ITEMS: usize = 10_000_000;
    /// `max_batch_size`.
    pub const MAX_BATCH_SIZE: usize = 1_000_000;
    /// `max_in_flight_batches`.
    pub const MAX_IN_FLIGHT: usize = 1024;
    /// Most priority levels a queue may have (each is a FIFO of its own).
    pub const MAX_PRIORITY_LEVELS: u32 = 64;
}

/// The policy fields, written once for every place that lists them one by
/// one (the control API's `QueuePolicy` both ways, `ctl`'s flags and its
/// `describe`): name in [`Policy`], name in `QueuePolicy`, kind (how the
/// value travels: `count` u32, `bytes` u64, `micros`/`millis` a duration
/// in those units, `flag` bool, `mode` a name, `levels` u32) and the help
/// text. `policy_fields!(m, args…)` expands to `m!(args…; (field, …), …)`.
#[macro_export]
macro_rules! policy_fields {
    ($m:ident $(, $arg:tt)*) => {
        $m! { $($arg),* ;
            (max_batch_size, max_batch_size, count,
                "Close a batch at this many items (trigger size)."),
            (max_batch_bytes, max_batch_bytes, bytes,
                "Close a batch before its payloads pass this many bytes (trigger bytes)."),
            (max_delay, max_delay_us, micros,
                "Close a batch when its oldest item has waited this long, e.g. \"2ms\" (trigger delay)."),
            (min_batch_size, min_batch_size, count,
                "A delay-triggered batch needs at least this many items."),
            (strict, strict, flag,
                "Count only live items towards min_batch_size (true or false)."),
            (mode, mode, mode,
                "auto (size, bytes and delay dispatch) or manual (only a flush does)."),
            (max_queue_items, max_queue_items, count,
                "Items the queue may hold; more are refused RESOURCE_EXHAUSTED."),
            (max_in_flight_batches, max_in_flight_batches, count,
                "Batches of the queue processed at once."),
            (item_timeout, item_timeout_ms, millis,
                "How long an item may wait when its request sets no timeout, e.g. \"30s\"."),
            (priority_levels, priority_levels, levels,
                "Priority levels (items carry 0 .. levels-1)."),
        }
    };
}

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

/// The batching policy of one queue: the fields of a `[queues.NAME]` table
/// besides `handler`, and what the actor applies.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// A batch closes when it holds this many items (trigger `size`).
    pub max_batch_size: usize,
    /// A batch closes when its payloads reach this many bytes (trigger
    /// `bytes`); a single payload larger than this is refused.
    pub max_batch_bytes: usize,
    /// A batch closes when its oldest item has waited this long (trigger
    /// `delay`), provided it holds `min_batch_size` items.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// A delay-triggered batch needs at least this many items; fewer wait on
    /// (until size, bytes, flush, their own timeout or drain).
    pub min_batch_size: usize,
    /// With `strict`, only live items (not cancelled, not expired) count
    /// towards `min_batch_size`.
    pub strict: bool,
    /// `auto` dispatches by the triggers above; `manual` only on flush.
    pub mode: Mode,
    /// Items the queue may hold; beyond it Submit gets RESOURCE_EXHAUSTED.
    pub max_queue_items: usize,
    /// Batches of this queue the handler may process at once.
    pub max_in_flight_batches: usize,
    /// How long an item may wait when its request names no timeout.
    #[serde(with = "humantime_serde")]
    pub item_timeout: Duration,
    /// Number of priority levels: items may carry priority 0..levels-1.
    pub priority_levels: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_batch_size: 64,
            max_batch_bytes: 4 * 1024 * 1024,
            max_delay: Duration::from_millis(2),
            min_batch_size: 1,
            strict: false,
            mode: Mode::Auto,
            max_queue_items: 100_000,
            max_in_flight_batches: 4,
            item_timeout: Duration::from_secs(30),
            priority_levels: 4,
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

impl Policy {
    /// Checks the policy's values; `path` prefixes the field names and
    /// `max_message_bytes` is the server's `max_message_bytes`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        if self.max_batch_size == 0 {
            return Err(invalid(field("max_batch_size"), "must be ≥ 1"));
        }
        at_most(
            &field("max_batch_size"),
            self.max_batch_size,
            limits::MAX_BATCH_SIZE,
            "",
        )?;
        if self.max_batch_size > self.max_queue_items {
            return Err(invalid(
                field("max_batch_size"),
                format!(
                    "must be ≤ max_queue_items ({}): a batch that size could never fill",
                    self.max_queue_items
                ),
            ));
        }
        if self.max_batch_bytes == 0 {
            return Err(invalid(field("max_batch_bytes"), "must be ≥ 1"));
        }
        if self.max_batch_bytes > max_message_bytes {
            return Err(invalid(
                field("max_batch_bytes"),
                format!(
                    "must be ≤ server.max_message_bytes ({max_message_bytes}): a batch goes to a remote backend as one message, and gRPC servers refuse messages over their limit (4 MiB by default); raise server.max_message_bytes first"
                ),
            ));
        }
        duration_at_most(&field("max_delay"), self.max_delay, limits::MAX_DELAY)?;
        if self.min_batch_size == 0 || self.min_batch_size > self.max_batch_size {
            return Err(invalid(
                field("min_batch_size"),
                format!("must be in 1..={} (max_batch_size)", self.max_batch_size),
            ));
        }
        if self.max_queue_items == 0 {
            return Err(invalid(field("max_queue_items"), "must be ≥ 1"));
        }
        at_most(
            &field("max_queue_items"),
            self.max_queue_items,
            limits::MAX_QUEUE_ITEMS,
            "",
        )?;
        if self.max_in_flight_batches == 0 {
            return Err(invalid(field("max_in_flight_batches"), "must be ≥ 1"));
        }
        at_most(
            &field("max_in_flight_batches"),
            self.max_in_flight_batches,
            limits::MAX_IN_FLIGHT,
            "",
        )?;
        if self.item_timeout.is_zero() {
            return Err(invalid(field("item_timeout"), "must be > 0"));
        }
        duration_at_most(
            &field("item_timeout"),
            self.item_timeout,
            limits::MAX_TIMEOUT,
        )?;
        if self.priority_levels == 0 || self.priority_levels > limits::MAX_PRIORITY_LEVELS {
            return Err(invalid(
                field("priority_levels"),
                format!("must be in 1..={}", limits::MAX_PRIORITY_LEVELS),
            ));
        }
        Ok(())
    }
}

/// When a queue dispatches.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Size, bytes and delay triggers dispatch.
    #[default]
    Auto,
    /// Only an explicit flush (or drain) dispatches.
    Manual,
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

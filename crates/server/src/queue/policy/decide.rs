//! The policy's decisions, pure functions of the policy and what is
//! pending: whether an item may join ([`check_item`], [`item_cost`]),
//! whether a batch is due ([`decide`]), how many items it takes
//! ([`batch_len`]) and what it pads to ([`pad_to`]).

use std::time::Duration;

use super::super::cost;
use super::{Mode, Policy, Trigger};
use crate::error::Refusal;

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
    if priority >= policy.priority_levels && priority != super::super::item::BACKGROUND {
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

/// The cost of an item of `queue`: its request's `requested`, else its
/// `cost_attribute`'s number, else by `policy.cost`; checked against the
/// budget (see the module docs).
///
/// # Errors
/// [`Refusal::BadCost`] naming the field or attribute, or
/// [`Refusal::CostOverBudget`].
pub fn item_cost(
    policy: &Policy,
    queue: &str,
    requested: Option<u64>,
    attributes: &std::collections::HashMap<String, String>,
    payload_len: usize,
) -> Result<u64, Refusal> {
    let bad = |from: String, value: String, why: &'static str| Refusal::BadCost {
        queue: queue.to_owned(),
        from,
        value,
        why,
    };
    let from_attribute = (!policy.cost_attribute.is_empty())
        .then(|| attributes.get(&policy.cost_attribute))
        .flatten();
    let cost = match (requested, from_attribute) {
        (Some(n), _) if n > cost::MAX_COST => {
            return Err(bad("request field cost".into(), n.to_string(), "over 2^53"));
        }
        (Some(n), _) => n,
        (None, Some(text)) => cost::parse_cost(text).map_err(|why| {
            bad(
                format!("attribute {:?}", policy.cost_attribute),
                crate::error::quoted(text),
                why,
            )
        })?,
        (None, None) => match policy.cost {
            cost::CostSource::Unit => 1,
            cost::CostSource::Bytes => payload_len as u64,
        },
    };
    let budget = policy.max_batch_cost;
    if budget > 0 && cost > budget && policy.oversize == cost::Oversize::Refuse {
        return Err(Refusal::CostOverBudget {
            queue: queue.to_owned(),
            cost,
            budget,
        });
    }
    Ok(cost)
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
    /// What they cost together under the queue's cost model (0 without a
    /// budget).
    pub cost: u64,
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
    if policy.max_batch_cost > 0 && pending.cost >= policy.max_batch_cost {
        return Decision::Dispatch(Trigger::Cost);
    }
    match policy.max_delay.checked_sub(pending.oldest_age) {
        Some(left) if !left.is_zero() => Decision::WakeIn(left),
        _ if pending.len >= policy.min_batch_size => Decision::Dispatch(Trigger::Delay),
        _ => Decision::Idle,
    }
}

/// How many items the next batch takes, and whether the items left after
/// it are held back for one more `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// At most this many items (fewer if fewer are live or `max_batch_bytes`
    /// stops it).
    pub len: usize,
    /// The rest waits a new `max_delay` before a delay trigger sends it.
    pub hold_rest: bool,
}

/// The size of a batch closing with `trigger` while `pending` items wait;
/// `held` says whether the pending items were held back once already.
pub fn batch_len(policy: &Policy, trigger: Trigger, pending: usize, held: bool) -> Take {
    let all = Take {
        len: policy.max_batch_size,
        hold_rest: false,
    };
    let allowed = &policy.allowed_batch_sizes;
    if allowed.is_empty() || trigger != Trigger::Delay || held || pending >= policy.max_batch_size {
        return all;
    }
    match allowed.iter().rev().find(|&&size| size <= pending) {
        Some(&size) if size >= policy.min_batch_size => Take {
            len: size,
            hold_rest: size < pending,
        },
        _ => all,
    }
}

/// The allowed size a batch of `len` items is padded to, when `len` is not
/// itself allowed.
pub fn pad_to(policy: &Policy, len: usize) -> Option<usize> {
    let allowed = &policy.allowed_batch_sizes;
    if allowed.is_empty() || allowed.binary_search(&len).is_ok() {
        return None;
    }
    allowed.iter().copied().find(|&size| size >= len)
}

//! When a batch closes: a pure function of the policy and a view of what is
//! pending. No runtime, no clock reads, no I/O, so every rule is tested with
//! plain `#[test]`s.
//!
//! The rules, in order:
//! 1. Nothing pending: idle (no timer, an idle queue never wakes).
//! 2. Manual mode: idle; only flush or drain dispatch (the actor handles both).
//! 3. `max_batch_size` items pending: dispatch, trigger `size`.
//! 4. `max_batch_bytes` bytes pending: dispatch, trigger `bytes`; with
//!    `max_batch_cost`, the pending items cost at least that much (see
//!    `cost.rs`): dispatch, trigger `cost` (the batch takes the items that
//!    fit; the next one starts the next batch).
//! 5. The oldest pending item has waited `max_delay`: dispatch, trigger
//!    `delay`, provided `min_batch_size` items are pending; otherwise idle
//!    until more items come.
//! 6. Otherwise wake when the oldest item's `max_delay` is up.
//!
//! With `allowed_batch_sizes` ([`batch_len`] and [`pad_to`]): a batch
//! closed by size has `max_batch_size` items (the largest allowed size). A
//! batch closed by delay takes the largest allowed size that is pending and
//! holds the rest back for one more `max_delay` (new items may fill it to
//! an allowed size); when fewer than the smallest allowed size are pending,
//! when the largest allowed size pending is below `min_batch_size`, or when
//! the items were held back once already, it takes them all. Bytes, flush
//! and drain take what they take. A batch whose count is not allowed goes
//! out with `pad_to`, the next allowed size: the backend pads to it.
//!
//! The policy's data is in `data`, its validation in `checks`, and the
//! table of its fields (for the control API and `ctl`) in `fields`.

mod checks;
mod data;
mod decide;
mod fields;
#[cfg(test)]
mod tests;

pub use self::decide::{
    Decision, PendingView, Take, batch_len, check_item, decide, item_cost, pad_to,
};
pub use self::{
    checks::{MAX_IDEMPOTENCY_KEY_BYTES, MAX_KEY_BYTES},
    data::{Mode, Named, Policy},
    fields::{FIELDS as POLICY_FIELDS, PolicyField},
};
pub use crate::contract::Trigger;

//! The policy's checks: the bounds of each field and `Policy::validate`,
//! which the config, the control API and reload all go through.

use super::Policy;
use crate::queue::cost;
use crate::validation::{ConfigError, at_most, duration_at_most, invalid};

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
    /// Most entries of `allowed_batch_sizes`.
    pub const MAX_ALLOWED_SIZES: usize = 64;
    /// `shards`.
    pub const MAX_SHARDS: usize = 64;
    /// `max_keys`.
    pub const MAX_KEYS: usize = 100_000;
    /// Entries of `weights` (each named key has metric series of its own).
    pub const MAX_NAMED_KEYS: usize = 256;
    /// A weight.
    pub const MAX_WEIGHT: u32 = 1000;
    /// Bytes of a batch key (and of `key_attribute`).
    pub const MAX_KEY_BYTES: usize = 256;
    /// `idempotency_window`.
    pub const MAX_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// `idempotency_max_keys`.
    pub const MAX_IDEMPOTENCY_KEYS: usize = 10_000_000;
}

pub use limits::MAX_KEY_BYTES;
/// Bytes of an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

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
        if self.shards == 0 {
            return Err(invalid(field("shards"), "must be ≥ 1"));
        }
        self.validate_keys(&field)?;
        validate_costs(self, &field)?;
        at_most(&field("shards"), self.shards, limits::MAX_SHARDS, "")?;
        duration_at_most(
            &field("idempotency_window"),
            self.idempotency_window,
            limits::MAX_IDEMPOTENCY_WINDOW,
        )?;
        if self.idempotency_max_keys == 0 {
            return Err(invalid(field("idempotency_max_keys"), "must be ≥ 1"));
        }
        at_most(
            &field("idempotency_max_keys"),
            self.idempotency_max_keys,
            limits::MAX_IDEMPOTENCY_KEYS,
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
        if self.target_latency.is_zero() {
            return Err(invalid(field("target_latency"), "must be > 0"));
        }
        duration_at_most(
            &field("target_latency"),
            self.target_latency,
            limits::MAX_TIMEOUT,
        )?;
        if self.mode.adaptive() && !self.allowed_batch_sizes.is_empty() {
            return Err(invalid(
                field("allowed_batch_sizes"),
                format!(
                    "does not apply to mode = \"{}\" (its batch sizes follow the learned handler time)",
                    self.mode.as_str()
                ),
            ));
        }
        self.validate_allowed_sizes(&field("allowed_batch_sizes"))
    }

    fn validate_keys(&self, field: &impl Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.max_keys == 0 {
            return Err(invalid(field("max_keys"), "must be ≥ 1"));
        }
        at_most(&field("max_keys"), self.max_keys, limits::MAX_KEYS, "")?;
        at_most(
            &field("key_attribute"),
            self.key_attribute.len(),
            limits::MAX_KEY_BYTES,
            " bytes",
        )?;
        if self.weights.len() > limits::MAX_NAMED_KEYS {
            return Err(invalid(
                field("weights"),
                format!(
                    "names {} keys; at most {} (each has metric series of its own)",
                    self.weights.len(),
                    limits::MAX_NAMED_KEYS
                ),
            ));
        }
        for (key, &weight) in &self.weights {
            if key.is_empty() || key.len() > limits::MAX_KEY_BYTES {
                return Err(invalid(
                    field("weights"),
                    format!("a key must be 1..={} bytes", limits::MAX_KEY_BYTES),
                ));
            }
            if weight == 0 || weight > limits::MAX_WEIGHT {
                return Err(invalid(
                    field("weights"),
                    format!(
                        "{key:?} = {weight}: a weight must be in 1..={}",
                        limits::MAX_WEIGHT
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_allowed_sizes(&self, field: &str) -> Result<(), ConfigError> {
        let sizes = &self.allowed_batch_sizes;
        if sizes.is_empty() {
            return Ok(());
        }
        at_most(field, sizes.len(), limits::MAX_ALLOWED_SIZES, " entries")?;
        if sizes[0] == 0 {
            return Err(invalid(field, "sizes must be ≥ 1"));
        }
        if sizes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                field,
                format!("must be strictly ascending, got {sizes:?}"),
            ));
        }
        if sizes.last() != Some(&self.max_batch_size) {
            return Err(invalid(
                field,
                format!(
                    "must end with max_batch_size ({}): a batch closed by size has that many items",
                    self.max_batch_size
                ),
            ));
        }
        Ok(())
    }
}

/// Checks the cost fields of a policy; `field` names them.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first bad field.
fn validate_costs(policy: &Policy, field: &impl Fn(&str) -> String) -> Result<(), ConfigError> {
    at_most(
        &field("max_batch_cost"),
        policy.max_batch_cost,
        cost::MAX_COST,
        "",
    )?;
    at_most(
        &field("cost_attribute"),
        policy.cost_attribute.len(),
        limits::MAX_KEY_BYTES,
        " bytes",
    )?;
    let bounds = &policy.cost_buckets;
    at_most(
        &field("cost_buckets"),
        bounds.len(),
        cost::MAX_BUCKETS,
        " entries",
    )?;
    if bounds.first() == Some(&0) {
        return Err(invalid(field("cost_buckets"), "bounds must be ≥ 1"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            field("cost_buckets"),
            format!("must be strictly ascending, got {bounds:?}"),
        ));
    }
    at_most(
        &field("cost_buckets"),
        bounds.last().copied().unwrap_or(0),
        cost::MAX_COST,
        " (its largest bound)",
    )?;
    Ok(())
}

//! The policy's checks: the bounds of each field and `Policy::validate`,
//! which the config, the control API and reload all go through.

use super::Policy;
use crate::limits::queue as limits;
use crate::validation::{ConfigError, invalid};

/// Bytes of a batch key (and of `key_attribute`).
pub const MAX_KEY_BYTES: usize = limits::KEY_BYTES.max;
/// Bytes of an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = limits::IDEMPOTENCY_KEY_BYTES.max;

impl Policy {
    /// Checks the policy's values; `path` prefixes the field names and
    /// `max_message_bytes` is the server's `max_message_bytes`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self, path: &str, max_message_bytes: usize) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        limits::MAX_BATCH_SIZE.check(&field("max_batch_size"), self.max_batch_size)?;
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
        limits::MAX_DELAY.check(&field("max_delay"), self.max_delay)?;
        if self.min_batch_size == 0 || self.min_batch_size > self.max_batch_size {
            return Err(invalid(
                field("min_batch_size"),
                format!("must be in 1..={} (max_batch_size)", self.max_batch_size),
            ));
        }
        limits::MAX_QUEUE_ITEMS.check(&field("max_queue_items"), self.max_queue_items)?;
        limits::MAX_IN_FLIGHT.check(&field("max_in_flight_batches"), self.max_in_flight_batches)?;
        limits::SHARDS.check(&field("shards"), self.shards)?;
        self.validate_keys(&field)?;
        validate_costs(self, &field)?;
        limits::IDEMPOTENCY_WINDOW.check(&field("idempotency_window"), self.idempotency_window)?;
        limits::IDEMPOTENCY_KEYS
            .check(&field("idempotency_max_keys"), self.idempotency_max_keys)?;
        if self.item_timeout.is_zero() {
            return Err(invalid(field("item_timeout"), "must be > 0"));
        }
        limits::TIMEOUT.check(&field("item_timeout"), self.item_timeout)?;
        limits::PRIORITY_LEVELS.check(&field("priority_levels"), self.priority_levels)?;
        if self.target_latency.is_zero() {
            return Err(invalid(field("target_latency"), "must be > 0"));
        }
        limits::TIMEOUT.check(&field("target_latency"), self.target_latency)?;
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
        limits::MAX_KEYS.check(&field("max_keys"), self.max_keys)?;
        limits::KEY_BYTES.check(&field("key_attribute"), self.key_attribute.len())?;
        if self.weights.len() > limits::NAMED_KEYS.max {
            return Err(invalid(
                field("weights"),
                format!(
                    "names {} keys; at most {} (each has metric series of its own)",
                    self.weights.len(),
                    limits::NAMED_KEYS.max
                ),
            ));
        }
        for (key, &weight) in &self.weights {
            if key.is_empty() || key.len() > MAX_KEY_BYTES {
                return Err(invalid(
                    field("weights"),
                    format!("a key must be 1..={MAX_KEY_BYTES} bytes"),
                ));
            }
            if !limits::WEIGHT.contains(weight) {
                return Err(invalid(
                    field("weights"),
                    format!(
                        "{key:?} = {weight}: a weight must be in 1..={}",
                        limits::WEIGHT.max
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
        limits::ALLOWED_SIZES.check(field, sizes.len())?;
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
    limits::COST.check(&field("max_batch_cost"), policy.max_batch_cost)?;
    limits::KEY_BYTES.check(&field("cost_attribute"), policy.cost_attribute.len())?;
    let bounds = &policy.cost_buckets;
    limits::COST_BUCKETS.check(&field("cost_buckets"), bounds.len())?;
    if bounds.first() == Some(&0) {
        return Err(invalid(field("cost_buckets"), "bounds must be ≥ 1"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            field("cost_buckets"),
            format!("must be strictly ascending, got {bounds:?}"),
        ));
    }
    limits::COST
        .unit(" (its largest bound)")
        .check(&field("cost_buckets"), bounds.last().copied().unwrap_or(0))?;
    Ok(())
}

//! Every bound of a configured number, in one table, and the one range
//! check that applies them ([`Bound::check`]): generous for any real
//! deployment, small enough that no arithmetic on the values overflows (a
//! duration added to the clock, a count of items held in memory).
//!
//! A value below its bound's minimum is refused "must be ≥ MIN", above its
//! maximum "must be ≤ MAX" (durations as the config writes them, `1h`).
//! Checks that relate two fields (`min_batch_size` ≤ `max_batch_size`)
//! stay with the fields' owner.

use std::{fmt::Debug, time::Duration};

use crate::validation::{ConfigError, invalid};

/// The inclusive range a configured number must be in, and the unit its
/// maximum is printed with.
#[derive(Debug, Clone, Copy)]
pub struct Bound<T> {
    /// The smallest value allowed.
    pub min: T,
    /// The largest value allowed.
    pub max: T,
    unit: &'static str,
}

/// A value a bound can print as the config writes it.
pub trait Shown: Copy + PartialOrd {
    /// The value as written in a refusal.
    fn shown(self) -> String;
}

macro_rules! shown_as_debug {
    ($($t:ty),*) => {
        $(impl Shown for $t {
            fn shown(self) -> String {
                format!("{self:?}")
            }
        })*
    };
}
shown_as_debug!(u32, u64, usize, f64);

impl Shown for Duration {
    fn shown(self) -> String {
        humantime::format_duration(self).to_string()
    }
}

impl<T: Shown> Bound<T> {
    /// Values from `min` to `max`, both included.
    pub const fn new(min: T, max: T) -> Self {
        Self { min, max, unit: "" }
    }

    /// The same range, its maximum printed with `unit` (`" bytes"`).
    pub const fn unit(self, unit: &'static str) -> Self {
        Self { unit, ..self }
    }

    /// Whether `value` is in the range.
    pub fn contains(&self, value: T) -> bool {
        value >= self.min && value <= self.max
    }

    /// Checks that `value` of `field` is in the range.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `field` and the bound it crosses.
    pub fn check(&self, field: &str, value: T) -> Result<(), ConfigError> {
        if value < self.min {
            return Err(invalid(field, format!("must be ≥ {}", self.min.shown())));
        }
        if value > self.max {
            return Err(invalid(
                field,
                format!("must be ≤ {}{}", self.max.shown(), self.unit),
            ));
        }
        Ok(())
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const NO_TIME: Duration = Duration::ZERO;

/// The `[server]` table.
pub mod server {
    use super::*;

    /// `stream_window`.
    pub const STREAM_WINDOW: Bound<usize> = Bound::new(1, 1 << 20);
    /// `max_message_bytes`.
    pub const MAX_MESSAGE_BYTES: Bound<usize> = Bound::new(1024, 1 << 30).unit(" bytes");
    /// `max_pending_bytes` (at least `max_message_bytes` too).
    pub const MAX_PENDING_BYTES: Bound<usize> = Bound::new(1024, 1 << 40).unit(" bytes");
    /// `shutdown_grace`, `keepalive_interval`, `keepalive_timeout`.
    pub const SHORT: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(HOUR));
    /// `http2_stream_window` (and the most `http2_connection_window`).
    pub const HTTP2_WINDOW: Bound<u32> = Bound::new(1024, (1 << 31) - 1).unit(" bytes");
    /// `max_concurrent_streams`.
    pub const MAX_CONCURRENT_STREAMS: Bound<u64> = Bound::new(1, 65_536);
    /// `max_header_list_bytes`.
    pub const MAX_HEADER_LIST_BYTES: Bound<u64> = Bound::new(1024, 16 << 20).unit(" bytes");
    /// `max_pending_reset_streams`.
    pub const MAX_PENDING_RESET_STREAMS: Bound<u64> = Bound::new(1, 10_000);
    /// `max_error_reset_streams`.
    pub const MAX_ERROR_RESET_STREAMS: Bound<u64> = Bound::new(1, 100_000);
    /// `max_requests_per_connection`.
    pub const MAX_REQUESTS_PER_CONNECTION: Bound<u64> = Bound::new(1, 65_536);
    /// `max_connections`.
    pub const MAX_CONNECTIONS: Bound<u64> = Bound::new(1, 1_000_000);
}

/// A queue's policy.
pub mod queue {
    use super::*;

    /// `max_batch_size`.
    pub const MAX_BATCH_SIZE: Bound<usize> = Bound::new(1, 1_000_000);
    /// `max_delay`.
    pub const MAX_DELAY: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(HOUR));
    /// `item_timeout` and `target_latency`.
    pub const TIMEOUT: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(DAY));
    /// `max_queue_items`.
    pub const MAX_QUEUE_ITEMS: Bound<usize> = Bound::new(1, 10_000_000);
    /// `max_in_flight_batches`.
    pub const MAX_IN_FLIGHT: Bound<usize> = Bound::new(1, 1024);
    /// `priority_levels` (each is a FIFO of its own).
    pub const PRIORITY_LEVELS: Bound<u32> = Bound::new(1, 64);
    /// Entries of `allowed_batch_sizes`.
    pub const ALLOWED_SIZES: Bound<usize> = Bound::new(0, 64).unit(" entries");
    /// `shards`.
    pub const SHARDS: Bound<usize> = Bound::new(1, 64);
    /// `max_keys`.
    pub const MAX_KEYS: Bound<usize> = Bound::new(1, 100_000);
    /// Entries of `weights` (each named key has metric series of its own).
    pub const NAMED_KEYS: Bound<usize> = Bound::new(0, 256).unit(" entries");
    /// A weight.
    pub const WEIGHT: Bound<u32> = Bound::new(1, 1000);
    /// Bytes of a batch key, of `key_attribute` and of `cost_attribute`.
    pub const KEY_BYTES: Bound<usize> = Bound::new(0, 256).unit(" bytes");
    /// Bytes of an idempotency key.
    pub const IDEMPOTENCY_KEY_BYTES: Bound<usize> = Bound::new(0, 256).unit(" bytes");
    /// `idempotency_window`.
    pub const IDEMPOTENCY_WINDOW: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(DAY));
    /// `idempotency_max_keys`.
    pub const IDEMPOTENCY_KEYS: Bound<usize> = Bound::new(1, 10_000_000);
    /// `max_batch_cost`, an item's cost and a cost bucket's bound: 2^53,
    /// so a sum of costs is exact in an f64.
    pub const COST: Bound<u64> = Bound::new(0, 1 << 53);
    /// Entries of `cost_buckets`.
    pub const COST_BUCKETS: Bound<usize> = Bound::new(0, 64).unit(" entries");
}

/// A queue's handler.
pub mod handler {
    use super::*;

    /// `timeout` (more than 0) and `eject_for`.
    pub const TIMEOUT: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(DAY));
    /// `retry_backoff`, `retry_backoff_max`, sim `base`, `per_item`,
    /// `per_cost`, and `resolve_every` (at least 10ms).
    pub const SHORT: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(HOUR));
    /// `max_in_flight`.
    pub const MAX_IN_FLIGHT: Bound<usize> = Bound::new(1, 1024);
    /// `parallelism` (0: not said).
    pub const PARALLELISM: Bound<usize> = Bound::new(0, 1024);
    /// `retries`.
    pub const RETRIES: Bound<u32> = Bound::new(0, 100);
    /// `eject_after`.
    pub const EJECT_AFTER: Bound<u32> = Bound::new(1, 10_000);
    /// kserve `model`, bytes.
    pub const MODEL_BYTES: Bound<usize> = Bound::new(0, 256).unit(" bytes");
    /// http_each `url` template, bytes.
    pub const URL_BYTES: Bound<usize> = Bound::new(0, 8 * 1024).unit(" bytes");
    /// http_each `headers` and `keep_headers`.
    pub const HEADERS: Bound<usize> = Bound::new(0, 64).unit(" headers");
    /// http_each requests per second a `rate` may allow.
    pub const RATE_PER_SECOND: Bound<f64> = Bound::new(0.0, 1_000_000.0);
    /// http_each `burst`.
    pub const BURST: Bound<u32> = Bound::new(1, 1_000_000);
}

/// The `[jobs]` table.
pub mod jobs {
    use super::*;

    /// `max_items_per_job` and `max_open_jobs`.
    pub const ITEMS: Bound<u64> = Bound::new(1, 1 << 32);
    /// `max_job_bytes` and `max_store_bytes`.
    pub const BYTES: Bound<u64> = Bound::new(1, 1 << 44);
    /// `default_window` (more than 0) and a job's completion window.
    pub const WINDOW: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(30 * DAY));
    /// `retention`.
    pub const RETENTION: Bound<Duration> = Bound::new(NO_TIME, Duration::from_secs(365 * DAY));
    /// `max_in_flight_per_queue`.
    pub const IN_FLIGHT_PER_QUEUE: Bound<usize> = Bound::new(0, 1 << 20);
    /// `nats.ack_wait`.
    pub const ACK_WAIT: Bound<Duration> =
        Bound::new(Duration::from_secs(1), Duration::from_secs(HOUR));
    /// `nats.replicas` (JetStream's most).
    pub const NATS_REPLICAS: Bound<usize> = Bound::new(1, 5);
}

/// A queue's `v2` model.
pub mod model {
    use super::*;

    /// Tensors of `inputs` and of `outputs`.
    pub const TENSORS: Bound<usize> = Bound::new(0, 64).unit(" tensors");
    /// Dimensions of a tensor's `shape`.
    pub const DIMS: Bound<usize> = Bound::new(0, 16).unit(" dimensions");
    /// Bytes of a tensor's name and of `version`.
    pub const NAME_BYTES: Bound<usize> = Bound::new(0, 256).unit(" bytes");
    /// `max_rows_per_request`.
    pub const ROWS_PER_REQUEST: Bound<usize> = Bound::new(1, 1_048_576).unit(" rows");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_names_the_side_crossed_with_the_unit_on_its_maximum() {
        let b = Bound::new(1usize, 8).unit(" bytes");
        assert!(b.check("f", 1).is_ok() && b.check("f", 8).is_ok());
        assert_eq!(b.check("f", 0).unwrap_err().to_string(), "f must be ≥ 1");
        assert_eq!(
            b.check("f", 9).unwrap_err().to_string(),
            "f must be ≤ 8 bytes"
        );
        let d = queue::MAX_DELAY;
        assert_eq!(
            d.check("q.max_delay", Duration::from_secs(7200))
                .unwrap_err()
                .to_string(),
            "q.max_delay must be ≤ 1h"
        );
        assert!(!d.contains(Duration::from_secs(3601)));
    }
}

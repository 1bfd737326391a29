//! Upper bounds of the handler fields.

use std::time::Duration;

/// A handler's `timeout` and `eject_for`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// `retry_backoff`, `retry_backoff_max`, sim `base` and `per_item`.
pub const MAX_SHORT: Duration = Duration::from_secs(3600);
/// A handler's `max_in_flight`.
pub const MAX_IN_FLIGHT: usize = 1024;
/// A handler's `retries`.
pub const MAX_RETRIES: u32 = 100;
/// A handler's `eject_after`.
pub const MAX_EJECT_AFTER: u32 = 10_000;

//! The `[jobs]` table: where the store lives and the limits of jobs.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::validation::{ConfigError, at_most, duration_at_most, invalid};

/// Default store file, relative to the server's working directory.
pub const DEFAULT_PATH: &str = "batchgate-data/jobs.sqlite3";

/// Jobs: present in the config (`[jobs]`), the Jobs service is on.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// The SQLite file (created with its directory if missing). One server
    /// process holds it at a time.
    pub path: PathBuf,
    /// Items one job may hold.
    pub max_items_per_job: u64,
    /// Payload, attribute and custom_id bytes one job may hold.
    pub max_job_bytes: u64,
    /// Jobs not yet ended at once (uploads included).
    pub max_open_jobs: u64,
    /// Bytes of items every stored job holds together.
    pub max_store_bytes: u64,
    /// The completion window of a job whose header gives none.
    #[serde(with = "humantime_serde")]
    pub default_window: Duration,
    /// How long an ended job (its items and results) is kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Job items one queue holds at once (waiting or in a batch); 0: the
    /// queue's `max_batch_size × (max_in_flight_batches + 1)`.
    pub max_in_flight_per_queue: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_PATH),
            max_items_per_job: 10_000_000,
            max_job_bytes: 8 << 30,
            max_open_jobs: 1_000,
            max_store_bytes: 64 << 30,
            default_window: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_in_flight_per_queue: 0,
        }
    }
}

/// Bounds of the limits.
const MAX_ITEMS: u64 = 1 << 32;
const MAX_BYTES: u64 = 1 << 44;
const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);
const MAX_IN_FLIGHT: usize = 1 << 20;

impl JobsConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad `jobs.` field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(invalid("jobs.path", "must not be empty"));
        }
        for (field, value, max) in [
            ("jobs.max_items_per_job", self.max_items_per_job, MAX_ITEMS),
            ("jobs.max_job_bytes", self.max_job_bytes, MAX_BYTES),
            ("jobs.max_open_jobs", self.max_open_jobs, MAX_ITEMS),
            ("jobs.max_store_bytes", self.max_store_bytes, MAX_BYTES),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be ≥ 1"));
            }
            at_most(field, value, max, "")?;
        }
        if self.default_window.is_zero() {
            return Err(invalid("jobs.default_window", "must be more than 0s"));
        }
        duration_at_most("jobs.default_window", self.default_window, MAX_WINDOW)?;
        duration_at_most("jobs.retention", self.retention, MAX_RETENTION)?;
        at_most(
            "jobs.max_in_flight_per_queue",
            self.max_in_flight_per_queue,
            MAX_IN_FLIGHT,
            "",
        )
    }

    /// The longest completion window a job may ask for.
    pub fn max_window(&self) -> Duration {
        MAX_WINDOW
    }
}

//! The `[jobs]` table: where the store lives and the limits of jobs.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    limits::jobs as limits,
    validation::{ConfigError, invalid},
};

/// Default store file, relative to the server's working directory.
pub const DEFAULT_PATH: &str = "batchgate-data/jobs.sqlite3";

/// Jobs: present in the config (`[jobs]`), the Jobs service is on.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Where jobs live: `"sqlite"` (embedded, one replica) or `"nats"`
    /// (NATS JetStream, shared by replicas).
    pub store: StoreKind,
    /// The SQLite file (created with its directory if missing). One server
    /// process holds it at a time.
    pub path: PathBuf,
    /// The NATS JetStream store's connection and names.
    pub nats: NatsConfig,
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
            store: StoreKind::Sqlite,
            path: PathBuf::from(DEFAULT_PATH),
            nats: NatsConfig::default(),
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

/// Which job store.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// An embedded SQLite file.
    #[default]
    Sqlite,
    /// NATS JetStream, shared by every replica.
    Nats,
}

/// `[jobs.nats]`: where the NATS server is and how the store names what it
/// keeps there.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// The server (`nats://host:4222`; several, comma-separated).
    pub url: String,
    /// A credentials file (`.creds`: JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// A PEM file of the CA to trust for TLS (TLS is then required).
    pub tls_ca: Option<PathBuf>,
    /// Prefix of the streams, buckets and subjects (one per deployment).
    pub prefix: String,
    /// How long a claimed item may run before another replica gets it.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Copies JetStream keeps of each stream and bucket (a NATS cluster).
    pub replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials: None,
            tls_ca: None,
            prefix: "batchgate".to_owned(),
            ack_wait: Duration::from_secs(30),
            replicas: 1,
        }
    }
}

impl JobsConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad `jobs.` field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(invalid("jobs.path", "must not be empty"));
        }
        let nats = &self.nats;
        if nats.url.is_empty() {
            return Err(invalid("jobs.nats.url", "must not be empty"));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if nats.prefix.is_empty() || nats.prefix.len() > 64 || !nats.prefix.chars().all(name_ok) {
            return Err(invalid(
                "jobs.nats.prefix",
                "must be 1 to 64 letters, digits, '-' or '_' (it names streams and subjects)",
            ));
        }
        limits::ACK_WAIT.check("jobs.nats.ack_wait", nats.ack_wait)?;
        limits::NATS_REPLICAS.check("jobs.nats.replicas", nats.replicas)?;
        for (field, value, bound) in [
            (
                "jobs.max_items_per_job",
                self.max_items_per_job,
                limits::ITEMS,
            ),
            ("jobs.max_job_bytes", self.max_job_bytes, limits::BYTES),
            ("jobs.max_open_jobs", self.max_open_jobs, limits::ITEMS),
            ("jobs.max_store_bytes", self.max_store_bytes, limits::BYTES),
        ] {
            bound.check(field, value)?;
        }
        if self.default_window.is_zero() {
            return Err(invalid("jobs.default_window", "must be more than 0s"));
        }
        limits::WINDOW.check("jobs.default_window", self.default_window)?;
        limits::RETENTION.check("jobs.retention", self.retention)?;
        limits::IN_FLIGHT_PER_QUEUE
            .check("jobs.max_in_flight_per_queue", self.max_in_flight_per_queue)
    }

    /// The longest completion window a job may ask for.
    pub fn max_window(&self) -> Duration {
        limits::WINDOW.max
    }
}

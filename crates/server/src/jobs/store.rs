//! The job store's contract: the [`JobStore`] trait (about jobs, not about a
//! database) and the types its calls take and give: a job's state, counts
//! and record, the items uploaded and claimed, their outcomes and results.

use std::{collections::BTreeMap, collections::HashMap, path::PathBuf, time::Duration};

use bytes::Bytes;

use crate::handler::BoxFuture;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Items are being uploaded; not a job yet.
    Validating,
    /// Stored, nothing dispatched yet.
    Queued,
    /// Items are running.
    InProgress,
    /// Every item has its result.
    Completed,
    /// It could not go on (the reason says why).
    Failed,
    /// The completion window passed before every item ran.
    Expired,
    /// Cancelled with batches still running.
    Cancelling,
    /// Cancelled, nothing running.
    Cancelled,
}

impl JobState {
    /// Every state, in order.
    pub const ALL: [JobState; 8] = [
        Self::Validating,
        Self::Queued,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::Expired,
        Self::Cancelling,
        Self::Cancelled,
    ];

    /// Its name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether its items may still be dispatched.
    pub fn runs(self) -> bool {
        matches!(self, Self::Queued | Self::InProgress)
    }

    /// Whether it has ended (nothing more will run or be recorded).
    pub fn ended(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Expired | Self::Cancelled
        )
    }
}

/// What a job's items came to so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items in the job.
    pub total: u64,
    /// Answered with a result.
    pub succeeded: u64,
    /// Answered with an error.
    pub failed: u64,
    /// Never ran: the job was cancelled.
    pub cancelled: u64,
    /// Never ran: the job expired.
    pub expired: u64,
}

impl Counts {
    /// Items with their result stored.
    pub fn done(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled + self.expired
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// Its id (`job_` and 16 hex digits).
    pub id: String,
    /// The queue that runs it.
    pub queue: String,
    pub state: JobState,
    /// Why it failed (empty otherwise).
    pub reason: String,
    pub counts: Counts,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub expires_ms: u64,
    /// 0 until it ends.
    pub ended_ms: u64,
    pub labels: BTreeMap<String, String>,
    /// Among the jobs of a queue, higher goes first.
    pub priority: u32,
    /// Payload and attribute bytes of its items.
    pub bytes: u64,
}

/// A job to create: its header.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub queue: String,
    /// How long it may take.
    pub window: Duration,
    pub priority: u32,
    pub labels: BTreeMap<String, String>,
    /// A retried upload with the same key gets the first job.
    pub idempotency_key: Option<String>,
}

/// One item of a job, as uploaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewItem {
    pub custom_id: String,
    pub payload: Bytes,
    pub attributes: HashMap<String, String>,
    pub cost: Option<u64>,
    pub batch_key: Option<String>,
}

impl NewItem {
    /// Its bytes as counted against the limits.
    pub fn bytes(&self) -> u64 {
        let attributes: usize = self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        (self.custom_id.len() + self.payload.len() + attributes) as u64
    }
}

/// An item taken to run: its place in the job and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Its place in the job (0, 1, ...).
    pub seq: u64,
    pub item: NewItem,
}

/// What an item came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's output.
    Ok {
        payload: Bytes,
        attributes: HashMap<String, String>,
    },
    /// A gRPC status code (not 0) and message.
    Err { code: i32, message: String },
}

/// An item's end, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub seq: u64,
    pub outcome: Outcome,
    /// The batch it rode in (0: none).
    pub batch_id: u64,
}

/// One stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// Its place in the job's results.
    pub offset: u64,
    pub custom_id: String,
    pub outcome: Outcome,
    pub batch_id: u64,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub queue: Option<String>,
    pub state: Option<JobState>,
    /// Only jobs created before this one (the page token).
    pub before: Option<String>,
    pub limit: usize,
}

/// What `begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// A new job, being uploaded.
    New(String),
    /// A job with the same idempotency key exists already.
    Existing(JobInfo),
}

/// Why the store refused or failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The store could not be opened or used; names the file.
    #[error("job store {path}: {reason}")]
    Unavailable { path: PathBuf, reason: String },
    /// No such job.
    #[error("job {0} not found")]
    NotFound(String),
    /// An item was refused; the job is refused whole.
    #[error("item {index} (custom_id {custom_id:?}): {reason}")]
    BadItem {
        index: u64,
        custom_id: String,
        reason: String,
    },
    /// Past a limit of the store.
    #[error("{0}")]
    Limit(String),
    /// Not in a state for it.
    #[error("{0}")]
    State(String),
}

/// Shorthand for the store's answers.
pub type StoreResult<T> = Result<T, StoreError>;

/// Where jobs live. Every call is atomic: it happened whole or not at all.
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Starts a job (`validating`; not listed, gone after a restart unless
    /// sealed).
    fn begin(&self, job: NewJob) -> BoxFuture<'_, StoreResult<Begun>>;
    /// Adds items to a job being uploaded (`first`: the index of the first
    /// of them in the upload, for errors).
    fn append(&self, id: &str, first: u64, items: Vec<NewItem>) -> BoxFuture<'_, StoreResult<()>>;
    /// Makes an uploaded job a job (`queued`).
    fn seal(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>>;
    /// Forgets a job being uploaded.
    fn abort(&self, id: &str) -> BoxFuture<'_, StoreResult<()>>;
    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>>;
    /// Newest first.
    fn list(&self, filter: Filter) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>>;
    /// Jobs whose items may be claimed, or that wait for running items.
    fn open_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>>;
    /// Takes up to `n` items not yet run (the job goes `in_progress`).
    fn claim(&self, id: &str, n: usize) -> BoxFuture<'_, StoreResult<Vec<Claimed>>>;
    /// Stores claimed items' ends (an item already recorded is skipped);
    /// the job completes when every item has its result.
    fn record(&self, id: &str, done: Vec<Done>) -> BoxFuture<'_, StoreResult<JobInfo>>;
    /// Puts claimed items back, to be claimed again (the queue refused
    /// them before they ran: full, draining, or they waited too long).
    fn release(&self, id: &str, seqs: Vec<u64>) -> BoxFuture<'_, StoreResult<()>>;
    /// Items not yet claimed end CANCELLED; the job is `cancelled` once
    /// nothing runs (`cancelling` until then).
    fn cancel(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>>;
    /// Items not yet claimed end with `code` and `reason`, the job
    /// `failed` with the reason.
    fn fail(&self, id: &str, code: i32, reason: &str) -> BoxFuture<'_, StoreResult<JobInfo>>;
    /// Jobs past their window at `now_ms`: items not yet claimed end
    /// DEADLINE_EXCEEDED, the job `expired`. Returns those jobs.
    fn expire(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>>;
    /// Results from `offset`, at most `limit`.
    fn results(
        &self,
        id: &str,
        offset: u64,
        limit: usize,
        errors_only: bool,
    ) -> BoxFuture<'_, StoreResult<Vec<JobResult>>>;
    /// Removes an ended job with its items and results.
    fn delete(&self, id: &str) -> BoxFuture<'_, StoreResult<()>>;
    /// Removes jobs that ended before `before_ms`; returns how many.
    fn purge(&self, before_ms: u64) -> BoxFuture<'_, StoreResult<u64>>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A new job id: `job_` and 16 random hex digits.
pub fn new_id() -> String {
    format!("job_{:016x}", fastrand::u64(..))
}

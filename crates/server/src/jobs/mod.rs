//! Jobs: durable bulk work through the same queues as online items.
//!
//! A job is a list of items (each with the client's `custom_id`) kept in a
//! [`JobStore`]; the [`runner`] feeds them into their queue while the queue
//! has room, and stores each item's answer as the job's result. The store
//! is a trait about jobs, not about a database (`store.rs`): [`sqlite`] is
//! the embedded one, [`nats`] the one replicas share (NATS JetStream); both
//! pass the same conformance tests (`crates/cli/tests/jobs/store.rs`).
//!
//! Guarantees: a job exists only once every item is stored (`begin`,
//! `append`, then `seal`; a job never sealed is gone after a restart); an
//! item claimed but not recorded runs again after a restart (at least once
//! at the backend); an item is recorded once (exactly one result per
//! `custom_id`).

pub mod nats;
pub mod runner;
pub mod sqlite;
mod store;

pub use self::store::{
    Begun, Claimed, Counts, Done, Filter, JobInfo, JobResult, JobState, JobStore, NewItem, NewJob,
    Outcome, StoreError, StoreResult, new_id, now_ms,
};
pub use crate::config::JobsConfig;

//! The lower-case names of the protobuf enums that `ctl --json` and
//! `jobs --json` print by name (on the wire they are numbers).

use crate::v1::{JobState, QueueState};

/// The lower-case name of a queue state (`active`, `paused`, …).
pub fn queue_state_name(state: i32) -> &'static str {
    match QueueState::try_from(state) {
        Ok(QueueState::Active) => "active",
        Ok(QueueState::Paused) => "paused",
        Ok(QueueState::Draining) => "draining",
        Ok(QueueState::Drained) => "drained",
        _ => "unknown",
    }
}

/// Writes a queue state by name.
///
/// # Errors
/// The serializer's.
pub fn serialize_queue_state<S: serde::Serializer>(state: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(queue_state_name(*state))
}

/// The lower-case name of a job state (`queued`, `in_progress`, …).
pub fn job_state_name(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Validating) => "validating",
        Ok(JobState::Queued) => "queued",
        Ok(JobState::InProgress) => "in_progress",
        Ok(JobState::Completed) => "completed",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Expired) => "expired",
        Ok(JobState::Cancelling) => "cancelling",
        Ok(JobState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// Writes a job state by name.
///
/// # Errors
/// The serializer's.
pub fn serialize_job_state<S: serde::Serializer>(state: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(job_state_name(*state))
}

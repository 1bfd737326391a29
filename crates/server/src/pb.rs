//! The generated protobuf and gRPC code for `batchgate.v1` (see
//! `proto/batchgate/v1/batchgate.proto`), plus the descriptor set that server
//! reflection serves.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("batchgate.v1");

/// Encoded `FileDescriptorSet` of every batchgate proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("batchgate_descriptor");

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

/// Writes a queue state by name in `ctl --json` (the protobuf enum is a
/// number on the wire).
///
/// # Errors
/// The serializer's.
pub fn serialize_queue_state<S: serde::Serializer>(state: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(queue_state_name(*state))
}

impl From<crate::contract::Trigger> for Trigger {
    fn from(t: crate::contract::Trigger) -> Self {
        use crate::contract::Trigger as T;
        match t {
            T::Size => Trigger::Size,
            T::Bytes => Trigger::Bytes,
            T::Delay => Trigger::Delay,
            T::Flush => Trigger::Flush,
            T::Drain => Trigger::Drain,
            T::Target => Trigger::Target,
            T::Cost => Trigger::Cost,
            T::Pace => Trigger::Pace,
        }
    }
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

/// Writes a job state by name in `jobs --json`.
///
/// # Errors
/// The serializer's.
pub fn serialize_job_state<S: serde::Serializer>(state: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(job_state_name(*state))
}

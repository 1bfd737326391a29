//! One call to an endpoint: what it sends ([`CallInput`]) and how it
//! failed ([`CallError`], sorted by the rules in the parent's docs), shared
//! by the gRPC, HTTP and kserve calls.

use tokio::time::Instant;
use tonic::{Code, Status};

use crate::contract::Batch;

/// Why a call to an endpoint did not deliver every result.
#[derive(Debug)]
pub(super) enum CallError {
    /// The endpoint could not serve it: retry elsewhere.
    Retry(Status),
    /// The deadline passed.
    Deadline(Status),
    /// The backend refused the batch as a whole.
    Rejected(Status),
    /// The backend's answer is malformed as a whole.
    BadAnswer(Status),
}

impl CallError {
    /// Sorts a gRPC status from a backend call into the rules above.
    pub(super) fn from_status(status: Status) -> Self {
        // tonic's channel enforces the grpc-timeout it sends and reports
        // the cut as CANCELLED "Timeout expired": that is our deadline.
        if status.code() == Code::Cancelled
            && status.message() == tonic::TimeoutExpired(()).to_string()
        {
            return CallError::Deadline(status);
        }
        match status.code() {
            Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Cancelled => {
                CallError::Retry(status)
            }
            // hyper/h2 failures (reset, broken connection) surface as UNKNOWN.
            Code::Unknown
                if status.message().contains("transport") || status.message().contains("h2") =>
            {
                CallError::Retry(status)
            }
            Code::DeadlineExceeded => CallError::Deadline(status),
            _ => CallError::Rejected(status),
        }
    }
}

/// What one call sends.
pub(super) struct CallInput<'a> {
    /// The whole batch.
    pub batch: &'a Batch,
    /// The items of it this call carries (sorted).
    pub indexes: &'a [usize],
    /// When the call must be over.
    pub deadline: Instant,
}

impl CallInput<'_> {
    /// Milliseconds left until the deadline.
    pub(super) fn timeout_ms(&self) -> u32 {
        let left = self.deadline.saturating_duration_since(Instant::now());
        u32::try_from(left.as_millis()).unwrap_or(u32::MAX)
    }

    /// The size the backend should pad this call's items to (0: none). A
    /// call with part of a batch (a retry after some answers, a bisection)
    /// carries no padding request.
    pub(super) fn pad_to(&self) -> u32 {
        match self.batch.pad_to {
            Some(n) if self.indexes.len() == self.batch.items.len() => {
                u32::try_from(n).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }

    /// The trace id of item `i`.
    pub(super) fn trace_id(&self, i: usize) -> String {
        match &self.batch.items[i].trace_id {
            Some(id) => id.clone(),
            None => format!("{}.{i}", self.batch.id),
        }
    }
}

/// A backend's per-item error as a status (a "failure" with code OK makes
/// no sense and becomes UNKNOWN).
pub(super) fn item_error(code: i32, message: String) -> Status {
    match Code::from(code) {
        Code::Ok => Status::unknown(message),
        code => Status::new(code, message),
    }
}

//! Why an item is refused, and the one place where that becomes a gRPC
//! status.
//!
//! Every refusal in the service is a [`Refusal`]; its `From` impl picks the
//! status code the proto documents, so codes stay consistent between
//! `Submit`, `StreamSubmit` and any later entry point.

use std::time::Duration;

use tonic::{Code, Status};

pub use crate::validation::quoted;

/// A reason the service refuses an item before any handler saw it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No queue of that name is configured. Only the start of a long name
    /// is quoted, so the message stays within gRPC's metadata limits.
    #[error("queue {} not found", quoted(.0))]
    UnknownQueue(String),
    /// A stream item came without an id, so its answer could not be matched.
    #[error("stream item has an empty id")]
    EmptyId,
    /// The payload is larger than one batch may carry.
    #[error("payload of {size} bytes exceeds max_batch_bytes {limit} of queue {queue:?}")]
    PayloadTooLarge {
        queue: String,
        size: usize,
        limit: usize,
    },
    /// The priority is not one of the queue's levels.
    #[error("priority {priority} out of range for queue {queue:?} (levels 0..={max})")]
    BadPriority {
        queue: String,
        priority: u32,
        max: u32,
    },
    /// An item's cost is not a whole number in 0..=2^53.
    #[error(
        "queue {queue:?}: item cost from {from} = {value} is {why}; a cost must be a whole number in 0..=9007199254740992 (2^53)"
    )]
    BadCost {
        queue: String,
        from: String,
        value: String,
        why: &'static str,
    },
    /// An item's own cost passes the queue's budget (`oversize = "refuse"`).
    #[error(
        "item cost {cost} exceeds max_batch_cost {budget} of queue {queue:?}, whose oversize = \"refuse\" refuses it (oversize = \"alone\" would send it in a batch of its own)"
    )]
    CostOverBudget {
        queue: String,
        cost: u64,
        budget: u64,
    },
    /// A batch key longer than the limit.
    #[error("batch key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLong { len: usize, max: usize },
    /// The queue already has items of `max_keys` keys pending.
    #[error(
        "queue {queue:?} has items of {limit} batch keys pending (max_keys); key {} must wait until one drains",
        quoted(key)
    )]
    TooManyKeys {
        queue: String,
        key: String,
        limit: usize,
    },
    /// An idempotency key longer than the limit.
    #[error("idempotency key of {len} bytes exceeds the limit of {max} bytes")]
    IdempotencyKeyTooLong { len: usize, max: usize },
    /// An idempotency key seen before with another payload.
    #[error(
        "idempotency key {} was used for another payload; a retry must send the same payload (use a new key for new work)",
        quoted(key)
    )]
    IdempotencyKeyReused { key: String },
    /// The queue already keeps `idempotency_max_keys` keys.
    #[error(
        "queue {queue:?} keeps {max} idempotency keys (idempotency_max_keys, in flight or answered within idempotency_window); retry after some expire"
    )]
    IdempotencyFull { queue: String, max: usize },
    /// The queue already holds `max_queue_items` items.
    #[error("queue {queue:?} is full ({limit} items waiting)")]
    QueueFull { queue: String, limit: usize },
    /// A request of many items (a ModelInfer's rows) that would pass the
    /// queue's `max_queue_items`, refused whole before any item is built.
    #[error(
        "queue {queue:?} has room for {room} more items (max_queue_items {limit}); this request brings {items}"
    )]
    NoRoomFor {
        queue: String,
        items: usize,
        room: usize,
        limit: usize,
    },
    /// The server already holds `server.max_pending_bytes` for unanswered
    /// items.
    #[error(
        "server memory budget is full (server.max_pending_bytes = {limit}): this request needs {need} bytes and {used} are held for unanswered items; retry when some are answered"
    )]
    MemoryFull {
        need: usize,
        used: usize,
        limit: usize,
    },
    /// `mode = "target"` with `shed`: the item would be answered too late.
    #[error(
        "queue {queue:?} would answer this item in about {} ms, past its limit of {} ms (target_latency or the item's timeout): shed",
        predicted.as_millis(),
        limit.as_millis()
    )]
    Shed {
        queue: String,
        predicted: Duration,
        limit: Duration,
    },
    /// The item waited longer than its timeout.
    #[error("item waited {waited:?} in queue {queue:?}, past its timeout")]
    Expired { queue: String, waited: Duration },
    /// The queue no longer accepts items (it drains or is gone).
    #[error("queue {0:?} is draining and accepts no new items")]
    Draining(String),
    /// The queue was deleted with `force` while the item waited.
    #[error("queue {0:?} was deleted (force) before the item was dispatched")]
    Deleted(String),
    /// A caller's deadline passed while its idempotent item was queued or
    /// running; the item goes on for its key.
    #[error(
        "the call's deadline passed before its item was answered; the item goes on, and a retry with the same idempotency key gets its answer"
    )]
    GaveUpWaiting,
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The batch did not finish within the shutdown grace period.
    #[error("server shut down before the item's batch finished")]
    Aborted,
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::UnknownQueue(_) => Status::not_found(message),
            Refusal::EmptyId
            | Refusal::PayloadTooLarge { .. }
            | Refusal::BadPriority { .. }
            | Refusal::BadCost { .. }
            | Refusal::CostOverBudget { .. }
            | Refusal::KeyTooLong { .. }
            | Refusal::IdempotencyKeyTooLong { .. }
            | Refusal::IdempotencyKeyReused { .. } => Status::invalid_argument(message),
            Refusal::QueueFull { .. }
            | Refusal::NoRoomFor { .. }
            | Refusal::MemoryFull { .. }
            | Refusal::Shed { .. }
            | Refusal::TooManyKeys { .. }
            | Refusal::IdempotencyFull { .. } => Status::resource_exhausted(message),
            Refusal::Expired { .. } | Refusal::GaveUpWaiting => Status::deadline_exceeded(message),
            Refusal::Draining(_)
            | Refusal::Deleted(_)
            | Refusal::ShuttingDown
            | Refusal::Aborted => Status::unavailable(message),
        }
    }
}

/// The canonical upper-case name of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn refusals_map_to_documented_codes() {
        let cases = [
            (Refusal::UnknownQueue("x".into()), Code::NotFound),
            (Refusal::EmptyId, Code::InvalidArgument),
            (
                Refusal::QueueFull {
                    queue: "q".into(),
                    limit: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                Refusal::Expired {
                    queue: "q".into(),
                    waited: Duration::from_millis(1),
                },
                Code::DeadlineExceeded,
            ),
            (
                Refusal::Shed {
                    queue: "q".into(),
                    predicted: Duration::from_millis(30),
                    limit: Duration::from_millis(20),
                },
                Code::ResourceExhausted,
            ),
            (Refusal::ShuttingDown, Code::Unavailable),
        ];
        for (refusal, code) in cases {
            assert_eq!(Status::from(refusal).code(), code);
        }
    }

    #[test]
    fn long_names_are_cut_in_messages() {
        let long = "é".repeat(1 << 19);
        let message = Refusal::UnknownQueue(long).to_string();
        assert!(message.len() < 120, "{message}");
        assert!(
            message.ends_with("… (1048576 bytes) not found"),
            "{message}"
        );
        assert_eq!(quoted("echo"), "\"echo\"");
    }
}

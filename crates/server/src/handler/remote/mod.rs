//! Remote handlers: batches go to backend endpoints over gRPC (the
//! `batchgate.v1.Backend` service) or HTTP/JSON.
//!
//! Failure rules, per batch (or part of one):
//! - the call could not be served (connection refused or reset, UNAVAILABLE,
//!   RESOURCE_EXHAUSTED, ABORTED, HTTP 429/502/503/504): the endpoint is
//!   charged a failure and the items still unanswered are retried on
//!   another endpoint, up to `retries` times, after an exponential backoff
//!   with jitter (`retry_backoff` doubling up to `retry_backoff_max`, never
//!   past the deadline); then they fail UNAVAILABLE;
//! - the deadline passed (tonic's own client-side cut included): the
//!   unanswered items fail DEADLINE_EXCEEDED, never retried, and the
//!   endpoint is not charged a failure (see [`EndpointPool::record`]);
//! - the backend rejected the batch as a whole (any other status, HTTP 4xx
//!   or 500): with `bisect`, the part is split in halves and each half is
//!   sent on its own, down to single items, so a poison item fails alone;
//!   without it, the unanswered items fail with the backend's status;
//! - a response without a result for an item fails that item INTERNAL;
//!   duplicate or unknown indexes are ignored (the first result stands);
//! - a packed answer of the wrong shape (count, offsets, item size) fails
//!   every item of the call INTERNAL with the fault, never retried or
//!   bisected: the backend is broken, not the items.
//!
//! Items are answered the moment their result arrives, so a retry or a
//! bisection never answers an item twice.

mod call;
mod conn;
mod dns;
mod endpoint;
mod grpc;
mod handler;
mod http;
mod kserve;
mod packed;
mod pool;

pub(crate) use self::conn::Conn;
pub use self::{
    dns::{Resolve, SystemResolver},
    endpoint::{Endpoint, Lease},
    handler::Remote,
    pool::{EndpointPool, PoolSettings},
};

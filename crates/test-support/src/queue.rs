//! A queue without a server, for the queue-actor tests and the scheduler
//! benchmark: one queue builder and one item helper.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use batchgate::{
    handler::Handler,
    metrics::Metrics,
    queue::{Answer, Item, Policy, QueueSpec, Reply},
};
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The spec of a queue named `name` (its own batch ids, no precise timer:
/// a paused test clock needs tokio's timer alone).
pub fn spec(
    name: &str,
    policy: Policy,
    handler: Arc<dyn Handler>,
    metrics: &Metrics,
    abort: CancellationToken,
) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        policy,
        handler,
        metrics: Arc::new(metrics.queue(name)),
        batch_ids: Arc::new(AtomicU64::new(1)),
        abort,
        precise: None,
    }
}

/// A unary item and the receiver of its answer.
pub fn item(
    payload: impl Into<Bytes>,
    priority: u32,
    timeout: Option<Duration>,
) -> (Item, oneshot::Receiver<Answer>) {
    let (tx, rx) = oneshot::channel();
    let item = Item {
        payload: payload.into(),
        attributes: HashMap::new(),
        priority,
        timeout,
        answer_within: None,
        trace_id: None,
        trace: None,
        key: None,
        cost: None,
        idempotency_key: None,
        reply: Reply::Unary(tx),
        charge: Default::default(),
    };
    (item, rx)
}

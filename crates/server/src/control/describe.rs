//! Queues as the control plane describes them (shared with the console):
//! a queue's policy, handler, endpoints and live stats; a policy change.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use super::convert;
use crate::{
    pb,
    registry::{QueueEntry, Registry},
};

/// Everything about one queue, with live stats.
pub(super) async fn info(name: &str, entry: &QueueEntry) -> pb::QueueInfo {
    let actor = entry.handle.stats().await;
    pb::QueueInfo {
        name: name.to_owned(),
        state: convert::state(actor) as i32,
        policy: Some(convert::policy(&entry.config)),
        handler: Some(convert::handler(&entry.config.handler)),
        endpoints: entry.endpoints().map(|p| p.list()).unwrap_or_default(),
        stats: Some(convert::stats(actor, entry.metrics.counts())),
    }
}

/// Every queue (or `only` that one) as the control plane describes it.
///
/// # Errors
/// NOT_FOUND for an `only` that is not a queue.
pub async fn snapshot(registry: &Registry, only: &str) -> Result<Vec<pb::QueueInfo>, Status> {
    if !only.is_empty() {
        let entry = registry.entry(only)?;
        return Ok(vec![info(only, &entry).await]);
    }
    let mut queues = Vec::new();
    for (name, entry) in registry.entries() {
        queues.push(info(&name, &entry).await);
    }
    Ok(queues)
}

/// Changes the fields `policy` sets (and the handler, when given) of
/// queue `name`, as `UpdateQueue` does.
///
/// # Errors
/// What `UpdateQueue` answers: INVALID_ARGUMENT for a bad value, NOT_FOUND
/// for no such queue, FAILED_PRECONDITION for a change the queue refuses.
pub async fn update(
    registry: &Registry,
    name: &str,
    policy: Option<pb::QueuePolicy>,
    handler: Option<pb::HandlerSpec>,
) -> Result<pb::QueueInfo, Status> {
    let change = convert::PolicyChange::new(policy)?;
    let handler = match handler {
        Some(spec) => Some(convert::handler_config(Some(spec))?),
        None => None,
    };
    let replaced = handler.is_some();
    let entry = registry.update(name, |c| change.apply(c), handler).await?;
    tracing::info!(queue = %name, handler = replaced, "queue updated");
    Ok(info(name, &entry).await)
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

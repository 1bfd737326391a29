//! The gRPC services: they convert requests into items, hand them to their
//! queue and turn answers into responses. No batching logic lives here.

mod batcher;
mod convert;
mod inference;
mod stream;

use std::sync::Arc;

use tokio_util::task::TaskTracker;

pub use self::batcher::BatcherService;
pub use self::convert::{parse_grpc_timeout, stream_response, submit_response};
pub use self::inference::InferenceService;
use crate::{
    error::Refusal,
    queue::{
        QueueHandle,
        budget::{Charge, MemoryBudget},
    },
    registry::Registry,
    shutdown::Stop,
};

/// What every data-plane call needs.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Queues by name.
    pub registry: Arc<Registry>,
    /// Given when the server stops accepting items.
    pub stop_accepting: Stop,
    /// Unanswered items one stream may hold.
    pub stream_window: usize,
    /// Tracks the per-stream reader tasks.
    pub tasks: TaskTracker,
    /// Bytes held for unanswered items, server-wide.
    pub budget: Arc<MemoryBudget>,
}

impl ApiState {
    /// The queue an item goes to, or why it cannot go anywhere.
    ///
    /// # Errors
    /// [`Refusal::ShuttingDown`] once shutdown began,
    /// [`Refusal::UnknownQueue`] for a name no queue has.
    /// An item refused for shutdown is counted `rejected` in its queue's
    /// `batchgate_items_total`.
    pub fn queue(&self, name: &str) -> Result<QueueHandle, Refusal> {
        if self.stop_accepting.is_triggered() {
            self.registry.count_rejected(name, 1);
            return Err(Refusal::ShuttingDown);
        }
        self.registry
            .get(name)
            .ok_or_else(|| Refusal::UnknownQueue(name.to_owned()))
    }

    /// `bytes` of the memory budget for items of queue `name`, taken before
    /// they are built.
    ///
    /// # Errors
    /// [`Refusal::MemoryFull`], counted `rejected` in the queue's
    /// `batchgate_items_total` (`items` of them).
    pub fn charge(&self, name: &str, bytes: usize, items: u64) -> Result<Charge, Refusal> {
        self.budget.charge(bytes).inspect_err(|_| {
            self.registry.count_rejected(name, items);
        })
    }
}

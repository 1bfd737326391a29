//! What every front door shares ([`ApiState`]): the registry, the stop
//! signal, the stream window, the tasks and the memory budget, with the
//! lookups and charges each call makes.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use super::receive::Keep;
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

    /// Grows `charge` (its message's) to the `bytes` of the items of queue
    /// `name` it becomes, before they are built.
    ///
    /// # Errors
    /// [`Refusal::MemoryFull`], counted `rejected` in the queue's
    /// `batchgate_items_total` (`items` of them).
    pub fn top_up(
        &self,
        name: &str,
        charge: &mut Charge,
        bytes: usize,
        items: u64,
    ) -> Result<(), Refusal> {
        self.budget.top_up(charge, bytes).inspect_err(|_| {
            self.registry.count_rejected(name, items);
        })
    }

    /// Puts `charge` in `response`'s extensions, grown to `bytes` if the
    /// answer is larger than what was charged, so it is held while the
    /// response is sent.
    pub fn keep<T>(&self, mut charge: Charge, bytes: usize, response: &mut tonic::Response<T>) {
        if bytes > charge.bytes() {
            let more = bytes - charge.bytes();
            self.budget.top_up_over(&mut charge, more);
        }
        response.extensions_mut().insert(Keep::new(charge));
    }
}

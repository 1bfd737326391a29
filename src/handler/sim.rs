//! The `sim` handler: a simulated model whose batch of `n` items takes
//! `base + per_item × n` (n: the size it is padded to, if any), then
//! echoes every item. It shows what batching is
//! worth for a backend with a high fixed cost per call (a GPU model, a bulk
//! insert), and drives the benchmarks.

use std::time::Duration;

use tonic::Status;

use super::{BoxFuture, Echo, Handler};
use crate::contract::{Batch, ResultSink};

/// A handler that sleeps `base + per_item × n` per batch, then echoes.
#[derive(Debug, Clone, Copy)]
pub struct Sim {
    /// Fixed cost of a batch.
    pub base: Duration,
    /// Cost of each item in it.
    pub per_item: Duration,
}

impl Sim {
    /// How long a batch of `n` items takes.
    pub fn cost(&self, n: usize) -> Duration {
        self.base + self.per_item * u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl Handler for Sim {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        // A padded batch costs what a batch of its padded size does.
        let cost = self.cost(batch.pad_to.unwrap_or(batch.items.len()));
        Box::pin(async move {
            tokio::time::sleep(cost).await;
            Echo::answer_all(batch, sink);
            Ok(())
        })
    }
}

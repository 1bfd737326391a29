//! The `echo` handler: every item's result is its own payload and
//! attributes. The cheapest possible backend, for demos and for measuring
//! batchgate's own cost.

use tonic::Status;

use super::{BoxFuture, Handler};
use crate::queue::{Batch, ItemOutput, ResultSink};

/// Returns each payload and its attributes unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Echo {
    /// Answers every item of `batch` with itself.
    pub(crate) fn answer_all(batch: &Batch, sink: &mut ResultSink) {
        for (i, item) in batch.items.iter().enumerate() {
            let output = ItemOutput {
                payload: item.payload.clone(),
                attributes: item.attributes.clone(),
            };
            // Indexes come from the batch itself, so they are in range and
            // each used once.
            let _ = sink.send(i, Ok(output));
        }
    }
}

impl Handler for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Self::answer_all(batch, sink);
        Box::pin(std::future::ready(Ok(())))
    }
}

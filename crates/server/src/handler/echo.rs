//! The `echo` handler: every item's result is its own payload and
//! attributes. The cheapest possible backend, for demos and for measuring
//! batchgate's own cost.

use tonic::Status;

use super::{BoxFuture, Handler};
use crate::contract::{Batch, ItemOutput, ResultSink};

/// Returns each payload and its attributes unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Echo {
    /// Answers every item of `batch` with itself.
    pub(crate) fn answer_all(batch: &Batch, sink: &mut dyn ResultSink) {
        // Indexes come from the batch itself, so they are in range and each
        // used once: nothing is skipped.
        sink.send_all(&mut batch.items.iter().enumerate().map(|(i, item)| {
            let output = ItemOutput {
                payload: item.payload.clone(),
                attributes: item.attributes.clone(),
            };
            (i, Ok(output))
        }));
    }
}

impl Handler for Echo {
    fn kind(&self) -> &'static str {
        "echo"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Self::answer_all(batch, sink);
        Box::pin(std::future::ready(Ok(())))
    }
}

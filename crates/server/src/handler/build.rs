//! The [`Handler`] trait every kind implements, and [`build`], which makes a
//! queue's handler from its config.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use tonic::Status;

use super::{Each, Echo, HandlerConfig, HandlerKind, Remote, Sim};
use crate::{
    contract::{Batch, ResultSink},
    metrics::Metrics,
    oip::ModelSpec,
    timer::PreciseTimer,
};

/// A boxed future, so handlers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Processes batches.
pub trait Handler: Send + Sync + fmt::Debug + 'static {
    /// Short name of the handler kind, for logs.
    fn kind(&self) -> &'static str;

    /// Processes one batch, answering its items through `sink`.
    ///
    /// # Errors
    /// A status for the items of the batch that were not answered.
    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>>;

    /// The endpoints of a remote handler, for registration at runtime.
    fn endpoints(&self) -> Option<Arc<super::remote::EndpointPool>> {
        None
    }
}

/// Builds the handler a queue's config names.
///
/// # Errors
/// INVALID_ARGUMENT for a remote endpoint that cannot be used, or a
/// kserve handler without the queue's `model` (its `v2`).
///
/// `precise` gives the `sim` handler sub-millisecond sleeps.
pub fn build(
    queue: Arc<str>,
    config: &HandlerConfig,
    model: Option<&ModelSpec>,
    metrics: Arc<Metrics>,
    precise: Option<Arc<PreciseTimer>>,
) -> Result<Arc<dyn Handler>, Status> {
    Ok(match config.kind {
        HandlerKind::Echo => Arc::new(Echo),
        HandlerKind::Sim => Arc::new(Sim {
            base: config.base,
            per_item: config.per_item,
            per_cost: config.per_cost,
            padded: config.padded,
            precise,
        }),
        HandlerKind::Grpc | HandlerKind::Http => Arc::new(Remote::new(queue, config, metrics)?),
        HandlerKind::HttpEach => Arc::new(Each::new(queue, config, metrics)?),
        HandlerKind::Kserve => {
            let layout = model.ok_or_else(|| {
                Status::invalid_argument(
                    "a kserve handler needs the queue's v2 = { inputs, outputs } (the tensors of a row)",
                )
            })?;
            let name = if config.model.is_empty() {
                queue.to_string()
            } else {
                config.model.clone()
            };
            Arc::new(Remote::new(queue, config, metrics)?.serving(name, Arc::new(layout.clone())))
        }
    })
}

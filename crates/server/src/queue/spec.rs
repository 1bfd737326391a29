//! What it takes to start a queue.

use std::sync::{Arc, atomic::AtomicU64};

use tokio_util::sync::CancellationToken;

use super::Policy;
use crate::{handler::Handler, metrics::QueueMetrics};

/// What it takes to start a queue.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// Name clients use.
    pub name: Arc<str>,
    /// Batching policy.
    pub policy: Policy,
    /// Where batches go.
    pub handler: Arc<dyn Handler>,
    /// Metric handles of this queue.
    pub metrics: Arc<QueueMetrics>,
    /// Server-wide batch id source.
    pub batch_ids: Arc<AtomicU64>,
    /// Fires when the shutdown grace is over.
    pub abort: CancellationToken,
    /// Sub-millisecond wake-ups for `max_delay`; `None` uses tokio's timer
    /// alone (whole milliseconds, rounded up), which a paused test clock
    /// needs.
    pub precise: Option<Arc<crate::timer::PreciseTimer>>,
}

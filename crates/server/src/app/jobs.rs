//! Opening the job store of `[jobs]` (SQLite or NATS JetStream) and the
//! runner that feeds its jobs to the queues.

use std::sync::Arc;

use super::AppError;
use crate::{
    config::{JobsConfig, StoreKind},
    jobs::{
        runner::Runner,
        sqlite::{Limits, SqliteStore},
    },
    metrics::Metrics,
    registry::Registry,
};

/// Opens the job store of `[jobs]` and the runner that feeds its jobs to
/// the queues of `registry`.
pub(super) async fn open_jobs(
    jobs: &JobsConfig,
    registry: &Arc<Registry>,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Runner>, AppError> {
    let limits = Limits {
        max_items_per_job: jobs.max_items_per_job,
        max_job_bytes: jobs.max_job_bytes,
        max_open_jobs: jobs.max_open_jobs,
        max_store_bytes: jobs.max_store_bytes,
    };
    let store: Arc<dyn crate::jobs::JobStore> = match jobs.store {
        StoreKind::Sqlite => {
            let store = SqliteStore::open(&jobs.path, limits)?;
            tracing::info!(path = %jobs.path.display(), "job store open");
            Arc::new(store)
        }
        StoreKind::Nats => {
            let store = crate::jobs::nats::NatsStore::open(&jobs.nats, limits).await?;
            tracing::info!(url = %jobs.nats.url, prefix = %jobs.nats.prefix, "job store open (NATS JetStream)");
            Arc::new(store)
        }
    };
    Ok(Runner::new(
        store,
        jobs.clone(),
        registry.clone(),
        metrics.clone(),
    ))
}

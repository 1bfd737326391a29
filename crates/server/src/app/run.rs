//! Running a server: the queues, the job runner and reloads from a
//! [`Config`], the servers on their listeners, then the ordered shutdown
//! the module docs describe.

use std::{future::Future, sync::Arc};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic_health::{ServingStatus, server::HealthReporter};

use super::{
    AppError, Listeners,
    jobs::open_jobs,
    servers::{Served, Servers},
};
use crate::{
    api::{ApiState, BatcherService},
    config::Config,
    control::BearerAuth,
    jobs::runner::Runner,
    metrics::Metrics,
    pb::batcher_server::BatcherServer,
    queue::budget::MemoryBudget,
    registry::Registry,
    shutdown::Stop,
};

/// Runs the server on `listeners` until `shutdown` completes, then shuts
/// down as the module docs describe.
///
/// # Errors
/// [`AppError`] if a queue, reflection or the gRPC server fails.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    run_with(config, listeners, shutdown, None).await
}

/// [`run`], reloading the configuration as `reload` says.
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
    reload: Option<crate::reload::ReloadOptions>,
) -> Result<(), AppError> {
    let auth = BearerAuth::new(config.server.control_token()?.as_deref());
    let tls = (config.server.tls.as_ref())
        .map(crate::tls::server)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let abort = CancellationToken::new();
    let registry = Arc::new(Registry::new(
        metrics.clone(),
        abort.clone(),
        config.server.max_message_bytes,
    ));
    for (name, queue) in &config.queues {
        registry.create(name, queue)?;
    }
    let runner = match &config.jobs {
        Some(jobs) => Some(open_jobs(jobs, &registry, &metrics).await?),
        None => None,
    };
    let runner_task = runner.clone().map(|r| tokio::spawn(r.run()));
    let reload_stop = CancellationToken::new();
    let _stop_reloading = reload_stop.clone().drop_guard();
    if let Some(options) = reload {
        let reloader = Arc::new(crate::reload::Reloader::new(
            registry.clone(),
            config.clone(),
            options.load.clone(),
            metrics.reloads(),
        ));
        crate::reload::spawn(reloader, &options, reload_stop.clone());
    }
    let state = ApiState {
        registry: registry.clone(),
        stop_accepting: Stop::new(),
        stream_window: config.server.stream_window,
        tasks: TaskTracker::new(),
        budget: MemoryBudget::new(config.server.max_pending_bytes, metrics.pending_bytes()),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BatcherServer<BatcherService>>().await;

    let grpc_addr = listeners.grpc_addr().ok();
    let metrics_addr = listeners.metrics_addr().ok();
    let control_addr = listeners.control_addr().or(grpc_addr);
    let (http_addr, admin_addr) = (listeners.http_addr(), listeners.admin_addr());
    let servers = Servers::start(
        listeners,
        Served {
            server: &config.server,
            tls: tls.as_ref(),
            state: &state,
            registry: &registry,
            runner: &runner,
            auth: &auth,
            metrics: &metrics,
            health: health_service,
        },
    )?;
    tracing::info!(
        grpc = ?grpc_addr,
        metrics = ?metrics_addr,
        control = ?control_addr,
        http = ?http_addr,
        admin = ?admin_addr,
        control_token = auth.is_required(),
        queues = ?registry.names(),
        "batchgate serving"
    );

    shutdown.await;
    reload_stop.cancel();
    stop_accepting(&health, &state, runner.as_deref()).await;
    let grace = config.server.shutdown_grace;
    drain(&registry, &state, runner_task, grace, &abort).await;
    let served = servers.stop().await;
    tracing::info!("batchgate stopped");
    served
}

/// Shutdown's first steps: health says NOT_SERVING, new items are refused,
/// stream readers stop reading, and the runner takes no more job items.
async fn stop_accepting(health: &HealthReporter, state: &ApiState, runner: Option<&Runner>) {
    tracing::info!("shutdown: refusing new items, draining queues");
    health
        .set_not_serving::<BatcherServer<BatcherService>>()
        .await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    state.stop_accepting.trigger();
    state.tasks.close();
    if let Some(runner) = runner {
        runner.stop();
    }
}

/// Every queue drains and every call ends (with the job items' answers
/// stored) within `grace`; past it, batches still running are abandoned
/// (`abort`) and their items answered UNAVAILABLE.
async fn drain(
    registry: &Registry,
    state: &ApiState,
    runner_task: Option<JoinHandle<()>>,
    grace: std::time::Duration,
    abort: &CancellationToken,
) {
    let drained = async {
        registry.drain_all().await;
        state.tasks.wait().await;
        // The job items' answers the drain gave, stored.
        if let Some(task) = runner_task {
            let _ = task.await;
        }
    };
    tokio::pin!(drained);
    if tokio::time::timeout(grace, &mut drained).await.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace expired: abandoning in-flight batches, answering their items UNAVAILABLE"
        );
        abort.cancel();
        drained.await;
    }
}

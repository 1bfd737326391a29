//! Wiring: builds the queues, the gRPC server (Batcher, the v2 inference
//! front door, health, reflection)
//! and the metrics endpoint from a [`Config`], runs them until the shutdown
//! signal, then shuts down in order:
//!
//! 1. health reports NOT_SERVING;
//! 2. new items are refused UNAVAILABLE and stream readers stop reading;
//! 3. every queue drains: pending items are dispatched (trigger `drain`) and
//!    in-flight batches finish, within `shutdown_grace`;
//! 4. if the grace runs out, batches still running are abandoned and their
//!    items answered UNAVAILABLE;
//! 5. the gRPC server sends its last answers and stops; `run` returns.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;

use crate::{
    api::{ApiState, BatcherService, Charged, InferenceService, JobsService},
    config::{Config, ConfigError, JobsConfig, StoreKind},
    connections::Capped,
    control::{BearerAuth, ControlService},
    jobs::{
        runner::Runner,
        sqlite::{Limits, SqliteStore},
    },
    metrics::Metrics,
    oip::pb::grpc_inference_service_server::GrpcInferenceServiceServer,
    pb::{
        self, batch_control_server::BatchControlServer, batcher_server::BatcherServer,
        jobs_server::JobsServer,
    },
    queue::budget::MemoryBudget,
    registry::{Registry, RegistryError},
    shutdown::Stop,
};

/// Opens the job store of `[jobs]` and the runner that feeds its jobs to
/// the queues of `registry`.
async fn open_jobs(
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

/// How long the gRPC server may take to finish its last responses after the
/// queues have drained.
const FINAL_RESPONSES_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound or read.
    #[error("{what} {addr}: {source}")]
    Io {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// A configured queue could not be created.
    #[error(transparent)]
    Queue(#[from] RegistryError),
    /// Reflection could not be built from the descriptor sets.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The control token could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A TLS file could not be read.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The job store could not be opened.
    #[error(transparent)]
    Jobs(#[from] crate::jobs::StoreError),
}

/// The bound sockets of a server, so callers (tests) can use port 0 and
/// learn the real addresses before the server runs.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC data plane.
    pub grpc: TcpListener,
    /// The `/metrics` endpoint.
    pub metrics: TcpListener,
    /// The control plane, when it has its own address.
    pub control: Option<TcpListener>,
    /// Plaintext health for probes, when configured.
    pub health: Option<TcpListener>,
    /// The Open Inference Protocol's REST side, when configured.
    pub http: Option<TcpListener>,
    /// The console on its own port, when configured.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    ///
    /// # Errors
    /// [`AppError::Io`] naming the address that could not be bound.
    pub async fn bind(config: &Config) -> Result<Self, AppError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Io {
                    what,
                    addr: addr.to_string(),
                    source,
                })
        };
        Ok(Self {
            grpc: bind("server.grpc_addr: cannot bind", config.server.grpc_addr).await?,
            metrics: bind(
                "server.metrics_addr: cannot bind",
                config.server.metrics_addr,
            )
            .await?,
            control: match config.server.control_addr {
                Some(addr) => Some(bind("server.control_addr: cannot bind", addr).await?),
                None => None,
            },
            health: match config.server.health_addr {
                Some(addr) => Some(bind("server.health_addr: cannot bind", addr).await?),
                None => None,
            },
            http: match config.server.http_addr {
                Some(addr) => Some(bind("server.http_addr: cannot bind", addr).await?),
                None => None,
            },
            admin: match config.server.admin_addr {
                Some(addr) => Some(bind("server.admin_addr: cannot bind", addr).await?),
                None => None,
            },
        })
    }

    /// The gRPC address actually bound.
    ///
    /// # Errors
    /// The socket's I/O error.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The control address actually bound, if it has its own.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The REST address actually bound, when configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The console's own address actually bound, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The metrics address actually bound.
    ///
    /// # Errors
    /// The socket's I/O error.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }
}

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
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::tls::server)
        .transpose()?;
    let builder = || -> Result<Server, AppError> {
        let s = &config.server;
        let keepalive = (!s.keepalive_interval.is_zero()).then_some(s.keepalive_interval);
        let builder = Server::builder()
            .initial_stream_window_size(s.http2_stream_window)
            .initial_connection_window_size(s.http2_connection_window)
            .max_concurrent_streams(s.max_concurrent_streams)
            .http2_max_header_list_size(s.max_header_list_bytes)
            .http2_max_pending_accept_reset_streams(Some(s.max_pending_reset_streams))
            .http2_max_local_error_reset_streams(Some(s.max_error_reset_streams))
            .http2_keepalive_interval(keepalive)
            .http2_keepalive_timeout(Some(s.keepalive_timeout))
            .concurrency_limit_per_connection(s.max_requests_per_connection)
            .load_shed(true);
        Ok(match &tls {
            Some(tls) => builder.tls_config(tls.clone())?,
            None => builder,
        })
    };
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
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let max_message_bytes = config.server.max_message_bytes;
    let batcher = BatcherServer::new(BatcherService::new(state.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes.saturating_mul(2));
    let batcher = Charged::new(batcher, state.budget.clone(), max_message_bytes);
    let inference = GrpcInferenceServiceServer::new(InferenceService::new(state.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes.saturating_mul(2));
    let inference = Charged::new(inference, state.budget.clone(), max_message_bytes);
    let jobs = JobsServer::new(JobsService::new(runner.clone()))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes.saturating_mul(2));

    let control = BatchControlServer::with_interceptor(
        ControlService::new(
            registry.clone(),
            state.stop_accepting.token(),
            state.tasks.clone(),
        ),
        auth.clone(),
    );

    let grpc_addr = listeners.grpc_addr().ok();
    let metrics_addr = listeners.metrics_addr().ok();
    let control_addr = listeners.control_addr().or(grpc_addr);
    let server_stop = CancellationToken::new();
    let http_addr = listeners.http_addr();
    let admin_addr = listeners.admin_addr();
    let rest_server = listeners.http.map(|listener| {
        tokio::spawn(crate::api::serve_rest(
            InferenceService::new(state.clone()),
            listener,
            max_message_bytes,
            server_stop.clone(),
        ))
    });
    let incoming = Capped::new(
        TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
        config.server.max_connections,
    );
    let (shared_control, own_control) = match listeners.control {
        Some(listener) => (None, Some((listener, control))),
        None => (Some(control), None),
    };
    let grpc = builder()?
        .add_service(health_service.clone())
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(batcher)
        .add_service(inference)
        .add_service(jobs)
        .add_optional_service(shared_control)
        .serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned());
    let grpc = tokio::spawn(grpc);
    let control_server = match own_control {
        Some((listener, control)) => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            Some(tokio::spawn(
                builder()?
                    .add_service(control)
                    .serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned()),
            ))
        }
        None => None,
    };
    // Plaintext, health only: what a Kubernetes gRPC probe can reach.
    let health_server = listeners.health.map(|listener| {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(
            Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned()),
        )
    });
    let metrics_stop = CancellationToken::new();
    // The console: on its own port when `admin_addr` is set, else beside
    // `/metrics`.
    let console = crate::console::router(
        registry.clone(),
        runner.clone(),
        auth.clone(),
        metrics_stop.clone(),
    );
    let (console, admin_server) = match listeners.admin {
        Some(listener) => {
            let stop = metrics_stop.clone().cancelled_owned();
            let server = axum::serve(listener, console).with_graceful_shutdown(stop);
            (
                axum::Router::new(),
                Some(tokio::spawn(server.into_future())),
            )
        }
        None => (console, None),
    };
    let metrics_server = {
        let metrics = metrics.clone();
        let stop = metrics_stop.clone();
        tokio::spawn(metrics.serve(listeners.metrics, stop, console))
    };
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
    tracing::info!("shutdown: refusing new items, draining queues");
    health
        .set_not_serving::<BatcherServer<BatcherService>>()
        .await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    state.stop_accepting.trigger();
    state.tasks.close();
    if let Some(runner) = &runner {
        runner.stop();
    }

    let grace = config.server.shutdown_grace;
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

    server_stop.cancel();
    let served = match tokio::time::timeout(FINAL_RESPONSES_GRACE, grpc).await {
        Ok(Ok(result)) => result.map_err(AppError::from),
        Ok(Err(join)) => {
            tracing::error!(error = %join, "grpc server task failed");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("grpc server did not stop in time");
            Ok(())
        }
    };
    if let Some(health_server) = health_server {
        let _ = tokio::time::timeout(FINAL_RESPONSES_GRACE, health_server).await;
    }
    if let Some(rest_server) = rest_server
        && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, rest_server).await
    {
        tracing::warn!(error = %e, "REST server failed");
    }
    if let Some(control_server) = control_server
        && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, control_server).await
    {
        tracing::warn!(error = %e, "control server failed");
    }
    metrics_stop.cancel();
    if let Ok(Err(e)) = metrics_server.await {
        tracing::warn!(error = %e, "metrics endpoint failed");
    }
    if let Some(admin_server) = admin_server
        && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, admin_server).await
    {
        tracing::warn!(error = %e, "console server failed");
    }
    tracing::info!("batchgate stopped");
    served
}

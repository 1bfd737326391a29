//! The servers a running batchgate holds: the gRPC data plane (Batcher,
//! the v2 inference front door, Jobs, health, reflection, and the control
//! plane unless it has its own address), the control plane's own server,
//! plaintext health for probes, the REST side, `/metrics` with the console,
//! and the console's own server; started together, stopped in order.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, ServerTlsConfig, server::TcpIncoming};
use tonic_health::pb::health_server::{Health, HealthServer};

use super::{AppError, Listeners};
use crate::{
    api::{ApiState, BatcherService, Charged, InferenceService, JobsService},
    config::ServerConfig,
    connections::Capped,
    control::{BearerAuth, ControlService},
    jobs::runner::Runner,
    metrics::Metrics,
    oip::pb::grpc_inference_service_server::GrpcInferenceServiceServer,
    pb::{
        self, batch_control_server::BatchControlServer, batcher_server::BatcherServer,
        jobs_server::JobsServer,
    },
    registry::Registry,
};

/// How long the gRPC server may take to finish its last responses after the
/// queues have drained.
const FINAL_RESPONSES_GRACE: Duration = Duration::from_secs(5);

/// What the servers serve.
pub(super) struct Served<'a, H: Health> {
    pub(super) server: &'a ServerConfig,
    pub(super) tls: Option<&'a ServerTlsConfig>,
    pub(super) state: &'a ApiState,
    pub(super) registry: &'a Arc<Registry>,
    pub(super) runner: &'a Option<Arc<Runner>>,
    pub(super) auth: &'a BearerAuth,
    pub(super) metrics: &'a Arc<Metrics>,
    pub(super) health: HealthServer<H>,
}

type Task<E> = JoinHandle<Result<(), E>>;

/// The running servers and the tokens that stop them.
pub(super) struct Servers {
    grpc: Task<tonic::transport::Error>,
    control: Option<Task<tonic::transport::Error>>,
    health: Option<Task<tonic::transport::Error>>,
    rest: Option<Task<std::io::Error>>,
    metrics: Task<std::io::Error>,
    admin: Option<Task<std::io::Error>>,
    /// Stops the gRPC, control, health and REST servers.
    stop: CancellationToken,
    /// Stops `/metrics` and the console, last.
    metrics_stop: CancellationToken,
}

/// A gRPC server with the transport limits of `s`.
fn builder(s: &ServerConfig, tls: Option<&ServerTlsConfig>) -> Result<Server, AppError> {
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
    Ok(match tls {
        Some(tls) => builder.tls_config(tls.clone())?,
        None => builder,
    })
}

impl Servers {
    /// Starts every server of `listeners`.
    ///
    /// # Errors
    /// Reflection or TLS could not be set up.
    pub(super) fn start<H: Health>(
        listeners: Listeners,
        served: Served<'_, H>,
    ) -> Result<Self, AppError> {
        let Served {
            server,
            tls,
            state,
            registry,
            runner,
            auth,
            metrics,
            health,
        } = served;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let max_message_bytes = server.max_message_bytes;
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

        let stop = CancellationToken::new();
        let rest = listeners.http.map(|listener| {
            tokio::spawn(crate::api::serve_rest(
                InferenceService::new(state.clone()),
                listener,
                max_message_bytes,
                stop.clone(),
            ))
        });
        let incoming = Capped::new(
            TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
            server.max_connections,
        );
        let (shared_control, own_control) = match listeners.control {
            Some(listener) => (None, Some((listener, control))),
            None => (Some(control), None),
        };
        let grpc = builder(server, tls)?
            .add_service(health.clone())
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?)
            .add_service(batcher)
            .add_service(inference)
            .add_service(jobs)
            .add_optional_service(shared_control)
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        let grpc = tokio::spawn(grpc);
        let control = match own_control {
            Some((listener, control)) => {
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                Some(tokio::spawn(
                    builder(server, tls)?
                        .add_service(control)
                        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
                ))
            }
            None => None,
        };
        // Plaintext, health only: what a Kubernetes gRPC probe can reach.
        let health = listeners.health.map(|listener| {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tokio::spawn(
                Server::builder()
                    .add_service(health)
                    .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
            )
        });
        let metrics_stop = CancellationToken::new();
        // The console: on its own port when `admin_addr` is set, else
        // beside `/metrics`.
        let console = crate::console::router(
            registry.clone(),
            runner.clone(),
            auth.clone(),
            metrics_stop.clone(),
        );
        let (console, admin) = match listeners.admin {
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
        let metrics = {
            let metrics = metrics.clone();
            tokio::spawn(metrics.serve(listeners.metrics, metrics_stop.clone(), console))
        };
        Ok(Self {
            grpc,
            control,
            health,
            rest,
            metrics,
            admin,
            stop,
            metrics_stop,
        })
    }

    /// Stops the servers once the queues have drained: the gRPC, health,
    /// REST and control servers send their last answers (each within
    /// [`FINAL_RESPONSES_GRACE`]), then `/metrics` and the console stop.
    ///
    /// # Errors
    /// The gRPC server's failure.
    pub(super) async fn stop(self) -> Result<(), AppError> {
        self.stop.cancel();
        let served = match tokio::time::timeout(FINAL_RESPONSES_GRACE, self.grpc).await {
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
        if let Some(health) = self.health {
            let _ = tokio::time::timeout(FINAL_RESPONSES_GRACE, health).await;
        }
        if let Some(rest) = self.rest
            && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, rest).await
        {
            tracing::warn!(error = %e, "REST server failed");
        }
        if let Some(control) = self.control
            && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, control).await
        {
            tracing::warn!(error = %e, "control server failed");
        }
        self.metrics_stop.cancel();
        if let Ok(Err(e)) = self.metrics.await {
            tracing::warn!(error = %e, "metrics endpoint failed");
        }
        if let Some(admin) = self.admin
            && let Ok(Ok(Err(e))) = tokio::time::timeout(FINAL_RESPONSES_GRACE, admin).await
        {
            tracing::warn!(error = %e, "console server failed");
        }
        served
    }
}

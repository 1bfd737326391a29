//! The `batchgate.v1.BatchControl` service itself.

use std::{pin::Pin, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Request, Response, Status};

use super::{
    convert,
    describe::{info, snapshot, unix_ms, update},
};
use crate::{
    config::{HandlerKind, QueueConfig},
    error::quoted,
    limits::handler as limits,
    pb::{self, batch_control_server::BatchControl},
    queue::Command,
    registry::Registry,
};

/// Shortest interval WatchStats accepts.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// The control-plane service.
#[derive(Debug, Clone)]
pub struct ControlService {
    /// The queues it steers.
    registry: Arc<Registry>,
    /// Ends WatchStats streams at shutdown.
    stop: CancellationToken,
    /// Tracks the WatchStats tasks.
    tasks: TaskTracker,
}

impl ControlService {
    /// A service over `registry`; `stop` ends open WatchStats streams.
    pub fn new(registry: Arc<Registry>, stop: CancellationToken, tasks: TaskTracker) -> Self {
        Self {
            registry,
            stop,
            tasks,
        }
    }
}

impl ControlService {
    async fn reply(&self, name: &str) -> Result<Response<pb::QueueInfo>, Status> {
        let entry = self.registry.entry(name)?;
        Ok(Response::new(info(name, &entry).await))
    }

    async fn command(
        &self,
        name: &str,
        command: Command,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        let entry = self.registry.entry(name)?;
        entry.handle.control(command).await?;
        Ok(Response::new(info(name, &entry).await))
    }

    fn endpoints_of(
        &self,
        queue: &str,
    ) -> Result<Arc<crate::handler::remote::EndpointPool>, Status> {
        let entry = self.registry.entry(queue)?;
        entry.endpoints().ok_or_else(|| {
            Status::failed_precondition(format!(
                "queue {queue:?} has a {} handler; endpoints need a grpc or http handler",
                entry.config.handler.kind.as_str()
            ))
        })
    }
}

#[tonic::async_trait]
impl BatchControl for ControlService {
    async fn list_queues(
        &self,
        _: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let queues = snapshot(&self.registry, "").await?;
        Ok(Response::new(pb::ListQueuesResponse { queues }))
    }

    async fn get_queue(&self, r: Request<pb::QueueRef>) -> Result<Response<pb::QueueInfo>, Status> {
        self.reply(&r.into_inner().name).await
    }

    async fn create_queue(
        &self,
        r: Request<pb::CreateQueueRequest>,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        let r = r.into_inner();
        let mut config = QueueConfig {
            handler: convert::handler_config(r.handler)?,
            ..QueueConfig::default()
        };
        convert::PolicyChange::new(r.policy)?.apply(&mut config);
        self.registry.create(&r.name, &config)?;
        tracing::info!(queue = %r.name, handler = config.handler.kind.as_str(), "queue created");
        self.reply(&r.name).await
    }

    async fn update_queue(
        &self,
        r: Request<pb::UpdateQueueRequest>,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        let r = r.into_inner();
        update(&self.registry, &r.name, r.policy, r.handler)
            .await
            .map(Response::new)
    }

    async fn delete_queue(
        &self,
        r: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteQueueResponse>, Status> {
        let r = r.into_inner();
        let dropped = self.registry.delete(&r.name, r.force).await?;
        tracing::info!(queue = %r.name, force = r.force, dropped, "queue deleted");
        Ok(Response::new(pb::DeleteQueueResponse { dropped }))
    }

    async fn pause_queue(
        &self,
        r: Request<pb::QueueRef>,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        self.command(&r.into_inner().name, Command::Pause).await
    }

    async fn resume_queue(
        &self,
        r: Request<pb::QueueRef>,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        self.command(&r.into_inner().name, Command::Resume).await
    }

    async fn flush_queue(
        &self,
        r: Request<pb::QueueRef>,
    ) -> Result<Response<pb::FlushQueueResponse>, Status> {
        let entry = self.registry.entry(&r.into_inner().name)?;
        let flushed = entry.handle.flush().await? as u64;
        Ok(Response::new(pb::FlushQueueResponse { flushed }))
    }

    async fn drain_queue(
        &self,
        r: Request<pb::QueueRef>,
    ) -> Result<Response<pb::QueueInfo>, Status> {
        let name = r.into_inner().name;
        let entry = self.registry.entry(&name)?;
        entry.handle.drain().await;
        self.reply(&name).await
    }

    async fn register_endpoint(
        &self,
        r: Request<pb::RegisterEndpointRequest>,
    ) -> Result<Response<pb::EndpointInfo>, Status> {
        let r = r.into_inner();
        let pool = self.endpoints_of(&r.queue)?;
        if !r.kind.is_empty() {
            let kind = HandlerKind::parse(&r.kind).map_err(Status::invalid_argument)?;
            if kind != pool.kind() {
                return Err(Status::invalid_argument(format!(
                    "queue {} takes {} endpoints, not {}",
                    quoted(&r.queue),
                    pool.kind().as_str(),
                    kind.as_str()
                )));
            }
        }
        // The bounds of the config's fields.
        let (in_flight, timeout) = (limits::MAX_IN_FLIGHT.max, limits::TIMEOUT.max);
        if r.max_in_flight as usize > in_flight {
            return Err(Status::invalid_argument(format!(
                "max_in_flight {} must be ≤ {in_flight} (0: the handler's default)",
                r.max_in_flight
            )));
        }
        if r.parallelism as usize > limits::PARALLELISM.max {
            return Err(Status::invalid_argument(format!(
                "parallelism {} must be ≤ {} (0: not said)",
                r.parallelism,
                limits::PARALLELISM.max
            )));
        }
        let lease = (r.lease_ttl_ms > 0).then(|| Duration::from_millis(r.lease_ttl_ms));
        if lease.is_some_and(|ttl| ttl > timeout) {
            return Err(Status::invalid_argument(format!(
                "lease_ttl_ms {} must be ≤ {} (a day; 0: no lease)",
                r.lease_ttl_ms,
                timeout.as_millis()
            )));
        }
        let mut info = pool.register(&r.address, r.max_in_flight as usize, lease, false)?;
        // 0: not said, so the handler's own `parallelism` stands.
        if r.parallelism > 0 {
            pool.declare(&r.address, r.parallelism as usize);
            info.parallelism = r.parallelism;
        }
        Ok(Response::new(info))
    }

    async fn deregister_endpoint(
        &self,
        r: Request<pb::EndpointRef>,
    ) -> Result<Response<pb::DeregisterEndpointResponse>, Status> {
        let r = r.into_inner();
        if self.endpoints_of(&r.queue)?.deregister(&r.address) {
            Ok(Response::new(pb::DeregisterEndpointResponse {}))
        } else {
            Err(Status::not_found(format!(
                "queue {} has no endpoint {}",
                quoted(&r.queue),
                quoted(&r.address)
            )))
        }
    }

    async fn list_endpoints(
        &self,
        r: Request<pb::QueueRef>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let endpoints = self.endpoints_of(&r.into_inner().name)?.list();
        Ok(Response::new(pb::ListEndpointsResponse { endpoints }))
    }

    type WatchStatsStream = Pin<Box<dyn Stream<Item = Result<pb::StatsSnapshot, Status>> + Send>>;

    async fn watch_stats(
        &self,
        r: Request<pb::WatchStatsRequest>,
    ) -> Result<Response<Self::WatchStatsStream>, Status> {
        let r = r.into_inner();
        if !r.queue.is_empty() {
            self.registry.entry(&r.queue)?;
        }
        let interval = match r.interval_ms {
            0 => Duration::from_secs(1),
            ms => Duration::from_millis(u64::from(ms)).max(MIN_WATCH_INTERVAL),
        };
        let (tx, rx) = mpsc::channel(4);
        let registry = self.registry.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                let snapshot =
                    snapshot(&registry, &r.queue)
                        .await
                        .map(|queues| pb::StatsSnapshot {
                            unix_ms: unix_ms(),
                            queues,
                        });
                let last = snapshot.is_err();
                if tx.send(snapshot).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

//! The endpoint actions of `ctl`: register (or renew a lease), deregister
//! and list a remote queue's endpoints.

use std::time::Duration;

use tonic::Status;

use super::{Ctl, tables::show_endpoints};
use batchgate::pb;

/// The endpoint actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EndpointAction {
    /// Add an endpoint to a grpc/http queue or renew its lease.
    Register {
        /// The queue.
        queue: String,
        /// The endpoint URL.
        address: String,
        /// Batches it may process at once (0: the queue's default).
        #[arg(long, default_value_t = 0)]
        max_in_flight: u32,
        /// Lease, e.g. "30s" (none: permanent).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Batches the backend really works on at once (0: not said); a
        /// queue with pace = "backend" paces by what its endpoints declare.
        #[arg(long, default_value_t = 0)]
        parallelism: u32,
    },
    /// Remove an endpoint.
    Deregister {
        /// The queue.
        queue: String,
        /// The endpoint URL.
        address: String,
    },
    /// List a queue's endpoints.
    Endpoints {
        /// The queue.
        queue: String,
    },
}

/// Runs one endpoint action and prints its answer.
pub(super) async fn run(ctl: &mut Ctl, action: &EndpointAction, json: bool) -> Result<(), Status> {
    match action {
        EndpointAction::Register {
            queue,
            address,
            max_in_flight,
            ttl,
            parallelism,
        } => {
            let request = pb::RegisterEndpointRequest {
                queue: queue.clone(),
                address: address.clone(),
                kind: String::new(),
                max_in_flight: *max_in_flight,
                lease_ttl_ms: ttl.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                parallelism: *parallelism,
            };
            let info = ctl.register_endpoint(request).await?.into_inner();
            show_endpoints(&[info], json);
        }
        EndpointAction::Deregister { queue, address } => {
            let request = pb::EndpointRef {
                queue: queue.clone(),
                address: address.clone(),
            };
            ctl.deregister_endpoint(request).await?;
            if !json {
                outln!("deregistered {address} from {queue}");
            }
        }
        EndpointAction::Endpoints { queue } => {
            let request = pb::QueueRef {
                name: queue.clone(),
            };
            let list = ctl.list_endpoints(request).await?.into_inner();
            show_endpoints(&list.endpoints, json);
        }
    }
    Ok(())
}

//! `batchgate ctl`: the BatchControl API from the shell, as tables for
//! people or `--json` for programs.

use std::{process::ExitCode, time::Duration};

use serde::Serialize;
use tokio_stream::StreamExt;
use tonic::{Request, Status, transport::Channel};

use crate::pb::{self, batch_control_client::BatchControlClient};

/// Flags of `batchgate ctl`.
#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// Control-plane address.
    #[arg(
        long,
        env = "BATCHGATE_CONTROL_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "BATCHGATE_CONTROL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// TLS settings (for an `https://` address).
    #[command(flatten)]
    pub tls: super::TlsArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

impl CtlArgs {
    /// Whether the connection speaks TLS.
    fn with_tls(&self) -> bool {
        super::address_url(&self.addr, &self.tls).starts_with("https://")
            || self.tls.ca_cert.is_some()
    }
}

/// Policy fields; only those given change.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    #[arg(long)]
    max_batch_size: Option<u32>,
    #[arg(long)]
    max_batch_bytes: Option<u64>,
    /// e.g. "2ms".
    #[arg(long, value_parser = humantime::parse_duration)]
    max_delay: Option<Duration>,
    #[arg(long)]
    min_batch_size: Option<u32>,
    #[arg(long)]
    strict: Option<bool>,
    /// auto or manual.
    #[arg(long)]
    mode: Option<String>,
    #[arg(long)]
    max_queue_items: Option<u32>,
    #[arg(long)]
    max_in_flight_batches: Option<u32>,
    /// e.g. "30s".
    #[arg(long, value_parser = humantime::parse_duration)]
    item_timeout: Option<Duration>,
    #[arg(long)]
    priority_levels: Option<u32>,
}

impl PolicyArgs {
    fn to_policy(&self) -> pb::QueuePolicy {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        pb::QueuePolicy {
            max_batch_size: self.max_batch_size,
            max_batch_bytes: self.max_batch_bytes,
            max_delay_us: self.max_delay.map(micros),
            min_batch_size: self.min_batch_size,
            strict: self.strict,
            mode: self.mode.clone(),
            max_queue_items: self.max_queue_items,
            max_in_flight_batches: self.max_in_flight_batches,
            item_timeout_ms: self.item_timeout.map(millis),
            priority_levels: self.priority_levels,
        }
    }
}

/// The control actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// List queues with live stats.
    Queues,
    /// Show one queue: policy, handler, endpoints, stats.
    Describe { name: String },
    /// Create a queue.
    Create {
        name: String,
        /// echo, sim, grpc or http.
        #[arg(long, default_value = "echo")]
        kind: String,
        /// Endpoint URL of a grpc or http queue (repeatable).
        #[arg(long = "endpoint")]
        endpoints: Vec<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Change policy fields of a queue (applies from its next batch).
    Update {
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Delete a queue (drains it; --force answers pending items UNAVAILABLE).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Stop dispatching (items still accepted).
    Pause { name: String },
    /// Dispatch again.
    Resume { name: String },
    /// Dispatch everything pending now.
    Flush { name: String },
    /// Refuse new items and dispatch the rest.
    Drain { name: String },
    /// Add an endpoint to a grpc/http queue or renew its lease.
    Register {
        queue: String,
        address: String,
        #[arg(long, default_value_t = 0)]
        max_in_flight: u32,
        /// Lease, e.g. "30s" (none: permanent).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
    },
    /// Remove an endpoint.
    Deregister { queue: String, address: String },
    /// List a queue's endpoints.
    Endpoints { queue: String },
    /// Print stats snapshots until interrupted.
    Watch {
        /// One queue (default: all).
        queue: Option<String>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        interval: Duration,
    },
}

/// Runs `batchgate ctl`.
pub async fn run(args: CtlArgs) -> ExitCode {
    match execute(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(status) => {
            eprintln!(
                "error: {}",
                super::output::status_text(&status, args.with_tls())
            );
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: &CtlArgs) -> Result<(), Status> {
    let channel: Channel = super::connect(&args.addr, &args.tls)
        .await
        .map_err(Status::unavailable)?;
    let mut ctl = BatchControlClient::new(channel);
    let token = args.token.as_deref();
    let json = args.json;
    match &args.action {
        Action::Queues => {
            let list = ctl
                .list_queues(authorized(pb::ListQueuesRequest {}, token)?)
                .await?
                .into_inner();
            if json {
                print_json(&list);
            } else {
                print_queue_table(&list.queues);
            }
        }
        Action::Describe { name } => {
            let info = ctl
                .get_queue(authorized(queue(name), token)?)
                .await?
                .into_inner();
            show_queue(&info, json);
        }
        Action::Create {
            name,
            kind,
            endpoints,
            policy,
        } => {
            let info = ctl
                .create_queue(authorized(
                    pb::CreateQueueRequest {
                        name: name.clone(),
                        policy: Some(policy.to_policy()),
                        handler: Some(pb::HandlerSpec {
                            kind: kind.clone(),
                            endpoints: endpoints.clone(),
                            ..Default::default()
                        }),
                    },
                    token,
                )?)
                .await?
                .into_inner();
            show_queue(&info, json);
        }
        Action::Update { name, policy } => {
            let info = ctl
                .update_queue(authorized(
                    pb::UpdateQueueRequest {
                        name: name.clone(),
                        policy: Some(policy.to_policy()),
                    },
                    token,
                )?)
                .await?
                .into_inner();
            show_queue(&info, json);
        }
        Action::Delete { name, force } => {
            let done = ctl
                .delete_queue(authorized(
                    pb::DeleteQueueRequest {
                        name: name.clone(),
                        force: *force,
                    },
                    token,
                )?)
                .await?
                .into_inner();
            if json {
                print_json(&done);
            } else {
                outln!(
                    "deleted {name} ({} pending items answered UNAVAILABLE)",
                    done.dropped
                );
            }
        }
        Action::Pause { name } => show_queue(
            &ctl.pause_queue(authorized(queue(name), token)?)
                .await?
                .into_inner(),
            json,
        ),
        Action::Resume { name } => show_queue(
            &ctl.resume_queue(authorized(queue(name), token)?)
                .await?
                .into_inner(),
            json,
        ),
        Action::Drain { name } => show_queue(
            &ctl.drain_queue(authorized(queue(name), token)?)
                .await?
                .into_inner(),
            json,
        ),
        Action::Flush { name } => {
            let done = ctl
                .flush_queue(authorized(queue(name), token)?)
                .await?
                .into_inner();
            if json {
                print_json(&done);
            } else {
                outln!("flushed {} items from {name}", done.flushed);
            }
        }
        Action::Register {
            queue,
            address,
            max_in_flight,
            ttl,
        } => {
            let info = ctl
                .register_endpoint(authorized(
                    pb::RegisterEndpointRequest {
                        queue: queue.clone(),
                        address: address.clone(),
                        kind: String::new(),
                        max_in_flight: *max_in_flight,
                        lease_ttl_ms: ttl
                            .map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                    },
                    token,
                )?)
                .await?
                .into_inner();
            show_endpoints(&[info], json);
        }
        Action::Deregister { queue, address } => {
            ctl.deregister_endpoint(authorized(
                pb::EndpointRef {
                    queue: queue.clone(),
                    address: address.clone(),
                },
                token,
            )?)
            .await?;
            if !json {
                outln!("deregistered {address} from {queue}");
            }
        }
        Action::Endpoints { queue: name } => {
            let list = ctl
                .list_endpoints(authorized(queue(name), token)?)
                .await?
                .into_inner();
            show_endpoints(&list.endpoints, json);
        }
        Action::Watch {
            queue: name,
            interval,
        } => {
            let mut stream = ctl
                .watch_stats(authorized(
                    pb::WatchStatsRequest {
                        queue: name.clone().unwrap_or_default(),
                        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
                    },
                    token,
                )?)
                .await?
                .into_inner();
            while let Some(snapshot) = stream.next().await {
                let snapshot = snapshot?;
                if json {
                    print_json(&snapshot);
                } else {
                    print_queue_table(&snapshot.queues);
                    outln!("");
                }
            }
        }
    }
    Ok(())
}

fn queue(name: &str) -> pb::QueueRef {
    pb::QueueRef {
        name: name.to_owned(),
    }
}

fn authorized<T>(message: T, token: Option<&str>) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().map_err(|_| {
            Status::invalid_argument("the token has characters a header cannot carry")
        })?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("cannot print JSON: {e}"),
    }
}

fn state_name(state: i32) -> &'static str {
    match pb::QueueState::try_from(state) {
        Ok(pb::QueueState::Active) => "active",
        Ok(pb::QueueState::Paused) => "paused",
        Ok(pb::QueueState::Draining) => "draining",
        Ok(pb::QueueState::Drained) => "drained",
        _ => "unknown",
    }
}

fn print_queue_table(queues: &[pb::QueueInfo]) {
    outln!(
        "{:<20} {:<9} {:<7} {:>8} {:>6} {:>10} {:>8} {:>8} {:>9} {:>11}",
        "QUEUE",
        "STATE",
        "HANDLER",
        "DEPTH",
        "FLIGHT",
        "OK",
        "FAILED",
        "BATCHES",
        "SIZE p50",
        "ITEM p99 ms"
    );
    for q in queues {
        let stats = q.stats.unwrap_or_default();
        let failed = stats.items_error + stats.items_rejected + stats.items_timeout;
        outln!(
            "{:<20} {:<9} {:<7} {:>8} {:>6} {:>10} {:>8} {:>8} {:>9.0} {:>11.3}",
            q.name,
            state_name(q.state),
            q.handler.as_ref().map_or("", |h| h.kind.as_str()),
            stats.depth,
            stats.in_flight_batches,
            stats.items_ok,
            failed,
            stats.batches,
            stats.batch_size.unwrap_or_default().p50,
            stats.item_ms.unwrap_or_default().p99,
        );
    }
}

fn show_queue(info: &pb::QueueInfo, json: bool) {
    if json {
        print_json(info);
        return;
    }
    print_queue_table(std::slice::from_ref(info));
    if let Some(p) = &info.policy {
        outln!(
            "policy: max_batch_size={} max_batch_bytes={} max_delay={}us min_batch_size={} strict={} mode={} max_queue_items={} max_in_flight_batches={} item_timeout={}ms priority_levels={}",
            p.max_batch_size.unwrap_or_default(),
            p.max_batch_bytes.unwrap_or_default(),
            p.max_delay_us.unwrap_or_default(),
            p.min_batch_size.unwrap_or_default(),
            p.strict.unwrap_or_default(),
            p.mode.as_deref().unwrap_or_default(),
            p.max_queue_items.unwrap_or_default(),
            p.max_in_flight_batches.unwrap_or_default(),
            p.item_timeout_ms.unwrap_or_default(),
            p.priority_levels.unwrap_or_default(),
        );
    }
    if !info.endpoints.is_empty() {
        show_endpoints(&info.endpoints, false);
    }
}

fn show_endpoints(endpoints: &[pb::EndpointInfo], json: bool) {
    if json {
        print_json(&endpoints);
        return;
    }
    outln!(
        "{:<32} {:>6} {:>6} {:>10} {:>10} {:>8} {:>8}",
        "ENDPOINT",
        "FLIGHT",
        "MAX",
        "LEASE ms",
        "EJECT ms",
        "OK",
        "FAILED"
    );
    for e in endpoints {
        outln!(
            "{:<32} {:>6} {:>6} {:>10} {:>10} {:>8} {:>8}",
            e.address,
            e.in_flight,
            e.max_in_flight,
            e.lease_remaining_ms,
            e.ejected_for_ms,
            e.batches_ok,
            e.batches_failed
        );
    }
}

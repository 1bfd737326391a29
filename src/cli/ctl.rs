//! `batchgate ctl`: the BatchControl API from the shell, as tables for
//! people or `--json` for programs.

use std::{process::ExitCode, time::Duration};

use comfy_table::{Cell, Table};
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
        global = true,
        env = "BATCHGATE_CONTROL_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub addr: String,
    /// Bearer token, when the server requires one.
    #[arg(
        long,
        global = true,
        env = "BATCHGATE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Apply to every replica: resolve --addr's host (e.g. a headless
    /// Service) and call each address; `--addr dns:///NAME:PORT` implies it.
    #[arg(long, global = true)]
    pub all: bool,
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

/// The flag type of a policy field.
macro_rules! flag_type {
    (count) => {
        u32
    };
    (bytes) => {
        u64
    };
    (micros) => {
        Duration
    };
    (millis) => {
        Duration
    };
    (flag) => {
        bool
    };
    (mode) => {
        String
    };
    (levels) => {
        u32
    };
    (sizes) => {
        pb::BatchSizes
    };
    (text) => {
        String
    };
    (weights) => {
        pb::KeyWeights
    };
    (name) => {
        String
    };
    (amount) => {
        u64
    };
    (bounds) => {
        pb::CostBuckets
    };
}

/// How a policy flag is parsed.
macro_rules! flag_parser {
    (micros) => {
        humantime::parse_duration
    };
    (millis) => {
        humantime::parse_duration
    };
    (count) => {
        clap::value_parser!(u32)
    };
    (bytes) => {
        clap::value_parser!(u64)
    };
    (flag) => {
        clap::value_parser!(bool)
    };
    (mode) => {
        clap::builder::PossibleValuesParser::new(crate::config::Mode::NAMES)
    };
    (levels) => {
        clap::value_parser!(u32)
    };
    (sizes) => {
        parse_sizes
    };
    (text) => {
        clap::value_parser!(String)
    };
    (weights) => {
        parse_weights
    };
    (name) => {
        clap::value_parser!(String)
    };
    (amount) => {
        clap::value_parser!(u64)
    };
    (bounds) => {
        parse_bounds
    };
}

/// A policy flag's value as the control API carries it.
macro_rules! flag_to_pb {
    (micros, $v:expr) => {
        u64::try_from($v.as_micros()).unwrap_or(u64::MAX)
    };
    (millis, $v:expr) => {
        u64::try_from($v.as_millis()).unwrap_or(u64::MAX)
    };
    ($kind:ident, $v:expr) => {
        $v
    };
}

/// A policy value from the control API as `describe` prints it (durations
/// as the config writes them).
macro_rules! pb_text {
    (micros, $v:expr) => {
        micros_text($v.unwrap_or_default())
    };
    (millis, $v:expr) => {
        millis_text($v.unwrap_or_default())
    };
    (sizes, $v:expr) => {
        sizes_text($v.as_ref())
    };
    (weights, $v:expr) => {
        weights_text($v.as_ref())
    };
    (bounds, $v:expr) => {
        bounds_text($v.as_ref())
    };
    ($kind:ident, $v:expr) => {
        $v.clone().unwrap_or_default().to_string()
    };
}

macro_rules! policy_args {
    (; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        /// Policy fields; only those given change.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct PolicyArgs {
            $(
                #[doc = $help]
                #[arg(long, value_parser = flag_parser!($kind))]
                $name: Option<flag_type!($kind)>,
            )*
        }

        impl PolicyArgs {
            fn to_policy(&self) -> pb::QueuePolicy {
                pb::QueuePolicy {
                    $( $pb: self.$name.clone().map(|v| flag_to_pb!($kind, v)), )*
                }
            }
        }

        /// Every policy field of `p`, named as in the config, as text.
        fn policy_lines(p: &pb::QueuePolicy) -> Vec<(&'static str, String)> {
            vec![ $( (stringify!($name), pb_text!($kind, p.$pb)), )* ]
        }
    };
}

crate::policy_fields!(policy_args);

/// Parses `--allowed-batch-sizes 1,8,32` ("" for any size).
fn parse_sizes(text: &str) -> Result<pb::BatchSizes, String> {
    let sizes = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                format!("{s:?} is not a batch size (a comma-separated list of counts)")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::BatchSizes { sizes })
}

/// Parses `--weights tenant-a=3,tenant-b=2` ("" for every key 1).
fn parse_weights(text: &str) -> Result<pb::KeyWeights, String> {
    let weights = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let bad = || format!("{pair:?} is not KEY=WEIGHT (e.g. tenant-a=3)");
            let (key, weight) = pair.rsplit_once('=').ok_or_else(bad)?;
            let weight = weight.trim().parse::<u32>().map_err(|_| bad())?;
            Ok((key.trim().to_owned(), weight))
        })
        .collect::<Result<_, String>>()?;
    Ok(pb::KeyWeights { weights })
}

/// Key weights as `describe` prints them, sorted by key.
fn weights_text(weights: Option<&pb::KeyWeights>) -> String {
    let mut pairs: Vec<_> = weights
        .map(|w| w.weights.iter().map(|(k, w)| format!("{k}={w}")).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "all 1".to_owned();
    }
    pairs.sort();
    pairs.join(",")
}

/// Allowed batch sizes as `describe` prints them.
/// Parses `--cost-buckets 32,64,128` ("" for none).
fn parse_bounds(text: &str) -> Result<pb::CostBuckets, String> {
    let bounds = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                format!("{s:?} is not a cost bound (a comma-separated list of whole numbers)")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::CostBuckets { bounds })
}

fn bounds_text(bounds: Option<&pb::CostBuckets>) -> String {
    match bounds {
        Some(b) if !b.bounds.is_empty() => b
            .bounds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "none".to_owned(),
    }
}

fn sizes_text(sizes: Option<&pb::BatchSizes>) -> String {
    match sizes {
        Some(s) if !s.sizes.is_empty() => s
            .sizes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => "any".to_owned(),
    }
}

/// Handler fields of a new queue (or, with `update --kind`, a queue's new
/// handler); unset ones take the kind's defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HandlerArgs {
    /// echo, sim, grpc or http (create: default echo; update: replaces the
    /// handler, in-flight batches finish on the old one).
    #[arg(long)]
    kind: Option<String>,
    /// sim: fixed cost of a batch, e.g. "5ms".
    #[arg(long, value_parser = humantime::parse_duration)]
    base: Option<Duration>,
    /// sim: added cost of each item, e.g. "20us".
    #[arg(long, value_parser = humantime::parse_duration)]
    per_item: Option<Duration>,
    /// sim: added cost per unit of the items' cost (a token), e.g. "2us".
    #[arg(long, value_parser = humantime::parse_duration)]
    per_cost: Option<Duration>,
    /// sim: the items' cost counts padded (largest cost times items).
    #[arg(long)]
    padded: bool,
    /// grpc/http: an endpoint URL (repeatable).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// grpc/http: batches one endpoint may process at once.
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// grpc/http: longest a backend call may take, e.g. "30s".
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// grpc/http: retries of a batch that failed for availability.
    #[arg(long)]
    retries: Option<u32>,
    /// grpc/http: split a rejected batch so a poison item fails alone (true or false).
    #[arg(long)]
    bisect: Option<bool>,
    /// grpc: call ProcessBatchStream and forward each result as it comes.
    #[arg(long)]
    streaming: bool,
    /// grpc: "items" (a message per item) or "packed" (one buffer per batch).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["items", "packed"]))]
    encoding: Option<String>,
    /// http: payloads are raw JSON documents instead of base64 strings.
    #[arg(long)]
    json_payloads: bool,
}

impl HandlerArgs {
    fn to_spec(&self) -> pb::HandlerSpec {
        let micros =
            |d: Option<Duration>| d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let kind = self.kind.clone().unwrap_or_else(|| "echo".to_owned());
        let sim = kind == "sim";
        let default_sim = crate::config::HandlerConfig::of(crate::config::HandlerKind::Sim);
        pb::HandlerSpec {
            kind,
            // A sim's costs are always sent; unset ones are the defaults.
            sim_base_us: micros(self.base.or(sim.then_some(default_sim.base))),
            sim_per_item_us: micros(self.per_item.or(sim.then_some(default_sim.per_item))),
            sim_per_cost_ns: self
                .per_cost
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            sim_padded: self.padded,
            endpoints: self.endpoints.clone(),
            max_in_flight: self.max_in_flight.unwrap_or(0),
            timeout_ms: self
                .timeout
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            retries: self.retries,
            bisect: self.bisect,
            streaming: self.streaming,
            json_payloads: self.json_payloads,
            encoding: self.encoding.clone().unwrap_or_default(),
        }
    }
}

/// The control actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// List queues with live stats.
    Queues,
    /// Show one queue: policy, handler, endpoints, stats.
    Describe {
        /// The queue.
        name: String,
    },
    /// Create a queue.
    Create {
        /// The new queue's name.
        name: String,
        #[command(flatten)]
        handler: HandlerArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Change policy fields of a queue (applies from its next batch).
    Update {
        /// The queue.
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        handler: HandlerArgs,
    },
    /// Delete a queue (drains it; --force answers pending items UNAVAILABLE).
    Delete {
        /// The queue.
        name: String,
        /// Answer pending items UNAVAILABLE instead of dispatching them.
        #[arg(long)]
        force: bool,
    },
    /// Stop dispatching (items still accepted).
    Pause {
        /// The queue.
        name: String,
    },
    /// Dispatch again.
    Resume {
        /// The queue.
        name: String,
    },
    /// Dispatch everything pending now.
    Flush {
        /// The queue.
        name: String,
    },
    /// Refuse new items and dispatch the rest.
    Drain {
        /// The queue.
        name: String,
    },
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
    /// Print a stats snapshot every interval, with the time and the rates
    /// since the previous one, until interrupted.
    Watch {
        /// One queue (default: all).
        queue: Option<String>,
        /// Time between snapshots, e.g. "2s".
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        interval: Duration,
    },
}

/// Runs `batchgate ctl`.
pub async fn run(args: CtlArgs) -> ExitCode {
    let result = match super::replicas::resolve(&args.addr, args.all).await {
        None => execute(&args).await,
        Some(Ok(replicas)) => execute_all(&args, replicas).await,
        Some(Err(status)) => Err(status),
    };
    match result {
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

/// Runs the action on every replica: `queues` as totals and a breakdown,
/// anything else replica by replica, then a table of their results.
async fn execute_all(args: &CtlArgs, replicas: Vec<String>) -> Result<(), Status> {
    if matches!(args.action, Action::Watch { .. }) {
        return Err(Status::invalid_argument(
            "watch follows one server: give one replica's address",
        ));
    }
    if matches!(args.action, Action::Queues) {
        return queues_all(args, replicas).await;
    }
    let mut results = Vec::new();
    for replica in replicas {
        if !args.json {
            outln!("== {replica}");
        }
        let one = CtlArgs {
            addr: replica.clone(),
            all: false,
            ..args.clone()
        };
        let result = execute(&one).await;
        if let Err(status) = &result {
            eprintln!(
                "{replica}: {}",
                super::output::status_text(status, one.with_tls())
            );
        }
        results.push((replica, result));
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if args.json {
        let summary: Vec<_> = results
            .iter()
            .map(|(replica, r)| {
                serde_json::json!({
                    "replica": replica,
                    "ok": r.is_ok(),
                    "error": r.as_ref().err().map(|s| s.message().to_owned()),
                })
            })
            .collect();
        print_json(&serde_json::json!({ "replicas": summary }));
    } else {
        outln!("");
        let mut t = table(&["REPLICA", "RESULT"]);
        for (replica, r) in &results {
            let result = match r {
                Ok(()) => "ok".to_owned(),
                Err(s) => format!("{}: {}", crate::error::code_name(s.code()), s.message()),
            };
            t.add_row(vec![replica.clone(), result]);
        }
        print_table(&t);
    }
    if failed > 0 {
        return Err(Status::unavailable(format!(
            "{failed} of {} replicas failed",
            results.len()
        )));
    }
    Ok(())
}

/// `queues --all`: each queue's counts summed over the replicas, then per
/// replica.
async fn queues_all(args: &CtlArgs, replicas: Vec<String>) -> Result<(), Status> {
    let token = args.token.as_deref();
    let mut answers = Vec::new();
    for replica in replicas {
        let answer = async {
            let channel = super::connect(&replica, &args.tls)
                .await
                .map_err(Status::unavailable)?;
            let mut ctl = BatchControlClient::new(channel);
            Ok::<_, Status>(
                ctl.list_queues(authorized(pb::ListQueuesRequest {}, token)?)
                    .await?
                    .into_inner(),
            )
        }
        .await;
        answers.push((replica, answer));
    }
    let totals = super::replicas::totals(&answers);
    let unanswered = answers.iter().filter(|(_, a)| a.is_err()).count();
    if args.json {
        let per_replica: Vec<_> = answers
            .iter()
            .map(|(replica, a)| match a {
                Ok(list) => serde_json::json!({ "replica": replica, "queues": list.queues }),
                Err(s) => serde_json::json!({ "replica": replica, "error": s.message() }),
            })
            .collect();
        print_json(&serde_json::json!({ "totals": totals, "replicas": per_replica }));
    } else {
        let mut t = table(&[
            "QUEUE", "REPLICAS", "DEPTH", "FLIGHT", "OK", "FAILED", "BATCHES",
        ]);
        for (name, q) in &totals {
            t.add_row(vec![
                name.clone(),
                q.replicas.to_string(),
                q.depth.to_string(),
                q.in_flight_batches.to_string(),
                q.items_ok.to_string(),
                q.items_failed.to_string(),
                q.batches.to_string(),
            ]);
        }
        numbers_from(&mut t, 1);
        print_table(&t);
        outln!("");
        let mut t = table(&["REPLICA", "QUEUE", "STATE", "DEPTH", "OK", "FAILED"]);
        for (replica, answer) in &answers {
            match answer {
                Ok(list) => {
                    for q in &list.queues {
                        let stats = q.stats.unwrap_or_default();
                        t.add_row(vec![
                            replica.clone(),
                            q.name.clone(),
                            pb::queue_state_name(q.state).to_owned(),
                            stats.depth.to_string(),
                            stats.items_ok.to_string(),
                            failed(&stats).to_string(),
                        ]);
                    }
                }
                Err(s) => {
                    t.add_row(vec![replica.clone(), format!("error: {}", s.message())]);
                }
            }
        }
        print_table(&t);
    }
    if unanswered > 0 {
        return Err(Status::unavailable(format!(
            "{unanswered} of {} replicas did not answer",
            answers.len()
        )));
    }
    Ok(())
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
            handler,
            policy,
        } => {
            let info = ctl
                .create_queue(authorized(
                    pb::CreateQueueRequest {
                        name: name.clone(),
                        policy: Some(policy.to_policy()),
                        handler: Some(handler.to_spec()),
                    },
                    token,
                )?)
                .await?
                .into_inner();
            show_queue(&info, json);
        }
        Action::Update {
            name,
            policy,
            handler,
        } => {
            let info = ctl
                .update_queue(authorized(
                    pb::UpdateQueueRequest {
                        name: name.clone(),
                        policy: Some(policy.to_policy()),
                        handler: handler.kind.is_some().then(|| handler.to_spec()),
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
            let mut previous: Option<(std::time::Instant, Vec<pb::QueueInfo>)> = None;
            while let Some(snapshot) = stream.next().await {
                let snapshot = snapshot?;
                if json {
                    print_json(&snapshot);
                    continue;
                }
                let now = std::time::Instant::now();
                let rates = previous
                    .as_ref()
                    .map(|(at, before)| (now.duration_since(*at).as_secs_f64(), before.as_slice()));
                outln!(
                    "{}",
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                );
                print_watch_table(&snapshot.queues, rates);
                outln!("");
                previous = Some((now, snapshot.queues));
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

/// A table with plain columns, as `kubectl get` prints them.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new));
    table
}

/// Lays the columns out: two spaces between them, the columns `from..`
/// (numbers) right-aligned.
fn numbers_from(table: &mut Table, from: usize) {
    for i in 0..table.column_count() {
        if let Some(column) = table.column_mut(i) {
            column.set_padding((0, 2));
            if i >= from {
                column.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
    }
}

fn print_table(table: &Table) {
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// Items that did not succeed: errors, refusals, timeouts and shed ones.
pub(super) fn failed(stats: &pb::QueueStats) -> u64 {
    stats.items_error + stats.items_rejected + stats.items_timeout + stats.items_shed
}

fn print_queue_table(queues: &[pb::QueueInfo]) {
    let mut t = table(&[
        "QUEUE",
        "STATE",
        "HANDLER",
        "DEPTH",
        "FLIGHT",
        "OK",
        "FAILED",
        "BATCHES",
        "SIZE p50",
        "ITEM p99 ms",
    ]);
    for q in queues {
        let stats = q.stats.unwrap_or_default();
        t.add_row(vec![
            q.name.clone(),
            pb::queue_state_name(q.state).to_owned(),
            q.handler
                .as_ref()
                .map_or("", |h| h.kind.as_str())
                .to_owned(),
            stats.depth.to_string(),
            stats.in_flight_batches.to_string(),
            stats.items_ok.to_string(),
            failed(&stats).to_string(),
            stats.batches.to_string(),
            format!("{:.0}", stats.batch_size.unwrap_or_default().p50),
            format!("{:.3}", stats.item_ms.unwrap_or_default().p99),
        ]);
    }
    numbers_from(&mut t, 3);
    print_table(&t);
}

/// The queue table of `watch`, with rates since the previous snapshot
/// (`seconds` ago) when there was one.
fn print_watch_table(queues: &[pb::QueueInfo], previous: Option<(f64, &[pb::QueueInfo])>) {
    let mut t = table(&[
        "QUEUE",
        "STATE",
        "DEPTH",
        "FLIGHT",
        "OK/s",
        "FAILED/s",
        "BATCHES/s",
        "SIZE p50",
        "ITEM p99 ms",
    ]);
    for q in queues {
        let stats = q.stats.unwrap_or_default();
        let rate = |pick: fn(&pb::QueueStats) -> u64| -> String {
            let Some((seconds, before)) = previous else {
                return "-".to_owned();
            };
            let Some(old) = before.iter().find(|b| b.name == q.name) else {
                return "-".to_owned();
            };
            let delta = pick(&stats).saturating_sub(pick(&old.stats.unwrap_or_default()));
            format!("{:.1}", delta as f64 / seconds.max(1e-9))
        };
        t.add_row(vec![
            q.name.clone(),
            pb::queue_state_name(q.state).to_owned(),
            stats.depth.to_string(),
            stats.in_flight_batches.to_string(),
            rate(|s| s.items_ok),
            rate(failed),
            rate(|s| s.batches),
            format!("{:.0}", stats.batch_size.unwrap_or_default().p50),
            format!("{:.3}", stats.item_ms.unwrap_or_default().p99),
        ]);
    }
    numbers_from(&mut t, 2);
    print_table(&t);
}

/// A duration in microseconds as the config writes durations ("2ms").
fn micros_text(us: u64) -> String {
    humantime::format_duration(Duration::from_micros(us)).to_string()
}

/// A duration in milliseconds as the config writes durations ("30s").
fn millis_text(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

fn show_queue(info: &pb::QueueInfo, json: bool) {
    if json {
        print_json(info);
        return;
    }
    print_queue_table(std::slice::from_ref(info));
    if let Some(p) = &info.policy {
        outln!("");
        outln!("policy:");
        let fields = policy_lines(p);
        for (name, value) in fields {
            outln!("  {name} = {value}");
        }
    }
    if let Some(h) = &info.handler {
        outln!("");
        outln!("handler:");
        outln!("  kind = {}", h.kind);
        match h.kind.as_str() {
            "sim" => {
                outln!("  base = {}", micros_text(h.sim_base_us));
                outln!("  per_item = {}", micros_text(h.sim_per_item_us));
                outln!(
                    "  per_cost = {}",
                    humantime::format_duration(Duration::from_nanos(h.sim_per_cost_ns))
                );
                outln!("  padded = {}", h.sim_padded);
            }
            "grpc" | "http" => {
                outln!("  endpoints = {:?}", h.endpoints);
                outln!("  max_in_flight = {}", h.max_in_flight);
                outln!("  timeout = {}", millis_text(h.timeout_ms));
                outln!("  retries = {}", h.retries.unwrap_or_default());
                outln!("  bisect = {}", h.bisect.unwrap_or_default());
                if h.kind == "grpc" {
                    outln!("  streaming = {}", h.streaming);
                    outln!("  encoding = {}", h.encoding);
                } else {
                    outln!("  json_payloads = {}", h.json_payloads);
                }
            }
            _ => {}
        }
    }
    if let Some(stats) = &info.stats {
        show_learned(stats);
    }
    if !info.endpoints.is_empty() {
        outln!("");
        show_endpoints(&info.endpoints, false);
    }
}

/// What an adaptive queue (`mode = "target"` or `"aimd"`) learned.
fn show_learned(stats: &pb::QueueStats) {
    let Some(l) = &stats.learned else {
        return;
    };
    outln!("");
    outln!("learned:");
    outln!(
        "  handler time = {} + {} per item (over {} batches)",
        micros_text(l.base_us),
        humantime::format_duration(Duration::from_nanos(l.per_item_ns)),
        l.samples
    );
    outln!("  arrivals = {}/s", l.arrivals_per_sec);
    outln!("  batch cap now = {}", l.batch_cap);
    outln!("  items shed = {}", stats.items_shed);
}

fn show_endpoints(endpoints: &[pb::EndpointInfo], json: bool) {
    if json {
        print_json(&endpoints);
        return;
    }
    let mut t = table(&[
        "ENDPOINT",
        "FLIGHT",
        "MAX",
        "LEASE",
        "EJECTED FOR",
        "OK",
        "FAILED",
    ]);
    let left = |ms: u64| {
        if ms == 0 {
            "-".to_owned()
        } else {
            millis_text(ms)
        }
    };
    for e in endpoints {
        t.add_row(vec![
            e.address.clone(),
            e.in_flight.to_string(),
            e.max_in_flight.to_string(),
            left(e.lease_remaining_ms),
            left(e.ejected_for_ms),
            e.batches_ok.to_string(),
            e.batches_failed.to_string(),
        ]);
    }
    numbers_from(&mut t, 1);
    print_table(&t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_flags_parse_and_print() {
        let w = parse_weights("tenant-a=3, b = 2").unwrap();
        assert_eq!(weights_text(Some(&w)), "b=2,tenant-a=3");
        assert_eq!(weights_text(Some(&parse_weights("").unwrap())), "all 1");
        assert_eq!(
            parse_weights("a").unwrap_err(),
            "\"a\" is not KEY=WEIGHT (e.g. tenant-a=3)"
        );
        assert!(parse_weights("a=x").is_err());
        assert_eq!(parse_sizes("1, 8").unwrap().sizes, [1, 8]);
    }
}

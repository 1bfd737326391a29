//! `batchgate ctl`: its arguments, the control-plane client with its bearer
//! token, and running an action against one server or every replica.

use std::process::ExitCode;
use std::time::Duration;

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use super::{
    EndpointAction, QueueAction,
    tables::{failed, numbers_from, print_json, print_table, table},
};
use batchgate::pb::{self, batch_control_client::BatchControlClient};

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
    pub tls: super::super::TlsArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

impl CtlArgs {
    /// Whether the connection speaks TLS.
    fn with_tls(&self) -> bool {
        super::super::address_url(&self.addr, &self.tls).starts_with("https://")
            || self.tls.ca_cert.is_some()
    }
}

/// The control actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    #[command(flatten)]
    Queue(Box<QueueAction>),
    #[command(flatten)]
    Endpoint(EndpointAction),
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

/// A control client that sends the bearer token (when there is one) on
/// every call.
pub(crate) type Ctl = BatchControlClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer TOKEN` to each request.
#[derive(Debug, Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connects to `addr` with the flags' TLS settings and token.
async fn client(addr: &str, args: &CtlArgs) -> Result<Ctl, Status> {
    let bearer = match &args.token {
        Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
            Status::invalid_argument("the token has characters a header cannot carry")
        })?),
        None => None,
    };
    let channel = super::super::connect(addr, &args.tls)
        .await
        .map_err(Status::unavailable)?;
    Ok(BatchControlClient::with_interceptor(
        channel,
        Bearer(bearer),
    ))
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
                super::super::output::status_text(&status, args.with_tls())
            );
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: &CtlArgs) -> Result<(), Status> {
    let mut ctl = client(&args.addr, args).await?;
    match &args.action {
        Action::Queue(action) => super::queues::run(&mut ctl, action, args.json).await,
        Action::Endpoint(action) => super::endpoints::run(&mut ctl, action, args.json).await,
        Action::Watch { queue, interval } => {
            super::watch::run(&mut ctl, queue.as_deref(), *interval, args.json).await
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
    if matches!(&args.action, Action::Queue(q) if matches!(**q, QueueAction::Queues)) {
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
                super::super::output::status_text(status, one.with_tls())
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
                Err(s) => format!("{}: {}", batchgate::error::code_name(s.code()), s.message()),
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
    let mut answers = Vec::new();
    for replica in replicas {
        let answer = async {
            let mut ctl = client(&replica, args).await?;
            Ok::<_, Status>(
                ctl.list_queues(pb::ListQueuesRequest {})
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
                        let stats = q.stats.clone().unwrap_or_default();
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

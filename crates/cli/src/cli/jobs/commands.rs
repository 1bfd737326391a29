//! `batchgate jobs`: its arguments, and each subcommand against the Jobs
//! service (create uploads the file in chunks, follow polls until the job
//! ends, results streams them as JSON lines).

use std::{
    collections::HashSet,
    io::{BufReader, Read},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::super::{TlsArgs, connect, output};
use batchgate::pb::{self, jobs_client::JobsClient};

/// Items in one upload message (and at most about 1 MiB of them).
const CHUNK_ITEMS: usize = 1_000;
const CHUNK_BYTES: usize = 1 << 20;

/// Flags of `batchgate jobs`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {
    /// Server address.
    #[arg(
        long,
        env = "BATCHGATE_ADDR",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub addr: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// TLS settings (for an `https://` address).
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(subcommand)]
    pub command: JobsCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum JobsCommand {
    /// Upload a JSONL file (`-`: standard input) as a job; prints its id
    /// alone on the last line.
    Submit {
        /// The queue that runs it.
        #[arg(long, short)]
        queue: String,
        /// One item a line: {"custom_id": "...", "payload": "text"} or
        /// "payload_b64", with optional "attributes", "cost", "batch_key".
        file: PathBuf,
        /// How long the job may take, e.g. "2h" (default: the server's, 24h).
        #[arg(long, value_parser = humantime::parse_duration)]
        window: Option<Duration>,
        /// Among the jobs of the queue, higher goes first.
        #[arg(long, default_value_t = 0)]
        priority: u32,
        /// A label `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// A retried upload with the same key gets the first job.
        #[arg(long, default_value = "")]
        idempotency_key: String,
        /// Then follow it to its end, like `jobs wait` (its end on stderr:
        /// the id stays alone on the last stdout line).
        #[arg(long)]
        wait: bool,
    },
    /// One job.
    Get { id: String },
    /// Jobs, newest first.
    List {
        #[arg(long, default_value = "")]
        queue: String,
        /// queued, in_progress, completed, failed, expired, cancelling, cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Follow a job to its end with a progress bar (done/total, rate,
    /// ETA); exits non-zero if any item did not succeed.
    Wait { id: String },
    /// Cancel a job: items not yet run end CANCELLED.
    Cancel { id: String },
    /// Its results as JSON lines: custom_id and payload (or payload_b64),
    /// or error {code, message}.
    Results {
        id: String,
        /// Only the items that failed.
        #[arg(long)]
        errors: bool,
        /// From this result on.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Remove an ended job with its items and results.
    Delete { id: String },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

/// Runs `batchgate jobs`.
pub async fn run(args: JobsArgs) -> ExitCode {
    let with_tls = args.addr.starts_with("https://") || args.tls.ca_cert.is_some();
    let result = async {
        if let JobsCommand::Submit { file, .. } = &args.command {
            // Bad lines are found before anything is sent.
            check_file(file)?;
        }
        let channel = connect(&args.addr, &args.tls)
            .await
            .map_err(Failure::Local)?;
        let mut client = JobsClient::new(channel);
        execute(&args, &mut client).await
    }
    .await;
    match result {
        Ok(code) => code,
        Err(Failure::Local(e)) => {
            eprintln!("batchgate: {e}");
            ExitCode::from(super::super::EXIT_BAD_CONFIG)
        }
        Err(Failure::Call(status)) => {
            eprintln!("error: {}", output::status_text(&status, with_tls));
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed.
enum Failure {
    /// Bad input here (a file, a flag).
    Local(String),
    /// The server said no.
    Call(tonic::Status),
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self::Call(status)
    }
}

async fn execute(args: &JobsArgs, client: &mut JobsClient<Channel>) -> Result<ExitCode, Failure> {
    let json = args.json;
    let job_ref = |id: &str| pb::JobRef { id: id.to_owned() };
    match &args.command {
        JobsCommand::Submit {
            queue,
            file,
            window,
            priority,
            labels,
            idempotency_key,
            wait,
        } => {
            let header = pb::JobHeader {
                queue: queue.clone(),
                completion_window_ms: window
                    .map_or(0, |w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
                priority: *priority,
                labels: labels.iter().cloned().collect(),
                idempotency_key: idempotency_key.clone(),
            };
            let job = upload(client, header, file.clone()).await?;
            if json {
                outln!("{}", serde_json::to_string(&job).unwrap_or_default());
            } else {
                eprintln!("{}", job_line(&job));
            }
            if !*wait {
                outln!("{}", job.id);
            } else {
                // The end as `jobs wait` shows it, and the id still alone
                // on the last line (`| tail -1` finds it either way).
                return follow(client, &job.id, json, true).await;
            }
        }
        JobsCommand::Get { id } => {
            let job = client.get_job(job_ref(id)).await?.into_inner();
            show(&job, json);
        }
        JobsCommand::List {
            queue,
            state,
            limit,
        } => {
            let state = match state.as_deref() {
                None => pb::JobState::Unspecified,
                Some(name) => (1..=8)
                    .filter_map(|s| pb::JobState::try_from(s).ok())
                    .find(|s| pb::job_state_name(*s as i32) == name)
                    .ok_or_else(|| Failure::Local(format!("unknown job state {name:?}")))?,
            };
            let jobs = client
                .list_jobs(pb::ListJobsRequest {
                    queue: queue.clone(),
                    state: state as i32,
                    page_size: *limit,
                    page_token: String::new(),
                })
                .await?
                .into_inner();
            for job in &jobs.jobs {
                show(job, json);
            }
        }
        JobsCommand::Wait { id } => return follow(client, id, json, false).await,
        JobsCommand::Cancel { id } => {
            let job = client.cancel_job(job_ref(id)).await?.into_inner();
            show(&job, json);
        }
        JobsCommand::Results { id, errors, offset } => {
            let mut results = client
                .read_results(pb::ReadResultsRequest {
                    id: id.clone(),
                    offset: *offset,
                    errors_only: *errors,
                    follow: false,
                })
                .await?
                .into_inner();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while let Some(result) = results.next().await {
                use std::io::Write;
                let line = batchgate::api::result_line(&result?);
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
        }
        JobsCommand::Delete { id } => {
            client.delete_job(job_ref(id)).await?;
            outln!("deleted {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `file` once to find a bad line before anything is sent.
fn check_file(file: &PathBuf) -> Result<(), Failure> {
    if file.as_os_str() == "-" {
        return Ok(());
    }
    let f = std::fs::File::open(file)
        .map_err(|e| Failure::Local(format!("cannot read {}: {e}", file.display())))?;
    super::jsonl::read_all(
        BufReader::with_capacity(1 << 20, f),
        &mut HashSet::new(),
        |_| Ok(()),
    )
    .map(|_| ())
    .map_err(|e| Failure::Local(format!("{}: {e}", file.display())))
}

/// Uploads the header, then `file`'s items in chunks.
async fn upload(
    client: &mut JobsClient<Channel>,
    header: pb::JobHeader,
    file: PathBuf,
) -> Result<pb::Job, Failure> {
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::CreateJobRequest>(8);
    let first = pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Header(header)),
    };
    let _ = tx.send(first).await;
    // Standard input is read whole first: a bad line must stop the upload
    // before anything is sent.
    let reader = std::thread::spawn(move || -> Result<(), String> {
        let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
            let mut all = Vec::new();
            std::io::stdin()
                .read_to_end(&mut all)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            super::jsonl::read_all(all.as_slice(), &mut HashSet::new(), |_| Ok(()))?;
            Box::new(std::io::Cursor::new(all))
        } else {
            let f = std::fs::File::open(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            Box::new(BufReader::with_capacity(1 << 20, f))
        };
        let (mut chunk, mut bytes) = (Vec::with_capacity(CHUNK_ITEMS), 0);
        let send = |chunk: Vec<pb::JobItem>| {
            tx.blocking_send(pb::CreateJobRequest {
                part: Some(pb::create_job_request::Part::Items(pb::JobItems {
                    items: chunk,
                })),
            })
            .map_err(|_| "the upload stopped".to_owned())
        };
        super::jsonl::read_all(input, &mut HashSet::new(), |item| {
            bytes += item.payload.len() + item.custom_id.len();
            chunk.push(item);
            if chunk.len() >= CHUNK_ITEMS || bytes >= CHUNK_BYTES {
                bytes = 0;
                send(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(CHUNK_ITEMS),
                ))?;
            }
            Ok(())
        })?;
        if !chunk.is_empty() {
            send(chunk)?;
        }
        Ok(())
    });
    let answer = client
        .create_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Failure::Local(e)),
        Err(_) => return Err(Failure::Local("the file reader failed".into())),
    }
    Ok(answer?.into_inner())
}

/// Follows job `id` to its end; non-zero if any item did not succeed.
/// With `id_last` (text), the end goes to stderr and the id alone to
/// stdout.
async fn follow(
    client: &mut JobsClient<Channel>,
    id: &str,
    json: bool,
    id_last: bool,
) -> Result<ExitCode, Failure> {
    let mut updates = client
        .watch_job(pb::JobRef { id: id.to_owned() })
        .await?
        .into_inner();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} items, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last = None;
    while let Some(job) = updates.next().await {
        let job = job?;
        let counts = job.counts.unwrap_or_default();
        bar.set_length(counts.total);
        bar.set_position(done(&counts));
        bar.set_message(pb::job_state_name(job.state));
        last = Some(job);
    }
    bar.finish_and_clear();
    let Some(job) = last else {
        return Err(Failure::Local("the job's updates ended early".into()));
    };
    if id_last && !json {
        eprintln!("{}", job_line(&job));
        outln!("{id}");
    } else {
        show(&job, json);
    }
    let counts = job.counts.unwrap_or_default();
    let clean = job.state == pb::JobState::Completed as i32 && counts.succeeded == counts.total;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn done(c: &pb::JobCounts) -> u64 {
    c.succeeded + c.failed + c.cancelled + c.expired
}

/// A job in one line.
fn job_line(job: &pb::Job) -> String {
    let c = job.counts.unwrap_or_default();
    let mut line = format!(
        "{} {} queue={} total={} succeeded={} failed={} cancelled={} expired={}",
        job.id,
        pb::job_state_name(job.state),
        job.queue,
        c.total,
        c.succeeded,
        c.failed,
        c.cancelled,
        c.expired
    );
    if !job.reason.is_empty() {
        line.push_str(&format!(" reason={:?}", job.reason));
    }
    line
}

fn show(job: &pb::Job, json: bool) {
    if json {
        outln!("{}", serde_json::to_string(job).unwrap_or_default());
    } else {
        outln!("{}", job_line(job));
    }
}

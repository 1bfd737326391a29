//! The command line: the subcommands ([`Command`]), parsing with clap's
//! errors as exit codes, running one, and the arguments every client
//! subcommand shares ([`ClientArgs`]).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::{CtlArgs, JobsArgs, ServeArgs, StreamArgs, SubmitArgs, TlsArgs, address_url, connect};

/// Exit code for a configuration the server cannot run with (EX_USAGE).
pub const EXIT_BAD_CONFIG: u8 = 64;

/// batchgate: a gRPC batching service, and its client.
#[derive(Debug, Parser)]
#[command(name = "batchgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the batching server.
    Serve(ServeArgs),
    /// Submit one item and print its result and the batch it rode in.
    Submit(SubmitArgs),
    /// Send each line of stdin as an item over one stream; print each result
    /// as it arrives.
    Stream(StreamArgs),
    /// Inspect and steer queues and endpoints (the BatchControl API).
    Ctl(Box<CtlArgs>),
    /// Durable bulk work: upload a JSONL file as a job, follow it, read
    /// its results (the Jobs API).
    Jobs(Box<JobsArgs>),
    /// Load generator: drive a server and report items/s and latency.
    Bench(batchgate_bench::BenchArgs),
    /// Benchmark baseline: a bare tonic echo of the Batcher API, no batching.
    BareEcho(batchgate_bench::BareEchoArgs),
    /// Draw latency vs throughput of `bench --json` lines as an SVG.
    BenchChart(batchgate_bench::chart::ChartArgs),
    /// Print the configuration reference (every field: type, default,
    /// bounds, help) as Markdown, as docs/config-reference.md has it.
    ConfigReference,
}

/// Parses a command line; on an error prints it and gives the exit code:
/// [`EXIT_BAD_CONFIG`] for a `serve` value that does not parse (a flag or
/// a `BATCHGATE_*` variable is configuration like the file's fields), 0
/// for `--help` and `--version`, clap's 2 for any other usage error.
///
/// # Errors
/// The exit code, the error printed.
pub fn parse<I, T>(args: I) -> Result<Cli, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    Cli::try_parse_from(&args).map_err(|e| {
        use clap::error::ErrorKind;
        let _ = e.print();
        let serve = args.get(1).is_some_and(|a| a == "serve");
        let value = matches!(
            e.kind(),
            ErrorKind::InvalidValue | ErrorKind::ValueValidation
        );
        if serve && value {
            ExitCode::from(EXIT_BAD_CONFIG)
        } else {
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    })
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => super::serve::run(args).await,
        Command::Submit(args) => super::submit::run(args).await,
        Command::Stream(args) => super::stream::run(args).await,
        Command::Ctl(args) => super::ctl::run(*args).await,
        Command::Jobs(args) => super::jobs::run(*args).await,
        Command::Bench(args) => batchgate_bench::run(args).await,
        Command::BareEcho(args) => batchgate_bench::bare_echo(args).await,
        Command::BenchChart(args) => batchgate_bench::chart::run(args),
        Command::ConfigReference => {
            print!("{}", super::reference::markdown());
            ExitCode::SUCCESS
        }
    }
}

/// Connection flags shared by the client subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, env = "BATCHGATE_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Queue to submit to.
    #[arg(long, short, default_value = "echo")]
    pub queue: String,
    /// Item priority (higher goes first).
    #[arg(long, default_value_t = 0)]
    pub priority: u32,
    /// Item timeout in milliseconds (0: the queue's default).
    #[arg(long, default_value_t = 0)]
    pub timeout_ms: u32,
    /// Batch key: items with different keys never share a batch.
    #[arg(long, default_value = "")]
    pub batch_key: String,
    /// The item's cost (tokens, rows) for a queue with a cost budget
    /// (default: the queue's cost_attribute, else 1 or its bytes).
    #[arg(long)]
    pub cost: Option<u64>,
    /// Idempotency key: a retry with the same key within the queue's
    /// idempotency_window gets the first answer, not a second execution
    /// (`stream`: line N carries KEY:N, so a rerun of the same input
    /// replays its answers).
    #[arg(long, default_value = "")]
    pub idempotency_key: String,
    /// Print one JSON object per result instead of text.
    #[arg(long)]
    pub json: bool,
    /// An item attribute `key=value` (repeatable).
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    pub attrs: Vec<(String, String)>,
    /// A request header `key:value` (repeatable), e.g.
    /// `-H x-request-id:abc` (which becomes the items' trace id).
    #[arg(short = 'H', long = "header", value_name = "KEY:VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// TLS settings (for an `https://` address).
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn parse_attr(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once(':')
        .ok_or_else(|| format!("expected key:value, got {text:?}"))?;
    let key = key.trim().to_ascii_lowercase();
    let value = value.trim().to_owned();
    tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(key.as_bytes())
        .map_err(|_| format!("{key:?} is not a valid header name"))?;
    tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(value.as_str())
        .map_err(|_| format!("the value of header {key:?} is not printable ASCII"))?;
    Ok((key, value))
}

impl ClientArgs {
    /// Wraps `message` in a request carrying the `-H` headers.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        for (key, value) in &self.headers {
            // Both were checked when the flags were parsed.
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(key.as_bytes()),
                value.parse(),
            ) {
                request.metadata_mut().append(key, value);
            }
        }
        request
    }

    /// The `--attr` attributes.
    pub fn attributes(&self) -> std::collections::HashMap<String, String> {
        self.attrs.iter().cloned().collect()
    }

    /// Whether the connection speaks TLS.
    pub fn with_tls(&self) -> bool {
        address_url(&self.addr, &self.tls).starts_with("https://") || self.tls.ca_cert.is_some()
    }

    /// A Batcher client for `--addr`.
    pub(crate) async fn connect(
        &self,
    ) -> Result<batchgate::pb::batcher_client::BatcherClient<tonic::transport::Channel>, String>
    {
        Ok(batchgate::pb::batcher_client::BatcherClient::new(
            connect(&self.addr, &self.tls).await?,
        ))
    }
}

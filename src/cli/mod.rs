//! The command line: one binary that serves and is its own client.
//!
//! - `batchgate serve`: run the server (embedded default config, or
//!   `--config FILE`, with flags and `BATCHGATE_*` variables on top).
//! - `batchgate submit`: one item through `Submit`.
//! - `batchgate stream`: stdin lines as items over one `StreamSubmit`.
//! - `batchgate ctl`: the BatchControl API (queues, endpoints, stats).

mod ctl;
mod output;
mod serve;
mod stream;
mod submit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use self::output::code_name;
pub use self::{ctl::CtlArgs, serve::ServeArgs, stream::StreamArgs, submit::SubmitArgs};

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
    /// Load generator: drive a server and report items/s and latency.
    Bench(crate::bench::BenchArgs),
    /// Benchmark baseline: a bare tonic echo of the Batcher API, no batching.
    BareEcho(crate::bench::BareEchoArgs),
    /// Draw latency vs throughput of `bench --json` lines as an SVG.
    BenchChart(crate::bench::chart::ChartArgs),
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
        Command::Serve(args) => serve::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Stream(args) => stream::run(args).await,
        Command::Ctl(args) => ctl::run(*args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::BareEcho(args) => crate::bench::bare_echo(args).await,
        Command::BenchChart(args) => crate::bench::chart::run(args),
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
    /// (`submit` only; a stream's items carry none).
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

    async fn connect(
        &self,
    ) -> Result<crate::pb::batcher_client::BatcherClient<tonic::transport::Channel>, String> {
        Ok(crate::pb::batcher_client::BatcherClient::new(
            connect(&self.addr, &self.tls).await?,
        ))
    }
}

/// TLS flags of the client subcommands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// CA bundle (PEM) to verify the server (default: the web PKI roots).
    #[arg(long, env = "BATCHGATE_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for servers that require mutual TLS.
    #[arg(long, env = "BATCHGATE_CLIENT_CERT", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "BATCHGATE_CLIENT_KEY", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
}

/// The address as a URL: `host:port` (as grpcurl takes it) becomes
/// `http://host:port`, or `https://host:port` when TLS flags are given.
pub fn address_url(addr: &str, tls: &TlsArgs) -> String {
    if addr.contains("://") {
        return addr.to_owned();
    }
    let scheme = if tls.ca_cert.is_some() || tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// Connects to `addr` (`host:port` or a URL), with TLS when it is
/// `https://` or a CA is given.
///
/// # Errors
/// A message naming the address and the cause (refused, TLS handshake,
/// certificate), not just "transport error".
pub async fn connect(addr: &str, tls: &TlsArgs) -> Result<tonic::transport::Channel, String> {
    let url = address_url(addr, tls);
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .tcp_nodelay(true);
    let with_tls = url.starts_with("https://") || tls.ca_cert.is_some();
    if with_tls {
        let config = crate::tls::client(
            tls.ca_cert.as_deref(),
            tls.cert.as_deref(),
            tls.key.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| format!("TLS for {url}: {}", error_chain(&e)))?;
    }
    endpoint.connect().await.map_err(|e| {
        format!(
            "cannot connect to {url}: {}",
            explain(&error_chain(&e), with_tls)
        )
    })
}

/// An error and its sources, joined with ": ", without the generic
/// "transport error" and without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if text != "transport error" && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "transport error".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Adds what a user most likely has to do about a connection failure.
pub fn explain(cause: &str, with_tls: bool) -> String {
    let lower = cause.to_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|p| lower.contains(p));
    // The peer hung up: before TLS, it may want TLS; after, a certificate.
    let hung_up = says(&["connection reset", "broken pipe", "operation was canceled"]);
    let hint = if says(&["connection refused"]) {
        "connection refused: is batchgate running there, on that port?"
    } else if says(&["certificaterequired", "certificate required"]) {
        "the server requires a client certificate: give --cert and --key"
    } else if says(&["certificate", "unknownissuer"]) {
        "TLS certificate problem: give the server's CA with --ca-cert (and --cert/--key if it requires client certificates)"
    } else if with_tls && says(&["corrupt message", "invalidcontenttype", "wrong version"]) {
        "TLS handshake failed: the server does not seem to speak TLS (use http://)"
    } else if !with_tls
        && (hung_up || says(&["closed before", "frame with invalid size", "protocol error"]))
    {
        "the server closed the connection: it may expect TLS (use https:// and --ca-cert)"
    } else if with_tls && hung_up {
        "the server closed the TLS connection: it may require a client certificate (--cert and --key)"
    } else {
        return cause.to_owned();
    };
    format!("{hint} ({cause})")
}

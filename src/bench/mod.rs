//! The load generator (`batchgate bench`), the no-batching baseline server
//! (`batchgate bare-echo`) and the chart of a benchmark suite
//! (`batchgate bench-chart`).
//!
//! The generator drives any server that speaks `batchgate.v1.Batcher` over
//! real gRPC: unary calls over several connections, or bidi streams with a
//! window of items in flight each; closed loop (fixed concurrency) or open
//! loop (fixed arrival rate, latency measured from each item's intended send
//! time). It reuses its connections, pipelines stream writes and reads, and
//! reports its own CPU use so it can be seen not to be the bottleneck.

pub mod bare;
pub mod chart;
pub mod load;
pub mod report;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::transport::{Channel, Endpoint};

use self::{
    load::{Plan, Progress},
    report::{Report, process_cpu},
};
use crate::{
    app::{self, Listeners},
    config::Config,
};

/// Flags of `batchgate bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server to drive.
    #[arg(long, env = "BATCHGATE_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Start a server in this process instead (embedded default config, or
    /// --config), on a free port.
    #[arg(long)]
    pub in_process: bool,
    /// Config of the in-process server.
    #[arg(long, requires = "in_process")]
    pub config: Option<PathBuf>,
    /// unary (Submit) or stream (StreamSubmit).
    #[arg(long, value_enum, default_value = "unary")]
    pub mode: Mode,
    /// Queue to submit to.
    #[arg(long, short, default_value = "echo")]
    pub queue: String,
    /// Unary: calls in flight. Stream: unanswered items per stream.
    #[arg(long, short, default_value_t = 64)]
    pub concurrency: usize,
    /// HTTP/2 connections to spread calls or streams over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Bidi streams (stream mode).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Open loop: items per second over all workers (0: closed loop).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Payload bytes per item.
    #[arg(long, default_value_t = 16)]
    pub payload_size: usize,
    /// How long to measure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Stop after this many measured items (0: run for --duration).
    #[arg(long, default_value_t = 0)]
    pub items: u64,
    /// Warm-up before measuring.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Name of this series in reports and charts.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Exit 1 if any item failed, or (with --items) not exactly that many
    /// items were answered.
    #[arg(long)]
    pub fail_on_error: bool,
}

/// unary or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One Submit call per item.
    Unary,
    /// Items over long-lived StreamSubmit streams.
    Stream,
}

/// Runs `batchgate bench`.
pub async fn run(args: BenchArgs) -> ExitCode {
    match execute(args).await {
        Ok(report_failed) => report_failed,
        Err(e) => {
            eprintln!("batchgate bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(args: BenchArgs) -> Result<ExitCode, String> {
    let mut in_process = None;
    let addr = if args.in_process {
        let mut config = match &args.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::embedded_default(),
        };
        config.server.grpc_addr = ([127, 0, 0, 1], 0).into();
        config.server.metrics_addr = ([127, 0, 0, 1], 0).into();
        config.server.control_addr = None;
        config.validate().map_err(|e| e.to_string())?;
        let listeners = Listeners::bind(&config).await.map_err(|e| e.to_string())?;
        let addr = listeners.grpc_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app::run(config, listeners, async move {
            let _ = stopped.await;
        }));
        in_process = Some((stop, server));
        format!("http://{addr}")
    } else {
        args.addr.clone()
    };

    let mut channels = Vec::with_capacity(args.connections.max(1));
    for _ in 0..args.connections.max(1) {
        channels.push(connect(&addr).await?);
    }
    let plan = Plan {
        queue: args.queue.clone(),
        payload: Bytes::from(vec![b'x'; args.payload_size]),
        concurrency: args.concurrency.max(1),
        streams: match args.mode {
            Mode::Unary => 0,
            Mode::Stream => args.streams.max(1),
        },
        rate: args.rate.max(0.0),
        duration: args.duration,
        items: args.items,
        warmup: args.warmup,
    };
    let progress = Arc::new(Progress::default());
    let bar = (!args.quiet && !args.json).then(|| progress_bar(&args));
    let ticker = bar.clone().map(|bar| {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
            }
        })
    });

    let cpu_before = process_cpu();
    let wall = std::time::Instant::now();
    let (tally, measured) = load::run(plan.clone(), channels, progress).await;
    let (cpu, wall) = (process_cpu().saturating_sub(cpu_before), wall.elapsed());
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let label = if args.label.is_empty() {
        format!("{:?} {} c={}", args.mode, args.queue, args.concurrency).to_lowercase()
    } else {
        args.label.clone()
    };
    let mut report = Report::new(
        label,
        &plan,
        args.connections.max(1),
        &tally,
        measured,
        cpu,
        wall,
    );
    if in_process.is_some() {
        // Server and generator share this process: the CPU is both.
        report.client_cpu_percent = f64::NAN;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        out!("{}", report.table());
    }
    if let Some((stop, server)) = in_process {
        let _ = stop.send(());
        let _ = server.await;
    }
    let wrong_count = args.items > 0 && report.items != args.items;
    let failed = report.failed() > 0 || report.items == 0 || wrong_count;
    if args.fail_on_error && failed {
        eprintln!(
            "batchgate bench: {} items answered ({} expected), {} failed",
            report.items,
            if args.items > 0 {
                args.items.to_string()
            } else {
                "some".into()
            },
            report.failed()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn connect(addr: &str) -> Result<Channel, String> {
    Endpoint::from_shared(addr.to_owned())
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

fn progress_bar(args: &BenchArgs) -> ProgressBar {
    let bar = if args.items > 0 {
        ProgressBar::new(args.items)
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {pos} items ({per_sec}) {wide_bar}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Flags of `batchgate bare-echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct BareEchoArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub addr: std::net::SocketAddr,
}

/// Runs `batchgate bare-echo` until interrupted.
pub async fn bare_echo(args: BareEchoArgs) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("batchgate bare-echo: cannot bind {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    eprintln!("bare tonic echo (no batching) on {}", args.addr);
    tokio::select! {
        result = bare::serve(listener) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("batchgate bare-echo: {e}");
                ExitCode::FAILURE
            }
        },
        () = crate::shutdown::signal() => ExitCode::SUCCESS,
    }
}

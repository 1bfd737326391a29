//! `batchgate bench` and `batchgate bench-echo`: their arguments, the
//! sweep of concurrency or rate, running each point with its progress bar,
//! and the bare echo server.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::transport::Channel;

use crate::{
    load::{Plan, Progress},
    report::{Report, process_cpu},
};
use batchgate::{
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
    /// Every item's batch key (empty: none).
    #[arg(long, default_value = "")]
    pub batch_key: String,
    /// v2 mode: the input tensor's name (its row is FP32 of
    /// `--payload-size` / 4 values).
    #[arg(long, default_value = "x")]
    pub v2_input: String,
    /// Each item's cost (its request's `cost` field): `N`, or
    /// `lognormal:MEDIAN:P99` (e.g. "lognormal:40:400", token counts with a
    /// long tail). Unset: none.
    #[arg(long, value_parser = super::costs::Costs::parse)]
    pub cost: Option<super::costs::Costs>,
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
    /// Also count the items answered OK within this latency, e.g. "20ms"
    /// (goodput, in the report's `within`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub within: Option<Duration>,
    /// Sweep the concurrency: `START:END[:STEP]`, STEP `x2` (times, the
    /// default), `+16` or `16` (plus, as perf_analyzer's
    /// `--concurrency-range`); one run (warm-up + duration) per point.
    #[arg(long, value_name = "START:END[:STEP]", value_parser = Sweep::parse)]
    pub concurrency_range: Option<Sweep>,
    /// Sweep the open-loop rate (items/s), like --concurrency-range.
    #[arg(long, value_name = "START:END[:STEP]", value_parser = Sweep::parse)]
    pub rate_range: Option<Sweep>,
    /// Print one CSV line per run (with a header line) instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

/// A range of values to sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sweep {
    /// First value.
    start: f64,
    /// Last value (inclusive when a step lands on it).
    end: f64,
    /// How the next value follows.
    step: Step,
}

/// How a sweep steps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// Multiply by this (> 1).
    Times(f64),
    /// Add this (> 0).
    Plus(f64),
}

/// Most runs one sweep may ask for.
const MAX_SWEEP_POINTS: usize = 100;

impl Sweep {
    /// Parses `START:END[:STEP]`.
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let number = |s: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{s:?} is not a positive number"))
        };
        let (start, end, step) = match parts.as_slice() {
            [start, end] => (number(start)?, number(end)?, Step::Times(2.0)),
            [start, end, step] => {
                let step =
                    if let Some(f) = step.strip_prefix('x').or(step.strip_prefix('*')) {
                        Step::Times(number(f)?)
                    } else {
                        // `+16`, or a bare `16` as perf_analyzer takes it.
                        let n = step.strip_prefix('+').unwrap_or(step);
                        Step::Plus(number(n).map_err(|_| {
                            format!("step {step:?} must be xFACTOR, +AMOUNT or AMOUNT")
                        })?)
                    };
                (number(start)?, number(end)?, step)
            }
            _ => return Err(format!("expected START:END[:STEP], got {text:?}")),
        };
        if end < start {
            return Err(format!("the end {end} is below the start {start}"));
        }
        if matches!(step, Step::Times(f) if f <= 1.0) {
            return Err("a xFACTOR step must be above 1".into());
        }
        let sweep = Self { start, end, step };
        if sweep.points().len() > MAX_SWEEP_POINTS {
            return Err(format!(
                "more than {MAX_SWEEP_POINTS} runs: take a larger step"
            ));
        }
        Ok(sweep)
    }

    /// The values, from start to at most end.
    pub fn points(&self) -> Vec<f64> {
        let mut points = Vec::new();
        let mut v = self.start;
        while v <= self.end * (1.0 + 1e-9) && points.len() <= MAX_SWEEP_POINTS {
            points.push(v);
            v = match self.step {
                Step::Times(f) => v * f,
                Step::Plus(n) => v + n,
            };
        }
        points
    }
}

/// The (concurrency, rate) of each run the flags ask for.
fn runs(args: &BenchArgs) -> Vec<(usize, f64)> {
    let concurrencies: Vec<usize> = match &args.concurrency_range {
        Some(sweep) => sweep.points().iter().map(|c| c.round() as usize).collect(),
        None => vec![args.concurrency],
    };
    let rates = match &args.rate_range {
        Some(sweep) => sweep.points(),
        None => vec![args.rate],
    };
    concurrencies
        .iter()
        .flat_map(|&c| rates.iter().map(move |&r| (c.max(1), r.max(0.0))))
        .collect()
}

/// unary or stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One Submit call per item.
    Unary,
    /// Items over long-lived StreamSubmit streams.
    Stream,
    /// One Open Inference Protocol ModelInfer per item (a row of FP32, the
    /// payload's bytes, as input `--v2-input` of model `--queue`): against
    /// batchgate's v2 front door or any v2 server.
    V2,
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
    if args.mode == Mode::V2 && (args.payload_size == 0 || !args.payload_size.is_multiple_of(4)) {
        return Err(format!(
            "--mode v2 sends a row of FP32: --payload-size must be a multiple of 4, got {}",
            args.payload_size
        ));
    }
    let mut in_process = None;
    let addr = if args.in_process {
        let mut config = match &args.config {
            Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
            None => Config::embedded_default(),
        };
        config.server.grpc_addr = ([127, 0, 0, 1], 0).into();
        config.server.metrics_addr = ([127, 0, 0, 1], 0).into();
        config.server.control_addr = None;
        // The load generator's own server keeps no jobs (no store file).
        config.jobs = None;
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
    if args.csv {
        outln!("{}", Report::CSV_HEADER);
    }
    let mut failed = false;
    for (concurrency, rate) in runs(&args) {
        failed |= run_one(&args, &channels, concurrency, rate, in_process.is_some()).await?;
    }
    if let Some((stop, server)) = in_process {
        let _ = stop.send(());
        let _ = server.await;
    }
    Ok(if args.fail_on_error && failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One run at `concurrency` and `rate`, printed; returns whether it failed
/// (an item failed, none was answered, or not exactly `--items`).
async fn run_one(
    args: &BenchArgs,
    channels: &[Channel],
    concurrency: usize,
    rate: f64,
    in_process: bool,
) -> Result<bool, String> {
    let plan = Plan {
        queue: args.queue.clone(),
        payload: Bytes::from(vec![b'x'; args.payload_size]),
        batch_key: args.batch_key.clone(),
        costs: args.cost,
        concurrency,
        streams: match args.mode {
            Mode::Unary | Mode::V2 => 0,
            Mode::Stream => args.streams.max(1),
        },
        v2_input: (args.mode == Mode::V2).then(|| args.v2_input.clone()),
        rate,
        duration: args.duration,
        items: args.items,
        warmup: args.warmup,
    };
    let progress = Arc::new(Progress::default());
    let bar = (!args.quiet && !args.json && !args.csv).then(|| progress_bar(&plan));
    let ticker = bar.clone().map(|bar| {
        let progress = progress.clone();
        let plan = plan.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                show_progress(&bar, &plan, &progress, started.elapsed());
            }
        })
    });

    let cpu_before = process_cpu();
    let wall = std::time::Instant::now();
    let (tally, measured) = super::load::drive(plan.clone(), channels.to_vec(), progress).await;
    let (cpu, wall) = (process_cpu().saturating_sub(cpu_before), wall.elapsed());
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let label = if args.label.is_empty() {
        let mut label = format!("{:?} {} c={concurrency}", args.mode, args.queue).to_lowercase();
        if rate > 0.0 {
            label.push_str(&format!(" r={rate}"));
        }
        label
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
    if in_process {
        // Server and generator share this process: the CPU is both.
        report.client_cpu_percent = f64::NAN;
    }
    if let Some(limit) = args.within {
        report.within = Some(super::report::Within::new(
            &tally.latency_us,
            limit,
            measured,
        ));
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else if args.csv {
        outln!("{}", report.csv_line());
    } else {
        out!("{}", report.table());
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
    }
    Ok(failed)
}

/// A connection to `addr` (`host:port` or a URL), its failure in words.
async fn connect(addr: &str) -> Result<Channel, String> {
    batchgate::dial::connect(addr, &batchgate::dial::TlsArgs::default()).await
}

/// A bar that fills over the measured items (`--items`) or the measured
/// time, with the measured items and their rate as its message.
fn progress_bar(plan: &Plan) -> ProgressBar {
    let length = if plan.items > 0 {
        plan.items
    } else {
        u64::try_from(plan.duration.as_millis()).unwrap_or(u64::MAX)
    };
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("warming up");
    bar
}

/// Updates the bar `elapsed` after the run started: position by items or
/// measured time, rate as the report will compute it (measured items over
/// measured time, warm-up excluded).
fn show_progress(bar: &ProgressBar, plan: &Plan, progress: &Progress, elapsed: Duration) {
    let measured = elapsed.saturating_sub(plan.warmup);
    if measured.is_zero() {
        return;
    }
    let done = progress.done.load(std::sync::atomic::Ordering::Relaxed);
    bar.set_position(if plan.items > 0 {
        done
    } else {
        u64::try_from(measured.as_millis()).unwrap_or(u64::MAX)
    });
    bar.set_message(format!(
        "{done} items · {:.0} items/s",
        done as f64 / measured.as_secs_f64()
    ));
}

/// Flags of `batchgate bare-echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct BareEchoArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub addr: std::net::SocketAddr,
    /// As a Backend, wait this long per batch before answering (e.g. "2ms").
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub batch_delay: std::time::Duration,
    /// One batch at a time (as on a GPU): calls wait for each other.
    #[arg(long)]
    pub serial: bool,
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
    let echo = super::bare::BareEcho {
        batch_delay: args.batch_delay,
        serial: args.serial.then(Default::default),
    };
    tokio::select! {
        result = super::bare::serve(listener, echo) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("batchgate bare-echo: {e}");
                ExitCode::FAILURE
            }
        },
        () = batchgate::shutdown::signal() => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests;

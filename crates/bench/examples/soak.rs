//! The soak load (`bench/soak.sh`): Submit calls and StreamSubmit streams
//! mixed, at a fixed open-loop rate (or closed loop, to measure capacity),
//! where every item has its own id and payload, so that each answer can be
//! checked against its item: an answer with another item's payload is
//! `wrong`, a second answer to one item is `duplicated`, an item never
//! answered is `lost`. Latency counts from each item's intended send time
//! (no coordinated omission) and is kept per segment of the run (a minute by
//! default), for the p99 of each minute.
//!
//! `cargo run --release --example soak -- --addr http://127.0.0.1:50051 -q echo --rate 20000 --duration 60s`
//! prints one JSON object on stdout.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use batchgate::pb::{self, batcher_client::BatcherClient, stream_response::Outcome};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
    time::Instant,
};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Server to drive.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Queue to submit to.
    #[arg(long, short, default_value = "echo")]
    queue: String,
    /// Items per second over unary calls and streams together; 0: closed
    /// loop (each unary worker and stream window as busy as it can be).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Share of the items sent over streams (the rest are unary calls).
    #[arg(long, default_value_t = 0.5)]
    stream_share: f64,
    /// Bidi streams.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Unary calls in flight at most (closed loop: exactly).
    #[arg(long, default_value_t = 256)]
    unary_in_flight: usize,
    /// Unanswered items per stream at most (closed loop: exactly).
    #[arg(long, default_value_t = 1024)]
    window: usize,
    /// HTTP/2 connections to spread calls and streams over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Items take batch keys `t0`..`t{N-1}` in turn (0: no key).
    #[arg(long, default_value_t = 4)]
    keys: u64,
    /// Give every item an idempotency key of its own.
    #[arg(long)]
    idempotency: bool,
    /// How long to send.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    duration: Duration,
    /// Length of one latency segment.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    segment: Duration,
    /// How long to wait for the answers of items in flight at the end.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    drain: Duration,
}

/// The payload of item `id`: its id, 16 hex digits.
fn payload(id: u64) -> bytes::Bytes {
    bytes::Bytes::from(format!("{id:016x}"))
}

/// Counts and latencies of one kind of call, per segment.
struct Tally {
    sent: u64,
    ok: u64,
    wrong: u64,
    duplicated: u64,
    lost: u64,
    errors: BTreeMap<String, u64>,
    segments: Vec<Histogram<u64>>,
}

impl Tally {
    fn new(segments: usize) -> Self {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid constant bounds");
        Self {
            sent: 0,
            ok: 0,
            wrong: 0,
            duplicated: 0,
            lost: 0,
            errors: BTreeMap::new(),
            segments: (0..segments).map(|_| h()).collect(),
        }
    }

    fn ok(&mut self, segment: usize, latency: Duration) {
        self.ok += 1;
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.segments.len() - 1;
        self.segments[segment.min(last)].saturating_record(us);
    }

    fn error(&mut self, code: tonic::Code) {
        *self.errors.entry(format!("{code:?}")).or_default() += 1;
    }
}

/// When each item is meant to be sent: at a fixed rate, or (rate 0) now.
struct Pacer {
    start: Instant,
    end: Instant,
    rate: f64,
    taken: AtomicU64,
}

impl Pacer {
    /// The next item's intended send time, None once the run is over.
    async fn next(&self) -> Option<Instant> {
        let at = if self.rate > 0.0 {
            let k = self.taken.fetch_add(1, Ordering::Relaxed);
            self.start + Duration::from_secs_f64(k as f64 / self.rate)
        } else {
            Instant::now()
        };
        if at >= self.end {
            return None;
        }
        tokio::time::sleep_until(at).await;
        Some(at)
    }
}

/// What every worker shares.
struct Run {
    args: Args,
    ids: AtomicU64,
    segment_count: usize,
}

impl Run {
    fn segment(&self, pacer: &Pacer, at: Instant) -> usize {
        let since = at.saturating_duration_since(pacer.start).as_secs_f64();
        (since / self.args.segment.as_secs_f64()) as usize
    }

    fn batch_key(&self, id: u64) -> String {
        match self.args.keys {
            0 => String::new(),
            n => format!("t{}", id % n),
        }
    }

    fn idempotency_key(&self, id: u64) -> String {
        if self.args.idempotency {
            format!("soak-{id}")
        } else {
            String::new()
        }
    }
}

async fn unary_worker(
    run: Arc<Run>,
    pacer: Arc<Pacer>,
    channel: Channel,
    tally: Arc<Mutex<Tally>>,
) {
    let mut client = BatcherClient::new(channel);
    while let Some(at) = pacer.next().await {
        let id = run.ids.fetch_add(1, Ordering::Relaxed);
        let mut request = tonic::Request::new(pb::SubmitRequest {
            queue: run.args.queue.clone(),
            payload: payload(id),
            batch_key: run.batch_key(id),
            idempotency_key: run.idempotency_key(id),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(30));
        lock(&tally).sent += 1;
        let result = client.submit(request).await;
        let latency = at.elapsed();
        let mut t = lock(&tally);
        match result {
            Ok(r) if r.get_ref().payload == payload(id) => t.ok(run.segment(&pacer, at), latency),
            Ok(_) => t.wrong += 1,
            Err(status) => t.error(status.code()),
        }
    }
}

async fn stream_worker(
    run: Arc<Run>,
    pacer: Arc<Pacer>,
    channel: Channel,
    tally: Arc<Mutex<Tally>>,
) {
    let mut client = BatcherClient::new(channel);
    // Each unanswered item's intended send time; a permit per item in flight.
    let pending: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let window = Arc::new(Semaphore::new(run.args.window.max(1)));
    let (tx, rx) = mpsc::channel::<pb::StreamRequest>(256);
    let sender = {
        let (run, pacer, pending, window, tally) = (
            run.clone(),
            pacer.clone(),
            pending.clone(),
            window.clone(),
            tally.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok(permit) = window.acquire().await else {
                    break;
                };
                permit.forget();
                let Some(at) = pacer.next().await else { break };
                let id = run.ids.fetch_add(1, Ordering::Relaxed);
                lock(&pending).insert(id, at);
                lock(&tally).sent += 1;
                let item = pb::StreamRequest {
                    id: id.to_string(),
                    queue: run.args.queue.clone(),
                    payload: payload(id),
                    batch_key: run.batch_key(id),
                    idempotency_key: run.idempotency_key(id),
                    ..Default::default()
                };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
            // Dropping tx half-closes the stream.
        })
    };
    let mut answers = match client.stream_submit(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            lock(&tally).error(status.code());
            sender.abort();
            return;
        }
    };
    let mut answered = std::collections::HashSet::new();
    let mut deadline = None;
    loop {
        if deadline.is_none() && sender.is_finished() {
            deadline = Some(Instant::now() + run.args.drain);
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, answers.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => match tokio::time::timeout(Duration::from_millis(200), answers.next()).await {
                Ok(next) => next,
                Err(_) => continue,
            },
        };
        let Some(Ok(answer)) = next else { break };
        let mut t = lock(&tally);
        let Ok(id) = answer.id.parse::<u64>() else {
            t.wrong += 1;
            continue;
        };
        let Some(at) = lock(&pending).remove(&id) else {
            if answered.contains(&id) {
                t.duplicated += 1;
            } else {
                t.wrong += 1;
            }
            continue;
        };
        answered.insert(id);
        window.add_permits(1);
        match answer.outcome {
            Some(Outcome::Result(r)) if r.payload == payload(id) => {
                t.ok(run.segment(&pacer, at), at.elapsed());
            }
            Some(Outcome::Result(_)) => t.wrong += 1,
            Some(Outcome::Error(e)) => t.error(tonic::Code::from(e.code)),
            None => t.error(tonic::Code::Internal),
        }
    }
    sender.abort();
    lock(&tally).lost += lock(&pending).len() as u64;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn report(kind: &str, t: &Tally, seconds: f64) -> serde_json::Value {
    let segments: Vec<_> = t
        .segments
        .iter()
        .enumerate()
        .map(|(i, h)| {
            serde_json::json!({
                "segment": i, "ok": h.len(),
                "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
                "max_us": h.max(),
            })
        })
        .collect();
    serde_json::json!({
        "kind": kind, "sent": t.sent, "ok": t.ok, "errors": t.errors, "wrong": t.wrong,
        "duplicated": t.duplicated, "lost": t.lost, "items_per_sec": t.ok as f64 / seconds,
        "segments": segments,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(Endpoint::from_shared(args.addr.clone())?.connect().await?);
    }
    let segment_count = (args.duration.as_secs_f64() / args.segment.as_secs_f64()).ceil() as usize;
    let run = Arc::new(Run {
        args: args.clone(),
        ids: AtomicU64::new(0),
        segment_count: segment_count.max(1),
    });
    let start = Instant::now() + Duration::from_millis(100);
    let pacer = |rate: f64| {
        Arc::new(Pacer {
            start,
            end: start + args.duration,
            rate,
            taken: AtomicU64::new(0),
        })
    };
    let share = args.stream_share.clamp(0.0, 1.0);
    let unary_pacer = pacer(args.rate * (1.0 - share));
    let stream_pacers: Vec<_> = (0..args.streams)
        .map(|_| pacer(args.rate * share / args.streams.max(1) as f64))
        .collect();
    let unary = Arc::new(Mutex::new(Tally::new(run.segment_count)));
    let stream = Arc::new(Mutex::new(Tally::new(run.segment_count)));
    let mut workers = JoinSet::new();
    if share < 1.0 {
        for i in 0..args.unary_in_flight {
            let channel = channels[i % channels.len()].clone();
            workers.spawn(unary_worker(
                run.clone(),
                unary_pacer.clone(),
                channel,
                unary.clone(),
            ));
        }
    }
    if share > 0.0 {
        for (i, p) in stream_pacers.into_iter().enumerate() {
            let channel = channels[i % channels.len()].clone();
            workers.spawn(stream_worker(run.clone(), p, channel, stream.clone()));
        }
    }
    while workers.join_next().await.is_some() {}
    let seconds = args.duration.as_secs_f64();
    let (u, s) = (lock(&unary), lock(&stream));
    let mut all = Tally::new(run.segment_count);
    for (i, h) in all.segments.iter_mut().enumerate() {
        h.add(&u.segments[i])?;
        h.add(&s.segments[i])?;
    }
    all.sent = u.sent + s.sent;
    all.ok = u.ok + s.ok;
    all.wrong = u.wrong + s.wrong;
    all.duplicated = u.duplicated + s.duplicated;
    all.lost = u.lost + s.lost;
    for (code, n) in u.errors.iter().chain(&s.errors) {
        *all.errors.entry(code.clone()).or_default() += n;
    }
    let out = serde_json::json!({
        "rate": args.rate, "duration_s": seconds, "segment_s": args.segment.as_secs_f64(),
        "items_per_sec": (u.ok + s.ok) as f64 / seconds,
        "all": report("all", &all, seconds), "unary": report("unary", &u, seconds),
        "stream": report("stream", &s, seconds),
    });
    println!("{out}");
    Ok(())
}

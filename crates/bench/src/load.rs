//! The load itself: unary calls or bidi streams, closed or open loop, with
//! every latency in an HDR histogram.
//!
//! Each worker keeps its own histograms and counters and hands them back at
//! the end, so workers share nothing but one progress counter. In open loop
//! each request has an intended send time and its latency counts from there,
//! so a slow server cannot hide its slowness by slowing the sender down
//! (no coordinated omission).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{sync::mpsc, task::JoinSet, time::Instant};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::Channel;

pub use super::tally::{BatchSizeCounts, WorkerTally};
use batchgate::{
    oip::{self, pb::grpc_inference_service_client::GrpcInferenceServiceClient},
    pb::{self, batcher_client::BatcherClient, stream_response::Outcome},
};

/// What one run does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Queue to submit to.
    pub queue: String,
    /// Payload bytes per item.
    pub payload: Bytes,
    /// Every item's batch key (empty: none).
    pub batch_key: String,
    /// Each item's cost, if items carry one.
    pub costs: Option<super::costs::Costs>,
    /// Unary: calls in flight. Stream: unanswered items per stream.
    pub concurrency: usize,
    /// Bidi streams (stream mode); 0 means unary mode.
    pub streams: usize,
    /// v2 mode (unary ModelInfer calls): the input tensor's name.
    pub v2_input: Option<String>,
    /// Items per second over all workers; 0 means closed loop.
    pub rate: f64,
    /// Measure for this long after warm-up (unless `items` ends it first).
    pub duration: Duration,
    /// Stop after this many measured items (0: no limit).
    pub items: u64,
    /// Run this long before measuring.
    pub warmup: Duration,
}

/// The shared clock of a run: when measuring starts and stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    stop_at: Instant,
}

impl Window {
    fn measuring(&self, t: Instant) -> bool {
        t >= self.measure_from
    }
}

/// Counts measured items for the progress bar and the item limit.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items measured so far (successes and failures).
    pub done: AtomicU64,
    /// Measured items sent so far, so exactly `Plan::items` are sent.
    claimed: AtomicU64,
}

impl Progress {
    /// Claims the right to send one more measured item.
    fn claim(&self, plan: &Plan) -> bool {
        plan.items == 0 || self.claimed.fetch_add(1, Ordering::Relaxed) < plan.items
    }
}

/// Runs the plan over `channels` (connections), returning the merged tally
/// and the measured wall time.
pub async fn drive(
    plan: Plan,
    channels: Vec<Channel>,
    progress: Arc<Progress>,
) -> (WorkerTally, Duration) {
    let start = Instant::now();
    let window = Window {
        measure_from: start + plan.warmup,
        stop_at: start + plan.warmup + plan.duration,
    };
    let mut workers = JoinSet::new();
    if plan.streams == 0 {
        let pacer = (plan.rate > 0.0).then(|| Pacer::start(plan.rate, start, window.stop_at));
        for i in 0..plan.concurrency {
            let caller = Caller::new(&plan, channels[i % channels.len()].clone());
            workers.spawn(unary_worker(
                plan.clone(),
                caller,
                pacer.clone(),
                (window, i),
                progress.clone(),
            ));
        }
    } else {
        for i in 0..plan.streams {
            let client = BatcherClient::new(channels[i % channels.len()].clone());
            workers.spawn(stream_worker(
                plan.clone(),
                client,
                window,
                i,
                progress.clone(),
            ));
        }
    }
    let mut total = WorkerTally::new();
    while let Some(done) = workers.join_next().await {
        if let Ok(tally) = done {
            total.merge(tally);
        }
    }
    let measured = Instant::now()
        .min(window.stop_at)
        .saturating_duration_since(window.measure_from);
    (total, measured)
}

/// Hands out open-loop send slots at their scheduled instants.
///
/// A thread wakes every [`PACER_STEP`] and releases the slots that are due,
/// so intended send times hold to about a tenth of a millisecond; tokio's
/// timer would release them in whole-millisecond bursts and charge up to a
/// millisecond of the generator's own lateness to the server.
#[derive(Debug)]
struct Pacer {
    /// One permit per slot that is due.
    slots: Arc<tokio::sync::Semaphore>,
    /// Slots handed out so far; slot k is due at `start + k / rate`.
    taken: AtomicU64,
    /// When slot 0 is due.
    start: Instant,
    /// Items per second.
    rate: f64,
}

/// How often the pacer thread releases due slots.
const PACER_STEP: Duration = Duration::from_micros(100);

impl Pacer {
    /// Starts releasing `rate` slots per second from `start` until `until`.
    fn start(rate: f64, start: Instant, until: Instant) -> Arc<Self> {
        let pacer = Arc::new(Self {
            slots: Arc::new(tokio::sync::Semaphore::new(0)),
            taken: AtomicU64::new(0),
            start,
            rate,
        });
        let (slots, start, until) = (pacer.slots.clone(), start.into_std(), until.into_std());
        std::thread::spawn(move || {
            let mut released: u64 = 0;
            loop {
                let now = std::time::Instant::now();
                let due = (now.saturating_duration_since(start).as_secs_f64() * rate) as u64;
                if due > released {
                    slots.add_permits(usize::try_from(due - released).unwrap_or(usize::MAX));
                    released = due;
                }
                if now >= until {
                    slots.close();
                    return;
                }
                std::thread::sleep(PACER_STEP);
            }
        });
        pacer
    }

    /// Waits for the next due slot; returns its intended send time, or
    /// `None` once the run is over.
    async fn next(&self) -> Option<Instant> {
        self.slots.acquire().await.ok()?.forget();
        let k = self.taken.fetch_add(1, Ordering::Relaxed);
        Some(self.start + Duration::from_secs_f64(k as f64 / self.rate))
    }
}

fn limit_reached(plan: &Plan, progress: &Progress) -> bool {
    plan.items > 0 && progress.done.load(Ordering::Relaxed) >= plan.items
}

/// One unary call per item: a batchgate.v1 Submit, or a v2 ModelInfer.
enum Caller {
    V1(BatcherClient<Channel>, pb::SubmitRequest),
    V2(
        GrpcInferenceServiceClient<Channel>,
        oip::pb::ModelInferRequest,
    ),
}

impl Caller {
    fn new(plan: &Plan, channel: Channel) -> Self {
        match &plan.v2_input {
            None => Caller::V1(
                BatcherClient::new(channel),
                pb::SubmitRequest {
                    queue: plan.queue.clone(),
                    payload: plan.payload.clone(),
                    batch_key: plan.batch_key.clone(),
                    ..Default::default()
                },
            ),
            Some(input) => Caller::V2(
                GrpcInferenceServiceClient::new(channel),
                oip::pb::ModelInferRequest {
                    model_name: plan.queue.clone(),
                    inputs: vec![oip::pb::model_infer_request::InferInputTensor {
                        name: input.clone(),
                        datatype: "FP32".to_owned(),
                        shape: vec![1, (plan.payload.len() / 4) as i64],
                        ..Default::default()
                    }],
                    raw_input_contents: vec![plan.payload.clone()],
                    ..Default::default()
                },
            ),
        }
    }

    /// One call; the batch it rode in, when the answer says.
    async fn call(&mut self, cost: Option<u64>) -> Result<Option<pb::BatchInfo>, tonic::Status> {
        match self {
            Caller::V1(client, request) => {
                request.cost = cost;
                let r = client.submit(request.clone()).await?;
                Ok(r.into_inner().batch)
            }
            Caller::V2(client, request) => {
                client.model_infer(request.clone()).await?;
                Ok(None)
            }
        }
    }
}

async fn unary_worker(
    plan: Plan,
    mut caller: Caller,
    pacer: Option<Arc<Pacer>>,
    (window, worker): (Window, usize),
    progress: Arc<Progress>,
) -> WorkerTally {
    let mut tally = WorkerTally::new();
    let mut rng = fastrand::Rng::with_seed(worker as u64);
    loop {
        let intended = match &pacer {
            Some(pacer) => match pacer.next().await {
                Some(at) => at,
                None => break,
            },
            None => Instant::now(),
        };
        if intended >= window.stop_at || limit_reached(&plan, &progress) {
            break;
        }
        if window.measuring(intended) && !progress.claim(&plan) {
            break;
        }
        let cost = plan.costs.map(|c| c.draw(&mut rng));
        let result = caller.call(cost).await;
        let done = Instant::now();
        if !window.measuring(intended) {
            continue;
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(batch) => tally.success(done - intended, batch.as_ref(), done < window.stop_at),
            Err(status) => tally.failure(status.code()),
        }
    }
    tally
}

async fn stream_worker(
    plan: Plan,
    mut client: BatcherClient<Channel>,
    window: Window,
    worker: usize,
    progress: Arc<Progress>,
) -> WorkerTally {
    let mut tally = WorkerTally::new();
    let slots = plan.concurrency.max(1);
    // Send time of the item in each slot (ns since `origin`); a slot's id is
    // reused only after its answer came back.
    let origin = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..slots).map(|_| AtomicU64::new(0)).collect());
    let (free_tx, free_rx) = mpsc::channel::<usize>(slots);
    for slot in 0..slots {
        let _ = free_tx.try_send(slot);
    }
    // Dropped when sending stops, which ends the request stream.
    let mut free_tx = Some(free_tx);
    let ids: Arc<Vec<String>> = Arc::new((0..slots).map(|s| s.to_string()).collect());
    let rate_interval =
        (plan.rate > 0.0).then(|| Duration::from_secs_f64(plan.streams as f64 / plan.rate));
    let first = origin
        + rate_interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / plan.streams as f64)
        });
    let requests = {
        let batch_key = plan.batch_key.clone();
        let (queue, payload, sent_at, ids) = (
            plan.queue.clone(),
            plan.payload.clone(),
            sent_at.clone(),
            ids.clone(),
        );
        let (stop_at, measure_from) = (window.stop_at, window.measure_from);
        let mut k: u32 = 0;
        let (costs, mut rng) = (plan.costs, fastrand::Rng::with_seed(worker as u64));
        ReceiverStream::new(free_rx)
            .then(move |slot| {
                let at = rate_interval.map(|i| first + i * k);
                k = k.saturating_add(1);
                async move {
                    if let Some(at) = at
                        && at > Instant::now()
                    {
                        tokio::time::sleep_until(at).await;
                    }
                    (slot, at)
                }
            })
            .take_while({
                let (plan, progress) = (plan.clone(), progress.clone());
                move |_| {
                    let now = Instant::now();
                    now < stop_at && (now < measure_from || progress.claim(&plan))
                }
            })
            .map(move |(slot, at)| {
                let t = at.unwrap_or_else(Instant::now);
                let ns = u64::try_from(t.saturating_duration_since(origin).as_nanos())
                    .unwrap_or(u64::MAX);
                sent_at[slot].store(ns, Ordering::Relaxed);
                pb::StreamRequest {
                    id: ids[slot].clone(),
                    queue: queue.clone(),
                    payload: payload.clone(),
                    batch_key: batch_key.clone(),
                    cost: costs.map(|c| c.draw(&mut rng)),
                    ..Default::default()
                }
            })
    };
    let mut answers = match client.stream_submit(requests).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            tally.failure(status.code());
            return tally;
        }
    };
    let mut stopping = false;
    loop {
        if !stopping && (Instant::now() >= window.stop_at || limit_reached(&plan, &progress)) {
            // Stop sending (half-close): answers of items in flight still arrive.
            stopping = true;
            free_tx = None;
        }
        let next = if stopping {
            match tokio::time::timeout(Duration::from_secs(10), answers.next()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            answers.next().await
        };
        let Some(answer) = next else { break };
        let Ok(answer) = answer else { break };
        let now = Instant::now();
        let Ok(slot) = answer.id.parse::<usize>() else {
            continue;
        };
        let Some(sent) = sent_at.get(slot) else {
            continue;
        };
        let sent = origin + Duration::from_nanos(sent.load(Ordering::Relaxed));
        if window.measuring(sent) && sent < window.stop_at {
            progress.done.fetch_add(1, Ordering::Relaxed);
            match &answer.outcome {
                Some(Outcome::Result(r)) => {
                    tally.success(now - sent, r.batch.as_ref(), now < window.stop_at);
                }
                Some(Outcome::Error(e)) => tally.failure(tonic::Code::from(e.code)),
                None => tally.failure(tonic::Code::Internal),
            }
        }
        if let Some(free) = &free_tx {
            let _ = free.try_send(slot);
        }
    }
    tally
}

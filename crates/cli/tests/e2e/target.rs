//! `mode = "target"` on a paused clock, with a fake handler whose batch of
//! n takes exactly `a + b·n`: the fit converges, a lone item goes at once,
//! under steady load the batch size settles where the handler keeps up
//! with headroom and p99 stays under the target, shedding starts only
//! past capacity, and at 2x and 5x the capacity the accepted items meet
//! the target while the rest are refused at once.

use crate::common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use batchgate::{
    config::Mode,
    contract::{Batch, ItemOutput, ResultSink},
    handler::{BoxFuture, Handler},
    metrics::Metrics,
    queue::{Policy, QueueHandle},
};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

const A: Duration = Duration::from_millis(5);
const B: Duration = Duration::from_micros(20);
const TARGET: Duration = Duration::from_millis(20);

/// Takes `A + B·n` per batch, then echoes; remembers each batch's size
/// and start. A sleep on the paused clock ends on tokio's next millisecond;
/// `exact` advances the clock by exactly that instead (for a handler alone).
#[derive(Debug, Default)]
struct Linear {
    batches: Mutex<Vec<(usize, Instant)>>,
    exact: bool,
    /// The time follows the batch's cost (`A + B·cost`), not its count.
    by_cost: bool,
    /// Another line than `A + B·n`.
    line: Option<(Duration, Duration)>,
}

impl Handler for Linear {
    fn kind(&self) -> &'static str {
        "linear"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let n = batch.items.len();
            self.batches.lock().unwrap().push((n, Instant::now()));
            let units = if self.by_cost {
                batch.cost as u32
            } else {
                n as u32
            };
            let (a, b) = self.line.unwrap_or((A, B));
            let took = a + b * units;
            if self.exact {
                tokio::time::advance(took).await;
            } else {
                sleep(took).await;
            }
            for (i, item) in batch.items.iter().enumerate() {
                let output = ItemOutput {
                    payload: item.payload.clone(),
                    attributes: HashMap::new(),
                };
                sink.send(i, Ok(output)).unwrap();
            }
            Ok(())
        })
    }
}

fn policy(shed: bool) -> Policy {
    Policy {
        mode: Mode::Target,
        target_latency: TARGET,
        shed,
        max_batch_size: 1024,
        max_queue_items: 1_000_000,
        max_in_flight_batches: 1,
        ..Policy::default()
    }
}

struct Queue {
    handle: Arc<QueueHandle>,
    handler: Arc<Linear>,
}

fn start(policy: Policy) -> Queue {
    start_with(policy, false)
}

fn start_with(policy: Policy, exact: bool) -> Queue {
    start_queue(
        policy,
        Arc::new(Linear {
            exact,
            ..Linear::default()
        }),
    )
}

fn start_queue(policy: Policy, handler: Arc<Linear>) -> Queue {
    let metrics = Metrics::new();
    let (handle, actor) = QueueHandle::new(common::queue::spec(
        "t",
        policy,
        handler.clone(),
        &metrics,
        CancellationToken::new(),
    ));
    tokio::spawn(actor);
    Queue {
        handle: Arc::new(handle),
        handler,
    }
}

/// What became of the items of a load run.
#[derive(Debug, Default)]
struct Outcomes {
    latencies: Vec<Duration>,
    shed: usize,
    /// The longest a shed item waited for its refusal.
    shed_slowest: Duration,
    other: Vec<Code>,
}

impl Outcomes {
    fn p99(&self) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(l.len() * 99 / 100).copied().unwrap_or_default()
    }
}

/// Submits `per_ms` items every millisecond for `ms` milliseconds and waits
/// for every answer.
async fn run_load(q: &Queue, per_ms: usize, ms: usize) -> Outcomes {
    run_rate(q, per_ms as f64 * 1000.0, ms).await
}

/// Submits items at `per_sec` (spread over the milliseconds) for `ms`
/// milliseconds and waits for every answer.
async fn run_rate(q: &Queue, per_sec: f64, ms: usize) -> Outcomes {
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut owed = 0.0;
    for _ in 0..ms {
        owed += per_sec / 1000.0;
        let now = owed.floor();
        owed -= now;
        for _ in 0..now as usize {
            let (item, rx) = common::queue::item(&b"x"[..], 0, None);
            let sent = Instant::now();
            q.handle.submit(item).await;
            let outcomes = outcomes.clone();
            tasks.spawn(async move {
                let answer = rx.await.expect("every item is answered");
                let took = sent.elapsed();
                let mut o = outcomes.lock().unwrap();
                match batchgate::api::submit_response(answer) {
                    Ok(_) => o.latencies.push(took),
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        assert!(s.message().contains("shed"), "{}", s.message());
                        o.shed += 1;
                        o.shed_slowest = o.shed_slowest.max(took);
                    }
                    Err(s) => o.other.push(s.code()),
                }
            });
        }
        sleep(Duration::from_millis(1)).await;
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(outcomes).unwrap().into_inner().unwrap()
}

/// Batch sizes seen since `since`.
fn sizes_since(q: &Queue, since: Instant) -> Vec<usize> {
    let batches = q.handler.batches.lock().unwrap();
    batches
        .iter()
        .filter(|(_, at)| *at >= since)
        .map(|(n, _)| *n)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_lone_item_goes_at_once_before_and_after_learning() {
    let q = start(policy(false));
    for _ in 0..3 {
        let t0 = Instant::now();
        let (item, rx) = common::queue::item(&b"x"[..], 0, None);
        q.handle.submit(item).await;
        rx.await.unwrap();
        let started = q.handler.batches.lock().unwrap().last().unwrap().1;
        assert_eq!(started, t0, "no waiting for a max_delay");
        sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_fit_converges_on_the_handlers_line() {
    let q = start_with(policy(false), true);
    // With one slot, one item goes at once and the rest ride the next batch.
    for n in [10, 50, 3, 120, 30, 200, 80, 7] {
        let mut answers = Vec::new();
        for _ in 0..n {
            let (item, rx) = common::queue::item(&b"x"[..], 0, None);
            q.handle.submit(item).await;
            answers.push(rx);
        }
        for rx in answers {
            rx.await.unwrap();
        }
        sleep(Duration::from_secs(1)).await;
    }
    let learned = q.handle.stats().await.unwrap().learned.unwrap();
    assert!(learned.samples >= 8, "{learned:?}");
    assert!(learned.base_us.abs_diff(5_000) <= 5, "{learned:?}");
    assert!(learned.per_item_ns.abs_diff(20_000) <= 50, "{learned:?}");
    // 5 ms + 20 µs·n ≤ 10 ms.
    assert_eq!(learned.batch_cap, 250);
}

#[tokio::test(start_paused = true)]
async fn under_steady_load_the_batch_keeps_the_handler_up_within_the_target() {
    let q = start(policy(false));
    // 10 items/ms = 10,000/s: the handler keeps up with n ≥ r·a/(1 − r·b)
    // = 62.5; with 25% headroom the rule aims at 1.25·r·a/(1 − 1.25·r·b)
    // = 83.3 (the analytic point it is built to track).
    let warmup = run_load(&q, 10, 500).await;
    assert_eq!(warmup.other, []);
    let since = Instant::now();
    let steady = run_load(&q, 10, 2000).await;
    assert_eq!(steady.other, []);
    assert_eq!(steady.latencies.len(), 20_000);
    let sizes = sizes_since(&q, since);
    let full: Vec<usize> = sizes.iter().copied().filter(|&n| n > 1).collect();
    let mean = full.iter().sum::<usize>() as f64 / full.len() as f64;
    println!("steady 10k/s: mean batch {mean:.1}, p99 {:?}", steady.p99());
    assert!(
        (75.0..=92.0).contains(&mean),
        "mean batch {mean:.1} within 10% of 83.3: {sizes:?}"
    );
    assert!(steady.p99() <= TARGET, "p99 {:?}", steady.p99());
}

#[tokio::test(start_paused = true)]
async fn shedding_starts_only_past_capacity() {
    // Capacity: batches of 250 in 10 ms, 25,000 items/s.
    let q = start(policy(true));
    let below = run_load(&q, 15, 1000).await;
    assert_eq!((below.shed, below.other.len()), (0, 0), "60% of capacity");
    assert!(below.p99() <= TARGET, "p99 {:?}", below.p99());
    let past = run_load(&q, 40, 1000).await;
    assert_eq!(past.other, []);
    assert!(past.shed > 0, "160% of capacity sheds");
    let answered = past.latencies.len();
    println!(
        "60%: p99 {:?}; 160%: {answered} answered, {} shed, p99 {:?}",
        below.p99(),
        past.shed,
        past.p99()
    );
    assert!(
        answered >= 20_000,
        "about capacity is still answered: {answered} of 40,000"
    );
    assert!(past.p99() <= TARGET * 3 / 2, "p99 {:?}", past.p99());
}

#[tokio::test(start_paused = true)]
async fn with_a_budget_the_fit_learns_time_against_cost() {
    let handler = Arc::new(Linear {
        exact: true,
        by_cost: true,
        ..Linear::default()
    });
    let policy = Policy {
        max_batch_cost: 100_000,
        ..policy(false)
    };
    let Queue { handle, .. } = start_queue(policy, handler.clone());
    // Items of 3 cost units: batch times vary with cost, and cost is not
    // the count (a fit against counts would be off by 3x).
    for n in [10, 50, 3, 120, 30, 200, 80, 7] {
        let mut answers = Vec::new();
        for _ in 0..n {
            let (mut item, rx) = common::queue::item(&b"x"[..], 0, None);
            item.cost = Some(3);
            handle.submit(item).await;
            answers.push(rx);
        }
        for rx in answers {
            rx.await.unwrap();
        }
        sleep(Duration::from_secs(1)).await;
    }
    let learned = handle.stats().await.unwrap().learned.unwrap();
    assert!(learned.samples >= 8, "{learned:?}");
    assert!(learned.base_us.abs_diff(5_000) <= 5, "{learned:?}");
    assert!(
        learned.per_item_ns.abs_diff(20_000) <= 50,
        "per cost unit: {learned:?}"
    );
    // 5 ms + 20 µs·cost ≤ 10 ms: batches of up to 250 cost units.
    assert_eq!(learned.batch_cap, 250);
    // And the batches kept to it: at most 83 items of 3 (249 units).
    let sizes = handler.batches.lock().unwrap();
    assert!(sizes.iter().all(|(n, _)| *n <= 83), "{sizes:?}");
    assert!(sizes.iter().any(|(n, _)| *n == 83), "{sizes:?}");
}

#[tokio::test(start_paused = true)]
async fn past_capacity_the_accepted_items_meet_the_target_and_the_rest_are_shed_at_once() {
    // 10 ms + 1 ms per item, target 60 ms: n_max = 20 (t = 30 ms, half the
    // target), one batch at a time, so capacity is 20 / 30 ms = 667/s.
    let handler = Arc::new(Linear {
        line: Some((Duration::from_millis(10), Duration::from_millis(1))),
        ..Linear::default()
    });
    let target = Duration::from_millis(60);
    let policy = Policy {
        target_latency: target,
        ..policy(true)
    };
    let q = start_queue(policy, handler);
    let capacity = 20.0 / 0.030;
    // Learn on a load that varies (below, at and past capacity).
    for load in [0.3, 0.8, 1.5] {
        run_rate(&q, capacity * load, 1000).await;
    }
    for times in [2.0, 5.0] {
        let since = Instant::now();
        // Long enough that every recent batch has the same size.
        let run = run_rate(&q, capacity * times, 10_000).await;
        assert_eq!(run.other, []);
        let sizes = sizes_since(&q, since);
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let answered = run.latencies.len() as f64 / 10.0;
        println!(
            "{times}x capacity: {answered:.0} answered/s of {capacity:.0}, {} shed (slowest refusal {:?}), p99 {:?}, largest batch {largest}",
            run.shed,
            run.shed_slowest,
            run.p99(),
        );
        assert!(
            run.p99() <= target.mul_f64(1.2),
            "{times}x: p99 {:?} within 1.2x of the target",
            run.p99()
        );
        assert!(largest <= 20, "{times}x: batches stay at n_max: {largest}");
        assert!(
            answered >= capacity * 0.8,
            "{times}x: about capacity is still answered: {answered:.0}/s"
        );
        // A shed item is answered at once: it never waited.
        assert!(run.shed > 0, "{times}x sheds");
        assert_eq!(run.shed_slowest, Duration::ZERO, "{times}x: shed at once");
    }
}

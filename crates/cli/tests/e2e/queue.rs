//! The queue actor under a paused clock: every trigger, limit and drop path,
//! deterministic to the microsecond. A fake handler reports each batch it
//! gets over a channel and, when gated, holds it until the test says so.

use crate::common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use batchgate::{
    config::Mode,
    contract::{Batch, ItemOutput, ResultSink, SinkError, Trigger},
    handler::{BoxFuture, Handler},
    metrics::Metrics,
    pb,
    queue::{BACKGROUND, Command, Policy, QueueHandle},
};
use tokio::{
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
    time::{Instant, sleep},
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

/// What the fake handler saw of one batch.
#[derive(Debug)]
struct Seen {
    trigger: Trigger,
    payloads: Vec<String>,
    at: Instant,
    pad_to: Option<usize>,
    key: Option<String>,
    /// Each item's cost, and the batch's.
    costs: Vec<u64>,
    cost: u64,
}

/// How the fake handler answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    /// Echo every item.
    Echo,
    /// Answer only the first item, then return Ok.
    FirstOnly,
    /// Answer the first item, then fail the batch.
    FirstThenFail,
    /// Answer item 0 twice and an index past the end.
    Misbehave,
    /// Answer every item, each of which must have expired meanwhile.
    EchoExpired,
}

#[derive(Debug)]
struct Fake {
    seen: mpsc::Sender<Seen>,
    /// When set, each batch waits for one permit before answering.
    gate: Option<Arc<Semaphore>>,
    answer: Answer,
}

impl Handler for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let payloads = batch
                .items
                .iter()
                .map(|i| String::from_utf8(i.payload.to_vec()).unwrap())
                .collect();
            let seen = Seen {
                trigger: batch.trigger,
                payloads,
                at: Instant::now(),
                pad_to: batch.pad_to,
                key: batch.key.as_deref().map(str::to_owned),
                costs: batch.items.iter().map(|i| i.cost).collect(),
                cost: batch.cost,
            };
            self.seen.send(seen).await.unwrap();
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            let echo = |i: usize| {
                Ok(ItemOutput {
                    payload: batch.items[i].payload.clone(),
                    attributes: HashMap::new(),
                })
            };
            match self.answer {
                Answer::Echo => {
                    for i in 0..batch.items.len() {
                        sink.send(i, echo(i)).unwrap();
                    }
                }
                Answer::FirstOnly => sink.send(0, echo(0)).unwrap(),
                Answer::EchoExpired => {
                    for i in 0..batch.items.len() {
                        assert_eq!(sink.send(i, echo(i)), Err(SinkError::Expired(i)));
                    }
                }
                Answer::FirstThenFail => {
                    sink.send(0, echo(0)).unwrap();
                    return Err(Status::unavailable("backend fell over"));
                }
                Answer::Misbehave => {
                    sink.send(0, echo(0)).unwrap();
                    assert!(sink.send(0, echo(0)).is_err());
                    assert!(sink.send(batch.items.len(), echo(0)).is_err());
                    for i in 1..batch.items.len() {
                        sink.send(i, echo(i)).unwrap();
                    }
                }
            }
            Ok(())
        })
    }
}

struct TestQueue {
    handle: QueueHandle,
    seen: mpsc::Receiver<Seen>,
    gate: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    abort: CancellationToken,
    actor: JoinHandle<()>,
}

/// An item's answer as the API would return it (`Submit`'s response or
/// status), or an error if it was dropped unanswered.
struct Answered(oneshot::Receiver<batchgate::queue::Answer>);

impl std::future::Future for Answered {
    type Output = Result<Result<pb::SubmitResponse, Status>, oneshot::error::RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.map(batchgate::api::submit_response))
    }
}

fn policy() -> Policy {
    Policy {
        max_batch_size: 4,
        max_batch_bytes: 1_000,
        max_delay: Duration::from_millis(2),
        min_batch_size: 1,
        strict: false,
        mode: Mode::Auto,
        max_queue_items: 100,
        max_in_flight_batches: 8,
        item_timeout: Duration::from_secs(10),
        priority_levels: 4,
        target_latency: Duration::from_millis(20),
        shed: false,
        allowed_batch_sizes: Vec::new(),
        shards: 1,
        key_attribute: String::new(),
        max_keys: 1024,
        weights: Default::default(),
        ..Policy::default()
    }
}

fn start(policy: Policy, gated: bool, answer: Answer) -> TestQueue {
    let (tx, seen) = mpsc::channel(1024);
    let gate = Arc::new(Semaphore::new(0));
    let metrics = Arc::new(Metrics::new());
    let abort = CancellationToken::new();
    let handler = Arc::new(Fake {
        seen: tx,
        gate: gated.then(|| gate.clone()),
        answer,
    });
    let (handle, actor) = QueueHandle::new(common::queue::spec(
        "q",
        policy,
        handler,
        &metrics,
        abort.clone(),
    ));
    TestQueue {
        handle,
        seen,
        gate,
        metrics,
        abort,
        actor: tokio::spawn(actor),
    }
}

impl TestQueue {
    async fn submit_with(
        &self,
        payload: &str,
        priority: u32,
        timeout: Option<Duration>,
    ) -> Answered {
        let (item, rx) = common::queue::item(payload.to_owned(), priority, timeout);
        self.handle.submit(item).await;
        Answered(rx)
    }

    /// Submits an item with batch key `key`.
    async fn submit_keyed(&self, key: &str, payload: &str) -> Answered {
        let (mut item, rx) = common::queue::item(payload.to_owned(), 0, None);
        item.key = Some(key.into());
        self.handle.submit(item).await;
        Answered(rx)
    }

    /// Submits an item whose request gives cost `cost`.
    async fn submit_costing(&self, cost: u64) -> Answered {
        let (mut item, rx) = common::queue::item(format!("c{cost}"), 0, None);
        item.cost = Some(cost);
        self.handle.submit(item).await;
        Answered(rx)
    }

    async fn submit(&self, payload: &str) -> Answered {
        self.submit_with(payload, 0, None).await
    }

    /// Submits an item with idempotency key `key`.
    async fn submit_once(&self, key: &str, payload: &str, timeout: Option<Duration>) -> Answered {
        let (mut item, rx) = common::queue::item(payload.to_owned(), 0, timeout);
        item.idempotency_key = Some(key.into());
        self.handle.submit(item).await;
        Answered(rx)
    }

    fn series(&self, line_start: &str) -> f64 {
        let text = self.metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("{line_start} in {text}"));
        line[line_start.len()..].trim().parse().unwrap()
    }

    fn keyed(&self, outcome: &str) -> f64 {
        self.series(&format!(
            "batchgate_idempotent_items_total{{queue=\"q\",outcome=\"{outcome}\"}} "
        ))
    }

    async fn submit_all(&self, payloads: impl IntoIterator<Item = String>) -> Vec<Answered> {
        let mut answers = Vec::new();
        for p in payloads {
            answers.push(self.submit(&p).await);
        }
        answers
    }

    fn assert_no_batch(&mut self) {
        if let Ok(batch) = self.seen.try_recv() {
            panic!("unexpected batch {batch:?}");
        }
    }

    async fn next_batch(&mut self) -> Seen {
        self.seen.recv().await.expect("a batch")
    }

    fn metric(&self, outcome: &str) -> u64 {
        let needle = format!("batchgate_items_total{{queue=\"q\",outcome=\"{outcome}\"}} ");
        let text = self.metrics.render();
        let line = text.lines().find(|l| l.starts_with(&needle)).unwrap();
        line[needle.len()..].parse().unwrap()
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

async fn ok(rx: Answered) -> pb::SubmitResponse {
    rx.await.expect("answered").expect("ok")
}

async fn code(rx: Answered) -> Code {
    rx.await.expect("answered").expect_err("an error").code()
}

#[tokio::test(start_paused = true)]
async fn size_trigger_dispatches_at_once() {
    let mut q = start(policy(), false, Answer::Echo);
    let t0 = Instant::now();
    let answers = q.submit_all(names("i", 4)).await;
    let batch = q.next_batch().await;
    assert_eq!(batch.trigger, Trigger::Size);
    assert_eq!(batch.payloads, names("i", 4));
    assert_eq!(batch.at, t0, "no waiting for max_delay");
    for (i, rx) in answers.into_iter().enumerate() {
        let r = ok(rx).await;
        assert_eq!(r.payload, format!("i{i}").as_bytes());
        let info = r.batch.unwrap();
        assert_eq!(
            (info.batch_size, info.trigger),
            (4, pb::Trigger::Size as i32)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bytes_trigger_closes_before_the_byte_limit_is_crossed() {
    let mut q = start(
        Policy {
            max_batch_bytes: 10,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let _a = q.submit("aaaa").await;
    let _b = q.submit("bbbb").await;
    // Just before the delay would close them (advance, unlike a sleep, is
    // not rounded up to tokio's next millisecond tick).
    tokio::time::advance(t0 + Duration::from_micros(1_900) - Instant::now()).await;
    q.assert_no_batch();
    let _c = q.submit("cccc").await;
    let batch = q.next_batch().await;
    assert_eq!(batch.trigger, Trigger::Bytes);
    assert_eq!(
        batch.payloads,
        ["aaaa", "bbbb"],
        "a third would exceed 10 bytes"
    );
    let rest = q.next_batch().await;
    assert_eq!((rest.trigger, rest.payloads.len()), (Trigger::Delay, 1));
}

#[tokio::test(start_paused = true)]
async fn delay_counts_from_the_oldest_item() {
    let mut q = start(policy(), false, Answer::Echo);
    let t0 = Instant::now();
    let a = q.submit("a").await;
    sleep(Duration::from_millis(1)).await;
    let b = q.submit("b").await;
    // Just before the oldest item's delay is up.
    tokio::time::advance(t0 + Duration::from_micros(1_900) - Instant::now()).await;
    q.assert_no_batch();
    let batch = q.next_batch().await;
    assert_eq!(batch.trigger, Trigger::Delay);
    assert_eq!(batch.payloads, ["a", "b"]);
    let waited = batch.at - t0;
    assert!(
        waited >= Duration::from_millis(2) && waited < Duration::from_millis(3),
        "dispatched after {waited:?}"
    );
    assert_eq!(ok(a).await.batch.unwrap().batch_size, 2);
    ok(b).await;
}

#[tokio::test(start_paused = true)]
async fn n_minus_one_items_wait_for_the_delay() {
    let mut q = start(policy(), false, Answer::Echo);
    let _answers = q.submit_all(names("i", 3)).await;
    sleep(Duration::from_micros(1_999)).await;
    q.assert_no_batch();
    sleep(Duration::from_millis(2)).await;
    let batch = q.next_batch().await;
    assert_eq!((batch.trigger, batch.payloads.len()), (Trigger::Delay, 3));
    sleep(Duration::from_secs(1)).await;
    q.assert_no_batch();
}

#[tokio::test(start_paused = true)]
async fn min_batch_size_holds_a_delay_batch_back() {
    let mut q = start(
        Policy {
            min_batch_size: 3,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let _two = q.submit_all(names("i", 2)).await;
    sleep(Duration::from_millis(50)).await;
    q.assert_no_batch();
    let _third = q.submit("i2").await;
    let batch = q.next_batch().await;
    assert_eq!((batch.trigger, batch.payloads.len()), (Trigger::Delay, 3));
}

#[tokio::test(start_paused = true)]
async fn strict_counts_only_live_items() {
    let mut q = start(
        Policy {
            max_batch_size: 8,
            min_batch_size: 3,
            strict: true,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let a = q.submit("a").await;
    let cancelled = q.submit("gone").await;
    let c = q.submit("c").await;
    drop(cancelled);
    sleep(Duration::from_millis(50)).await;
    q.assert_no_batch();
    let d = q.submit("d").await;
    let batch = q.next_batch().await;
    assert_eq!(batch.trigger, Trigger::Delay);
    assert_eq!(batch.payloads, ["a", "c", "d"]);
    for rx in [a, c, d] {
        ok(rx).await;
    }
    assert_eq!(q.metric("cancelled"), 1);
}

#[tokio::test(start_paused = true)]
async fn non_strict_counts_cancelled_items_towards_min() {
    let mut q = start(
        Policy {
            min_batch_size: 3,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let _a = q.submit("a").await;
    drop(q.submit("gone").await);
    let _c = q.submit("c").await;
    let batch = q.next_batch().await;
    assert_eq!(batch.payloads, ["a", "c"]);
}

#[tokio::test(start_paused = true)]
async fn manual_mode_dispatches_only_on_flush() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let answers = q.submit_all(names("i", 10)).await;
    sleep(Duration::from_secs(5)).await;
    q.assert_no_batch();
    assert_eq!(q.handle.flush().await.unwrap(), 10);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let batch = q.next_batch().await;
        assert_eq!(batch.trigger, Trigger::Flush);
        sizes.push(batch.payloads.len());
    }
    assert_eq!(sizes, [4, 4, 2]);
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn flush_ignores_min_batch_size() {
    let mut q = start(
        Policy {
            min_batch_size: 4,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let _a = q.submit("a").await;
    sleep(Duration::from_millis(10)).await;
    q.assert_no_batch();
    q.handle.flush().await.unwrap();
    let batch = q.next_batch().await;
    assert_eq!((batch.trigger, batch.payloads.len()), (Trigger::Flush, 1));
}

#[tokio::test(start_paused = true)]
async fn higher_priority_goes_first_fifo_within() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let mut answers = Vec::new();
    for (p, prio) in [
        ("l1", 0),
        ("h1", 3),
        ("m1", 1),
        ("h2", 3),
        ("l2", 0),
        ("m2", 1),
    ] {
        answers.push(q.submit_with(p, prio, None).await);
    }
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["h1", "h2", "m1", "m2"]);
    assert_eq!(q.next_batch().await.payloads, ["l1", "l2"]);
}

#[tokio::test(start_paused = true)]
async fn background_items_go_after_every_priority_and_top_up_a_batch() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let mut answers = Vec::new();
    for (p, prio) in [
        ("job1", BACKGROUND),
        ("l1", 0),
        ("job2", BACKGROUND),
        ("h1", 3),
        ("l2", 0),
    ] {
        answers.push(q.submit_with(p, prio, None).await);
    }
    q.handle.flush().await.unwrap();
    // Batches of 4: online items first, a background one tops it up.
    assert_eq!(q.next_batch().await.payloads, ["h1", "l1", "l2", "job1"]);
    assert_eq!(q.next_batch().await.payloads, ["job2"]);
}

#[tokio::test(start_paused = true)]
async fn without_top_up_background_items_ride_only_in_batches_of_their_own() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            top_up: false,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let mut answers = Vec::new();
    for (p, prio) in [
        ("job1", BACKGROUND),
        ("l1", 0),
        ("job2", BACKGROUND),
        ("h1", 3),
    ] {
        answers.push(q.submit_with(p, prio, None).await);
    }
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["h1", "l1"]);
    assert_eq!(q.next_batch().await.payloads, ["job1", "job2"]);
    // A size trigger counts every pending item, but its batch still takes
    // the online ones alone; the job items follow in a full batch.
    let mut q = start(
        Policy {
            max_batch_size: 4,
            max_delay: Duration::from_secs(3600),
            top_up: false,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    for (p, prio) in [("o1", 0), ("j1", BACKGROUND), ("j2", BACKGROUND)] {
        answers.push(q.submit_with(p, prio, None).await);
    }
    for p in ["j3", "j4", "j5"] {
        answers.push(q.submit_with(p, BACKGROUND, None).await);
    }
    assert_eq!(q.next_batch().await.payloads, ["o1"]);
    assert_eq!(q.next_batch().await.payloads, ["j1", "j2", "j3", "j4"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once() {
    let q = start(
        Policy {
            mode: Mode::Manual,
            max_queue_items: 3,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let _held = q.submit_all(names("i", 3)).await;
    let refused = q.submit("one too many").await;
    let t0 = Instant::now();
    assert_eq!(code(refused).await, Code::ResourceExhausted);
    assert_eq!(Instant::now(), t0);
    assert_eq!(q.metric("rejected"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_room_by_dropping_cancelled_items() {
    let q = start(
        Policy {
            mode: Mode::Manual,
            max_queue_items: 2,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let _kept = q.submit("kept").await;
    drop(q.submit("gone").await);
    let admitted = q.submit("admitted").await;
    q.handle.flush().await.unwrap();
    assert_eq!(ok(admitted).await.payload, "admitted".as_bytes());
    assert_eq!(q.metric("cancelled"), 1);
}

#[tokio::test(start_paused = true)]
async fn bad_priority_and_oversized_payload_are_invalid() {
    let q = start(
        Policy {
            max_batch_bytes: 8,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let high = q.submit_with("x", 4, None).await;
    assert_eq!(code(high).await, Code::InvalidArgument);
    let big = q.submit("123456789").await;
    let status = big.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("9 bytes exceeds max_batch_bytes 8"),
        "{}",
        status.message()
    );
}

#[tokio::test(start_paused = true)]
async fn an_item_expires_while_queued_and_is_not_dispatched() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let short = q
        .submit_with("short", 0, Some(Duration::from_millis(50)))
        .await;
    let long = q.submit("long").await;
    let status = short.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    let waited = Instant::now() - t0;
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(52),
        "expired after {waited:?}"
    );
    assert_eq!(q.handle.flush().await.unwrap(), 1);
    assert_eq!(q.next_batch().await.payloads, ["long"]);
    ok(long).await;
    assert_eq!(q.metric("timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_queue_default_timeout_applies_without_one() {
    let q = start(
        Policy {
            mode: Mode::Manual,
            item_timeout: Duration::from_secs(3),
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let item = q.submit("x").await;
    assert_eq!(code(item).await, Code::DeadlineExceeded);
    assert!(Instant::now() - t0 >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_item_leaves_before_dispatch() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let a = q.submit("a").await;
    drop(q.submit("b").await);
    let c = q.submit("c").await;
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["a", "c"]);
    assert_eq!(ok(a).await.batch.unwrap().batch_size, 2);
    ok(c).await;
    assert_eq!(q.metric("cancelled"), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_items_leave_a_held_queue_within_100_ms() {
    let held = [
        (
            "manual",
            Policy {
                mode: Mode::Manual,
                ..policy()
            },
            false,
        ),
        (
            "min_batch_size",
            Policy {
                min_batch_size: 4,
                ..policy()
            },
            false,
        ),
        ("paused", policy(), true),
    ];
    for (what, policy, pause) in held {
        let mut q = start(policy, false, Answer::Echo);
        if pause {
            q.handle.control(Command::Pause).await.unwrap();
        }
        let live = q.submit("live").await;
        drop(q.submit_all(names("gone", 2)).await);
        sleep(Duration::from_millis(100)).await;
        let stats = q.handle.stats().await.unwrap();
        assert_eq!(stats.depth, 1, "{what}: the two cancelled items left");
        assert_eq!(q.metric("cancelled"), 2, "{what}");
        q.assert_no_batch();
        assert_eq!(
            q.handle.flush().await.unwrap(),
            1,
            "{what}: flush counts live items"
        );
        assert_eq!(q.next_batch().await.payloads, ["live"], "{what}");
        ok(live).await;
    }
}

#[tokio::test(start_paused = true)]
async fn flush_counts_only_live_items_even_right_after_a_cancel() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let live = q.submit("live").await;
    drop(q.submit("gone").await);
    assert_eq!(q.handle.flush().await.unwrap(), 1);
    assert_eq!(q.next_batch().await.payloads, ["live"]);
    ok(live).await;
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_batches_is_respected() {
    let mut q = start(
        Policy {
            max_batch_size: 2,
            max_in_flight_batches: 2,
            ..policy()
        },
        true,
        Answer::Echo,
    );
    let answers = q.submit_all(names("i", 10)).await;
    sleep(Duration::from_secs(1)).await;
    let first = [q.next_batch().await, q.next_batch().await];
    q.assert_no_batch();
    assert!(first.iter().all(|b| b.payloads.len() == 2));
    q.gate.add_permits(1);
    let third = q.next_batch().await;
    // Long past every delay: still no fourth batch while two run.
    sleep(Duration::from_millis(50)).await;
    q.assert_no_batch();
    assert_eq!(third.payloads, ["i4", "i5"]);
    q.gate.add_permits(100);
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn items_a_handler_forgets_get_internal() {
    let q = start(policy(), false, Answer::FirstOnly);
    let answers = q.submit_all(names("i", 3)).await;
    let mut answers = answers.into_iter();
    ok(answers.next().unwrap()).await;
    for rx in answers {
        let status = rx.await.unwrap().unwrap_err();
        common::assert_status(&status, Code::Internal, "no result");
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_failure_fails_only_unanswered_items() {
    let q = start(policy(), false, Answer::FirstThenFail);
    let mut answers = q.submit_all(names("i", 3)).await.into_iter();
    assert_eq!(ok(answers.next().unwrap()).await.payload, "i0".as_bytes());
    for rx in answers {
        let status = rx.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "backend fell over");
    }
}

#[tokio::test(start_paused = true)]
async fn duplicate_and_out_of_range_results_are_refused() {
    let q = start(policy(), false, Answer::Misbehave);
    let answers = q.submit_all(names("i", 2)).await;
    for (i, rx) in answers.into_iter().enumerate() {
        assert_eq!(ok(rx).await.payload, format!("i{i}").as_bytes());
    }
}

#[tokio::test(start_paused = true)]
async fn drain_dispatches_everything_then_refuses() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let answers = q.submit_all(names("i", 6)).await;
    q.handle.drain().await;
    let first = q.next_batch().await;
    let second = q.next_batch().await;
    assert_eq!(
        (first.trigger, second.trigger),
        (Trigger::Drain, Trigger::Drain)
    );
    assert_eq!(first.payloads.len() + second.payloads.len(), 6);
    for rx in answers {
        ok(rx).await;
    }
    let late = q.submit("late").await;
    assert_eq!(code(late).await, Code::Unavailable);
    q.actor.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_queue_keeps_a_call_deadline_while_the_handler_runs() {
    let mut q = start(
        Policy {
            max_batch_size: 1,
            ..policy()
        },
        true,
        Answer::EchoExpired,
    );
    let t0 = Instant::now();
    let (mut item, rx) = common::queue::item("slow", 0, None);
    item.answer_within = Some(Duration::from_millis(100));
    q.handle.submit(item).await;
    // Dispatched at once; the handler waits at its gate.
    q.next_batch().await;
    let status = Answered(rx).await.unwrap().unwrap_err();
    common::assert_status(&status, Code::DeadlineExceeded, "past its timeout");
    assert_eq!(Instant::now() - t0, Duration::from_millis(100));
    // The handler's late result is refused as expired (the fake checks).
    q.gate.add_permits(1);
    sleep(Duration::from_millis(1)).await;
    assert_eq!((q.metric("timeout"), q.metric("error")), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn abort_answers_in_flight_and_pending_items_unavailable() {
    let mut q = start(
        Policy {
            max_batch_size: 2,
            max_in_flight_batches: 1,
            ..policy()
        },
        true,
        Answer::Echo,
    );
    let answers = q.submit_all(names("i", 5)).await;
    q.next_batch().await;
    q.handle.drain().await;
    q.abort.cancel();
    for rx in answers {
        assert_eq!(code(rx).await, Code::Unavailable);
    }
    q.actor.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_drains_the_partial_batch() {
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let answers = q.submit_all(names("i", 3)).await;
    let TestQueue {
        handle,
        actor,
        ref mut seen,
        ..
    } = q;
    drop(handle);
    assert_eq!(seen.recv().await.unwrap().trigger, Trigger::Drain);
    for rx in answers {
        ok(rx).await;
    }
    actor.await.unwrap();
}

/// A queue whose actor is returned unstarted, with the channel its handler
/// reports batches on.
fn unstarted(
    policy: Policy,
) -> (
    Arc<QueueHandle>,
    impl Future<Output = ()> + Send + 'static,
    mpsc::Receiver<Seen>,
) {
    let (tx, seen) = mpsc::channel(1024);
    let handler = Arc::new(Fake {
        seen: tx,
        gate: None,
        answer: Answer::Echo,
    });
    let spec = common::queue::spec(
        "q",
        policy,
        handler,
        &Metrics::new(),
        CancellationToken::new(),
    );
    let (handle, actor) = QueueHandle::new(spec);
    (Arc::new(handle), actor, seen)
}

/// Submits one item from a task of its own: the task, and the answer.
fn spawn_submit(handle: &Arc<QueueHandle>, payload: String) -> (JoinHandle<()>, Answered) {
    let handle = handle.clone();
    let (item, rx) = common::queue::item(payload, 0, None);
    let task = tokio::spawn(async move { handle.submit(item).await });
    (task, Answered(rx))
}

#[tokio::test(start_paused = true)]
async fn a_full_inbox_holds_submitters_back_in_order() {
    // The actor is not running yet: the inbox fills, later submitters wait.
    let (handle, actor, mut seen) = unstarted(Policy {
        max_batch_size: 1000,
        max_queue_items: 10_000,
        mode: Mode::Manual,
        ..policy()
    });
    let mut submitters = Vec::new();
    for i in 0..300 {
        submitters.push(spawn_submit(&handle, format!("i{i:03}")));
        tokio::task::yield_now().await;
    }
    let waiting = submitters.iter().filter(|(t, _)| !t.is_finished()).count();
    assert!(waiting > 0, "some submitters wait for room");
    assert!(waiting < 300, "the inbox takes some items at once");
    // Once the actor runs, everyone gets in, in the order they came.
    let actor = tokio::spawn(actor);
    for (task, _) in &mut submitters {
        task.await.unwrap();
    }
    assert_eq!(handle.flush().await.unwrap(), 300);
    // Flushed in batches of at most max_batch_bytes; in arrival order.
    let mut payloads = Vec::new();
    while payloads.len() < 300 {
        payloads.extend(seen.recv().await.unwrap().payloads);
    }
    let expected: Vec<String> = (0..300).map(|i| format!("i{i:03}")).collect();
    assert_eq!(payloads, expected);
    for (_, rx) in submitters {
        ok(rx).await;
    }
    drop(handle);
    actor.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn submitters_waiting_for_room_are_refused_when_the_queue_is_gone() {
    let (handle, actor, _seen) = unstarted(policy());
    let submitters: Vec<_> = (0..300)
        .map(|i| spawn_submit(&handle, format!("i{i}")))
        .collect();
    tokio::task::yield_now().await;
    // The actor dies without ever running (as if its task were lost).
    drop(actor);
    // Nobody hangs: items that got in are dropped with the inbox (the call
    // sees its answer channel closed), those that waited are refused.
    let mut refused = 0;
    for (task, rx) in submitters {
        task.await.unwrap();
        match rx.await {
            Ok(Err(status)) => {
                assert_eq!(status.code(), Code::Unavailable);
                refused += 1;
            }
            Ok(Ok(_)) => panic!("no actor ran, nothing can succeed"),
            Err(_) => {}
        }
    }
    assert!(refused > 0);
}

#[tokio::test(start_paused = true)]
async fn an_item_sent_as_a_control_command_takes_the_normal_way_in() {
    let mut q = start(
        Policy {
            max_batch_size: 1,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let (item, rx) = common::queue::item("via-control", 0, None);
    q.handle
        .control(batchgate::queue::Command::Submit(item))
        .await
        .unwrap();
    assert_eq!(q.next_batch().await.payloads, ["via-control"]);
    assert_eq!(ok(Answered(rx)).await.payload, "via-control".as_bytes());
}

fn sized(allowed: &[usize]) -> Policy {
    Policy {
        max_batch_size: *allowed.last().unwrap(),
        allowed_batch_sizes: allowed.to_vec(),
        ..policy()
    }
}

/// (trigger, size, pad_to, ms after t0) of the next batch.
async fn shape(q: &mut TestQueue, t0: Instant) -> (Trigger, usize, Option<usize>, u128) {
    let b = q.next_batch().await;
    (
        b.trigger,
        b.payloads.len(),
        b.pad_to,
        (b.at - t0).as_millis(),
    )
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_a_delay_batch_takes_the_largest_pending_and_holds_the_rest_once() {
    let mut q = start(sized(&[2, 4, 8]), false, Answer::Echo);
    let t0 = Instant::now();
    let answers = q.submit_all(names("i", 7)).await;
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 4, None, 2));
    // The 3 held back wait one more max_delay, then go padded to 4.
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 3, Some(4), 4));
    for rx in answers {
        ok(rx).await;
    }
    q.assert_no_batch();
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_items_held_back_fill_up_with_new_ones() {
    let mut q = start(sized(&[2, 4, 8]), false, Answer::Echo);
    let t0 = Instant::now();
    let _first = q.submit_all(names("a", 7)).await;
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 4, None, 2));
    sleep(Duration::from_millis(1)).await;
    let _more = q.submit_all(names("b", 6)).await;
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.pad_to, (b.at - t0).as_millis()),
        (Trigger::Size, None, 3)
    );
    assert_eq!(b.payloads[..3], ["a4", "a5", "a6"], "held items go first");
    assert_eq!(b.payloads.len(), 8);
    // One new item is left; it waits its own max_delay and goes padded.
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 1, Some(2), 5));
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_fewer_than_the_smallest_go_at_the_delay_padded() {
    let mut q = start(sized(&[4, 8]), false, Answer::Echo);
    let t0 = Instant::now();
    let answers = q.submit_all(names("i", 3)).await;
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 3, Some(4), 2));
    for rx in answers {
        let info = ok(rx).await.batch.unwrap();
        assert_eq!(info.batch_size, 3, "callers see the real batch size");
    }
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_below_min_batch_size_are_skipped() {
    let mut q = start(
        Policy {
            min_batch_size: 3,
            ..sized(&[2, 4, 8])
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let _two = q.submit_all(names("i", 2)).await;
    sleep(Duration::from_millis(10)).await;
    q.assert_no_batch();
    let _third = q.submit("i2").await;
    // 3 pending: the allowed 2 is below min_batch_size, so all 3 go.
    assert_eq!(shape(&mut q, t0).await, (Trigger::Delay, 3, Some(4), 10));
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_strict_batches_count_live_items() {
    let mut q = start(
        Policy {
            min_batch_size: 2,
            strict: true,
            ..sized(&[2, 4, 8])
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let a = q.submit("a").await;
    drop(q.submit("gone").await);
    let _rest = q.submit_all(names("c", 3)).await;
    // 5 pending, 4 live: the allowed 4 takes every live one, nothing is held.
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.pad_to, (b.at - t0).as_millis()),
        (Trigger::Delay, None, 2)
    );
    assert_eq!(b.payloads, ["a", "c0", "c1", "c2"]);
    ok(a).await;
    sleep(Duration::from_secs(1)).await;
    q.assert_no_batch();
}

#[tokio::test(start_paused = true)]
async fn allowed_sizes_bytes_and_flush_batches_go_padded() {
    let mut q = start(
        Policy {
            max_batch_bytes: 10,
            ..sized(&[2, 4, 8])
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let _a = q
        .submit_all(["aaa", "bbb", "ccc", "ddd"].map(String::from))
        .await;
    assert_eq!(shape(&mut q, t0).await, (Trigger::Bytes, 3, Some(4), 0));
    let mut q = start(
        Policy {
            mode: Mode::Manual,
            ..sized(&[2, 4, 8])
        },
        false,
        Answer::Echo,
    );
    let t0 = Instant::now();
    let _b = q.submit_all(names("i", 11)).await;
    q.handle.flush().await.unwrap();
    assert_eq!(shape(&mut q, t0).await, (Trigger::Flush, 8, None, 0));
    assert_eq!(shape(&mut q, t0).await, (Trigger::Flush, 3, Some(4), 0));
}

/// A queue of `shards` shards, batches of 64, room for 1,000 items.
fn sharded(shards: usize, mode: Mode) -> Policy {
    Policy {
        max_batch_size: 64,
        max_batch_bytes: 100_000,
        max_queue_items: 1_000,
        mode,
        shards,
        ..policy()
    }
}

/// The number in a payload `i<number>`.
fn number(payload: &str) -> usize {
    payload[1..].parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn items_spill_to_the_next_shard_only_when_the_first_falls_behind() {
    let mut q = start(sharded(2, Mode::Auto), false, Answer::Echo);
    // The actors have not run yet, so commands pile up: the first
    // SPILL_AT go to shard 0, the next SPILL_AT to shard 1, and with both
    // behind the rest alternate.
    let spill = batchgate::queue::SPILL_AT;
    let shard_of = |n: usize| match n {
        n if n < spill => 0,
        n if n < 2 * spill => 1,
        n => (n - 2 * spill) % 2,
    };
    // Unconstrained: no cooperative yield lets the actors run meanwhile.
    let answers = tokio::task::unconstrained(q.submit_all(names("i", 200))).await;
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < 200 {
        let batch = q.next_batch().await;
        let shard = shard_of(number(&batch.payloads[0]));
        assert!(
            batch.payloads.iter().all(|p| shard_of(number(p)) == shard),
            "a batch holds one shard's items: {:?}",
            batch.payloads
        );
        sizes.push(batch.payloads.len());
    }
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        [36, 36, 64, 64],
        "100 items each: 64 by size, 36 by delay"
    );
    for (i, rx) in answers.into_iter().enumerate() {
        assert_eq!(ok(rx).await.payload, format!("i{i}").as_bytes());
    }
    assert_eq!(q.metric("ok"), 200);

    // At low load everything goes to shard 0: a lone item waits max_delay,
    // as in a queue of one shard.
    let t0 = Instant::now();
    let lone = q.submit("lone").await;
    let batch = q.next_batch().await;
    assert_eq!(
        (batch.trigger, batch.at - t0),
        (Trigger::Delay, Duration::from_millis(2))
    );
    ok(lone).await;
}

#[tokio::test(start_paused = true)]
async fn shards_answer_flush_stats_and_drain_as_one_queue() {
    let mut q = start(sharded(3, Mode::Manual), false, Answer::Echo);
    let answers = q.submit_all(names("i", 300)).await;
    let stats = q.handle.stats().await.unwrap();
    assert_eq!(
        (stats.depth, stats.in_flight),
        (300, 0),
        "summed over shards"
    );
    q.assert_no_batch();
    assert_eq!(q.handle.flush().await.unwrap(), 300);
    for rx in answers {
        ok(rx).await;
    }
    q.handle.control(Command::Pause).await.unwrap();
    assert!(q.handle.stats().await.unwrap().paused);
    let late = q.submit("late").await;
    assert_eq!(q.handle.drain_with(false).await, 0);
    assert_eq!(
        ok(late).await.payload,
        &b"late"[..],
        "drain dispatches the rest"
    );
    q.actor.await.unwrap();
    assert!(q.handle.is_closed(), "every shard has stopped");
    let mut seen = 0;
    while let Ok(batch) = q.seen.try_recv() {
        seen += batch.payloads.len();
    }
    assert_eq!(seen, 301);
}

#[tokio::test(start_paused = true)]
async fn max_queue_items_bounds_the_shards_together() {
    let q = start(
        Policy {
            max_queue_items: 100,
            ..sharded(2, Mode::Manual)
        },
        false,
        Answer::Echo,
    );
    // 100 commands each (see the spill test); shard 0 runs first and takes
    // all of its own, shard 1 sees shard 0's 100 and takes none.
    let answers = tokio::task::unconstrained(q.submit_all(names("i", 200))).await;
    assert_eq!(q.handle.stats().await.unwrap().depth, 100);
    assert_eq!(q.handle.flush().await.unwrap(), 100);
    let mut refused = 0;
    for rx in answers {
        match rx.await.unwrap() {
            Ok(_) => {}
            Err(status) => {
                common::assert_status(&status, Code::ResourceExhausted, "100");
                refused += 1;
            }
        }
    }
    assert_eq!(
        (refused, q.metric("rejected"), q.metric("ok")),
        (100, 100, 100)
    );
}

/// Batches of 4 by key; `weights` as given.
fn keyed(weights: &[(&str, u32)]) -> Policy {
    Policy {
        max_in_flight_batches: 1,
        max_queue_items: 10_000,
        key_attribute: "tenant".into(),
        weights: weights.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect(),
        ..policy()
    }
}

#[tokio::test(start_paused = true)]
async fn items_of_different_keys_never_share_a_batch() {
    let mut q = start(keyed(&[]), false, Answer::Echo);
    let t0 = Instant::now();
    let mut answers = Vec::new();
    for i in 0..4 {
        answers.push(q.submit_keyed("a", &format!("a{i}")).await);
        answers.push(q.submit_keyed("b", &format!("b{i}")).await);
    }
    // The key may come from the queue's key_attribute too.
    let (mut item, rx) = common::queue::item("c0", 0, None);
    item.attributes.insert("tenant".into(), "c".into());
    q.handle.submit(item).await;
    answers.push(Answered(rx));
    let plain = q.submit("none").await;
    let mut batches = Vec::new();
    for _ in 0..4 {
        let b = q.next_batch().await;
        batches.push((b.key, b.payloads, b.trigger));
    }
    batches.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    assert_eq!(
        batches,
        [
            (None, vec!["none".to_owned()], Trigger::Delay),
            (Some("a".into()), names("a", 4), Trigger::Size),
            (Some("b".into()), names("b", 4), Trigger::Size),
            (Some("c".into()), vec!["c0".to_owned()], Trigger::Delay),
        ]
    );
    for rx in answers {
        ok(rx).await;
    }
    ok(plain).await;
    assert!(
        Instant::now() - t0 <= Duration::from_millis(3),
        "the delay applies per key"
    );
}

#[tokio::test(start_paused = true)]
async fn backlogged_keys_share_the_handler_by_weight() {
    // A noisy key with 10x the items of a quiet one, weights 3 : 1, and a
    // handler that takes one batch at a time.
    let mut q = start(keyed(&[("noisy", 3)]), true, Answer::Echo);
    let mut answers = Vec::new();
    for i in 0..400 {
        answers.push(q.submit_keyed("noisy", &format!("n{i}")).await);
        if i % 10 == 0 {
            answers.push(q.submit_keyed("quiet", &format!("q{i}")).await);
        }
    }
    // The first batch went out before the rest arrived; then, while both
    // keys are backlogged, quiet gets 1 batch in 4.
    let first = q.next_batch().await;
    q.gate.add_permits(1);
    let mut quiet = 0;
    for _ in 0..40 {
        let b = q.next_batch().await;
        if b.key.as_deref() == Some("quiet") {
            quiet += 1;
        }
        q.gate.add_permits(1);
    }
    assert_eq!(first.payloads.len(), 4);
    assert!(
        (9..=11).contains(&quiet),
        "quiet sent {quiet} of 40 batches, weight 1 of 4"
    );
    q.gate.add_permits(1_000);
    for rx in answers {
        ok(rx).await;
    }
    let series = |key: &str| {
        let needle = format!("batchgate_key_items_total{{queue=\"q\",key=\"{key}\"}} ");
        let text = q.metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with(&needle))
            .unwrap()
            .to_owned();
        line[needle.len()..].parse::<u64>().unwrap()
    };
    assert_eq!(
        series("noisy"),
        400,
        "a key named in weights has its own series"
    );
    assert_eq!(series("other"), 40, "the rest share one");
}

/// Releases batches one at a time until one of key `quiet` goes; returns
/// how many noisy ones went first.
async fn noisy_batches_before_quiet(q: &mut TestQueue) -> usize {
    let mut waited = 0;
    loop {
        q.gate.add_permits(1);
        let b = q.next_batch().await;
        if b.key.as_deref() == Some("quiet") {
            return waited;
        }
        waited += 1;
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_key_waits_at_most_one_round_behind_a_noisy_one() {
    let mut q = start(keyed(&[]), true, Answer::Echo);
    let mut answers = Vec::new();
    for i in 0..400 {
        answers.push(q.submit_keyed("noisy", &format!("n{i}")).await);
    }
    let _ = q.next_batch().await;
    // Equal weights: once the quiet key has a batch ready (a full one at
    // once; a lone item after its max_delay), the noisy key spends at most
    // the rest of its quantum (one batch of 4) before it goes.
    let mut quiet = Vec::new();
    for i in 0..4 {
        quiet.push(q.submit_keyed("quiet", &format!("q{i}")).await);
    }
    let waited = noisy_batches_before_quiet(&mut q).await;
    assert!(
        waited <= 1,
        "the full quiet batch waited {waited} noisy batches"
    );
    quiet.push(q.submit_keyed("quiet", "lone").await);
    // Accepted (a stats call queues behind it), then its delay passes.
    q.handle.stats().await.unwrap();
    tokio::time::advance(Duration::from_millis(2)).await;
    let waited = noisy_batches_before_quiet(&mut q).await;
    assert!(
        waited <= 1,
        "the lone quiet item waited {waited} noisy batches after its delay"
    );
    q.gate.add_permits(1_000);
    for rx in quiet.into_iter().chain(answers) {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn max_keys_refuses_a_new_key_until_an_idle_one_is_dropped() {
    let q = start(
        Policy {
            max_keys: 2,
            mode: Mode::Manual,
            ..keyed(&[])
        },
        false,
        Answer::Echo,
    );
    let a = q.submit_keyed("a", "a").await;
    let b = q.submit_keyed("b", "b").await;
    let refused = q.submit_keyed("c", "c").await.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("2 batch keys pending (max_keys)"),
        "{}",
        refused.message()
    );
    let plain = q.submit("no key").await;
    assert_eq!(
        q.handle.flush().await.unwrap(),
        3,
        "items without a key need no lane of their own"
    );
    for rx in [a, b, plain] {
        ok(rx).await;
    }
    // Both keys are idle now, and dropped: a new one fits.
    let c = q.submit_keyed("c", "c").await;
    assert_eq!(q.handle.flush().await.unwrap(), 1);
    ok(c).await;
    let long = q
        .submit_keyed(&"k".repeat(300), "x")
        .await
        .await
        .unwrap()
        .unwrap_err();
    common::assert_status(&long, Code::InvalidArgument, "batch key of 300 bytes");
    assert_eq!(q.metric("rejected"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_key_per_item_still_answers_every_item_once() {
    let mut q = start(
        Policy {
            max_in_flight_batches: 8,
            ..keyed(&[])
        },
        false,
        Answer::Echo,
    );
    let mut answers = Vec::new();
    let n = 500;
    for i in 0..n {
        answers.push(q.submit_keyed(&format!("k{i}"), &format!("i{i}")).await);
    }
    let mut seen = 0;
    while seen < n {
        let b = q.next_batch().await;
        assert_eq!(b.payloads.len(), 1, "one item per key");
        assert_eq!(
            b.key.as_deref(),
            Some(format!("k{}", &b.payloads[0][1..]).as_str())
        );
        seen += 1;
    }
    for (i, rx) in answers.into_iter().enumerate() {
        assert_eq!(ok(rx).await.payload, format!("i{i}").as_bytes());
    }
    assert_eq!(q.metric("ok"), 500);
    assert_eq!(q.handle.stats().await.unwrap().depth, 0);
}

#[tokio::test(start_paused = true)]
async fn with_shards_a_keys_items_meet_in_one_shard() {
    let mut q = start(
        Policy {
            max_batch_size: 8,
            max_in_flight_batches: 8,
            shards: 2,
            ..keyed(&[])
        },
        false,
        Answer::Echo,
    );
    // Unconstrained: the actors do not run meanwhile, so without the key
    // the spill rule would split these 8 items 4 + 4 between the shards.
    let answers = tokio::task::unconstrained(async {
        let mut answers = Vec::new();
        for i in 0..8 {
            answers.push(q.submit_keyed("a", &format!("a{i}")).await);
        }
        answers
    })
    .await;
    let batch = q.next_batch().await;
    assert_eq!(
        (batch.trigger, batch.payloads),
        (Trigger::Size, names("a", 8))
    );
    for rx in answers {
        ok(rx).await;
    }
}

fn budget(cost: u64, model: batchgate::queue::CostModel) -> Policy {
    Policy {
        max_batch_size: 100,
        max_batch_cost: cost,
        cost_model: model,
        ..policy()
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_exactly_at_the_budget_goes_at_once() {
    use batchgate::queue::CostModel;
    let mut q = start(budget(10, CostModel::Sum), false, Answer::Echo);
    let t0 = Instant::now();
    let answers = vec![
        q.submit_costing(4).await,
        q.submit_costing(4).await,
        q.submit_costing(2).await,
    ];
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.cost, b.at),
        (Trigger::Cost, vec![4, 4, 2], 10, t0)
    );
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_over_the_budget_starts_the_next_batch() {
    use batchgate::queue::CostModel;
    let mut q = start(budget(10, CostModel::Sum), false, Answer::Echo);
    let t0 = Instant::now();
    let mut answers = vec![q.submit_costing(4).await, q.submit_costing(4).await];
    q.assert_no_batch();
    // 4 + 4 + 3 = 11: the 3 does not fit, so the 8 go now and it waits.
    answers.push(q.submit_costing(3).await);
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.at),
        (Trigger::Cost, vec![4, 4], t0)
    );
    let b = q.next_batch().await;
    assert_eq!((b.trigger, b.costs.clone()), (Trigger::Delay, vec![3]));
    assert_eq!(b.at - t0, Duration::from_millis(2));
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn padded_counts_the_largest_item_for_every_item() {
    use batchgate::queue::CostModel;
    // Padded: [2, 2, 6] costs 6 × 3 = 18 > 12, so [2, 2] (4) goes alone.
    let mut q = start(budget(12, CostModel::Padded), false, Answer::Echo);
    let mut answers = Vec::new();
    for c in [2, 2, 6] {
        answers.push(q.submit_costing(c).await);
    }
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.cost),
        (Trigger::Cost, vec![2, 2], 4)
    );
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.cost),
        (Trigger::Delay, vec![6], 6)
    );
    // Summed, the same three cost 10 and wait for the delay together.
    let mut q = start(budget(12, CostModel::Sum), false, Answer::Echo);
    for c in [2, 2, 6] {
        answers.push(q.submit_costing(c).await);
    }
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.cost),
        (Trigger::Delay, vec![2, 2, 6], 10)
    );
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_oversize_item_is_refused_or_sent_alone() {
    use batchgate::queue::{CostModel, Oversize};
    let mut q = start(budget(10, CostModel::Sum), false, Answer::Echo);
    let refused = q.submit_costing(11).await;
    let status = refused.await.unwrap().unwrap_err();
    common::assert_status(&status, Code::InvalidArgument, "max_batch_cost 10");
    assert_eq!(q.metric("rejected"), 1);
    let fine = q.submit_costing(3).await;
    assert_eq!(q.next_batch().await.costs, vec![3]);
    ok(fine).await;

    let alone = Policy {
        oversize: Oversize::Alone,
        ..budget(10, CostModel::Sum)
    };
    let mut q = start(alone, false, Answer::Echo);
    let t0 = Instant::now();
    let small = q.submit_costing(3).await;
    let big = q.submit_costing(25).await;
    let after = q.submit_costing(2).await;
    // The 3 cannot share with the 25: it goes; the 25 goes alone at once;
    // the 2 waits for its delay.
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.at),
        (Trigger::Cost, vec![3], t0)
    );
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone(), b.at),
        (Trigger::Cost, vec![25], t0)
    );
    let b = q.next_batch().await;
    assert_eq!((b.trigger, b.costs.clone()), (Trigger::Delay, vec![2]));
    for rx in [small, big, after] {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn cost_buckets_never_share_a_batch() {
    let bucketed = Policy {
        max_batch_size: 100,
        cost_buckets: vec![8, 64],
        ..policy()
    };
    let mut q = start(bucketed, false, Answer::Echo);
    let mut answers = Vec::new();
    for c in [3, 50, 5, 100, 7, 64, 9000] {
        answers.push(q.submit_costing(c).await);
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let b = q.next_batch().await;
        assert_eq!(b.trigger, Trigger::Delay);
        seen.push(b.costs);
    }
    seen.sort();
    assert_eq!(seen, [vec![3, 5, 7], vec![50, 64], vec![100, 9000]]);
    q.assert_no_batch();
    for rx in answers {
        ok(rx).await;
    }
    // A bucket's lane holds only while it has items: a later item of the
    // same bucket batches by itself.
    let late = q.submit_costing(60).await;
    assert_eq!(q.next_batch().await.costs, vec![60]);
    ok(late).await;
}

#[tokio::test(start_paused = true)]
async fn buckets_apply_inside_a_key_and_the_budget_per_bucket() {
    use batchgate::queue::CostModel;
    let p = Policy {
        cost_buckets: vec![10],
        ..budget(20, CostModel::Padded)
    };
    let mut q = start(p, false, Answer::Echo);
    let mut answers = Vec::new();
    for (key, cost) in [("a", 5), ("b", 5), ("a", 15), ("a", 5), ("a", 15)] {
        let (mut item, rx) = common::queue::item(format!("{key}{cost}"), 0, None);
        item.key = Some(key.into());
        item.cost = Some(cost);
        q.handle.submit(item).await;
        answers.push(Answered(rx));
    }
    // a's long items: 15 × 2 = 30 > 20, so the first goes when the second
    // comes; the rest wait for their delay, one batch per (key, bucket).
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.key.as_deref(), b.costs.clone()),
        (Trigger::Cost, Some("a"), vec![15])
    );
    let mut rest = Vec::new();
    for _ in 0..3 {
        let b = q.next_batch().await;
        assert_eq!(b.trigger, Trigger::Delay);
        rest.push((b.key.unwrap(), b.costs));
    }
    rest.sort();
    assert_eq!(
        rest,
        [
            ("a".to_owned(), vec![5, 5]),
            ("a".to_owned(), vec![15]),
            ("b".to_owned(), vec![5])
        ]
    );
    for rx in answers {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn costs_come_from_the_attribute_and_bad_ones_are_refused_alone() {
    use batchgate::queue::CostModel;
    let p = Policy {
        cost_attribute: "tokens".into(),
        ..budget(100, CostModel::Sum)
    };
    let mut q = start(p, false, Answer::Echo);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for tokens in [
        "30",
        "-1",
        "NaN",
        "many",
        "1e300",
        "40",
        "9007199254740993",
        "30",
    ] {
        let (mut item, rx) = common::queue::item(tokens.to_owned(), 0, None);
        item.attributes.insert("tokens".into(), tokens.into());
        q.handle.submit(item).await;
        if tokens.parse::<u64>().is_ok_and(|n| n <= 1 << 53) {
            good.push(Answered(rx));
        } else {
            bad.push((tokens, Answered(rx)));
        }
    }
    // 30 + 40 + 30 = 100: exactly at the budget, at once.
    let b = q.next_batch().await;
    assert_eq!(
        (b.trigger, b.costs.clone()),
        (Trigger::Cost, vec![30, 40, 30])
    );
    for rx in good {
        ok(rx).await;
    }
    for (tokens, rx) in bad {
        let status = rx.await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{tokens}");
        assert!(
            status.message().contains("attribute \"tokens\""),
            "{}",
            status.message()
        );
    }
    assert_eq!(q.metric("rejected"), 5);
}

#[tokio::test(start_paused = true)]
async fn a_budget_set_by_update_counts_the_items_already_pending() {
    use batchgate::queue::CostModel;
    let mut q = start(
        Policy {
            max_batch_size: 100,
            max_delay: Duration::from_secs(1),
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let mut answers = Vec::new();
    for c in [6, 6] {
        answers.push(q.submit_costing(c).await);
    }
    q.assert_no_batch();
    let update = Command::Update(
        Policy {
            max_delay: Duration::from_secs(1),
            ..budget(10, CostModel::Sum)
        },
        None,
    );
    q.handle.control(update).await.unwrap();
    // The next turn sees 12 ≥ 10 pending: the first 6 goes.
    answers.push(q.submit_costing(1).await);
    let b = q.next_batch().await;
    assert_eq!((b.trigger, b.costs.clone()), (Trigger::Cost, vec![6]));
    let b = q.next_batch().await;
    assert_eq!((b.trigger, b.costs.clone()), (Trigger::Delay, vec![6, 1]));
    for rx in answers {
        ok(rx).await;
    }
}

fn manual() -> Policy {
    Policy {
        mode: Mode::Manual,
        ..policy()
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_in_flight_joins_the_first_and_runs_once() {
    let mut q = start(manual(), true, Answer::Echo);
    let first = q.submit_once("k1", "payload-1", None).await;
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["payload-1"]);
    // The batch is in the handler: a retry waits for the first's answer;
    // the key reused with another payload is refused at once.
    let reused = q.submit_once("k1", "payload-2", None).await;
    assert_eq!(code(reused).await, Code::InvalidArgument);
    let retry = q.submit_once("k1", "payload-1", None).await;
    assert_eq!(
        q.handle.flush().await.unwrap(),
        0,
        "the retry is not queued"
    );
    q.gate.add_permits(1);
    let (a, b) = (ok(first).await, ok(retry).await);
    assert_eq!(a.payload, &b"payload-1"[..]);
    assert_eq!(b.payload, &b"payload-1"[..]);
    assert_eq!(a.batch, b.batch, "the same batch facts");
    q.assert_no_batch();
    assert_eq!((q.keyed("first"), q.keyed("joined")), (1.0, 1.0));
}

#[tokio::test(start_paused = true)]
async fn a_retry_within_the_window_is_replayed_and_after_it_runs_again() {
    let mut q = start(
        Policy {
            idempotency_window: Duration::from_secs(60),
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let first = q.submit_once("k", "one", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["one"]);
    let first = ok(first).await;
    tokio::time::sleep(Duration::from_secs(59)).await;
    let again = ok(q.submit_once("k", "one", None).await).await;
    assert_eq!(again, first, "a copy of the kept answer");
    q.assert_no_batch();
    assert_eq!(q.keyed("replayed"), 1.0);
    assert_eq!(q.handle.idempotency_keys(), 1);
    // The window counts from the answer: 60 s after it, the key is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let third = q.submit_once("k", "one", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["one"]);
    ok(third).await;
    assert_eq!(q.keyed("first"), 2.0);
}

#[tokio::test(start_paused = true)]
async fn different_keys_and_keyless_items_run_as_usual() {
    let mut q = start(policy(), false, Answer::Echo);
    let a = q.submit_once("a", "a", None).await;
    let b = q.submit_once("b", "b", None).await;
    let plain1 = q.submit("p").await;
    let plain2 = q.submit("p").await;
    assert_eq!(q.next_batch().await.payloads, ["a", "b", "p", "p"]);
    for rx in [a, b, plain1, plain2] {
        ok(rx).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_caller_gone_does_not_stop_a_keyed_item_and_its_retry_gets_the_answer() {
    let mut q = start(manual(), false, Answer::Echo);
    drop(q.submit_once("k", "work", None).await);
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["work"], "still executed");
    tokio::time::sleep(Duration::from_millis(1)).await;
    let retry = ok(q.submit_once("k", "work", None).await).await;
    assert_eq!(retry.payload, &b"work"[..]);
    q.assert_no_batch();
    assert_eq!(q.keyed("replayed"), 1.0);
}

#[tokio::test(start_paused = true)]
async fn an_item_that_never_ran_is_not_remembered() {
    let mut q = start(manual(), false, Answer::Echo);
    let expired = q
        .submit_once("k", "late", Some(Duration::from_millis(10)))
        .await;
    assert_eq!(code(expired).await, Code::DeadlineExceeded);
    assert_eq!(q.handle.idempotency_keys(), 0);
    let retry = q.submit_once("k", "late", None).await;
    q.handle.flush().await.unwrap();
    assert_eq!(q.next_batch().await.payloads, ["late"], "the retry runs");
    ok(retry).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_execution_is_remembered_too() {
    let mut q = start(manual(), false, Answer::FirstThenFail);
    let a = q.submit_once("a", "a", None).await;
    let b = q.submit_once("b", "b", None).await;
    q.handle.flush().await.unwrap();
    q.next_batch().await;
    ok(a).await;
    assert_eq!(code(b).await, Code::Unavailable);
    // It reached the backend, which may have acted on it: a retry gets
    // the same failure instead of a second execution.
    assert_eq!(
        code(q.submit_once("b", "b", None).await).await,
        Code::Unavailable
    );
    assert_eq!(q.handle.flush().await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_store_is_bounded_and_refuses_new_keys_when_full() {
    let mut q = start(
        Policy {
            idempotency_max_keys: 2,
            idempotency_window: Duration::from_secs(1),
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let a = q.submit_once("a", "a", None).await;
    let b = q.submit_once("b", "b", None).await;
    let full = q.submit_once("c", "c", None).await;
    let status = full.await.unwrap().unwrap_err();
    common::assert_status(&status, Code::ResourceExhausted, "idempotency_max_keys");
    // A retry of a kept key is still served.
    let a_again = q.submit_once("a", "a", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["a", "b"]);
    for rx in [a, b, a_again] {
        ok(rx).await;
    }
    // Once the window of the kept answers ends, there is room again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c = q.submit_once("c", "c", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["c"]);
    ok(c).await;
    assert_eq!(q.keyed("refused"), 1.0);
    assert_eq!(q.metric("rejected"), 1);
    assert_eq!(
        q.series("batchgate_idempotency_keys{queue=\"q\"} "),
        1.0,
        "a and b expired, c kept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_idempotency_key_is_invalid_and_a_zero_window_turns_keys_off() {
    let mut q = start(
        Policy {
            idempotency_window: Duration::ZERO,
            ..policy()
        },
        false,
        Answer::Echo,
    );
    let long = q.submit_once(&"k".repeat(257), "x", None).await;
    let status = long.await.unwrap().unwrap_err();
    common::assert_status(&status, Code::InvalidArgument, "256 bytes");
    let one = q.submit_once("k", "x", None).await;
    let two = q.submit_once("k", "x", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["x", "x"], "both ran");
    ok(one).await;
    ok(two).await;
}

#[tokio::test(start_paused = true)]
async fn a_policy_update_changes_the_window() {
    let mut q = start(policy(), false, Answer::Echo);
    q.handle
        .control(Command::Update(
            Policy {
                idempotency_window: Duration::ZERO,
                ..policy()
            },
            None,
        ))
        .await
        .unwrap();
    let one = q.submit_once("k", "x", None).await;
    let two = q.submit_once("k", "x", None).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(q.next_batch().await.payloads, ["x", "x"]);
    ok(one).await;
    ok(two).await;
}

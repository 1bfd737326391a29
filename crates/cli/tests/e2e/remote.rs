//! Remote gRPC backends, against fake `Backend` servers on 127.0.0.1: result
//! routing, per-item errors, retries, bisection, killed endpoints, deadlines,
//! malformed responses and the streaming variant.

use crate::common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use batchgate::pb::{
    self, BackendItem, BatchRequest, BatchResponse, ItemError, ItemOutput, ItemResult,
    backend_server::Backend, item_result::Outcome, stream_response,
};
use common::{TestServer, backend::Killable, config};
use tokio::sync::Notify;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

/// How the fake backend behaves.
#[derive(Debug, Default)]
struct Fake {
    name: String,
    /// Calls seen.
    calls: AtomicU32,
    /// The next this-many calls fail UNAVAILABLE.
    fail_next: AtomicU32,
    /// Never answer; tell `got_call` instead.
    hang: bool,
    got_call: Notify,
    /// Answer with a missing, a duplicate and an out-of-range index.
    malformed: bool,
    /// Batch sizes seen.
    sizes: Mutex<Vec<usize>>,
    /// Trace ids seen.
    trace_ids: Mutex<Vec<String>>,
    /// Each payload seen, how often, and the largest `timeout_ms` it came with.
    executions: Mutex<HashMap<String, (u32, u32)>>,
}

fn answer(fake: &Fake, item: &BackendItem) -> ItemResult {
    let text = String::from_utf8_lossy(&item.payload).to_string();
    let outcome = if text.starts_with("bad") {
        Outcome::Error(ItemError {
            code: Code::InvalidArgument as i32,
            message: format!("{text} is bad"),
            batch: None,
        })
    } else {
        Outcome::Ok(ItemOutput {
            payload: text.to_uppercase().into_bytes().into(),
            attributes: HashMap::from([("backend".to_owned(), fake.name.clone())]),
        })
    };
    ItemResult {
        index: item.index,
        outcome: Some(outcome),
    }
}

impl Fake {
    async fn check(&self, request: &BatchRequest) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.sizes.lock().unwrap().push(request.items.len());
        self.trace_ids
            .lock()
            .unwrap()
            .extend(request.items.iter().map(|i| i.trace_id.clone()));
        for item in &request.items {
            let mut seen = self.executions.lock().unwrap();
            let entry = seen
                .entry(String::from_utf8_lossy(&item.payload).into_owned())
                .or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(request.timeout_ms);
        }
        if self.hang {
            self.got_call.notify_one();
            std::future::pending::<()>().await;
        }
        let take = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_ok() {
            return Err(Status::unavailable("fake is down"));
        }
        if request
            .items
            .iter()
            .any(|i| i.payload.starts_with(b"poison"))
        {
            return Err(Status::invalid_argument("poison in batch"));
        }
        if request.items.iter().any(|i| i.payload.starts_with(b"slow")) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if request
            .items
            .iter()
            .any(|i| i.payload.starts_with(b"keyed"))
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(())
    }
}

/// The tonic service wrapper around a shared fake.
#[derive(Clone)]
struct Svc(Arc<Fake>);

impl std::ops::Deref for Svc {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

#[tonic::async_trait]
impl Backend for Svc {
    async fn process_batch(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        let request = r.into_inner();
        self.check(&request).await?;
        let mut results: Vec<ItemResult> = request.items.iter().map(|i| answer(self, i)).collect();
        if self.malformed {
            // Drop the last item, answer the first twice, add a stranger.
            results.pop();
            results.push(answer(self, &request.items[0]));
            results.push(ItemResult {
                index: 999,
                outcome: results[0].outcome.clone(),
            });
        }
        Ok(Response::new(BatchResponse {
            results,
            ..Default::default()
        }))
    }

    type ProcessBatchStreamStream =
        std::pin::Pin<Box<dyn Stream<Item = Result<ItemResult, Status>> + Send>>;

    async fn process_batch_stream(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<Self::ProcessBatchStreamStream>, Status> {
        let request = r.into_inner();
        self.check(&request).await?;
        let stream = async_stream(request.items, self.0.clone());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Streams results, holding back items whose payload starts with "later"
/// for 300 ms.
fn async_stream(
    items: Vec<BackendItem>,
    fake: Arc<Fake>,
) -> impl Stream<Item = Result<ItemResult, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let (now, later): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|i| !i.payload.starts_with(b"later"));
        for item in now {
            let _ = tx.send(Ok(answer(&fake, &item))).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for item in later {
            let _ = tx.send(Ok(answer(&fake, &item))).await;
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A fake backend on its own runtime, so `kill` drops every connection at
/// once, like a crashed process.
struct Running {
    fake: Arc<Fake>,
    server: Killable,
}

impl std::ops::Deref for Running {
    type Target = Killable;
    fn deref(&self) -> &Killable {
        &self.server
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Killable {
        &mut self.server
    }
}

fn start_backend(fake: Fake) -> Running {
    let fake = Arc::new(fake);
    let server = Killable::start(Svc(fake.clone()));
    Running { fake, server }
}

fn named(name: &str) -> Fake {
    Fake {
        name: name.into(),
        ..Default::default()
    }
}

fn queue_config(endpoints: &[&Running], extra: &str) -> String {
    let list: Vec<String> = endpoints
        .iter()
        .map(|r| format!("\"{}\"", r.url()))
        .collect();
    format!(
        r#"
        [queues.remote]
        max_batch_size = 16
        max_delay = "20ms"
        handler = {{ kind = "grpc", endpoints = [{}], eject_for = "1h" {extra} }}
        "#,
        list.join(", ")
    )
}

fn item(id: &str, payload: &str) -> pb::StreamRequest {
    pb::StreamRequest {
        id: id.into(),
        queue: "remote".into(),
        payload: payload.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// An item's result, or its code and message.
type Answer = Result<pb::SubmitResponse, (Code, String)>;

/// Sends items over one stream; returns each id's answer.
async fn send_stream(server: &TestServer, items: Vec<pb::StreamRequest>) -> Vec<(String, Answer)> {
    let answers = common::stream_all(&mut server.client().await, items).await;
    answers
        .into_iter()
        .map(|a| {
            let a = a.expect("stream ends OK");
            let outcome = match a.outcome.unwrap() {
                stream_response::Outcome::Result(r) => Ok(r),
                stream_response::Outcome::Error(e) => Err((Code::from(e.code), e.message)),
            };
            (a.id, outcome)
        })
        .collect()
}

fn by_id(answers: Vec<(String, Answer)>) -> HashMap<String, Answer> {
    let mut map = HashMap::new();
    for (id, outcome) in answers {
        assert!(
            map.insert(id.clone(), outcome).is_none(),
            "{id} answered twice"
        );
    }
    map
}

#[tokio::test]
async fn results_reach_the_right_callers_across_endpoints() {
    let a = start_backend(named("a"));
    let b = start_backend(named("b"));
    let server = TestServer::start(config(&queue_config(&[&a, &b], ", max_in_flight = 1"))).await;
    let client = server.client().await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..300 {
        let mut client = client.clone();
        calls.spawn(async move {
            let mut request = tonic::Request::new(pb::SubmitRequest {
                queue: "remote".into(),
                payload: format!("item-{i}").into_bytes().into(),
                ..Default::default()
            });
            request
                .metadata_mut()
                .insert("x-request-id", format!("req-{i}").parse().unwrap());
            (i, client.submit(request).await)
        });
    }
    let mut backends = HashSet::new();
    while let Some(done) = calls.join_next().await {
        let (i, result) = done.unwrap();
        let response = result.expect("ok").into_inner();
        assert_eq!(response.payload, format!("ITEM-{i}").as_bytes());
        backends.insert(response.attributes["backend"].clone());
    }
    assert_eq!(backends.len(), 2, "batches were spread over both endpoints");
    let traces: HashSet<String> = [&a, &b]
        .iter()
        .flat_map(|r| r.fake.trace_ids.lock().unwrap().clone())
        .collect();
    assert!(
        traces.contains("req-7"),
        "the request id travels to the backend"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn per_item_errors_stay_per_item() {
    let a = start_backend(named("a"));
    let server = TestServer::start(config(&queue_config(&[&a], ""))).await;
    let answers = by_id(
        send_stream(
            &server,
            vec![item("1", "good"), item("2", "bad one"), item("3", "fine")],
        )
        .await,
    );
    assert_eq!(answers["1"].as_ref().unwrap().payload, b"GOOD".as_slice());
    assert_eq!(answers["3"].as_ref().unwrap().payload, b"FINE".as_slice());
    let (code, message) = answers["2"].as_ref().unwrap_err();
    assert_eq!(
        (*code, message.as_str()),
        (Code::InvalidArgument, "bad one is bad")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_poison_item_is_bisected_out_and_fails_alone() {
    let a = start_backend(named("a"));
    let server = TestServer::start(config(&queue_config(&[&a], ""))).await;
    let items = (0..8)
        .map(|i| item(&i.to_string(), if i == 5 { "poison" } else { "ok" }))
        .collect();
    let answers = by_id(send_stream(&server, items).await);
    assert_eq!(answers.len(), 8);
    for (id, outcome) in &answers {
        if id == "5" {
            let (code, message) = outcome.as_ref().unwrap_err();
            assert_eq!(*code, Code::InvalidArgument);
            assert_eq!(message, "poison in batch");
        } else {
            assert_eq!(outcome.as_ref().unwrap().payload, b"OK".as_slice(), "{id}");
        }
    }
    // 8 → 4+4 → 2+2 → 1+1: one call for the batch, then 6 more.
    assert_eq!(a.fake.calls.load(Ordering::SeqCst), 7);
    server.shutdown().await;
}

#[tokio::test]
async fn without_bisect_a_rejected_batch_fails_whole() {
    let a = start_backend(named("a"));
    let server = TestServer::start(config(&queue_config(&[&a], ", bisect = false"))).await;
    let answers = by_id(send_stream(&server, vec![item("1", "ok"), item("2", "poison")]).await);
    for outcome in answers.values() {
        assert_eq!(outcome.as_ref().unwrap_err().0, Code::InvalidArgument);
    }
    assert_eq!(a.fake.calls.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_elsewhere_and_ejected() {
    let down = Fake {
        fail_next: AtomicU32::new(1000),
        ..named("down")
    };
    let down = start_backend(down);
    let up = start_backend(named("up"));
    let server = TestServer::start(config(&queue_config(
        &[&down, &up],
        ", eject_after = 2, max_in_flight = 1",
    )))
    .await;
    for round in 0..6 {
        let answers = by_id(send_stream(&server, vec![item("x", &format!("r{round}"))]).await);
        let response = answers["x"]
            .as_ref()
            .expect("retried on the healthy endpoint");
        assert_eq!(response.attributes["backend"], "up");
    }
    let calls = down.fake.calls.load(Ordering::SeqCst);
    assert!(
        calls <= 2,
        "the failing endpoint was ejected after 2 failures, saw {calls}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn when_every_endpoint_fails_items_get_unavailable() {
    let down = start_backend(Fake {
        fail_next: AtomicU32::new(1000),
        ..named("down")
    });
    let server = TestServer::start(config(&queue_config(
        &[&down],
        ", retries = 2, eject_after = 100",
    )))
    .await;
    let answers = by_id(send_stream(&server, vec![item("x", "y")]).await);
    let (code, message) = answers["x"].as_ref().unwrap_err();
    assert_eq!(*code, Code::Unavailable);
    assert!(message.contains("after 3 attempts"), "{message}");
    assert_eq!(down.fake.calls.load(Ordering::SeqCst), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn an_endpoint_killed_mid_batch_loses_nothing() {
    let mut dying = start_backend(Fake {
        hang: true,
        ..named("dying")
    });
    let healthy = start_backend(named("healthy"));
    // Only the dying endpoint at first, so the batch goes there.
    let server = TestServer::start(config(&queue_config(&[&dying], ""))).await;
    let mut control =
        batchgate::pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let pending = {
        let server_url = server.url();
        tokio::spawn(async move {
            let mut client = pb::batcher_client::BatcherClient::connect(server_url)
                .await
                .unwrap();
            let items: Vec<_> = (0..5)
                .map(|i| item(&i.to_string(), &format!("p{i}")))
                .collect();
            common::stream_all(&mut client, items).await
        })
    };
    dying.fake.got_call.notified().await;
    control
        .register_endpoint(pb::RegisterEndpointRequest {
            queue: "remote".into(),
            address: healthy.url(),
            ..Default::default()
        })
        .await
        .unwrap();
    dying.kill();
    let answers = pending.await.unwrap();
    let mut ids = HashSet::new();
    for answer in answers {
        let answer = answer.unwrap();
        assert!(ids.insert(answer.id.clone()), "answered twice");
        let Some(stream_response::Outcome::Result(r)) = answer.outcome else {
            panic!("item {} failed: {:?}", answer.id, answer.outcome);
        };
        assert_eq!(r.attributes["backend"], "healthy");
    }
    assert_eq!(ids.len(), 5);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_backend_yields_deadline_exceeded() {
    let slow = start_backend(named("slow"));
    let server = TestServer::start(config(&queue_config(&[&slow], ""))).await;
    let mut request = item("x", "slow");
    request.timeout_ms = 200;
    let started = std::time::Instant::now();
    let answers = by_id(send_stream(&server, vec![request]).await);
    let (code, _) = answers["x"].as_ref().unwrap_err();
    assert_eq!(*code, Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call was cut at the deadline"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_cut_by_the_handler_timeout_is_deadline_exceeded_and_never_retried() {
    let slow = start_backend(named("slow"));
    let server = TestServer::start(config(&queue_config(
        &[&slow],
        r#", timeout = "200ms", retries = 3, eject_after = 1"#,
    )))
    .await;
    let answers = by_id(send_stream(&server, vec![item("x", "slow")]).await);
    let (code, message) = answers["x"].as_ref().unwrap_err();
    assert_eq!(*code, Code::DeadlineExceeded, "{message}");
    assert_eq!(slow.fake.calls.load(Ordering::SeqCst), 1, "not retried");
    // A deadline is not held against the endpoint: with eject_after = 1 a
    // charged failure would have ejected the only endpoint.
    let answers = by_id(send_stream(&server, vec![item("y", "fine")]).await);
    assert_eq!(
        answers["y"].as_ref().expect("still served").payload,
        b"FINE"[..]
    );
    let endpoint = format!("endpoint=\"{}\"", slow.url());
    let series = |outcome: &str| {
        format!(
            "batchgate_backend_calls_total{{queue=\"remote\",{endpoint},outcome=\"{outcome}\"}}"
        )
    };
    let text = server.metrics_text().await;
    assert_eq!(
        common::sample(&text, &series("deadline")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(common::sample(&text, &series("ok")), Some(1.0));
    assert_eq!(
        common::sample(
            &text,
            &format!("batchgate_backend_ejections_total{{queue=\"remote\",{endpoint}}}")
        ),
        Some(0.0)
    );
    assert_eq!(
        common::sample(
            &text,
            &format!("batchgate_backend_in_flight_calls{{queue=\"remote\",{endpoint}}}")
        ),
        Some(0.0)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn retries_back_off_and_are_counted() {
    let flaky = start_backend(Fake {
        fail_next: AtomicU32::new(2),
        ..named("flaky")
    });
    let server = TestServer::start(config(&queue_config(
        &[&flaky],
        r#", retries = 2, eject_after = 100, retry_backoff = "100ms", retry_backoff_max = "150ms""#,
    )))
    .await;
    let started = std::time::Instant::now();
    let answers = by_id(send_stream(&server, vec![item("x", "y")]).await);
    assert_eq!(
        answers["x"].as_ref().expect("third call succeeds").payload,
        b"Y"[..]
    );
    // Two waits of at least 100 ms before the second and third calls.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(flaky.fake.calls.load(Ordering::SeqCst), 3);
    let endpoint = format!("endpoint=\"{}\"", flaky.url());
    let text = server.metrics_text().await;
    assert_eq!(
        common::sample(
            &text,
            &format!("batchgate_backend_retries_total{{queue=\"remote\",{endpoint}}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        common::sample(
            &text,
            &format!(
                "batchgate_backend_calls_total{{queue=\"remote\",{endpoint},outcome=\"unavailable\"}}"
            )
        ),
        Some(2.0)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_malformed_response_fails_exactly_the_affected_items() {
    let odd = start_backend(Fake {
        malformed: true,
        ..named("odd")
    });
    let server = TestServer::start(config(&queue_config(&[&odd], ""))).await;
    let items: Vec<_> = (0..4)
        .map(|i| item(&i.to_string(), &format!("p{i}")))
        .collect();
    let answers = by_id(send_stream(&server, items).await);
    assert_eq!(answers.len(), 4);
    let failed: Vec<_> = answers.iter().filter(|(_, o)| o.is_err()).collect();
    assert_eq!(failed.len(), 1, "{answers:?}");
    let (code, message) = failed[0].1.as_ref().unwrap_err();
    assert_eq!(*code, Code::Internal);
    assert!(message.contains("no result"), "{message}");
    for (id, outcome) in &answers {
        if let Ok(r) = outcome {
            assert_eq!(r.payload, format!("P{id}").as_bytes());
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_backends_forward_each_result_as_it_comes() {
    let a = start_backend(named("a"));
    let server = TestServer::start(config(&queue_config(&[&a], ", streaming = true"))).await;
    let answers = send_stream(&server, vec![item("late", "later"), item("early", "now")]).await;
    assert_eq!(
        answers[0].0, "early",
        "the early result was forwarded first"
    );
    let early = answers[0].1.as_ref().unwrap().batch.unwrap();
    let late = answers[1].1.as_ref().unwrap().batch.unwrap();
    assert_eq!(early.batch_id, late.batch_id, "both rode in one batch");
    assert!(late.handler_us >= 300_000 && early.handler_us < late.handler_us);
    server.shutdown().await;
}

/// A keyed unary call with its own deadline.
fn keyed(key: &str, payload: &str, deadline_ms: u64) -> tonic::Request<pb::SubmitRequest> {
    let mut r = tonic::Request::new(pb::SubmitRequest {
        queue: "remote".into(),
        payload: payload.as_bytes().to_vec().into(),
        idempotency_key: key.into(),
        ..Default::default()
    });
    r.set_timeout(Duration::from_millis(deadline_ms));
    r
}

#[tokio::test]
async fn a_keyed_item_outlives_its_callers_deadline_cancel_and_stream_and_runs_once() {
    let backend = start_backend(named("a"));
    let server = TestServer::start(config(&queue_config(&[&backend], ""))).await;
    let client = server.client().await;
    // The backend holds "keyed…" items 300 ms. Each first caller goes
    // while its item is in the backend: by its deadline, by cancelling
    // the call, by dropping its stream.
    let mut deadline = client.clone();
    let by_deadline = deadline
        .submit(keyed("k-deadline", "keyed deadline", 100))
        .await;
    assert!(by_deadline.is_err(), "{by_deadline:?}");
    let mut cancel = client.clone();
    let cancelled = tokio::spawn(async move {
        cancel
            .submit(keyed("k-cancel", "keyed cancel", 5_000))
            .await
    });
    let mut stream_client = client.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::StreamRequest {
        idempotency_key: "k-stream".into(),
        ..item("1", "keyed stream")
    })
    .await
    .unwrap();
    let stream = stream_client
        .stream_submit(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancelled.abort();
    drop((stream, tx));
    // Every retry gets the item's real answer.
    for (key, payload) in [
        ("k-deadline", "keyed deadline"),
        ("k-cancel", "keyed cancel"),
        ("k-stream", "keyed stream"),
    ] {
        let answer = client
            .clone()
            .submit(keyed(key, payload, 5_000))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"))
            .into_inner();
        assert_eq!(answer.payload, payload.to_uppercase().as_bytes(), "{key}");
    }
    let executions = backend.fake.executions.lock().unwrap().clone();
    for payload in ["keyed deadline", "keyed cancel", "keyed stream"] {
        let (runs, timeout_ms) = executions[payload];
        assert_eq!(runs, 1, "{payload} ran once");
        // The backend call ran with the item's deadline (the queue's
        // item_timeout), not the first caller's 100 ms.
        assert!(timeout_ms > 1_000, "{payload}: timeout_ms {timeout_ms}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_paced_queue_paces_by_what_its_endpoints_declare() {
    let a = start_backend(named("a"));
    let b = start_backend(named("b"));
    let toml = queue_config(&[&a], ", parallelism = 2").replace(
        "max_delay = \"20ms\"",
        "max_delay = \"20ms\"\n        pace = \"backend\"\n        max_in_flight_batches = 4",
    );
    let server = TestServer::start(config(&toml)).await;
    let mut control = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let queue = || pb::QueueRef {
        name: "remote".into(),
    };
    // The declared parallelism wins over what the queue would learn
    // (it starts at 1 and climbs when nothing is declared).
    let parallelism = |info: pb::QueueInfo| {
        let learned = info.stats.and_then(|s| s.learned).unwrap_or_default();
        assert!(!learned.parallelism_learned, "{learned:?}");
        learned.parallelism
    };
    let listed = control.list_endpoints(queue()).await.unwrap().into_inner();
    assert_eq!(listed.endpoints[0].parallelism, 2, "{listed:?}");
    let info = control.get_queue(queue()).await.unwrap().into_inner();
    assert_eq!(
        parallelism(info),
        2,
        "the configured endpoint's, not max_in_flight_batches"
    );
    // One more that says 3: the sum. One that says nothing keeps the handler's 2.
    control
        .register_endpoint(pb::RegisterEndpointRequest {
            queue: "remote".into(),
            address: b.url(),
            parallelism: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let info = control.get_queue(queue()).await.unwrap().into_inner();
    assert_eq!(parallelism(info), 5);
    let renewed = control
        .register_endpoint(pb::RegisterEndpointRequest {
            queue: "remote".into(),
            address: a.url(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renewed.parallelism, 2);
    // Items flow through the paced queue.
    let answers = send_stream(
        &server,
        (0..50).map(|i| item(&i.to_string(), "x")).collect(),
    )
    .await;
    assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
    server.shutdown().await;
}

//! End to end over real gRPC: Submit, StreamSubmit, health, reflection and
//! /metrics, against a server on 127.0.0.1.

use crate::common;

use std::collections::{HashMap, HashSet};

use batchgate::pb::{self, stream_response::Outcome};
use common::{TestServer, config, submit_request as request};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;

const ECHO: &str = r#"
[queues.echo]
max_batch_size = 64
max_delay = "2ms"
handler = { kind = "echo" }
"#;

#[tokio::test]
async fn concurrent_unary_submits_are_answered_in_batches() {
    let server = TestServer::start(config(ECHO)).await;
    let client = server.client().await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let mut client = client.clone();
        calls.spawn(async move {
            let mut req = request("echo", format!("item-{i}"));
            req.attributes.insert("n".into(), i.to_string());
            let resp = client.submit(req).await.expect("ok").into_inner();
            (i, resp)
        });
    }
    let mut largest = 0;
    let mut batches = HashSet::new();
    while let Some(done) = calls.join_next().await {
        let (i, resp) = done.unwrap();
        assert_eq!(resp.payload, format!("item-{i}").as_bytes());
        assert_eq!(resp.attributes["n"], i.to_string());
        let batch = resp.batch.expect("batch info");
        assert!(batch.batch_size >= 1 && batch.batch_size <= 64);
        largest = largest.max(batch.batch_size);
        batches.insert(batch.batch_id);
    }
    assert!(largest > 1, "200 concurrent calls never shared a batch");
    assert!(batches.len() < 200);
    server.shutdown().await;
}

#[tokio::test]
async fn one_stream_of_ten_thousand_items_gets_each_answer_once() {
    let server = TestServer::start(config(ECHO)).await;
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(256);
    let sender = tokio::spawn(async move {
        for i in 0..10_000u32 {
            let item = pb::StreamRequest {
                id: format!("id-{i}"),
                queue: "echo".into(),
                payload: i.to_be_bytes().to_vec().into(),
                ..Default::default()
            };
            tx.send(item).await.unwrap();
        }
    });
    let mut answers = client
        .stream_submit(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut seen = HashMap::new();
    let mut largest = 0;
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("stream ends OK");
        let Some(Outcome::Result(result)) = answer.outcome else {
            panic!("item {} failed: {:?}", answer.id, answer.outcome);
        };
        largest = largest.max(result.batch.unwrap().batch_size);
        assert!(
            seen.insert(answer.id, result.payload).is_none(),
            "answered twice"
        );
    }
    sender.await.unwrap();
    assert_eq!(seen.len(), 10_000);
    for i in 0..10_000u32 {
        assert_eq!(seen[&format!("id-{i}")], i.to_be_bytes().as_slice());
    }
    assert!(largest > 1);
    server.shutdown().await;
}

#[tokio::test]
async fn health_serving_and_reflection_lists_the_services() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(config(ECHO)).await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "batchgate.v1.Batcher"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: HashSet<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains("batchgate.v1.Batcher"), "{names:?}");
    assert!(names.contains("grpc.health.v1.Health"), "{names:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_batches_in_the_size_histogram() {
    let server = TestServer::start(config(ECHO)).await;
    let mut client = server.client().await;
    let mut batch_ids = HashSet::new();
    for i in 0..25 {
        let resp = client.submit(request("echo", i.to_string())).await.unwrap();
        batch_ids.insert(resp.into_inner().batch.unwrap().batch_id);
    }
    let text = server.metrics_text().await;
    let get = |series: &str| {
        common::sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert_eq!(
        get("batchgate_batch_size_count{queue=\"echo\"}"),
        batch_ids.len() as f64
    );
    assert_eq!(get("batchgate_batch_size_sum{queue=\"echo\"}"), 25.0);
    assert_eq!(
        get("batchgate_items_total{queue=\"echo\",outcome=\"ok\"}"),
        25.0
    );
    assert_eq!(
        get("batchgate_item_duration_seconds_count{queue=\"echo\"}"),
        25.0
    );
    assert!(
        text.contains("# TYPE batchgate_batch_size histogram"),
        "{text}"
    );
    assert!(
        text.contains("batchgate_batch_size_bucket{queue=\"echo\",le=\"1\"}"),
        "{text}"
    );
    assert!(
        text.contains("# HELP batchgate_queue_wait_seconds "),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_holds_at_most_its_window_of_unanswered_items() {
    let server = TestServer::start(config(
        r#"
        [server]
        stream_window = 4
        [queues.slowish]
        max_batch_size = 64
        max_delay = "50ms"
        handler = { kind = "echo" }
        "#,
    ))
    .await;
    let mut client = server.client().await;
    let items = (0..10).map(|i| pb::StreamRequest {
        id: i.to_string(),
        queue: "slowish".into(),
        payload: vec![i as u8].into(),
        ..Default::default()
    });
    let answers: Vec<_> = client
        .stream_submit(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let mut sizes: Vec<u32> = Vec::new();
    let mut batches = HashSet::new();
    for answer in answers {
        let Some(Outcome::Result(r)) = answer.unwrap().outcome else {
            panic!("an item failed");
        };
        let batch = r.batch.unwrap();
        if batches.insert(batch.batch_id) {
            sizes.push(batch.batch_size);
        }
    }
    // The server read 4 items, then waited for their answers before reading
    // more, so the 50 ms delay closed batches of 4, 4 and 2.
    assert_eq!(sizes, [4, 4, 2]);
    server.shutdown().await;
}

/// A slow handler (300 ms a batch) whose queue keeps idempotency keys.
const SLOW_KEYED: &str = r#"
[queues.slow]
max_delay = "1ms"
idempotency_window = "60s"
handler = { kind = "sim", base = "300ms", per_item = "0s" }

[queues.sharded]
max_delay = "1ms"
shards = 2
idempotency_window = "60s"
handler = { kind = "sim", base = "300ms", per_item = "0s" }
"#;

fn keyed(
    queue: &str,
    key: &str,
    payload: &str,
    deadline_ms: u64,
) -> tonic::Request<pb::SubmitRequest> {
    let mut r = tonic::Request::new(pb::SubmitRequest {
        idempotency_key: key.into(),
        ..request(queue, payload)
    });
    r.set_timeout(std::time::Duration::from_millis(deadline_ms));
    r
}

#[tokio::test]
async fn a_callers_deadline_ends_its_wait_not_the_keyed_item() {
    let server = TestServer::start(config(SLOW_KEYED)).await;
    for queue in ["slow", "sharded"] {
        let client = server.client().await;
        // The first caller gives up at 100 ms, while the item is in its
        // 300 ms batch.
        let mut first = client.clone();
        let first = tokio::spawn(async move { first.submit(keyed(queue, "k", "work", 100)).await });
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // A retry joins the item in flight and waits with its own deadline.
        let mut joined = client.clone();
        let joined =
            tokio::spawn(async move { joined.submit(keyed(queue, "k", "work", 5_000)).await });
        let status = first
            .await
            .unwrap()
            .expect_err("the first caller's deadline");
        // The server answers 2 ms before the deadline; tonic's client,
        // enforcing the same deadline, may say CANCELLED first.
        let by_server = status.code() == tonic::Code::DeadlineExceeded
            && status
                .message()
                .contains("retry with the same idempotency key");
        let client_side =
            status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired";
        assert!(by_server || client_side, "{status:?}");
        let joined = joined
            .await
            .unwrap()
            .expect("the item's real answer")
            .into_inner();
        assert_eq!(joined.payload, "work".as_bytes());
        // A later retry gets the kept answer, not the first caller's fate.
        let mut later = client.clone();
        let replayed = later
            .submit(keyed(queue, "k", "work", 5_000))
            .await
            .expect("kept answer")
            .into_inner();
        assert_eq!(replayed.payload, "work".as_bytes());
        assert_eq!(replayed.batch, joined.batch, "the same execution");
        // Executed once, for three callers.
        let series = |outcome: &str| {
            format!("batchgate_items_total{{queue=\"{queue}\",outcome=\"{outcome}\"}}")
        };
        assert_eq!(server.metric(&series("ok")).await, 1.0);
        assert_eq!(server.metric(&series("timeout")).await, 0.0);
        let keys = |outcome: &str| {
            format!("batchgate_idempotent_items_total{{queue=\"{queue}\",outcome=\"{outcome}\"}}")
        };
        assert_eq!(server.metric(&keys("first")).await, 1.0);
        assert_eq!(server.metric(&keys("joined")).await, 1.0);
        assert_eq!(server.metric(&keys("replayed")).await, 1.0);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_payload_is_refused_by_name() {
    let server = TestServer::start(config(SLOW_KEYED)).await;
    let mut client = server.client().await;
    let mut first = client.clone();
    let running = tokio::spawn(async move {
        first
            .submit(keyed("slow", "order-17", "pay 10", 5_000))
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // In flight, then answered: both refuse another payload under the key.
    for _ in 0..2 {
        let status = client
            .submit(keyed("slow", "order-17", "pay 1000", 5_000))
            .await
            .expect_err("another payload");
        common::assert_status(&status, Code::InvalidArgument, "\"order-17\"");
        if !running.is_finished() {
            running_wait(&running).await;
        }
    }
    let done = running.await.unwrap().expect("first answered").into_inner();
    assert_eq!(done.payload, "pay 10".as_bytes());
    server.shutdown().await;
}

/// Waits until `task` has finished.
async fn running_wait<T>(task: &tokio::task::JoinHandle<T>) {
    while !task.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

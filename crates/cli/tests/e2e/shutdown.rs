//! Graceful shutdown over real gRPC: health goes NOT_SERVING, new items are
//! refused UNAVAILABLE, queued and in-flight items finish, and nothing
//! accepted goes unanswered, even under load or when the grace runs out.

use crate::common;

use std::{collections::BTreeSet, sync::Arc};

use batchgate::pb::{self, stream_response::Outcome};
use common::{TestServer, config, submit_request as request};
use tokio::sync::{Notify, mpsc};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn shutdown_under_load_leaves_no_accepted_item_unanswered() {
    let mut server = TestServer::start(config(
        r#"
        [server]
        shutdown_grace = "20s"
        [queues.sim]
        max_batch_size = 16
        max_delay = "1ms"
        max_in_flight_batches = 2
        handler = { kind = "sim", base = "2ms", per_item = "10us" }
        "#,
    ))
    .await;
    let client = server.client().await;
    let started = Arc::new(Notify::new());

    // Unary callers: submit until refused.
    let mut unary = tokio::task::JoinSet::new();
    for c in 0..24 {
        let mut client = client.clone();
        unary.spawn(async move {
            let mut ok = 0u32;
            loop {
                match client.submit(request("sim", format!("{c}"))).await {
                    Ok(r) => {
                        assert_eq!(r.into_inner().payload, format!("{c}").as_bytes());
                        ok += 1;
                    }
                    Err(status) => return (ok, status),
                }
            }
        });
    }
    // Streams: send sequential ids until the server stops reading.
    let mut streams = tokio::task::JoinSet::new();
    for s in 0..4 {
        let mut client = client.clone();
        let started = started.clone();
        streams.spawn(async move {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move {
                for i in 0u64.. {
                    let item = pb::StreamRequest {
                        id: i.to_string(),
                        queue: "sim".into(),
                        payload: format!("{s}-{i}").into_bytes().into(),
                        ..Default::default()
                    };
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            });
            let mut answers = client
                .stream_submit(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let mut ids = BTreeSet::new();
            let mut codes = BTreeSet::new();
            let end = loop {
                match answers.next().await {
                    Some(Ok(answer)) => {
                        let id: u64 = answer.id.parse().unwrap();
                        match answer.outcome.unwrap() {
                            Outcome::Result(r) => {
                                assert_eq!(r.payload, format!("{s}-{id}").as_bytes())
                            }
                            Outcome::Error(e) => {
                                codes.insert(e.code);
                            }
                        }
                        assert!(ids.insert(id), "id {id} answered twice");
                        if ids.len() == 100 {
                            started.notify_one();
                        }
                    }
                    Some(Err(status)) => break Some(status),
                    None => break None,
                }
            };
            (ids, codes, end)
        });
    }
    started.notified().await;
    server.signal_shutdown();

    while let Some(done) = unary.join_next().await {
        let (_, status) = done.unwrap();
        // The server refuses a call UNAVAILABLE once shutdown began; a call
        // the client had not yet sent when the server closed the connection
        // (after its last answer) ends in the client's own transport error,
        // CANCELLED "connection closed", never read by the server. The
        // server itself never answers CANCELLED.
        let never_sent = status.code() == Code::Cancelled
            && std::error::Error::source(&status)
                .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
        assert!(
            status.code() == Code::Unavailable || never_sent || refused_by_goaway(&status),
            "{status:?}"
        );
    }
    while let Some(done) = streams.join_next().await {
        let (ids, codes, end) = done.unwrap();
        // Every item the server read was answered: the ids form 0..n.
        let n = ids.len() as u64;
        assert_eq!(
            ids.last().copied(),
            n.checked_sub(1),
            "a gap: an item was lost"
        );
        assert!(
            codes.iter().all(|c| *c == Code::Unavailable as i32),
            "{codes:?}"
        );
        let end = end.expect("the stream ends with a status");
        assert_eq!(end.code(), Code::Unavailable, "{end:?}");
        assert_eq!(end.message(), "server is shutting down");
    }
    server.stopped().await;
}

#[tokio::test]
async fn shutdown_reports_not_serving_refuses_new_items_and_finishes_in_flight() {
    let mut server = TestServer::start(config(
        r#"
        [server]
        shutdown_grace = "20s"
        [queues.slow]
        max_delay = "0s"
        handler = { kind = "sim", base = "300ms", per_item = "0s" }
        "#,
    ))
    .await;
    let client = server.client().await;
    let mut c = client.clone();
    let in_flight = tokio::spawn(async move { c.submit(request("slow", "x")).await });
    server
        .wait_for_metric("batchgate_in_flight_batches{queue=\"slow\"}", 1.0)
        .await;
    server.signal_shutdown();

    let health = HealthClient::new(server.channel().await);
    common::wait_until("health to go NOT_SERVING while draining", || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(HealthCheckRequest {
                    service: "batchgate.v1.Batcher".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
            (status == ServingStatus::NotServing as i32).then_some(())
        }
    })
    .await;

    let mut c = client.clone();
    let refused = c.submit(request("slow", "late")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(refused.message(), "server is shutting down");
    assert_eq!(
        server
            .metric("batchgate_items_total{queue=\"slow\",outcome=\"rejected\"}")
            .await,
        1.0,
        "an item refused at shutdown is counted"
    );

    let finished = in_flight
        .await
        .unwrap()
        .expect("the in-flight item finished");
    assert_eq!(finished.into_inner().payload, b"x".as_slice());
    server.stopped().await;
}

#[tokio::test]
async fn items_still_running_when_the_grace_ends_get_unavailable() {
    let mut server = TestServer::start(config(
        r#"
        [server]
        shutdown_grace = "100ms"
        [queues.stuck]
        max_delay = "0s"
        handler = { kind = "sim", base = "1h", per_item = "0s" }
        "#,
    ))
    .await;
    let mut c = server.client().await;
    let stuck = tokio::spawn(async move { c.submit(request("stuck", "x")).await });
    server
        .wait_for_metric("batchgate_in_flight_batches{queue=\"stuck\"}", 1.0)
        .await;
    server.signal_shutdown();
    let status = stuck.await.unwrap().unwrap_err();
    common::assert_status(&status, Code::Unavailable, "shut down before");
    server.stopped().await;
}

/// Whether `status` is the client's own error for a call the server's
/// graceful GOAWAY (NO_ERROR) refused: HTTP/2 says a stream above the
/// GOAWAY's last stream id was not processed, so the server never read it
/// (a call sent in the instant the server closed the connection).
fn refused_by_goaway(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = e.source();
    }
    false
}

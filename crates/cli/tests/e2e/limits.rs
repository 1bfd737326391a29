//! Transport limits over real connections: calls past a connection's
//! `max_requests_per_connection` are shed with RESOURCE_EXHAUSTED at once
//! (not queued, not hung), and a connection past `max_connections` is
//! closed while the open ones are served; closing one makes room.

use crate::common;

use std::time::Duration;

use batchgate::pb::batcher_client::BatcherClient;
use common::{TestServer, config, submit_request};
use tonic::{Code, transport::Channel};

const SLOW: &str = r#"
[server]
max_requests_per_connection = 2
max_connections = 2

[queues.slow]
max_delay = "1ms"
handler = { kind = "sim", base = "300ms", per_item = "0s" }
"#;

async fn connect(server: &TestServer) -> Result<BatcherClient<Channel>, tonic::transport::Error> {
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await?;
    Ok(BatcherClient::new(channel))
}

#[tokio::test]
async fn calls_past_a_connections_limit_are_shed_at_once() {
    let server = TestServer::start(config(SLOW)).await;
    let client = connect(&server).await.unwrap();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let mut c = client.clone();
            tokio::spawn(async move {
                // Staggered so the first two are surely in flight.
                tokio::time::sleep(Duration::from_millis(i * 30)).await;
                c.submit(submit_request("slow", "x")).await.map(|_| ())
            })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                shed += 1;
            }
        }
    }
    assert_eq!((ok, shed), (2, 2));
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_past_the_cap_is_closed_and_the_open_ones_served() {
    let server = TestServer::start(config(SLOW)).await;
    let mut a = connect(&server).await.unwrap();
    let mut b = connect(&server).await.unwrap();
    a.submit(submit_request("slow", "a")).await.unwrap();
    b.submit(submit_request("slow", "b")).await.unwrap();
    // A third connection is accepted by the kernel and closed by the server.
    let third = match connect(&server).await {
        Ok(mut c) => c.submit(submit_request("slow", "c")).await.err(),
        Err(_) => Some(tonic::Status::unavailable("connect failed")),
    };
    let e = third.expect("a third connection was served past max_connections = 2");
    assert!(
        matches!(
            e.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{e:?}"
    );
    a.submit(submit_request("slow", "a")).await.unwrap();
    // Closing one makes room for a new one.
    drop(b);
    common::wait_until("room for a new connection", || async {
        let mut c = connect(&server).await.ok()?;
        c.submit(submit_request("slow", "c")).await.ok()
    })
    .await;
    server.shutdown().await;
}

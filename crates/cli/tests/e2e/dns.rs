//! Endpoints from DNS (`dns:///NAME:PORT`): a fake resolver whose answer
//! changes adds and removes endpoints, a failed lookup keeps the last good
//! set, and a real lookup of `localhost` serves items end to end.

use crate::common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use batchgate::{
    config::{HandlerConfig, HandlerKind},
    handler::{BoxFuture, Remote, remote::Resolve, remote::SystemResolver},
    metrics::Metrics,
};
use common::{TestServer, config};

/// A resolver whose answer the test sets: addresses, or a failure.
#[derive(Debug)]
struct Fake {
    answer: Mutex<Result<Vec<SocketAddr>, String>>,
    lookups: Mutex<Vec<String>>,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            answer: Mutex::new(Ok(Vec::new())),
            lookups: Mutex::new(Vec::new()),
        }
    }
}

impl Fake {
    fn set(&self, answer: Result<Vec<SocketAddr>, String>) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Resolve for Fake {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, String>> {
        self.lookups.lock().unwrap().push(host.to_owned());
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move { answer })
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn handler(endpoint: &str) -> HandlerConfig {
    HandlerConfig {
        endpoints: vec![endpoint.to_owned()],
        resolve_every: Duration::from_millis(20),
        ..HandlerConfig::of(HandlerKind::Grpc)
    }
}

async fn addresses(remote: &Remote) -> Vec<String> {
    let mut list: Vec<String> = remote
        .pool()
        .list()
        .into_iter()
        .map(|e| e.address)
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn endpoints_follow_what_the_name_resolves_to() {
    let fake = Arc::new(Fake::default());
    fake.set(Ok(vec![addr("10.0.0.1:7000"), addr("10.0.0.2:7000")]));
    let metrics = Arc::new(Metrics::new());
    let remote = Remote::with_resolver(
        "q".into(),
        &handler("dns:///backends.ns.svc:7000"),
        metrics.clone(),
        fake.clone(),
    )
    .unwrap();
    let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    common::wait_until("the first answer", || async {
        (addresses(&remote).await == want(&["http://10.0.0.1:7000", "http://10.0.0.2:7000"]))
            .then_some(())
    })
    .await;
    assert_eq!(fake.lookups.lock().unwrap()[0], "backends.ns.svc");

    // A pod goes, another comes.
    fake.set(Ok(vec![addr("10.0.0.2:7000"), addr("10.0.0.3:7000")]));
    common::wait_until("the changed answer", || async {
        (addresses(&remote).await == want(&["http://10.0.0.2:7000", "http://10.0.0.3:7000"]))
            .then_some(())
    })
    .await;

    // A failed lookup, or an empty answer, keeps the last good set.
    fake.set(Err("SERVFAIL".into()));
    let before = fake.lookups.lock().unwrap().len();
    common::wait_until("more lookups", || async {
        (fake.lookups.lock().unwrap().len() >= before + 3).then_some(())
    })
    .await;
    fake.set(Ok(vec![]));
    let before = fake.lookups.lock().unwrap().len();
    common::wait_until("more lookups", || async {
        (fake.lookups.lock().unwrap().len() >= before + 3).then_some(())
    })
    .await;
    assert_eq!(
        addresses(&remote).await,
        want(&["http://10.0.0.2:7000", "http://10.0.0.3:7000"])
    );
    let text = metrics.render();
    let count = |result: &str| {
        common::sample(
            &text,
            &format!(
                "batchgate_dns_resolutions_total{{queue=\"q\",name=\"backends.ns.svc\",result=\"{result}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert!(count("ok") >= 2.0, "{text}");
    assert!(count("error") >= 6.0, "{text}");

    // The watch ends with the handler.
    drop(remote);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let after = fake.lookups.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fake.lookups.lock().unwrap().len() <= after + 1);
}

#[tokio::test]
async fn the_system_resolver_finds_localhost() {
    let found = SystemResolver.lookup("localhost", 7000).await.unwrap();
    assert!(
        found
            .iter()
            .any(|a| a.ip().is_loopback() && a.port() == 7000),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_queue_served_through_a_real_lookup_of_localhost() {
    let port = common::backend::serve(common::upper::Upper).await.port();
    // localhost may also resolve to ::1, where nothing listens: that
    // endpoint fails and its batches are retried on 127.0.0.1.
    let server = TestServer::start(config(&format!(
        r#"
        [queues.dns]
        max_delay = "1ms"
        handler = {{ kind = "grpc", endpoints = ["dns:///localhost:{port}"], retries = 3, retry_backoff = "1ms" }}
        "#
    )))
    .await;
    let mut client = server.client().await;
    // The first lookup runs as the queue starts; wait for its endpoints.
    common::wait_until("an endpoint from DNS", || {
        let mut client = client.clone();
        async move { client.submit(common::submit_request("dns", "x")).await.ok() }
    })
    .await;
    for i in 0..20 {
        let r = client
            .submit(common::submit_request("dns", format!("item {i}")))
            .await
            .expect("answered through the endpoint DNS found")
            .into_inner();
        assert_eq!(r.payload, format!("ITEM {i}").as_bytes());
    }
    server.shutdown().await;
}

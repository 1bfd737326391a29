//! The BatchControl service over real gRPC: every RPC, a live policy change
//! under load, endpoints and leases, stats, and the bearer token.

use crate::common;

use std::collections::HashSet;

use batchgate::pb::{
    self, QueueRef, batch_control_client::BatchControlClient, stream_response::Outcome,
};
use common::{TestServer, config, submit_request as submit};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

const QUEUES: &str = r#"
[queues.echo]
max_batch_size = 8
max_delay = "2ms"
handler = { kind = "echo" }

[queues.remote]
handler = { kind = "grpc" }
"#;

async fn control(server: &TestServer) -> BatchControlClient<Channel> {
    BatchControlClient::new(server.channel().await)
}

fn name(n: &str) -> QueueRef {
    QueueRef { name: n.into() }
}

#[tokio::test]
async fn list_get_create_and_bad_creates() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let list = ctl
        .list_queues(pb::ListQueuesRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = list.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["echo", "remote"]);

    let echo = ctl.get_queue(name("echo")).await.unwrap().into_inner();
    assert_eq!(echo.state, pb::QueueState::Active as i32);
    assert_eq!(echo.policy.unwrap().max_batch_size, Some(8));
    assert_eq!(echo.handler.unwrap().kind, "echo");
    assert_eq!(
        ctl.get_queue(name("nope")).await.unwrap_err().code(),
        Code::NotFound
    );

    let created = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "fresh".into(),
            policy: Some(pb::QueuePolicy {
                max_batch_size: Some(3),
                ..Default::default()
            }),
            handler: Some(pb::HandlerSpec {
                kind: "sim".into(),
                sim_base_us: 100,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.policy.unwrap().max_batch_size, Some(3));
    let mut client = server.client().await;
    let r = client
        .submit(submit("fresh", "hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.payload, b"hi".as_slice());

    let again = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "fresh".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let bad = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "broken".into(),
            policy: Some(pb::QueuePolicy {
                max_batch_size: Some(0),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(bad.message(), "queues.broken.max_batch_size must be ≥ 1");
    let bad_mode = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "odd".into(),
            policy: Some(pb::QueuePolicy {
                mode: Some("sometimes".into()),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad_mode.code(), Code::InvalidArgument);
    let bad_kind = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "odd".into(),
            policy: None,
            handler: Some(pb::HandlerSpec {
                kind: "gpu".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_kind.code(), Code::InvalidArgument);
    let misplaced = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "odd".into(),
            policy: None,
            handler: Some(pb::HandlerSpec {
                kind: "sim".into(),
                endpoints: vec!["http://127.0.0.1:7000".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(misplaced.code(), Code::InvalidArgument);
    assert!(
        misplaced
            .message()
            .contains("handler field `endpoints` does not apply to kind \"sim\""),
        "{}",
        misplaced.message()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_control_plane_checks_the_same_bounds_as_the_file() {
    let server = TestServer::start(config("[queues.q]\n")).await;
    let mut ctl = control(&server).await;
    let huge_delay = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "q".into(),
            policy: Some(pb::QueuePolicy {
                max_delay_us: Some(u64::MAX),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    assert_eq!(huge_delay.code(), Code::InvalidArgument);
    assert_eq!(huge_delay.message(), "queues.q.max_delay must be ≤ 1h");
    let huge_queue = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "big".into(),
            policy: Some(pb::QueuePolicy {
                max_queue_items: Some(u32::MAX),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    assert_eq!(huge_queue.code(), Code::InvalidArgument);
    assert_eq!(
        huge_queue.message(),
        "queues.big.max_queue_items must be ≤ 10000000"
    );
    let slow_sim = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "slow".into(),
            policy: None,
            handler: Some(pb::HandlerSpec {
                kind: "sim".into(),
                sim_base_us: u64::MAX,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(slow_sim.code(), Code::InvalidArgument);
    assert_eq!(slow_sim.message(), "queues.slow.handler.base must be ≤ 1h");
    // The queue is untouched by the refused update.
    let q = ctl
        .get_queue(pb::QueueRef { name: "q".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.policy.unwrap().max_delay_us, Some(2000));
    server.shutdown().await;
}

#[tokio::test]
async fn pause_flush_resume() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let paused = ctl.pause_queue(name("echo")).await.unwrap().into_inner();
    assert_eq!(paused.state, pb::QueueState::Paused as i32);
    let client = server.client().await;
    let mut waiting = tokio::task::JoinSet::new();
    for i in 0..3 {
        let mut c = client.clone();
        waiting.spawn(async move { c.submit(submit("echo", i.to_string())).await });
    }
    server
        .wait_for_metric("batchgate_queue_depth{queue=\"echo\"}", 3.0)
        .await;
    let depth = ctl
        .get_queue(name("echo"))
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap()
        .depth;
    assert_eq!(depth, 3, "a paused queue holds its items");
    let flushed = ctl
        .flush_queue(name("echo"))
        .await
        .unwrap()
        .into_inner()
        .flushed;
    assert_eq!(flushed, 3);
    while let Some(done) = waiting.join_next().await {
        let batch = done.unwrap().unwrap().into_inner().batch.unwrap();
        assert_eq!(batch.trigger, pb::Trigger::Flush as i32);
    }
    let resumed = ctl.resume_queue(name("echo")).await.unwrap().into_inner();
    assert_eq!(resumed.state, pb::QueueState::Active as i32);
    let mut c = client.clone();
    let after = c.submit(submit("echo", "x")).await.unwrap().into_inner();
    assert_eq!(after.batch.unwrap().trigger, pb::Trigger::Delay as i32);
    server.shutdown().await;
}

#[tokio::test]
async fn drain_and_delete() {
    let server = TestServer::start(config(
        r#"
        [queues.held]
        mode = "manual"
        handler = { kind = "echo" }
        [queues.doomed]
        mode = "manual"
        handler = { kind = "echo" }
        [queues.gone]
        handler = { kind = "echo" }
        "#,
    ))
    .await;
    let mut ctl = control(&server).await;
    let client = server.client().await;

    // Drain: the held item is dispatched, new items are refused.
    let mut c = client.clone();
    let held = tokio::spawn(async move { c.submit(submit("held", "h")).await });
    server
        .wait_for_metric("batchgate_queue_depth{queue=\"held\"}", 1.0)
        .await;
    ctl.drain_queue(name("held")).await.unwrap();
    let batch = held.await.unwrap().unwrap().into_inner().batch.unwrap();
    assert_eq!(batch.trigger, pb::Trigger::Drain as i32);
    let mut c = client.clone();
    assert_eq!(
        c.submit(submit("held", "late")).await.unwrap_err().code(),
        Code::Unavailable
    );
    let state = ctl
        .get_queue(name("held"))
        .await
        .unwrap()
        .into_inner()
        .state;
    assert!(
        state == pb::QueueState::Drained as i32 || state == pb::QueueState::Draining as i32,
        "{state}"
    );

    // Forced delete: pending items are answered UNAVAILABLE.
    let mut c = client.clone();
    let doomed = tokio::spawn(async move { c.submit(submit("doomed", "d")).await });
    server
        .wait_for_metric("batchgate_queue_depth{queue=\"doomed\"}", 1.0)
        .await;
    let deleted = ctl
        .delete_queue(pb::DeleteQueueRequest {
            name: "doomed".into(),
            force: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.dropped, 1);
    let refused = doomed.await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(
        refused.message(),
        "queue \"doomed\" was deleted (force) before the item was dispatched"
    );

    // Plain delete: the name is gone at once.
    ctl.delete_queue(pb::DeleteQueueRequest {
        name: "gone".into(),
        force: false,
    })
    .await
    .unwrap();
    let mut c = client.clone();
    assert_eq!(
        c.submit(submit("gone", "x")).await.unwrap_err().code(),
        Code::NotFound
    );
    let missing = ctl
        .delete_queue(pb::DeleteQueueRequest {
            name: "gone".into(),
            force: false,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn a_live_policy_change_applies_to_later_batches_and_loses_nothing() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut answers = client
        .stream_submit(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let send = |i: u32| pb::StreamRequest {
        id: i.to_string(),
        queue: "echo".into(),
        payload: i.to_be_bytes().to_vec().into(),
        ..Default::default()
    };
    // Load keeps flowing while the policy changes.
    let sender = tokio::spawn(async move {
        for i in 0..6000 {
            tx.send(send(i)).await.unwrap();
        }
    });
    let mut ids = HashSet::new();
    let mut largest_before = 0;
    while ids.len() < 1000 {
        let a = answers.next().await.unwrap().unwrap();
        let Some(Outcome::Result(r)) = a.outcome else {
            panic!("failed")
        };
        largest_before = largest_before.max(r.batch.unwrap().batch_size);
        assert!(ids.insert(a.id));
    }
    let updated = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "echo".into(),
            policy: Some(pb::QueuePolicy {
                max_batch_size: Some(32),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.policy.unwrap().max_batch_size, Some(32));
    let mut largest_after = 0;
    while let Some(a) = answers.next().await {
        let a = a.unwrap();
        let Some(Outcome::Result(r)) = a.outcome else {
            panic!("failed")
        };
        largest_after = largest_after.max(r.batch.unwrap().batch_size);
        assert!(ids.insert(a.id));
    }
    sender.await.unwrap();
    assert_eq!(ids.len(), 6000, "every item answered once");
    assert!(largest_before <= 8, "{largest_before}");
    assert!(largest_after > 8 && largest_after <= 32, "{largest_after}");

    let invalid = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "echo".into(),
            policy: Some(pb::QueuePolicy {
                min_batch_size: Some(100),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    common::assert_status(&invalid, Code::InvalidArgument, "min_batch_size");
    server.shutdown().await;
}

#[tokio::test]
async fn endpoints_register_renew_expire_and_deregister() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let register = |address: &str, lease_ttl_ms: u64| pb::RegisterEndpointRequest {
        queue: "remote".into(),
        address: address.into(),
        kind: "grpc".into(),
        max_in_flight: 2,
        lease_ttl_ms,
        parallelism: 0,
    };
    let info = ctl
        .register_endpoint(register("http://127.0.0.1:1", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.max_in_flight, info.lease_remaining_ms), (2, 0));
    let leased = ctl
        .register_endpoint(register("http://127.0.0.1:2", 60_000))
        .await
        .unwrap()
        .into_inner();
    assert!(leased.lease_remaining_ms > 59_000);
    let listed = ctl
        .list_endpoints(name("remote"))
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    assert_eq!(listed.len(), 2);

    // Renew with a short lease, then watch it lapse.
    ctl.register_endpoint(register("http://127.0.0.1:2", 30))
        .await
        .unwrap();
    let left = common::wait_until("the short lease to lapse", || {
        let mut ctl = ctl.clone();
        async move {
            let listed = ctl
                .list_endpoints(name("remote"))
                .await
                .unwrap()
                .into_inner()
                .endpoints;
            (listed.len() == 1).then_some(listed)
        }
    })
    .await;
    assert_eq!(left[0].address, "http://127.0.0.1:1");

    ctl.deregister_endpoint(pb::EndpointRef {
        queue: "remote".into(),
        address: "http://127.0.0.1:1".into(),
    })
    .await
    .unwrap();
    let again = ctl
        .deregister_endpoint(pb::EndpointRef {
            queue: "remote".into(),
            address: "http://127.0.0.1:1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);

    let wrong_kind = ctl
        .register_endpoint(pb::RegisterEndpointRequest {
            kind: "http".into(),
            ..register("http://127.0.0.1:3", 0)
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_kind.code(), Code::InvalidArgument);
    let bad_address = ctl
        .register_endpoint(register("127.0.0.1:3", 0))
        .await
        .unwrap_err();
    assert_eq!(bad_address.code(), Code::InvalidArgument);
    let not_remote = ctl
        .register_endpoint(pb::RegisterEndpointRequest {
            queue: "echo".into(),
            ..register("http://127.0.0.1:3", 0)
        })
        .await
        .unwrap_err();
    assert_eq!(not_remote.code(), Code::FailedPrecondition);
    server.shutdown().await;
}

#[tokio::test]
async fn register_endpoint_checks_the_configs_bounds_and_quotes_short() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let register = |address: &str| pb::RegisterEndpointRequest {
        queue: "remote".into(),
        address: address.into(),
        kind: "grpc".into(),
        max_in_flight: 2,
        lease_ttl_ms: 0,
        parallelism: 0,
    };
    let huge = format!("http://{}", "h".repeat(1 << 20));
    let cases = [
        (
            pb::RegisterEndpointRequest {
                max_in_flight: u32::MAX,
                ..register("http://127.0.0.1:3")
            },
            "max_in_flight 4294967295 must be ≤ 1024",
        ),
        (
            pb::RegisterEndpointRequest {
                lease_ttl_ms: u64::MAX,
                ..register("http://127.0.0.1:3")
            },
            "lease_ttl_ms 18446744073709551615 must be ≤ 86400000",
        ),
        (
            pb::RegisterEndpointRequest {
                parallelism: 5000,
                ..register("http://127.0.0.1:3")
            },
            "parallelism 5000 must be ≤ 1024",
        ),
        (
            register("http://127.0.0.1:99999"),
            "has no valid port (1..=65535)",
        ),
        (
            register(&format!("{huge}:99999")),
            "(1048589 bytes) has no valid port",
        ),
        (
            register(&huge[7..]),
            "(1048576 bytes) must start with http://",
        ),
    ];
    for (request, says) in cases {
        let e = ctl.register_endpoint(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{says}: {e:?}");
        assert!(e.message().contains(says), "{says}: {}", e.message());
        assert!(
            e.message().len() < 300,
            "{says}: {} bytes",
            e.message().len()
        );
    }
    let e = ctl
        .deregister_endpoint(pb::EndpointRef {
            queue: "remote".into(),
            address: huge.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().len() < 300, "{} bytes", e.message().len());
    let listed = ctl
        .list_endpoints(name("remote"))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.endpoints.is_empty(), "{listed:?}");
    // A declared parallelism is kept and shown.
    let info = ctl
        .register_endpoint(pb::RegisterEndpointRequest {
            parallelism: 3,
            ..register("http://127.0.0.1:3")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.parallelism, 3);
    let listed = ctl
        .list_endpoints(name("remote"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.endpoints[0].parallelism, 3, "{listed:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn watch_stats_streams_snapshots() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let mut client = server.client().await;
    for i in 0..20 {
        client.submit(submit("echo", i.to_string())).await.unwrap();
    }
    let mut watch = ctl
        .watch_stats(pb::WatchStatsRequest {
            queue: "echo".into(),
            interval_ms: 20,
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let snapshot = watch.next().await.unwrap().unwrap();
        assert!(snapshot.unix_ms > 0);
        assert_eq!(snapshot.queues.len(), 1);
        let stats = snapshot.queues[0].stats.clone().unwrap();
        assert_eq!(stats.items_ok, 20);
        assert!(stats.batches >= 1);
        assert!(stats.batch_size.unwrap().max >= 1.0);
        assert!(stats.item_ms.unwrap().p50 > 0.0);
    }
    drop(watch);
    let unknown = ctl
        .watch_stats(pb::WatchStatsRequest {
            queue: "nope".into(),
            interval_ms: 20,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_guards_the_control_plane_on_its_own_port() {
    let dir = std::env::temp_dir().join(format!("batchgate-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let server = TestServer::start(config(&format!(
        r#"
        [server]
        control_addr = "127.0.0.1:0"
        control_token_file = "{}"
        [queues.echo]
        handler = {{ kind = "echo" }}
        "#,
        token_file.display()
    )))
    .await;
    let control_url = format!("http://{}", server.control.unwrap());
    let channel = Channel::from_shared(control_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ctl = BatchControlClient::new(channel);
    let list = || tonic::Request::new(pb::ListQueuesRequest {});

    let missing = ctl.list_queues(list()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    let mut wrong = list();
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer guess".parse().unwrap());
    assert_eq!(
        ctl.list_queues(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut right = list();
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(
        ctl.list_queues(right)
            .await
            .unwrap()
            .into_inner()
            .queues
            .len(),
        1
    );

    // The data port does not serve the control plane when it has its own.
    let mut on_data_port = control(&server).await;
    let status = on_data_port.list_queues(list()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn allowed_batch_sizes_and_packed_encoding_are_set_and_checked_through_the_api() {
    let server = TestServer::start(config("[queues.q]\nmax_batch_size = 8\n")).await;
    let mut ctl = control(&server).await;
    let sizes = |s: &[u32]| pb::BatchSizes { sizes: s.to_vec() };
    let update = |allowed| pb::UpdateQueueRequest {
        name: "q".into(),
        policy: Some(pb::QueuePolicy {
            allowed_batch_sizes: Some(allowed),
            ..Default::default()
        }),
        handler: None,
    };
    let updated = ctl
        .update_queue(update(sizes(&[2, 4, 8])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        updated.policy.unwrap().allowed_batch_sizes,
        Some(sizes(&[2, 4, 8]))
    );
    for (bad, why) in [
        (sizes(&[2, 4]), "must end with max_batch_size (8)"),
        (sizes(&[4, 2, 8]), "strictly ascending"),
        (sizes(&[0, 8]), "≥ 1"),
    ] {
        let refused = ctl.update_queue(update(bad)).await.unwrap_err();
        common::assert_status(&refused, Code::InvalidArgument, why);
        assert!(refused.message().contains("queues.q.allowed_batch_sizes"));
    }
    // An empty list clears it: any size again.
    let cleared = ctl
        .update_queue(update(sizes(&[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cleared.policy.unwrap().allowed_batch_sizes,
        Some(sizes(&[]))
    );

    let create = |kind: &str, encoding: &str| pb::CreateQueueRequest {
        name: format!("{kind}-{encoding}"),
        policy: None,
        handler: Some(pb::HandlerSpec {
            kind: kind.into(),
            endpoints: vec!["http://127.0.0.1:7000".into()],
            encoding: encoding.into(),
            ..Default::default()
        }),
    };
    let packed = ctl.create_queue(create("grpc", "packed")).await.unwrap();
    assert_eq!(packed.into_inner().handler.unwrap().encoding, "packed");
    let unknown = ctl.create_queue(create("grpc", "arrow")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("unknown encoding \"arrow\""));
    let http = ctl
        .create_queue(create("http", "packed"))
        .await
        .unwrap_err();
    assert_eq!(http.code(), Code::InvalidArgument);
    assert!(
        http.message()
            .contains("`encoding` does not apply to kind \"http\""),
        "{}",
        http.message()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_target_queue_shows_what_it_learned() {
    let server = TestServer::start(config(
        "[queues.t]\nmode = \"target\"\ntarget_latency = \"50ms\"\nmax_in_flight_batches = 1\nhandler = { kind = \"sim\", base = \"2ms\", per_item = \"10us\" }\n",
    ))
    .await;
    let mut ctl = control(&server).await;
    let mut client = server.client().await;
    for _ in 0..20 {
        client
            .submit(common::submit_request("t", b"x"))
            .await
            .unwrap();
    }
    let info = ctl
        .get_queue(pb::QueueRef { name: "t".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.policy.unwrap().mode.as_deref(), Some("target"));
    let learned = info
        .stats
        .unwrap()
        .learned
        .expect("a target queue reports what it learned");
    assert_eq!(learned.samples, 20, "one batch per lone call");
    // A lone item goes at once: 20 batches of 1, each about 2 ms.
    assert!(learned.base_us >= 1_500, "{learned:?}");
    let unknown = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "t".into(),
            policy: Some(pb::QueuePolicy {
                mode: Some("fast".into()),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("auto, manual, target, aimd"));
    server.shutdown().await;
}

/// The next answer of a stream: its id and its batch's handler time, after
/// checking it is the item's own payload.
async fn next_ok(answers: &mut tonic::Streaming<pb::StreamResponse>) -> (String, u64) {
    let a = answers.next().await.unwrap().unwrap();
    let Some(Outcome::Result(r)) = a.outcome else {
        panic!("item {} failed: {:?}", a.id, a.outcome)
    };
    assert_eq!(r.payload[..], a.id.parse::<u32>().unwrap().to_be_bytes());
    (a.id, r.batch.unwrap().handler_us)
}

#[tokio::test]
async fn a_live_handler_change_takes_new_batches_and_loses_nothing() {
    let server = TestServer::start(config(QUEUES)).await;
    let mut ctl = control(&server).await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut answers = client
        .stream_submit(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // 3,900 items flow while the handler changes; the last 100 are sent
    // once the change is made, so some items surely meet the new handler
    // however fast the first ones went.
    let (go, changed) = tokio::sync::oneshot::channel::<()>();
    let sender = tokio::spawn(async move {
        let mut changed = Some(changed);
        for i in 0u32..4000 {
            if i == 3900
                && let Some(changed) = changed.take()
            {
                changed.await.unwrap();
            }
            let item = pb::StreamRequest {
                id: i.to_string(),
                queue: "echo".into(),
                payload: i.to_be_bytes().to_vec().into(),
                ..Default::default()
            };
            tx.send(item).await.unwrap();
        }
    });
    let mut ids = HashSet::new();
    while ids.len() < 500 {
        let (id, _) = next_ok(&mut answers).await;
        assert!(ids.insert(id), "answered twice");
    }
    // echo → sim (2 ms a batch) while items keep flowing.
    let updated = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "echo".into(),
            policy: None,
            handler: Some(pb::HandlerSpec {
                kind: "sim".into(),
                sim_base_us: 2_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.handler.unwrap().kind, "sim");
    go.send(()).unwrap();
    let mut slow_batches = 0;
    while ids.len() < 4000 {
        let (id, handler_us) = next_ok(&mut answers).await;
        slow_batches += usize::from(handler_us >= 1_900);
        assert!(ids.insert(id), "answered twice");
    }
    sender.await.unwrap();
    assert!(slow_batches > 0, "later batches went to the new handler");
    let bad = ctl
        .update_queue(pb::UpdateQueueRequest {
            name: "echo".into(),
            policy: None,
            handler: Some(pb::HandlerSpec {
                kind: "grpc".into(),
                endpoints: vec!["ftp://nowhere".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let info = ctl
        .get_queue(pb::QueueRef {
            name: "echo".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.handler.unwrap().kind,
        "sim",
        "a refused change changes nothing"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_sharded_queue_is_created_served_and_its_shard_count_is_fixed() {
    let server = TestServer::start(config("[queues.q]\nshards = 2\n")).await;
    let mut ctl = control(&server).await;
    let mut client = server.client().await;
    for i in 0..20u8 {
        let answer = client
            .submit(common::submit_request("q", [i]))
            .await
            .unwrap();
        assert_eq!(answer.into_inner().payload, &[i][..]);
    }
    let update = |policy| pb::UpdateQueueRequest {
        name: "q".into(),
        policy: Some(policy),
        handler: None,
    };
    let fixed = ctl
        .update_queue(update(pb::QueuePolicy {
            shards: Some(4),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(fixed.code(), Code::FailedPrecondition);
    assert!(
        fixed
            .message()
            .contains("shards is fixed when a queue is created (2)"),
        "{}",
        fixed.message()
    );
    // Other fields still change, and the count shows.
    let updated = ctl
        .update_queue(update(pb::QueuePolicy {
            max_batch_size: Some(16),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let policy = updated.policy.unwrap();
    assert_eq!((policy.shards, policy.max_batch_size), (Some(2), Some(16)));
    let created = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "wide".into(),
            policy: Some(pb::QueuePolicy {
                shards: Some(8),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.policy.unwrap().shards, Some(8));
    let zero = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "too-wide".into(),
            policy: Some(pb::QueuePolicy {
                shards: Some(0),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap_err();
    common::assert_status(&zero, Code::InvalidArgument, "shards must be ≥ 1");
    server.shutdown().await;
}

#[tokio::test]
async fn batch_key_settings_are_set_and_checked_through_the_api() {
    let server = TestServer::start(config("[queues.q]\n")).await;
    let mut ctl = control(&server).await;
    let weights = |pairs: &[(&str, u32)]| pb::KeyWeights {
        weights: pairs.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect(),
    };
    let created = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "keyed".into(),
            policy: Some(pb::QueuePolicy {
                key_attribute: Some("tenant".into()),
                max_keys: Some(50),
                weights: Some(weights(&[("a", 3)])),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(created.key_attribute.as_deref(), Some("tenant"));
    assert_eq!(created.max_keys, Some(50));
    assert_eq!(created.weights, Some(weights(&[("a", 3)])));
    let update = |policy| pb::UpdateQueueRequest {
        name: "keyed".into(),
        policy: Some(policy),
        handler: None,
    };
    // Unset leaves the weights; an empty map sets every key to 1.
    let kept = ctl
        .update_queue(update(pb::QueuePolicy {
            max_keys: Some(60),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(
        (kept.max_keys, kept.weights),
        (Some(60), Some(weights(&[("a", 3)])))
    );
    let cleared = ctl
        .update_queue(update(pb::QueuePolicy {
            weights: Some(weights(&[])),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(cleared.weights, Some(weights(&[])));
    let zero = ctl
        .update_queue(update(pb::QueuePolicy {
            weights: Some(weights(&[("a", 0)])),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    common::assert_status(&zero, Code::InvalidArgument, "queues.keyed.weights");
    assert!(zero.message().contains("1..=1000"), "{}", zero.message());
    // Items keyed by the attribute are served.
    let mut client = server.client().await;
    let mut request = common::submit_request("keyed", b"x");
    request.attributes.insert("tenant".into(), "a".into());
    assert_eq!(
        client.submit(request).await.unwrap().into_inner().payload,
        &b"x"[..]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cost_settings_are_set_and_checked_through_the_api() {
    let server = TestServer::start(config("[queues.q]\n")).await;
    let mut ctl = control(&server).await;
    let buckets = |b: &[u64]| pb::CostBuckets { bounds: b.to_vec() };
    let created = ctl
        .create_queue(pb::CreateQueueRequest {
            name: "tok".into(),
            policy: Some(pb::QueuePolicy {
                cost_attribute: Some("tokens".into()),
                max_batch_cost: Some(64),
                cost_model: Some("padded".into()),
                oversize: Some("alone".into()),
                cost_buckets: Some(buckets(&[8, 32])),
                max_delay_us: Some(1000),
                ..Default::default()
            }),
            handler: None,
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(
        (
            created.cost.as_deref(),
            created.cost_attribute.as_deref(),
            created.max_batch_cost,
            created.cost_model.as_deref(),
            created.oversize.as_deref(),
            created.cost_buckets.clone(),
        ),
        (
            Some("unit"),
            Some("tokens"),
            Some(64),
            Some("padded"),
            Some("alone"),
            Some(buckets(&[8, 32])),
        )
    );
    let update = |policy| pb::UpdateQueueRequest {
        name: "tok".into(),
        policy: Some(policy),
        handler: None,
    };
    // Unset leaves the buckets; an empty list removes them.
    let kept = ctl
        .update_queue(update(pb::QueuePolicy {
            max_batch_cost: Some(128),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(
        (kept.max_batch_cost, kept.cost_buckets),
        (Some(128), Some(buckets(&[8, 32])))
    );
    let cleared = ctl
        .update_queue(update(pb::QueuePolicy {
            cost_buckets: Some(buckets(&[])),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(cleared.cost_buckets, Some(buckets(&[])));
    for (policy, says) in [
        (
            pb::QueuePolicy {
                cost_model: Some("square".into()),
                ..Default::default()
            },
            "cost_model \"square\" is not one of sum, padded",
        ),
        (
            pb::QueuePolicy {
                oversize: Some("split".into()),
                ..Default::default()
            },
            "oversize \"split\" is not one of refuse, alone",
        ),
        (
            pb::QueuePolicy {
                cost: Some("tokens".into()),
                ..Default::default()
            },
            "cost \"tokens\" is not one of unit, bytes",
        ),
        (
            pb::QueuePolicy {
                cost_buckets: Some(buckets(&[32, 8])),
                ..Default::default()
            },
            "queues.tok.cost_buckets must be strictly ascending",
        ),
        (
            pb::QueuePolicy {
                max_batch_cost: Some((1 << 53) + 1),
                ..Default::default()
            },
            "queues.tok.max_batch_cost",
        ),
    ] {
        let refused = ctl.update_queue(update(policy)).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{}",
            refused.message()
        );
        assert!(refused.message().contains(says), "{}", refused.message());
    }
    // An oversize item goes alone; the budget splits the rest.
    let mut client = server.client().await;
    let answers = common::stream_all(
        &mut client,
        ["a:100", "b:3", "c:4"]
            .iter()
            .map(|s| {
                let (id, tokens) = s.split_once(':').unwrap();
                pb::StreamRequest {
                    id: id.into(),
                    queue: "tok".into(),
                    payload: id.as_bytes().to_vec().into(),
                    attributes: [("tokens".to_owned(), tokens.to_owned())].into(),
                    ..Default::default()
                }
            })
            .collect(),
    )
    .await;
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(
        answers.iter().all(|a| matches!(
            a.as_ref().map(|a| &a.outcome),
            Ok(Some(pb::stream_response::Outcome::Result(_)))
        )),
        "{answers:?}"
    );
    server.shutdown().await;
}

/// Metric lines of `text` that carry a label value starting with `mark`.
fn lines_marked(text: &str, mark: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!("=\"{mark}")))
        .count()
}

/// Registers (or deregisters) `count` endpoints of cycle `cycle` on the
/// queue `remote`, over four calls at a time.
async fn churn_endpoints(
    ctl: &BatchControlClient<Channel>,
    cycle: usize,
    count: u16,
    register: bool,
) {
    let mut calls = tokio::task::JoinSet::new();
    for part in 0..4u16 {
        let mut ctl = ctl.clone();
        calls.spawn(async move {
            for port in (part * count / 4)..((part + 1) * count / 4) {
                let address = format!("http://churn-{cycle}.invalid:{}", 1000 + port);
                if register {
                    ctl.register_endpoint(pb::RegisterEndpointRequest {
                        queue: "remote".into(),
                        address,
                        kind: "grpc".into(),
                        max_in_flight: 1,
                        lease_ttl_ms: 0,
                        parallelism: 0,
                    })
                    .await
                    .expect("registered");
                } else {
                    ctl.deregister_endpoint(pb::EndpointRef {
                        queue: "remote".into(),
                        address,
                    })
                    .await
                    .expect("deregistered");
                }
            }
        });
    }
    calls.join_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churned_endpoints_and_queues_leave_no_series_behind() {
    let server = TestServer::start(config(QUEUES)).await;
    let ctl = control(&server).await;
    let before = server.metrics_text().await;
    const CYCLES: usize = 10;
    const ENDPOINTS: u16 = 2_000;
    const QUEUES_PER_CYCLE: usize = 500;
    for cycle in 0..CYCLES {
        churn_endpoints(&ctl, cycle, ENDPOINTS, true).await;
        let during = server.metrics_text().await;
        assert!(
            lines_marked(&during, "http://churn") >= usize::from(ENDPOINTS),
            "each endpoint has its series while it is there"
        );
        churn_endpoints(&ctl, cycle, ENDPOINTS, false).await;
        let mut calls = tokio::task::JoinSet::new();
        for part in 0..4 {
            let mut ctl = ctl.clone();
            calls.spawn(async move {
                for i in (part * QUEUES_PER_CYCLE / 4)..((part + 1) * QUEUES_PER_CYCLE / 4) {
                    let name = format!("churn-{cycle}-{i}");
                    ctl.create_queue(pb::CreateQueueRequest {
                        name: name.clone(),
                        policy: None,
                        handler: Some(pb::HandlerSpec {
                            kind: "echo".into(),
                            ..Default::default()
                        }),
                    })
                    .await
                    .expect("created");
                    ctl.delete_queue(pb::DeleteQueueRequest { name, force: true })
                        .await
                        .expect("deleted");
                }
            });
        }
        calls.join_all().await;
    }
    // Series only for what is still there: the deleted queues' and
    // endpoints' go once their last handles are dropped.
    let after = common::wait_until("the churned series to go", || async {
        let text = server.metrics_text().await;
        (lines_marked(&text, "churn") == 0 && lines_marked(&text, "http://churn") == 0)
            .then_some(text)
    })
    .await;
    assert!(
        after.len() <= before.len() + before.len() / 10,
        "/metrics grew from {} to {} bytes:\n{after}",
        before.len(),
        after.len()
    );
    // The queues still there still report.
    assert!(after.contains("batchgate_items_total{queue=\"echo\",outcome=\"ok\"}"));
    server.shutdown().await;
}

/// The console on the metrics port: its page and assets from the binary,
/// the queues as the control plane describes them (as JSON, and as
/// server-sent events a second apart while a page is open).
#[tokio::test]
async fn the_console_serves_its_page_its_assets_and_live_snapshots() {
    let server = TestServer::start(config(QUEUES)).await;
    let base = format!("http://{}/ui", server.metrics);
    let http = batchgate::tls::http_client_tls(None).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(http)
        .build()
        .unwrap();
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>batchgate console</title>")
    );
    for (path, kind) in [
        ("app.js", "text/javascript"),
        ("queue.js", "text/javascript"),
        ("uplot.js", "text/javascript"),
        ("uplot.css", "text/css"),
        ("style.css", "text/css"),
        ("uplot-license.txt", "text/plain"),
    ] {
        let r = http.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{path}");
    }
    let missing = http.get(format!("{base}/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let jobs: serde_json::Value = http
        .get(format!("{base}/api/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["enabled"], false, "no [jobs] in this config");
    // No control token: the console only reads.
    let change = http
        .post(format!("{base}/api/queues/echo/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), 403);
    let said: serde_json::Value = change.json().await.unwrap();
    assert!(
        said["error"].as_str().unwrap().contains("read-only"),
        "{said}"
    );
    let snapshot: serde_json::Value = http
        .get(format!("{base}/api/snapshot"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = snapshot["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    // Two events from the stream, each a whole snapshot.
    let mut events = http.get(format!("{base}/api/events")).send().await.unwrap();
    assert!(
        events.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    while text.matches("data: ").count() < 2 {
        let chunk = events.chunk().await.unwrap().expect("the stream goes on");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first = text.split("data: ").nth(1).unwrap().lines().next().unwrap();
    let first: serde_json::Value = serde_json::from_str(first).unwrap();
    assert!(first["unix_ms"].as_u64().unwrap() > 0);
    assert_eq!(first["queues"].as_array().unwrap().len(), names.len());
    drop(events);
    server.shutdown().await;
}

/// With a control token the console's changes go through it: refused
/// without it or with another (the page shows the reason), done with it.
#[tokio::test]
async fn console_changes_need_the_control_token() {
    let dir = std::env::temp_dir().join(format!("batchgate-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let server = TestServer::start(config(&format!(
        "[server]\ncontrol_token_file = \"{}\"\n{QUEUES}",
        token_file.display()
    )))
    .await;
    let base = format!("http://{}/ui", server.metrics);
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(batchgate::tls::http_client_tls(None).unwrap())
        .build()
        .unwrap();
    let writable: serde_json::Value = http
        .get(format!("{base}/api/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(writable["writable"], true);
    let post = |path: &str, token: Option<&str>| {
        let mut r = http.post(format!("{base}/api/queues/{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for (token, says) in [
        (None, "needs authorization: Bearer <token>"),
        (Some("guess"), "wrong control token"),
    ] {
        let r = post("echo/pause", token).await.unwrap();
        assert_eq!(r.status(), 401);
        let said: serde_json::Value = r.json().await.unwrap();
        assert!(said["error"].as_str().unwrap().contains(says), "{said}");
    }
    let state = |http: reqwest::Client, base: String| async move {
        let snapshot: serde_json::Value = http
            .get(format!("{base}/api/snapshot"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        snapshot["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "echo")
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        state(http.clone(), base.clone()).await,
        "active",
        "refused changes change nothing"
    );
    assert_eq!(
        post("echo/pause", Some("s3cret")).await.unwrap().status(),
        200
    );
    assert_eq!(state(http.clone(), base.clone()).await, "paused");
    assert_eq!(
        post("echo/flush", Some("s3cret")).await.unwrap().status(),
        200
    );
    assert_eq!(
        post("echo/resume", Some("s3cret")).await.unwrap().status(),
        200
    );
    assert_eq!(state(http.clone(), base.clone()).await, "active");
    assert_eq!(
        post("nope/pause", Some("s3cret")).await.unwrap().status(),
        404
    );
    assert_eq!(
        post("echo/explode", Some("s3cret")).await.unwrap().status(),
        404
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The console on `server.admin_addr`, with a control token and jobs: a
/// queue's page data (batches by trigger, the size histogram, key shares,
/// queue waits), a policy change from the form (as UpdateQueue) and its
/// refusals, drain, a job's view, download and cancel, and the cap on
/// open event streams.
#[tokio::test]
async fn console_queue_pages_policy_changes_jobs_and_its_own_port() {
    use batchgate::pb::jobs_client::JobsClient;

    let dir = std::env::temp_dir().join(format!("batchgate-console-admin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "s3cret\n").unwrap();
    let server = TestServer::start(config(&format!(
        r#"
[server]
control_token_file = "{}"
admin_addr = "127.0.0.1:0"
[jobs]
path = "{}"
[queues.keyed]
max_batch_size = 4
max_delay = "1ms"
key_attribute = "tenant"
handler = {{ kind = "echo" }}
[queues.held]
handler = {{ kind = "echo" }}
[queues.spare]
handler = {{ kind = "echo" }}
"#,
        dir.join("token").display(),
        dir.join("jobs.sqlite3").display()
    )))
    .await;
    let admin = server.admin.expect("the console's own port");
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(batchgate::tls::http_client_tls(None).unwrap())
        .build()
        .unwrap();
    // On its own port, not beside /metrics.
    let on_metrics = http
        .get(format!("http://{}/ui/", server.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(on_metrics.status(), 404);
    let base = format!("http://{admin}/ui");
    assert_eq!(
        http.get(format!("{base}/")).send().await.unwrap().status(),
        200
    );
    assert!(
        server
            .metrics_text()
            .await
            .contains("batchgate_items_total")
    );

    // Items of three keys, 3:2:1.
    let client = server.client().await;
    let mut sent = Vec::new();
    for (key, n) in [("a", 30), ("b", 20), ("c", 10)] {
        for i in 0..n {
            let mut r = submit("keyed", format!("{key}{i}"));
            r.batch_key = key.into();
            let mut c = client.clone();
            sent.push(tokio::spawn(async move { c.submit(r).await }));
        }
    }
    for s in sent {
        s.await.unwrap().unwrap();
    }
    let queue = |http: reqwest::Client, base: String, name: &'static str| async move {
        let snapshot: serde_json::Value = http
            .get(format!("{base}/api/snapshot"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        snapshot["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap()
            .clone()
    };
    let keyed = queue(http.clone(), base.clone(), "keyed").await;
    let stats = &keyed["stats"];
    let batches = stats["batches"].as_u64().unwrap();
    let by_trigger = stats["batches_by_trigger"].as_object().unwrap();
    assert_eq!(by_trigger.len(), 8, "every trigger listed: {by_trigger:?}");
    assert_eq!(
        by_trigger
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        batches
    );
    let histogram = stats["batch_size_histogram"].as_array().unwrap();
    assert_eq!(
        histogram
            .iter()
            .map(|b| b["batches"].as_u64().unwrap())
            .sum::<u64>(),
        batches,
        "every batch in one bucket: {histogram:?}"
    );
    assert!(
        histogram.iter().all(|b| b["le"].as_u64().unwrap() <= 4),
        "no batch above max_batch_size: {histogram:?}"
    );
    let shares: Vec<(String, u64)> = stats["key_shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["items"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shares,
        [("a".into(), 30), ("b".into(), 20), ("c".into(), 10)],
        "largest first"
    );
    assert!(stats["wait_ms"]["max"].as_f64().unwrap() >= 0.0);

    // The form's fields, and a policy change as UpdateQueue.
    let fields: serde_json::Value = http
        .get(format!("{base}/api/fields"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        fields
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["pb"] == "max_delay_us" && f["kind"] == "micros")
    );
    let change = |body: &'static str, token: Option<&'static str>| {
        let mut r = http
            .post(format!("{base}/api/queues/keyed/policy"))
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, said) = change(r#"{"max_delay_us": 7000}"#, None).await;
    assert_eq!(status, 401, "{said}");
    let (status, said) = change(r#"{"max_delay_us": 7000}"#, Some("s3cret")).await;
    assert_eq!(status, 200, "{said}");
    assert_eq!(said["queue"]["policy"]["max_delay_us"], 7000);
    let described = queue(http.clone(), base.clone(), "keyed").await;
    assert_eq!(described["policy"]["max_delay_us"], 7000);
    for (body, code, says) in [
        (r#"{"max_delay": 7}"#, 400, "unknown field `max_delay`"),
        (r#"{"max_delay_us": "soon"}"#, 400, "not a policy change"),
        (r#"{"mode": "bogus"}"#, 400, "is not one of"),
        ("not json", 400, "not a policy change"),
    ] {
        let (status, said) = change(body, Some("s3cret")).await;
        assert_eq!(status, code, "{body}: {said}");
        assert!(
            said["error"].as_str().unwrap().contains(says),
            "{body}: {said}"
        );
    }
    let missing = http
        .post(format!("{base}/api/queues/nope/policy"))
        .bearer_auth("s3cret")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Drain from the page.
    let drained = http
        .post(format!("{base}/api/queues/spare/drain"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 200);
    let spare = queue(http.clone(), base.clone(), "spare").await;
    assert!(
        ["draining", "drained"].contains(&spare["state"].as_str().unwrap()),
        "{spare}"
    );

    // Jobs: one run to the end and downloaded, one cancelled.
    let mut jobs = JobsClient::new(server.channel().await);
    let upload = |queue: &str, n: usize| {
        let header = batchgate::pb::CreateJobRequest {
            part: Some(batchgate::pb::create_job_request::Part::Header(
                batchgate::pb::JobHeader {
                    queue: queue.into(),
                    ..Default::default()
                },
            )),
        };
        let items = batchgate::pb::CreateJobRequest {
            part: Some(batchgate::pb::create_job_request::Part::Items(
                batchgate::pb::JobItems {
                    items: (0..n)
                        .map(|i| batchgate::pb::JobItem {
                            custom_id: format!("c{i}"),
                            payload: format!("p{i}").into_bytes().into(),
                            ..Default::default()
                        })
                        .collect(),
                },
            )),
        };
        tokio_stream::iter(vec![header, items])
    };
    let done = jobs
        .create_job(upload("keyed", 50))
        .await
        .unwrap()
        .into_inner();
    let view = |id: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}/api/jobs/{id}"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let job = common::wait_until("the job to complete", || {
        let view = view(done.id.clone());
        async move {
            let v = view.await;
            (v["job"]["state"] == "completed").then_some(v)
        }
    })
    .await;
    assert_eq!(job["job"]["counts"]["succeeded"], 50);
    assert_eq!(job["errors"].as_array().unwrap().len(), 0);
    let download = format!("{base}/api/jobs/{}/results", done.id);
    assert_eq!(
        http.get(&download).send().await.unwrap().status(),
        401,
        "results are the users' data: the token is needed"
    );
    let file = http
        .get(&download)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(
        file.headers()[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains(".jsonl")
    );
    let text = file.text().await.unwrap();
    let lines: HashSet<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}={}",
                v["custom_id"].as_str().unwrap(),
                v["payload"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines.len(), 50);
    assert!(lines.contains("c7=p7"), "{lines:?}");

    let paused = http
        .post(format!("{base}/api/queues/held/pause"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    let held = jobs
        .create_job(upload("held", 10))
        .await
        .unwrap()
        .into_inner();
    let cancel = format!("{base}/api/jobs/{}/cancel", held.id);
    assert_eq!(http.post(&cancel).send().await.unwrap().status(), 401);
    let cancelled = http
        .post(&cancel)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    // Items the runner had handed to the paused queue end when it runs
    // them; the others end cancelled.
    let resumed = http
        .post(format!("{base}/api/queues/held/resume"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let job = common::wait_until("the job to end cancelled", || {
        let view = view(held.id.clone());
        async move {
            let v = view.await;
            (v["job"]["state"] == "cancelled").then_some(v)
        }
    })
    .await;
    let counts = &job["job"]["counts"];
    assert_eq!(
        counts["cancelled"].as_u64().unwrap() + counts["succeeded"].as_u64().unwrap(),
        10,
        "{job}"
    );
    let unknown = http
        .get(format!("{base}/api/jobs/job_nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // At most MAX_EVENT_STREAMS pages follow the events at once.
    let mut open = Vec::new();
    for _ in 0..batchgate::console::MAX_EVENT_STREAMS {
        let r = http.get(format!("{base}/api/events")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = http.get(format!("{base}/api/events")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    drop(open.pop());
    let again = common::wait_until("a page's place to free", || {
        let http = http.clone();
        let url = format!("{base}/api/events");
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status() == 200).then_some(r)
        }
    })
    .await;
    drop(again);
    drop(open);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

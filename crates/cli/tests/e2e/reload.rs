//! Configuration hot reload against a real server watching its file: new
//! queues appear, removed ones drain, changed policies and handlers apply,
//! a v2 model comes, changes and goes, an invalid file changes nothing, a
//! ConfigMap-style symlink swap is seen,
//! and under load no accepted item is lost or answered twice.

use crate::common;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use batchgate::{
    config::Config,
    pb::{self, batch_control_client::BatchControlClient, stream_response::Outcome},
    reload::ReloadOptions,
};
use common::TestServer;
use tokio_stream::StreamExt;
use tonic::Code;

const SERVER: &str = "[server]\ngrpc_addr = \"127.0.0.1:0\"\nmetrics_addr = \"127.0.0.1:0\"\n";

fn write(path: &Path, queues: &str) {
    // Written aside and renamed, as an editor or a deploy tool would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{SERVER}{queues}")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn start(path: PathBuf) -> TestServer {
    let load_path = path.clone();
    let options = ReloadOptions {
        load: Arc::new(move || {
            let config = Config::from_file(&load_path)?;
            config.validate()?;
            Ok(config)
        }),
        watch: Some((path.clone(), Duration::from_millis(20))),
        on_sighup: false,
    };
    let config = Config::from_file(&path).unwrap();
    TestServer::start_with(config, Some(options)).await
}

async fn queues(server: &TestServer) -> Vec<String> {
    let mut ctl = BatchControlClient::new(server.channel().await);
    let list = ctl
        .list_queues(pb::ListQueuesRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<String> = list.queues.into_iter().map(|q| q.name).collect();
    names.sort();
    names
}

async fn reloads(server: &TestServer, result: &str) -> f64 {
    server
        .metric(&format!(
            "batchgate_config_reloads_total{{result=\"{result}\"}}"
        ))
        .await
}

#[tokio::test]
async fn a_changed_file_creates_removes_and_updates_queues() {
    let dir = tempdir();
    let path = dir.join("batchgate.toml");
    write(&path, "[queues.a]\nmax_batch_size = 8\n\n[queues.b]\n");
    let server = start(path.clone()).await;
    assert_eq!(queues(&server).await, ["a", "b"]);

    write(
        &path,
        "[queues.a]\nmax_batch_size = 16\nhandler = { kind = \"sim\", base = \"1ms\" }\n\n[queues.c]\n",
    );
    common::wait_until("the reload", || async {
        (queues(&server).await == ["a", "c"]).then_some(())
    })
    .await;
    let mut ctl = BatchControlClient::new(server.channel().await);
    let a = ctl
        .get_queue(pb::QueueRef { name: "a".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.policy.unwrap().max_batch_size, Some(16));
    assert_eq!(a.handler.unwrap().kind, "sim");
    assert_eq!(reloads(&server, "ok").await, 1.0);

    // An invalid file changes nothing, and is counted.
    write(&path, "[queues.a]\nmax_batch_size = 0\n");
    common::wait_until("the failed reload", || async {
        (reloads(&server, "error").await == 1.0).then_some(())
    })
    .await;
    assert_eq!(queues(&server).await, ["a", "c"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_reload_keeps_a_queues_shard_count_and_applies_the_rest() {
    let dir = tempdir();
    let path = dir.join("batchgate.toml");
    write(&path, "[queues.a]\nshards = 2\n");
    let server = start(path.clone()).await;
    write(
        &path,
        "[queues.a]\nshards = 4\nmax_batch_size = 8\nmax_batch_cost = 500\n\
         cost_model = \"padded\"\ncost_buckets = [16, 128]\n",
    );
    common::wait_until("the reload", || async {
        (reloads(&server, "ok").await == 1.0).then_some(())
    })
    .await;
    let mut ctl = BatchControlClient::new(server.channel().await);
    let policy = ctl
        .get_queue(pb::QueueRef { name: "a".into() })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!((policy.shards, policy.max_batch_size), (Some(2), Some(8)));
    assert_eq!(
        (
            policy.max_batch_cost,
            policy.cost_model.as_deref(),
            policy.cost_buckets.map(|b| b.bounds)
        ),
        (Some(500), Some("padded"), Some(vec![16, 128]))
    );
    // A later change still applies (the running count is what is kept).
    write(&path, "[queues.a]\nshards = 4\nmax_batch_size = 4\n");
    common::wait_until("the second reload", || async {
        (reloads(&server, "ok").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(reloads(&server, "error").await, 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_seen() {
    // The kubelet's layout: the file is a symlink through ..data to a
    // timestamped directory, and an update swaps ..data.
    let dir = tempdir();
    let v1 = dir.join("v1");
    let v2 = dir.join("v2");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v1.join("batchgate.toml"), format!("{SERVER}[queues.a]\n")).unwrap();
    std::fs::write(
        v2.join("batchgate.toml"),
        format!("{SERVER}[queues.a]\n[queues.b]\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink("v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/batchgate.toml", dir.join("batchgate.toml")).unwrap();
    let server = start(dir.join("batchgate.toml")).await;
    assert_eq!(queues(&server).await, ["a"]);
    std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    common::wait_until("the swap", || async {
        (queues(&server).await == ["a", "b"]).then_some(())
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn under_load_a_reload_loses_nothing_and_answers_nothing_twice() {
    let dir = tempdir();
    let path = dir.join("batchgate.toml");
    write(
        &path,
        "[queues.hot]\nmax_batch_size = 8\nmax_delay = \"1ms\"\n\n[queues.going]\nmax_delay = \"5ms\"\nhandler = { kind = \"sim\", base = \"2ms\" }\n",
    );
    let server = start(path.clone()).await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut answers = client
        .stream_submit(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let total = 6000u32;
    let sender = tokio::spawn(async move {
        for i in 0..total {
            let queue = if i % 2 == 0 { "hot" } else { "going" };
            let item = pb::StreamRequest {
                id: i.to_string(),
                queue: queue.into(),
                payload: i.to_be_bytes().to_vec().into(),
                ..Default::default()
            };
            if tx.send(item).await.is_err() {
                return;
            }
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut ids = HashSet::new();
    let (mut ok, mut not_found) = (0, 0);
    while let Some(answer) = answers.next().await {
        let answer = answer.expect("the stream stays up");
        assert!(
            ids.insert(answer.id.clone()),
            "{} answered twice",
            answer.id
        );
        match answer.outcome.unwrap() {
            Outcome::Result(r) => {
                assert_eq!(
                    r.payload[..],
                    answer.id.parse::<u32>().unwrap().to_be_bytes()
                );
                ok += 1;
            }
            Outcome::Error(e) => {
                // Items for the removed queue once it left (NOT_FOUND) or
                // while it drained (UNAVAILABLE): refused, never accepted.
                let code = Code::from(e.code);
                assert!(
                    matches!(code, Code::NotFound | Code::Unavailable),
                    "{code:?}: {}",
                    e.message
                );
                not_found += 1;
            }
        }
        if ids.len() == 1000 {
            // Mid-stream: "going" is removed, "hot" gets a new policy and handler.
            write(
                &path,
                "[queues.hot]\nmax_batch_size = 32\nhandler = { kind = \"sim\", base = \"1ms\" }\n",
            );
        }
        if ids.len() == total as usize {
            break;
        }
    }
    sender.await.unwrap();
    assert_eq!(
        ids.len(),
        total as usize,
        "every item answered exactly once"
    );
    assert!(
        ok >= 3000 && not_found > 0,
        "ok {ok}, not found {not_found}"
    );
    assert_eq!(queues(&server).await, ["hot"]);
    server.shutdown().await;
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "batchgate-reload-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_reload_adds_changes_and_removes_a_queues_v2_model() {
    use batchgate::oip::pb::{
        ModelMetadataRequest, grpc_inference_service_client::GrpcInferenceServiceClient,
    };
    let dir = tempdir();
    let path = dir.join("batchgate.toml");
    write(&path, "[queues.m]\n");
    let server = start(path.clone()).await;
    let mut v2 = GrpcInferenceServiceClient::new(server.channel().await);
    let metadata = |name: &str| ModelMetadataRequest {
        name: name.into(),
        version: String::new(),
    };
    let e = v2.model_metadata(metadata("m")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let model = |shape: u32| {
        format!(
            "[queues.m]\nv2 = {{ inputs = [{{ name = \"x\", datatype = \"FP32\", shape = [{shape}] }}], outputs = [{{ name = \"y\", datatype = \"FP32\", shape = [{shape}] }}] }}\n"
        )
    };
    write(&path, &model(4));
    let shape = |m: batchgate::oip::pb::ModelMetadataResponse| m.inputs[0].shape.clone();
    common::wait_until("the model", || async {
        let m = v2.clone().model_metadata(metadata("m")).await.ok()?;
        (shape(m.into_inner()) == [-1, 4]).then_some(())
    })
    .await;
    write(&path, &model(8));
    common::wait_until("the changed model", || async {
        let m = v2.clone().model_metadata(metadata("m")).await.ok()?;
        (shape(m.into_inner()) == [-1, 8]).then_some(())
    })
    .await;
    write(&path, "[queues.m]\n");
    common::wait_until("the model gone", || async {
        v2.clone()
            .model_metadata(metadata("m"))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    server.shutdown().await;
}

//! The Jobs API against a real server: a job runs through its queue next
//! to online traffic and its results come back once per custom_id; bad
//! uploads are refused whole, naming the first bad item; cancel ends what
//! has not run; a deleted queue fails its jobs; a higher priority goes
//! first and jobs of one priority take turns; a window that passes expires
//! what has not run; without `[jobs]` every call says how to turn jobs on.

use std::time::Duration;

use batchgate::{
    config::{Config, JobsConfig},
    pb::{self, jobs_client::JobsClient},
};
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};

use super::{
    common::{self, TestServer},
    store::scratch,
};

const QUEUES: &str = r#"
[queues.echo]
max_batch_size = 32
max_delay = "1ms"
handler = { kind = "echo" }

[queues.slow]
max_batch_size = 4
max_delay = "1ms"
max_in_flight_batches = 1
max_batch_bytes = 1024
handler = { kind = "sim", base = "20ms", per_item = "0us" }
"#;

fn with_jobs(toml: &str, name: &str, f: impl FnOnce(&mut JobsConfig)) -> Config {
    let mut config = common::config(toml);
    let mut jobs = JobsConfig {
        path: scratch(name).join("jobs.sqlite3"),
        ..JobsConfig::default()
    };
    f(&mut jobs);
    config.jobs = Some(jobs);
    config
}

fn header(queue: &str) -> pb::CreateJobRequest {
    pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Header(pb::JobHeader {
            queue: queue.into(),
            ..Default::default()
        })),
    }
}

fn item(id: &str, payload: &[u8]) -> pb::JobItem {
    pb::JobItem {
        custom_id: id.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    }
}

fn items(chunk: Vec<pb::JobItem>) -> pb::CreateJobRequest {
    pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Items(pb::JobItems {
            items: chunk,
        })),
    }
}

async fn create(
    client: &mut JobsClient<Channel>,
    messages: Vec<pb::CreateJobRequest>,
) -> Result<pb::Job, tonic::Status> {
    client
        .create_job(tokio_stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// Follows job `id` to its end.
async fn ended(client: &mut JobsClient<Channel>, id: &str) -> pb::Job {
    let mut updates = client
        .watch_job(pb::JobRef { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(job) = updates.next().await {
        last = Some(job.unwrap());
    }
    last.expect("at least the job as it was")
}

async fn results(
    client: &mut JobsClient<Channel>,
    id: &str,
    errors_only: bool,
) -> Vec<pb::JobResult> {
    let stream = client
        .read_results(pb::ReadResultsRequest {
            id: id.into(),
            offset: 0,
            errors_only,
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    stream.map(Result::unwrap).collect().await
}

#[tokio::test]
async fn a_job_runs_next_to_online_traffic_and_each_result_comes_back_once() {
    let server = TestServer::start(with_jobs(QUEUES, "run", |_| {})).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let n = 2_000;
    let mut messages = vec![header("echo")];
    for chunk in (0..n).collect::<Vec<_>>().chunks(300) {
        messages.push(items(
            chunk
                .iter()
                .map(|i| item(&format!("doc-{i}"), format!("text {i}").as_bytes()))
                .collect(),
        ));
    }
    let job = create(&mut jobs, messages).await.unwrap();
    assert!(job.id.starts_with("job_"), "{job:?}");
    assert_eq!(job.counts.unwrap().total, n as u64);
    // Online items go through meanwhile.
    let mut online = server.client().await;
    for i in 0..20 {
        let answer = online
            .submit(pb::SubmitRequest {
                queue: "echo".into(),
                payload: format!("online {i}").into_bytes().into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&answer.payload[..], format!("online {i}").as_bytes());
    }
    let done = ended(&mut jobs, &job.id).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:?}");
    assert_eq!(done.counts.unwrap().succeeded, n as u64);
    let all = results(&mut jobs, &job.id, false).await;
    assert_eq!(all.len(), n);
    let mut seen = std::collections::HashSet::new();
    for r in &all {
        assert!(seen.insert(r.custom_id.clone()), "twice: {}", r.custom_id);
        let i = r.custom_id.trim_start_matches("doc-");
        assert_eq!(&r.payload[..], format!("text {i}").as_bytes());
        assert_eq!(
            r.attributes.get("idempotency_key"),
            Some(&format!("{}/{}", job.id, r.custom_id)),
            "the backend can tell a repeat"
        );
        assert!(r.batch_id > 0);
    }
    assert!(results(&mut jobs, &job.id, true).await.is_empty());
    let listed = jobs
        .list_jobs(pb::ListJobsRequest {
            queue: "echo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 1);
    let ok = server
        .metric("batchgate_job_items_total{queue=\"echo\",outcome=\"ok\"}")
        .await;
    assert_eq!(ok, n as f64);
    jobs.delete_job(pb::JobRef { id: job.id.clone() })
        .await
        .unwrap();
    let gone = jobs.get_job(pb::JobRef { id: job.id }).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_upload_is_refused_whole_naming_the_first_bad_item() {
    let server = TestServer::start(with_jobs(QUEUES, "bad", |j| j.max_items_per_job = 100)).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let ok_items = || items((0..10).map(|i| item(&format!("a{i}"), b"x")).collect());
    let cases: Vec<(Vec<pb::CreateJobRequest>, Code, &str)> = vec![
        (
            vec![header("nope"), ok_items()],
            Code::NotFound,
            "queue \"nope\" does not exist",
        ),
        (
            vec![ok_items()],
            Code::InvalidArgument,
            "the first message must be the job's header",
        ),
        (
            vec![
                header("echo"),
                ok_items(),
                items(vec![item("b", b"x"), item("a3", b"x")]),
            ],
            Code::InvalidArgument,
            "item 11 (custom_id \"a3\"): duplicate custom_id",
        ),
        (
            vec![header("echo"), items(vec![item(&"x".repeat(257), b"x")])],
            Code::InvalidArgument,
            "item 0 (custom_id \"xxx",
        ),
        (
            vec![header("echo"), items(vec![item("", b"x")])],
            Code::InvalidArgument,
            "custom_id must be 1 to 256 bytes",
        ),
        (
            vec![
                header("slow"),
                ok_items(),
                items(vec![item("big", &[0u8; 2048])]),
            ],
            Code::InvalidArgument,
            "item 10 (custom_id \"big\")",
        ),
        (
            vec![
                header("echo"),
                items((0..101).map(|i| item(&format!("m{i}"), b"x")).collect()),
            ],
            Code::ResourceExhausted,
            "item 100 (custom_id \"m100\") is past jobs.max_items_per_job",
        ),
        (
            vec![header("echo"), ok_items(), header("echo")],
            Code::InvalidArgument,
            "a second header",
        ),
    ];
    for (messages, code, says) in cases {
        let e = create(&mut jobs, messages).await.unwrap_err();
        assert_eq!(e.code(), code, "{says}: {e:?}");
        assert!(e.message().contains(says), "{says}: {e:?}");
    }
    let listed = jobs
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.is_empty(), "nothing half-created: {listed:?}");
    // And the server still runs a good one.
    let job = create(&mut jobs, vec![header("echo"), ok_items()])
        .await
        .unwrap();
    assert_eq!(
        ended(&mut jobs, &job.id).await.state,
        pb::JobState::Completed as i32
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_ends_what_has_not_run_and_a_deleted_queue_fails_its_jobs() {
    let server = TestServer::start(with_jobs(QUEUES, "cancel", |_| {})).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let many = |prefix: &str| {
        items(
            (0..200)
                .map(|i| item(&format!("{prefix}{i}"), b"x"))
                .collect(),
        )
    };
    // 200 items at 4 a batch, 20 ms each: 1 s of work.
    let job = create(&mut jobs, vec![header("slow"), many("c")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cancelled = jobs
        .cancel_job(pb::JobRef { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let counts = cancelled.counts.unwrap();
    assert!(counts.cancelled > 100, "{cancelled:?}");
    let done = ended(&mut jobs, &job.id).await;
    assert_eq!(done.state, pb::JobState::Cancelled as i32, "{done:?}");
    let c = done.counts.unwrap();
    assert_eq!(c.succeeded + c.cancelled, 200, "{done:?}");
    let errors = results(&mut jobs, &job.id, true).await;
    assert_eq!(errors.len() as u64, c.cancelled);
    assert!(
        errors
            .iter()
            .all(|r| r.code == Code::Cancelled as i32 && r.batch_id == 0)
    );
    // A queue deleted under a job: the job fails, naming it.
    let job = create(&mut jobs, vec![header("slow"), many("d")])
        .await
        .unwrap();
    let mut control = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    control
        .delete_queue(pb::DeleteQueueRequest {
            name: "slow".into(),
            force: true,
        })
        .await
        .unwrap();
    let done = ended(&mut jobs, &job.id).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:?}");
    assert!(done.reason.contains("\"slow\" does not exist"), "{done:?}");
    let c = done.counts.unwrap();
    assert_eq!(
        c.succeeded + c.failed,
        200,
        "every item has its end: {done:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_jobs_table_the_service_says_how_to_turn_it_on() {
    let server = TestServer::start(common::config(QUEUES)).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let e = jobs
        .get_job(pb::JobRef { id: "job_1".into() })
        .await
        .unwrap_err();
    common::assert_status(&e, Code::FailedPrecondition, "[jobs]");
    server.shutdown().await;
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_it_resumes() {
    let server = TestServer::start(with_jobs(QUEUES, "pause", |_| {})).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let mut control = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let echo = || pb::QueueRef {
        name: "echo".into(),
    };
    control.pause_queue(echo()).await.unwrap();
    let many = items((0..200).map(|i| item(&format!("p{i}"), b"x")).collect());
    let job = create(&mut jobs, vec![header("echo"), many]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = jobs
        .get_job(pb::JobRef { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.counts.unwrap().succeeded, 0, "{held:?}");
    // At most one batch's worth waits in the paused queue.
    let waiting = server
        .metric("batchgate_job_items_in_flight{queue=\"echo\"}")
        .await;
    assert!(waiting <= 32.0, "{waiting}");
    control.resume_queue(echo()).await.unwrap();
    let done = ended(&mut jobs, &job.id).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:?}");
    assert_eq!(done.counts.unwrap().succeeded, 200);
    server.shutdown().await;
}

async fn job_of(
    jobs: &mut JobsClient<Channel>,
    queue: &str,
    prefix: &str,
    n: usize,
    priority: u32,
    window_ms: u64,
) -> String {
    let head = pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Header(pb::JobHeader {
            queue: queue.into(),
            priority,
            completion_window_ms: window_ms,
            ..Default::default()
        })),
    };
    let many = items(
        (0..n)
            .map(|i| item(&format!("{prefix}{i}"), b"x"))
            .collect(),
    );
    create(jobs, vec![head, many]).await.unwrap().id
}

async fn succeeded(jobs: &mut JobsClient<Channel>, id: &str) -> u64 {
    let job = jobs
        .get_job(pb::JobRef { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    job.counts.unwrap().succeeded
}

#[tokio::test]
async fn a_higher_priority_goes_first_and_jobs_of_one_priority_take_turns() {
    let server = TestServer::start(with_jobs(QUEUES, "turns", |_| {})).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let mut control = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let slow = || pb::QueueRef {
        name: "slow".into(),
    };
    // The slow queue: batches of 4, one at a time, 20 ms each.
    control.pause_queue(slow()).await.unwrap();
    let a = job_of(&mut jobs, "slow", "a", 40, 0, 0).await;
    let b = job_of(&mut jobs, "slow", "b", 40, 0, 0).await;
    let urgent = job_of(&mut jobs, "slow", "u", 40, 5, 0).await;
    control.resume_queue(slow()).await.unwrap();
    // Watched closely (a batch takes 20 ms): what a and b had when the
    // urgent job was done, and how far apart they ever were after.
    let (mut before, mut most_apart) = (None, 0);
    loop {
        let (sa, sb) = (
            succeeded(&mut jobs, &a).await,
            succeeded(&mut jobs, &b).await,
        );
        let su = succeeded(&mut jobs, &urgent).await;
        match before {
            None if su == 40 => before = Some(sa + sb),
            None => {}
            Some(_) if sa == 40 || sb == 40 => {
                assert!(sa >= 32 && sb >= 32, "one job ran ahead: a {sa}, b {sb}");
                break;
            }
            Some(_) => most_apart = most_apart.max(sa.abs_diff(sb)),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Before the urgent job came, the paused queue took at most a batch;
    // one more may have been in the handler when it was seen done.
    let before = before.unwrap_or_default();
    assert!(
        before <= 12,
        "the higher priority went first: a + b = {before}"
    );
    assert!(most_apart <= 8, "a and b {most_apart} apart at most");
    server.shutdown().await;
}

#[tokio::test]
async fn a_job_past_its_window_expires_and_keeps_what_ran() {
    let server = TestServer::start(with_jobs(QUEUES, "window", |_| {})).await;
    let mut jobs = JobsClient::new(server.channel().await);
    let mut control = pb::batch_control_client::BatchControlClient::new(server.channel().await);
    let slow = || pb::QueueRef {
        name: "slow".into(),
    };
    control.pause_queue(slow()).await.unwrap();
    let id = job_of(&mut jobs, "slow", "w", 20, 0, 1_000).await;
    let done = ended(&mut jobs, &id).await;
    assert_eq!(done.state, pb::JobState::Expired as i32, "{done:?}");
    let counts = done.counts.unwrap();
    // What the paused queue held (at most the feed's room) waits in it;
    // the rest ended at once.
    assert!(counts.expired >= 12, "{counts:?}");
    control.resume_queue(slow()).await.unwrap();
    let all = loop {
        let all = results(&mut jobs, &id, false).await;
        if all.len() == 20 {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expired = all
        .iter()
        .filter(|r| r.code == Code::DeadlineExceeded as i32)
        .count();
    assert_eq!(expired as u64, counts.expired, "one result per custom_id");
    assert_eq!(
        all.iter()
            .map(|r| &r.custom_id)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        20
    );
    server.shutdown().await;
}

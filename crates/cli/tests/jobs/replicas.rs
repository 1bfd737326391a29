//! Jobs across replicas on one NATS JetStream (`jobs.store = "nats"`), the
//! real binary: any replica answers for any job, a replica killed mid-job
//! loses nothing, a NATS restart mid-job loses and doubles nothing, and
//! with NATS down online items go on while job calls are UNAVAILABLE.

use std::{
    collections::HashSet,
    process::Child,
    time::{Duration, Instant},
};

use batchgate::pb::{self, jobs_client::JobsClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::{
    crash::{connect, free_port, serve},
    nats::Nats,
    store::scratch,
};

/// A replica: its process and its gRPC URL.
struct Replica {
    child: Child,
    url: String,
}

impl Replica {
    fn start(nats: &Nats, name: &str, prefix: &str) -> Self {
        let dir = scratch(name);
        let port = free_port();
        let config = dir.join("batchgate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\ngrpc_addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:0\"\n\
                 [queues.sim]\nmax_batch_size = 64\nmax_delay = \"1ms\"\nmax_in_flight_batches = 2\n\
                 handler = {{ kind = \"sim\", base = \"5ms\", per_item = \"0us\" }}\n\
                 [jobs]\nstore = \"nats\"\n\
                 nats = {{ url = \"{}\", prefix = \"{prefix}\", ack_wait = \"2s\" }}\n",
                nats.url()
            ),
        )
        .unwrap();
        Self {
            child: serve(&config),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CreateJob upload of `n` items to the sim queue: custom_id `kI`,
/// payload `I`, in chunks of 1,000.
pub fn upload(n: usize) -> Vec<pb::CreateJobRequest> {
    std::iter::once(pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Header(pb::JobHeader {
            queue: "sim".into(),
            ..Default::default()
        })),
    })
    .chain((0..n).collect::<Vec<_>>().chunks(1_000).map(|c| {
        pb::CreateJobRequest {
            part: Some(pb::create_job_request::Part::Items(pb::JobItems {
                items: c
                    .iter()
                    .map(|i| pb::JobItem {
                        custom_id: format!("k{i}"),
                        payload: i.to_string().into_bytes().into(),
                        ..Default::default()
                    })
                    .collect(),
            })),
        }
    }))
    .collect()
}

async fn job(jobs: &mut JobsClient<Channel>, id: &str) -> pb::Job {
    jobs.get_job(pb::JobRef { id: id.to_owned() })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until job `id` has `done` of its items done (or ended).
async fn until_done(
    jobs: &mut JobsClient<Channel>,
    id: &str,
    done: u64,
    within: Duration,
) -> pb::Job {
    let start = Instant::now();
    let mut last;
    loop {
        match jobs.get_job(pb::JobRef { id: id.to_owned() }).await {
            Ok(now) => {
                let now = now.into_inner();
                let c = now.counts.unwrap_or_default();
                if c.succeeded + c.failed + c.cancelled + c.expired >= done {
                    return now;
                }
                last = Some(format!("{now:?}"));
            }
            Err(e) => last = Some(format!("{e:?}")),
        }
        assert!(
            start.elapsed() < within,
            "job {id} did not reach {done} in {within:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every result of job `id`, checked: one per custom_id, `n` in all.
async fn exactly_once(jobs: &mut JobsClient<Channel>, id: &str, n: usize) {
    let results: Vec<pb::JobResult> = jobs
        .read_results(pb::ReadResultsRequest {
            id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    let ids: HashSet<_> = results.iter().map(|r| r.custom_id.clone()).collect();
    assert_eq!(
        (results.len(), ids.len()),
        (n, n),
        "one result per custom_id"
    );
    for r in &results {
        let i = &r.custom_id[1..];
        assert_eq!(
            r.payload,
            i.as_bytes(),
            "{} answered its own payload",
            r.custom_id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_a_job_and_a_killed_one_loses_nothing() {
    let Some(nats) = Nats::start() else {
        return;
    };
    let a = Replica::start(&nats, "replica-a", "three");
    let mut b = Replica::start(&nats, "replica-b", "three");
    let c = Replica::start(&nats, "replica-c", "three");
    let mut on_a = connect(&a.url).await;
    let _on_b = connect(&b.url).await;
    let mut on_c = connect(&c.url).await;
    let n = 100_000;
    let created = on_a
        .create_job(tokio_stream::iter(upload(n)))
        .await
        .unwrap()
        .into_inner();
    // Replica C knows the job A took.
    let seen = job(&mut on_c, &created.id).await;
    assert_eq!(seen.counts.unwrap().total, n as u64);
    // B dies mid-job: its claimed items go to A and C after ack_wait.
    until_done(
        &mut on_c,
        &created.id,
        n as u64 / 5,
        Duration::from_secs(120),
    )
    .await;
    b.kill();
    let killed_at = Instant::now();
    let last = until_done(&mut on_c, &created.id, n as u64, Duration::from_secs(180)).await;
    eprintln!("the job ended {:?} after B was killed", killed_at.elapsed());
    assert_eq!(last.state, pb::JobState::Completed as i32, "{last:?}");
    exactly_once(&mut on_a, &created.id, n).await;
    // Any replica lists it, and deletes it.
    let listed = on_c
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.jobs.iter().any(|j| j.id == created.id));
    on_c.delete_job(pb::JobRef {
        id: created.id.clone(),
    })
    .await
    .unwrap();
    let gone = on_a
        .get_job(pb::JobRef {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_job_loses_and_doubles_nothing() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = Replica::start(&nats, "restart-a", "restart");
    let mut jobs = connect(&a.url).await;
    let n = 10_000;
    let created = jobs
        .create_job(tokio_stream::iter(upload(n)))
        .await
        .unwrap()
        .into_inner();
    until_done(
        &mut jobs,
        &created.id,
        n as u64 / 5,
        Duration::from_secs(60),
    )
    .await;
    nats.restart();
    let last = until_done(&mut jobs, &created.id, n as u64, Duration::from_secs(120)).await;
    assert_eq!(last.state, pb::JobState::Completed as i32, "{last:?}");
    exactly_once(&mut jobs, &created.id, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_online_items_go_on_and_job_calls_are_unavailable() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    // Down at start: the server starts anyway.
    nats.kill();
    let a = Replica::start(&nats, "down-a", "down");
    let mut jobs = connect(&a.url).await;
    let mut online = batchgate::pb::batcher_client::BatcherClient::connect(a.url.clone())
        .await
        .unwrap();
    let submit = |online: &mut batchgate::pb::batcher_client::BatcherClient<Channel>| {
        let mut online = online.clone();
        async move {
            online
                .submit(pb::SubmitRequest {
                    queue: "sim".into(),
                    payload: b"online".to_vec().into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(submit(&mut online).await.payload, b"online".to_vec());
    let e = jobs
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap_err();
    batchgate_test_support::assert_status(&e, tonic::Code::Unavailable, "nats://127.0.0.1");
    // Up: jobs work, by themselves (the client reconnects).
    nats.restart();
    let created = loop {
        match jobs.create_job(tokio_stream::iter(upload(2_000))).await {
            Ok(job) => break job.into_inner(),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Down mid-run: online items still answered, job calls UNAVAILABLE.
    until_done(&mut jobs, &created.id, 200, Duration::from_secs(60)).await;
    nats.kill();
    assert_eq!(submit(&mut online).await.payload, b"online".to_vec());
    let e = jobs
        .get_job(pb::JobRef {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // Back: the job completes, each item once.
    nats.restart();
    let last = until_done(&mut jobs, &created.id, 2_000, Duration::from_secs(120)).await;
    assert_eq!(last.state, pb::JobState::Completed as i32, "{last:?}");
    exactly_once(&mut jobs, &created.id, 2_000).await;
}

//! The binary killed (SIGKILL) mid-job and started again on the same
//! store: the job goes on, and its results hold exactly one entry per
//! custom_id.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use batchgate::pb::{self, jobs_client::JobsClient};
use tokio_stream::StreamExt;

use super::store::scratch;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn serve(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_batchgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("BATCHGATE_CONFIG")
        .env_remove("BATCHGATE_JOBS_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("BATCHGATE_TEST_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap()
}

pub async fn connect(url: &str) -> JobsClient<tonic::transport::Channel> {
    for _ in 0..200 {
        if let Ok(client) = JobsClient::connect(url.to_owned()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server never came up at {url}");
}

#[tokio::test]
async fn a_job_survives_a_kill_and_each_custom_id_gets_one_result() {
    let dir = scratch("crash");
    let port = free_port();
    let config = dir.join("batchgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:0\"\n\
             [queues.sim]\nmax_batch_size = 32\nmax_delay = \"1ms\"\nmax_in_flight_batches = 2\n\
             handler = {{ kind = \"sim\", base = \"5ms\", per_item = \"0us\" }}\n\
             [jobs]\npath = \"{}\"\n",
            dir.join("jobs.sqlite3").display()
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(&config);
    let mut jobs = connect(&url).await;
    let n = 6_000;
    let chunks = super::replicas::upload(n);
    let job = jobs
        .create_job(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    // Kill it once some, not all, of the job has run.
    loop {
        let now = jobs
            .get_job(pb::JobRef { id: job.id.clone() })
            .await
            .unwrap()
            .into_inner();
        let done = now.counts.unwrap().succeeded;
        assert!(done < n as u64, "the job ran out before the kill: {now:?}");
        if done > 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let mut server = serve(&config);
    let mut jobs = connect(&url).await;
    let mut updates = jobs
        .watch_job(pb::JobRef { id: job.id.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(update) = updates.next().await {
        last = Some(update.unwrap());
    }
    let last = last.unwrap();
    assert_eq!(last.state, pb::JobState::Completed as i32, "{last:?}");
    let results: Vec<pb::JobResult> = jobs
        .read_results(pb::ReadResultsRequest {
            id: job.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    let ids: std::collections::HashSet<_> = results.iter().map(|r| r.custom_id.clone()).collect();
    assert_eq!(
        (results.len(), ids.len()),
        (n, n),
        "one result per custom_id"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

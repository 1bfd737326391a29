//! The store's disk against a real server: full (a file-size limit on the
//! process) and read-only. Each is a clear error naming the file, nothing
//! half-created, and online traffic unaffected.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use batchgate::pb::{self, batcher_client::BatcherClient, jobs_client::JobsClient};
use tonic::{Code, transport::Channel};

use super::crash::{connect, free_port};
use super::store::scratch;

/// `serve --config` under `bash -c`, with `limits` run first (`ulimit`,
/// `mount`, ...).
fn serve_under(limits: &str, config: &Path, unshare: bool) -> Child {
    let line = format!(
        "{limits}exec \"{}\" serve --config \"{}\"",
        env!("CARGO_BIN_EXE_batchgate"),
        config.display()
    );
    let mut command = if unshare {
        let mut c = Command::new("unshare");
        c.args(["-r", "-m", "bash", "-c", &line]);
        c
    } else {
        let mut c = Command::new("bash");
        c.args(["-c", &line]);
        c
    };
    command
        .env_remove("BATCHGATE_CONFIG")
        .env_remove("BATCHGATE_JOBS_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let config = dir.join("batchgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ngrpc_addr = \"127.0.0.1:{port}\"\nmetrics_addr = \"127.0.0.1:0\"\n\
             [queues.echo]\nmax_batch_size = 64\n\
             [jobs]\npath = \"{}\"\n",
            dir.join("store").join("jobs.sqlite3").display()
        ),
    )
    .unwrap();
    config
}

fn upload(n: usize, size: usize) -> Vec<pb::CreateJobRequest> {
    let header = pb::CreateJobRequest {
        part: Some(pb::create_job_request::Part::Header(pb::JobHeader {
            queue: "echo".into(),
            ..Default::default()
        })),
    };
    let ids: Vec<usize> = (0..n).collect();
    std::iter::once(header)
        .chain(ids.chunks(1_000).map(|c| {
            pb::CreateJobRequest {
                part: Some(pb::create_job_request::Part::Items(pb::JobItems {
                    items: c
                        .iter()
                        .map(|i| pb::JobItem {
                            custom_id: format!("k{i}"),
                            payload: vec![b'x'; size].into(),
                            ..Default::default()
                        })
                        .collect(),
                })),
            }
        }))
        .collect()
}

async fn completed(jobs: &mut JobsClient<Channel>, id: &str) -> pb::Job {
    for _ in 0..400 {
        let job = jobs
            .get_job(pb::JobRef { id: id.into() })
            .await
            .unwrap()
            .into_inner();
        if job.state == pb::JobState::Completed as i32 {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never completed");
}

async fn online_answers(url: &str) {
    let mut client = BatcherClient::connect(url.to_owned()).await.unwrap();
    let answer = client
        .submit(pb::SubmitRequest {
            queue: "echo".into(),
            payload: b"online".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("online traffic goes on")
        .into_inner();
    assert_eq!(&answer.payload[..], b"online");
}

#[tokio::test]
async fn a_full_disk_refuses_an_upload_whole_and_online_traffic_goes_on() {
    let dir = scratch("disk-full");
    let port = free_port();
    let config = config(&dir, port);
    let url = format!("http://127.0.0.1:{port}");
    // Files of at most 1 MiB; a write past it fails (EFBIG) instead of
    // killing the process.
    let mut server = serve_under("trap '' XFSZ; ulimit -f 1024; ", &config, false);
    let mut jobs = connect(&url).await;
    let small = jobs
        .create_job(tokio_stream::iter(upload(200, 100)))
        .await
        .unwrap()
        .into_inner();
    completed(&mut jobs, &small.id).await;
    // 2 MB of items: past what the file may hold.
    let refused = jobs
        .create_job(tokio_stream::iter(upload(20_000, 100)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("jobs.sqlite3"),
        "names the file: {refused:?}"
    );
    online_answers(&url).await;
    match jobs.list_jobs(pb::ListJobsRequest::default()).await {
        Ok(list) => {
            let ids: Vec<_> = list.into_inner().jobs.into_iter().map(|j| j.id).collect();
            assert_eq!(ids, std::slice::from_ref(&small.id), "nothing half-created");
        }
        Err(e) => assert!(
            e.code() == Code::Unavailable && e.message().contains("jobs.sqlite3"),
            "{e:?}"
        ),
    }
    server.kill().unwrap();
    server.wait().unwrap();
    // Started again with room: the first job whole, the refused one gone.
    let mut server = serve_under("", &config, false);
    let mut jobs = connect(&url).await;
    let list = jobs
        .list_jobs(pb::ListJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.jobs.len(), 1, "{list:?}");
    assert_eq!(list.jobs[0].counts.as_ref().map(|c| c.succeeded), Some(200));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn a_read_only_store_stops_the_server_naming_the_file() {
    let dir = scratch("disk-ro");
    let port = free_port();
    let config = config(&dir, port);
    std::fs::create_dir_all(dir.join("store")).unwrap();
    // A read-only mount of the store's directory (a mount namespace of
    // our own: root or not, the file system refuses the write).
    let store = dir.join("store");
    let mount = format!(
        "mount --bind -o ro \"{0}\" \"{0}\" || exit 99; ",
        store.display()
    );
    // First with no file yet, then with one.
    for _ in 0..2 {
        let server = serve_under(&mount, &config, true);
        let out = server.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(99) || said.contains("unshare:") {
            eprintln!("no mount namespace here, read-only store not tried: {said}");
            return;
        }
        assert_eq!(out.status.code(), Some(64), "{said}");
        assert!(
            said.contains("jobs.sqlite3") && said.contains("Read-only file system"),
            "{said}"
        );
        std::fs::write(store.join("jobs.sqlite3"), b"").unwrap();
    }
}

//! The `batchgate.v1.Jobs` service: uploads, looks and result streams over
//! the job store (see `jobs`); no logic of its own beyond checking items.

use std::{collections::HashMap, pin::Pin, sync::Arc, time::Duration};

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    jobs::{
        Begun, Filter, JobInfo, JobResult, JobState, NewItem, NewJob, Outcome, StoreError,
        runner::Runner, sqlite::MAX_CUSTOM_ID,
    },
    pb::{self, jobs_server::Jobs},
    queue::{Policy, check_item, item_cost},
};

/// Most labels of a job, and bytes of each key or value.
const MAX_LABELS: usize = 64;
const MAX_LABEL_BYTES: usize = 256;
/// Jobs a ListJobs page holds by default, and at most.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;
/// Results a ReadResults message batch reads from the store at once.
const RESULTS_CHUNK: usize = 1_024;
/// WatchJob's least spacing between two updates.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// WatchJob looks at least this often.
const WATCH_AT_LEAST: Duration = Duration::from_secs(1);

/// The Jobs service; without a `[jobs]` table every call is
/// FAILED_PRECONDITION.
#[derive(Debug, Clone)]
pub struct JobsService {
    runner: Option<Arc<Runner>>,
}

impl JobsService {
    /// The service over `runner` (`None`: jobs are off).
    pub fn new(runner: Option<Arc<Runner>>) -> Self {
        Self { runner }
    }

    fn runner(&self) -> Result<&Arc<Runner>, Status> {
        self.runner.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "jobs are not enabled on this server: add a [jobs] table to its config",
            )
        })
    }
}

/// The store's error as a status.
pub fn status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(_) => Status::not_found(e.to_string()),
        StoreError::BadItem { .. } => Status::invalid_argument(e.to_string()),
        StoreError::Limit(_) => Status::resource_exhausted(e.to_string()),
        StoreError::State(_) => Status::failed_precondition(e.to_string()),
        StoreError::Unavailable { .. } => Status::unavailable(e.to_string()),
    }
}

/// A job as protobuf.
pub fn job_pb(job: &JobInfo) -> pb::Job {
    let state = match job.state {
        JobState::Validating => pb::JobState::Validating,
        JobState::Queued => pb::JobState::Queued,
        JobState::InProgress => pb::JobState::InProgress,
        JobState::Completed => pb::JobState::Completed,
        JobState::Failed => pb::JobState::Failed,
        JobState::Expired => pb::JobState::Expired,
        JobState::Cancelling => pb::JobState::Cancelling,
        JobState::Cancelled => pb::JobState::Cancelled,
    };
    let c = job.counts;
    pb::Job {
        id: job.id.clone(),
        queue: job.queue.clone(),
        state: state as i32,
        reason: job.reason.clone(),
        counts: Some(pb::JobCounts {
            total: c.total,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
            expired: c.expired,
        }),
        created_unix_ms: job.created_ms,
        expires_unix_ms: job.expires_ms,
        ended_unix_ms: job.ended_ms,
        labels: job.labels.clone().into_iter().collect(),
        priority: job.priority,
        bytes: job.bytes,
    }
}

/// A stored result as protobuf.
pub fn result_pb(r: JobResult) -> pb::JobResult {
    let (payload, attributes, code, message) = match r.outcome {
        Outcome::Ok {
            payload,
            attributes,
        } => (payload, attributes, 0, String::new()),
        Outcome::Err { code, message } => (Default::default(), HashMap::new(), code, message),
    };
    pb::JobResult {
        offset: r.offset,
        custom_id: r.custom_id,
        payload,
        attributes,
        code,
        message,
        batch_id: r.batch_id,
    }
}

/// The header's job, checked.
fn new_job(runner: &Runner, h: pb::JobHeader) -> Result<NewJob, Status> {
    if runner.has_queue(&h.queue).is_none() {
        return Err(Status::not_found(format!(
            "queue {:?} does not exist",
            h.queue
        )));
    }
    let config = runner.config();
    let window = match h.completion_window_ms {
        0 => config.default_window,
        ms => Duration::from_millis(ms),
    };
    if window > config.max_window() {
        return Err(Status::invalid_argument(format!(
            "completion_window_ms {} is past the most, {} ms",
            h.completion_window_ms,
            config.max_window().as_millis()
        )));
    }
    if h.labels.len() > MAX_LABELS
        || h.labels
            .iter()
            .any(|(k, v)| k.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES)
    {
        return Err(Status::invalid_argument(format!(
            "labels: at most {MAX_LABELS}, each key and value at most {MAX_LABEL_BYTES} bytes"
        )));
    }
    Ok(NewJob {
        queue: h.queue,
        window,
        priority: h.priority,
        labels: h.labels.into_iter().collect(),
        idempotency_key: Some(h.idempotency_key).filter(|k| !k.is_empty()),
    })
}

/// Checks one uploaded item against its queue's `policy` as `Submit` would.
fn check(policy: &Policy, queue: &str, index: u64, item: pb::JobItem) -> Result<NewItem, Status> {
    let bad = |reason: String| {
        Status::invalid_argument(format!(
            "item {index} (custom_id {:?}): {reason}",
            item.custom_id
        ))
    };
    if item.custom_id.is_empty() || item.custom_id.len() > MAX_CUSTOM_ID {
        return Err(bad(format!("custom_id must be 1 to {MAX_CUSTOM_ID} bytes")));
    }
    check_item(policy, queue, 0, item.payload.len())
        .map_err(|r| bad(Status::from(r).message().to_owned()))?;
    item_cost(
        policy,
        queue,
        item.cost,
        &item.attributes,
        item.payload.len(),
    )
    .map_err(|r| bad(Status::from(r).message().to_owned()))?;
    Ok(NewItem {
        custom_id: item.custom_id,
        payload: item.payload,
        attributes: item.attributes,
        cost: item.cost,
        batch_key: Some(item.batch_key).filter(|k| !k.is_empty()),
    })
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Jobs for JobsService {
    async fn create_job(
        &self,
        request: Request<Streaming<pb::CreateJobRequest>>,
    ) -> Result<Response<pb::Job>, Status> {
        let runner = self.runner()?;
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(pb::create_job_request::Part::Header(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be the job's header",
                ));
            }
        };
        let job = new_job(runner, header)?;
        let queue = job.queue.clone();
        let store = runner.store();
        let id = match store.begin(job).await.map_err(status)? {
            Begun::Existing(job) => return Ok(Response::new(job_pb(&job))),
            Begun::New(id) => id,
        };
        let uploaded = async {
            let mut index = 0u64;
            while let Some(message) = stream.message().await? {
                let Some(pb::create_job_request::Part::Items(items)) = message.part else {
                    return Err(Status::invalid_argument(
                        "a second header: one job per call",
                    ));
                };
                let first = index;
                // The queue as it is now, once a message (not an item).
                let entry = runner
                    .has_queue(&queue)
                    .ok_or_else(|| Status::not_found(format!("queue {queue:?} does not exist")))?;
                let policy = &entry.config.policy;
                let mut checked = Vec::with_capacity(items.items.len());
                for item in items.items {
                    checked.push(check(policy, &queue, index, item)?);
                    index += 1;
                }
                store.append(&id, first, checked).await.map_err(status)?;
            }
            store.seal(&id).await.map_err(status)
        }
        .await;
        match uploaded {
            Ok(job) => {
                runner.poke();
                Ok(Response::new(job_pb(&job)))
            }
            Err(e) => {
                if let Err(abort) = store.abort(&id).await {
                    tracing::warn!(job = %id, error = %abort, "jobs: removing a refused upload failed; trying again every second for a minute (else it goes at the next start)");
                    // A store that stopped after a failed write refuses
                    // the removal too; the upload would hold a place among
                    // the open jobs until the next start.
                    let store = store.clone();
                    tokio::spawn(async move {
                        for _ in 0..60 {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            if store.abort(&id).await.is_ok() {
                                break;
                            }
                        }
                    });
                }
                Err(e)
            }
        }
    }

    async fn get_job(&self, request: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let job = self
            .runner()?
            .store()
            .get(&request.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Response::new(job_pb(&job)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let r = request.into_inner();
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let state = match pb::JobState::try_from(r.state) {
            Ok(pb::JobState::Unspecified) => None,
            Ok(s) => JobState::parse(pb::job_state_name(s as i32)),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown job state {}",
                    r.state
                )));
            }
        };
        let filter = Filter {
            queue: Some(r.queue).filter(|q| !q.is_empty()),
            state,
            before: Some(r.page_token).filter(|t| !t.is_empty()),
            limit,
        };
        let jobs = self.runner()?.store().list(filter).await.map_err(status)?;
        let next_page_token = if jobs.len() == limit {
            jobs.last().map(|j| j.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.iter().map(job_pb).collect(),
            next_page_token,
        }))
    }

    async fn cancel_job(&self, request: Request<pb::JobRef>) -> Result<Response<pb::Job>, Status> {
        let runner = self.runner()?;
        let job = runner
            .store()
            .cancel(&request.get_ref().id)
            .await
            .map_err(status)?;
        runner.poke();
        Ok(Response::new(job_pb(&job)))
    }

    async fn delete_job(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<pb::DeleteJobResponse>, Status> {
        let runner = self.runner()?;
        runner
            .store()
            .delete(&request.get_ref().id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteJobResponse {}))
    }

    type WatchJobStream = Boxed<pb::Job>;

    async fn watch_job(
        &self,
        request: Request<pb::JobRef>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let runner = self.runner()?.clone();
        let id = request.into_inner().id;
        // Subscribed before the first look, so no change after it is missed.
        let mut changes = runner.changes();
        let first = runner.store().get(&id).await.map_err(status)?;
        let stream = async_stream(move |tx| async move {
            let mut last = first;
            if tx.send(Ok(job_pb(&last))).await.is_err() {
                return;
            }
            while !last.state.ended() {
                // A change, or a look every second whatever happens.
                if let Ok(Err(_)) = tokio::time::timeout(WATCH_AT_LEAST, changes.changed()).await {
                    return;
                }
                tokio::time::sleep(WATCH_EVERY).await;
                let job = match runner.store().get(&id).await {
                    Ok(job) => job,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                if job != last {
                    if tx.send(Ok(job_pb(&job))).await.is_err() {
                        return;
                    }
                    last = job;
                }
            }
        });
        Ok(Response::new(stream))
    }

    type ReadResultsStream = Boxed<pb::JobResult>;

    async fn read_results(
        &self,
        request: Request<pb::ReadResultsRequest>,
    ) -> Result<Response<Self::ReadResultsStream>, Status> {
        let runner = self.runner()?.clone();
        let r = request.into_inner();
        let mut changes = runner.changes();
        runner.store().get(&r.id).await.map_err(status)?;
        let stream = async_stream(move |tx| async move {
            let mut offset = r.offset;
            loop {
                // The job's state before reading: ended then, nothing
                // comes after what this read finds.
                let ended = match runner.store().get(&r.id).await {
                    Ok(job) => job.state.ended(),
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                let chunk = match runner
                    .store()
                    .results(&r.id, offset, RESULTS_CHUNK, r.errors_only)
                    .await
                {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = tx.send(Err(status(e))).await;
                        return;
                    }
                };
                let full = chunk.len() == RESULTS_CHUNK;
                for result in chunk {
                    offset = result.offset + 1;
                    if tx.send(Ok(result_pb(result))).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                if !r.follow || ended {
                    return;
                }
                if let Ok(Err(_)) = tokio::time::timeout(WATCH_AT_LEAST, changes.changed()).await {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A result as its JSON line.
pub fn result_line(r: &pb::JobResult) -> serde_json::Value {
    use base64::Engine;
    use serde_json::json;
    if r.code != 0 {
        let code = tonic::Code::from(r.code);
        return json!({
            "custom_id": r.custom_id,
            "error": {"code": crate::error::code_name(code), "message": r.message},
        });
    }
    let mut line = match std::str::from_utf8(&r.payload) {
        Ok(text) => json!({"custom_id": r.custom_id, "payload": text}),
        Err(_) => json!({
            "custom_id": r.custom_id,
            "payload_b64": base64::engine::general_purpose::STANDARD.encode(&r.payload),
        }),
    };
    if !r.attributes.is_empty() {
        line["attributes"] = json!(r.attributes);
    }
    line
}

/// A stream fed by `f` through a small channel (it waits while the client
/// does not read).
fn async_stream<T, F, Fut>(f: F) -> Boxed<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

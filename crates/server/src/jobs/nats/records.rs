//! Job records in the bucket `P_jobs`: one key per job (its id), changed
//! with compare-and-set so replicas never undo each other's changes, and
//! `idem.HEX` keys that hold the job of an idempotency key.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::{Inner, results};
use crate::jobs::{
    Begun, Filter, JobInfo, JobState, NewJob, StoreError, StoreResult, new_id, now_ms,
};

/// How long an upload may stay unsealed before `purge` removes it (its
/// replica died mid-upload).
const UPLOAD_TIMEOUT_MS: u64 = 3_600_000;

/// A job as kept in the bucket (counts come from its results).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: String,
    pub queue: String,
    pub state: String,
    #[serde(default)]
    pub reason: String,
    /// The code a failed job's items that never ran end with.
    #[serde(default)]
    pub code: i32,
    pub total: u64,
    pub bytes: u64,
    pub created_ms: u64,
    pub expires_ms: u64,
    #[serde(default)]
    pub ended_ms: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: u32,
    #[serde(default)]
    pub idem: Option<String>,
}

impl Record {
    pub fn state(&self) -> JobState {
        JobState::parse(&self.state).unwrap_or(JobState::Failed)
    }

    pub fn set_state(&mut self, state: JobState) {
        self.state = state.as_str().to_owned();
        if state.ended() && self.ended_ms == 0 {
            self.ended_ms = now_ms();
        }
    }
}

fn idem_key(key: &str) -> String {
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    format!("idem.{hex}")
}

/// The record of job `id` and its revision, if there is one.
pub(super) async fn load(inner: &Inner, id: &str) -> StoreResult<Option<(Record, u64)>> {
    if !valid_id(id) {
        return Ok(None);
    }
    let entry = inner
        .h()
        .await?
        .jobs
        .entry(id)
        .await
        .map_err(|e| inner.down("reading a job", e))?;
    Ok(entry
        .filter(|e| e.operation == kv::Operation::Put)
        .and_then(|e| Some((serde_json::from_slice(&e.value).ok()?, e.revision))))
}

/// Whether `id` can be a key (`job_` and hex digits, as [`new_id`] makes).
fn valid_id(id: &str) -> bool {
    id.strip_prefix("job_").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Changes job `id`'s record with `change` (which says whether it changed
/// anything), again from the newest if another replica changed it first.
pub(super) async fn update(
    inner: &Inner,
    id: &str,
    mut change: impl FnMut(&mut Record) -> StoreResult<bool>,
) -> StoreResult<Record> {
    loop {
        let (mut record, revision) = load(inner, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        if !change(&mut record)? {
            return Ok(record);
        }
        let value = serde_json::to_vec(&record).unwrap_or_default();
        match inner
            .h()
            .await?
            .jobs
            .update(id, value.into(), revision)
            .await
        {
            Ok(_) => return Ok(record),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
            Err(e) => return Err(inner.refused("changing a job", e)),
        }
    }
}

pub(super) async fn begin(inner: &Inner, job: NewJob) -> StoreResult<Begun> {
    if let Some(key) = &job.idempotency_key
        && let Some(id) = inner
            .h()
            .await?
            .jobs
            .get(idem_key(key))
            .await
            .map_err(|e| inner.down("reading an idempotency key", e))?
        && let Ok(info) = info(inner, &String::from_utf8_lossy(&id)).await
    {
        return Ok(Begun::Existing(info));
    }
    let open = open_records(inner).await?.len() as u64;
    if open >= inner.limits.max_open_jobs {
        return Err(StoreError::Limit(format!(
            "{open} jobs are open, the most jobs.max_open_jobs allows"
        )));
    }
    let id = new_id();
    let now = now_ms();
    let window = u64::try_from(job.window.as_millis()).unwrap_or(u64::MAX);
    let record = Record {
        id: id.clone(),
        queue: job.queue,
        state: JobState::Validating.as_str().to_owned(),
        reason: String::new(),
        code: 0,
        total: 0,
        bytes: 0,
        created_ms: now,
        expires_ms: now.saturating_add(window),
        ended_ms: 0,
        labels: job.labels,
        priority: job.priority,
        idem: job.idempotency_key,
    };
    inner
        .h()
        .await?
        .jobs
        .create(&id, serde_json::to_vec(&record).unwrap_or_default().into())
        .await
        .map_err(|e| inner.refused("creating a job", e))?;
    inner.uploads().insert(id.clone(), Default::default());
    Ok(Begun::New(id))
}

/// Claims the idempotency key of a sealed job; a key another job holds
/// already leaves that one the key's job.
pub(super) async fn keep_idem(inner: &Inner, record: &Record) -> StoreResult<()> {
    if let Some(key) = &record.idem {
        match inner
            .h()
            .await?
            .jobs
            .create(idem_key(key), record.id.clone().into_bytes().into())
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(inner.refused("keeping an idempotency key", e)),
        }
    }
    Ok(())
}

/// Job `id` as the API shows it; a job whose every item has its result
/// ends here (completed, or cancelled when it was cancelling).
pub(super) async fn info(inner: &Inner, id: &str) -> StoreResult<JobInfo> {
    let (record, _) = load(inner, id)
        .await?
        .filter(|(r, _)| r.state() != JobState::Validating)
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let mut counts = results::counts(inner, id).await?;
    counts.total = record.total;
    let record = match record.state() {
        s @ (JobState::Queued | JobState::InProgress | JobState::Cancelling)
            if counts.done() >= counts.total =>
        {
            update(inner, id, |r| {
                if r.state() != s {
                    return Ok(false);
                }
                r.set_state(if s == JobState::Cancelling {
                    JobState::Cancelled
                } else {
                    JobState::Completed
                });
                Ok(true)
            })
            .await?
        }
        _ => record,
    };
    Ok(JobInfo {
        id: record.id.clone(),
        queue: record.queue.clone(),
        state: record.state(),
        reason: record.reason.clone(),
        counts,
        created_ms: record.created_ms,
        expires_ms: record.expires_ms,
        ended_ms: record.ended_ms,
        labels: record.labels.clone(),
        priority: record.priority,
        bytes: record.bytes,
    })
}

/// Every job record.
async fn records(inner: &Inner) -> StoreResult<Vec<Record>> {
    inner.within("listing jobs", all_records(inner)).await
}

async fn all_records(inner: &Inner) -> StoreResult<Vec<Record>> {
    let mut keys = match inner.h().await?.jobs.keys().await {
        Ok(keys) => keys,
        Err(e) => return Err(inner.down("listing jobs", e)),
    };
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| inner.down("listing jobs", e))?;
        if !valid_id(&key) {
            continue;
        }
        if let Some((record, _)) = load(inner, &key).await? {
            out.push(record);
        }
    }
    Ok(out)
}

/// Records of jobs that failed or expired after `since_ms`.
pub(super) async fn ended_since(inner: &Inner, since_ms: u64) -> StoreResult<Vec<Record>> {
    let mut all = records(inner).await?;
    all.retain(|r| {
        matches!(r.state(), JobState::Failed | JobState::Expired) && r.ended_ms >= since_ms
    });
    Ok(all)
}

/// Records of jobs not yet ended (uploads included).
async fn open_records(inner: &Inner) -> StoreResult<Vec<Record>> {
    let mut all = records(inner).await?;
    all.retain(|r| !r.state().ended());
    Ok(all)
}

pub(super) async fn list(inner: &Inner, filter: Filter) -> StoreResult<Vec<JobInfo>> {
    let mut all = records(inner).await?;
    all.retain(|r| r.state() != JobState::Validating);
    all.retain(|r| filter.queue.as_ref().is_none_or(|q| *q == r.queue));
    // Newest first; the page token is the last id of the previous page.
    all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
    if let Some(before) = &filter.before {
        match all.iter().position(|r| r.id == *before) {
            Some(at) => {
                all.drain(..=at);
            }
            None => all.clear(),
        }
    }
    let mut out = Vec::new();
    for r in all {
        if out.len() >= filter.limit {
            break;
        }
        let job = info(inner, &r.id).await?;
        if filter.state.is_none_or(|s| s == job.state) {
            out.push(job);
        }
    }
    Ok(out)
}

pub(super) async fn open_jobs(inner: &Inner) -> StoreResult<Vec<JobInfo>> {
    let mut out = Vec::new();
    for r in open_records(inner).await? {
        if r.state() == JobState::Validating {
            continue;
        }
        let job = info(inner, &r.id).await?;
        if !job.state.ended() {
            out.push(job);
        }
    }
    Ok(out)
}

/// Removes job `id`: its record, items, consumer and results (`upload`:
/// only while it is being uploaded).
pub(super) async fn remove(inner: &Inner, id: &str, upload: bool) -> StoreResult<()> {
    let (record, _) = load(inner, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    if upload && record.state() != JobState::Validating {
        return Err(StoreError::NotFound(id.to_owned()));
    }
    inner.uploads().remove(id);
    inner
        .cursors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(id);
    let p = &inner.prefix;
    let _ = inner.h().await?.items.delete_consumer(id).await;
    inner
        .h()
        .await?
        .items
        .purge()
        .filter(format!("{p}.items.{id}"))
        .await
        .map_err(|e| inner.down("removing a job's items", e))?;
    inner
        .h()
        .await?
        .results
        .purge()
        .filter(format!("{p}.results.{id}.*"))
        .await
        .map_err(|e| inner.down("removing a job's results", e))?;
    inner
        .h()
        .await?
        .jobs
        .purge(id)
        .await
        .map_err(|e| inner.down("removing a job", e))?;
    if let Some(key) = &record.idem
        && inner
            .h()
            .await?
            .jobs
            .get(idem_key(key))
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some(id.as_bytes())
    {
        let _ = inner.h().await?.jobs.purge(idem_key(key)).await;
    }
    Ok(())
}

pub(super) async fn delete(inner: &Inner, id: &str) -> StoreResult<()> {
    let job = info(inner, id).await?;
    if !job.state.ended() {
        return Err(StoreError::State(format!(
            "job {id} is {}; cancel it first, or wait for it to end",
            job.state.as_str()
        )));
    }
    remove(inner, id, false).await
}

pub(super) async fn purge(inner: &Inner, before_ms: u64) -> StoreResult<u64> {
    let mut n = 0;
    let stale_upload = now_ms().saturating_sub(UPLOAD_TIMEOUT_MS);
    for r in records(inner).await? {
        let old = (r.state().ended() && r.ended_ms < before_ms)
            || (r.state() == JobState::Validating && r.created_ms < stale_upload);
        if old {
            remove(inner, &r.id, false).await?;
            n += 1;
        }
    }
    Ok(n)
}

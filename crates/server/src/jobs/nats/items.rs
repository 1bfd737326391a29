//! Job items on the work-queue stream `P_ITEMS`, subject `P.items.JOB`,
//! each published once (message id `JOB.SEQ`) and taken through the job's
//! durable pull consumer, which every replica shares. A claimed item is
//! acknowledged when its result is stored (then the stream drops it), put
//! back with a negative acknowledgement when the queue refused it, and
//! delivered again after `ack_wait` when its replica died.

use std::collections::HashMap;

use async_nats::{
    HeaderMap,
    jetstream::{AckKind, Message, consumer},
};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::{
    Inner, records,
    results::{self, Kind},
};
use crate::jobs::{Claimed, Done, JobInfo, JobState, NewItem, StoreError, StoreResult};

/// CANCELLED, DEADLINE_EXCEEDED and FAILED_PRECONDITION.
const CANCELLED: i32 = 1;
const DEADLINE_EXCEEDED: i32 = 4;
const FAILED_PRECONDITION: i32 = 9;
/// Items one replica fetches at once when ending a job's rest.
const SWEEP: usize = 1_000;
/// Items of a job claimed and not yet acknowledged, over every replica.
const MAX_ACK_PENDING: i64 = 100_000;

/// A claimed item this replica holds.
pub(super) struct Held {
    message: Message,
    custom_id: String,
}

/// An item as published.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    custom_id: String,
    payload_b64: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    attributes: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_key: Option<String>,
}

pub(super) async fn append(
    inner: &Inner,
    id: &str,
    first: u64,
    items: Vec<NewItem>,
) -> StoreResult<()> {
    let (record, _) = records::load(inner, id)
        .await?
        .filter(|(r, _)| r.state() == JobState::Validating)
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let limits = &inner.limits;
    let mut bytes = record.bytes;
    let max_payload = inner.client.server_info().max_payload;
    let mut bodies = Vec::with_capacity(items.len());
    {
        let mut uploads = inner.uploads();
        let seen = uploads.entry(id.to_owned()).or_default();
        let mut added: Vec<String> = Vec::new();
        // A refused call leaves the upload as it was.
        let refuse =
            |e: StoreError, seen: &mut std::collections::HashSet<String>, added: &[String]| {
                for c in added {
                    seen.remove(c);
                }
                e
            };
        for (n, item) in items.into_iter().enumerate() {
            let index = first + n as u64;
            let seq = record.total + n as u64;
            if seq >= limits.max_items_per_job {
                return Err(refuse(
                    StoreError::Limit(format!(
                        "item {index} (custom_id {:?}) is past jobs.max_items_per_job ({})",
                        item.custom_id, limits.max_items_per_job
                    )),
                    seen,
                    &added,
                ));
            }
            bytes += item.bytes();
            if bytes > limits.max_job_bytes {
                return Err(refuse(
                    StoreError::Limit(format!(
                        "item {index} (custom_id {:?}) takes the job past jobs.max_job_bytes ({})",
                        item.custom_id, limits.max_job_bytes
                    )),
                    seen,
                    &added,
                ));
            }
            if !seen.insert(item.custom_id.clone()) {
                return Err(refuse(
                    StoreError::BadItem {
                        index,
                        custom_id: item.custom_id,
                        reason: "duplicate custom_id in the job".into(),
                    },
                    seen,
                    &added,
                ));
            }
            added.push(item.custom_id.clone());
            let body = serde_json::to_vec(&Stored {
                seq,
                custom_id: item.custom_id.clone(),
                payload_b64: base64::engine::general_purpose::STANDARD.encode(&item.payload),
                attributes: item.attributes,
                cost: item.cost,
                batch_key: item.batch_key,
            })
            .unwrap_or_default();
            if body.len() > max_payload {
                return Err(refuse(
                    StoreError::BadItem {
                        index,
                        custom_id: item.custom_id,
                        reason: format!(
                            "it takes {} bytes on NATS, past the server's max_payload ({max_payload})",
                            body.len()
                        ),
                    },
                    seen,
                    &added,
                ));
            }
            bodies.push((seq, body));
        }
    }
    let n = bodies.len() as u64;
    let subject = format!("{}.items.{id}", inner.prefix);
    let mut acks = Vec::with_capacity(bodies.len());
    for (seq, body) in bodies {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{id}.{seq}").as_str());
        let ack = inner
            .js
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
            .map_err(|e| inner.down("storing an item", e))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| inner.refused("storing an item", e))?;
    }
    let added_bytes = bytes - record.bytes;
    records::update(inner, id, |r| {
        r.total += n;
        r.bytes += added_bytes;
        Ok(true)
    })
    .await?;
    Ok(())
}

pub(super) async fn seal(inner: &Inner, id: &str) -> StoreResult<JobInfo> {
    let record = records::load(inner, id)
        .await?
        .filter(|(r, _)| r.state() == JobState::Validating)
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?
        .0;
    inner
        .h()
        .await?
        .items
        .get_or_create_consumer(
            id,
            consumer::pull::Config {
                durable_name: Some(id.to_owned()),
                filter_subject: format!("{}.items.{id}", inner.prefix),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: inner.ack_wait,
                max_ack_pending: MAX_ACK_PENDING,
                ..consumer::pull::Config::default()
            },
        )
        .await
        .map_err(|e| inner.down("making the job's consumer", e))?;
    records::keep_idem(inner, &record).await?;
    records::update(inner, id, |r| {
        if r.state() != JobState::Validating {
            return Ok(false);
        }
        r.set_state(if r.total == 0 {
            JobState::Completed
        } else {
            JobState::Queued
        });
        Ok(true)
    })
    .await?;
    inner.uploads().remove(id);
    records::info(inner, id).await
}

/// Up to `n` available items of job `id`'s consumer.
async fn fetch(inner: &Inner, id: &str, n: usize) -> StoreResult<Vec<(Message, Stored)>> {
    inner.within("taking items", fetch_now(inner, id, n)).await
}

async fn fetch_now(inner: &Inner, id: &str, n: usize) -> StoreResult<Vec<(Message, Stored)>> {
    let consumer = inner
        .h()
        .await?
        .items
        .get_consumer::<consumer::pull::Config>(id)
        .await
        .map_err(|e| inner.down("finding the job's consumer", e))?;
    let mut batch = consumer
        .fetch()
        .max_messages(n)
        .messages()
        .await
        .map_err(|e| inner.down("taking items", e))?;
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| inner.down("taking items", e))?;
        match serde_json::from_slice::<Stored>(&message.payload) {
            Ok(stored) => out.push((message, stored)),
            // Not an item of ours: dropped.
            Err(_) => {
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    Ok(out)
}

pub(super) async fn claim(inner: &Inner, id: &str, n: usize) -> StoreResult<Vec<Claimed>> {
    let (record, _) = records::load(inner, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    if !record.state().runs() || n == 0 {
        return Ok(Vec::new());
    }
    // In progress before anything is held, so a failure here holds none.
    if record.state() == JobState::Queued {
        records::update(inner, id, |r| {
            if r.state() != JobState::Queued {
                return Ok(false);
            }
            r.set_state(JobState::InProgress);
            Ok(true)
        })
        .await?;
    }
    let fetched = fetch(inner, id, n).await?;
    let mut claimed = Vec::with_capacity(fetched.len());
    {
        let mut held = inner.held();
        for (message, stored) in fetched {
            let key = (id.to_owned(), stored.seq);
            let again = held.contains_key(&key);
            held.insert(
                key,
                Held {
                    message,
                    custom_id: stored.custom_id.clone(),
                },
            );
            if again {
                // Delivered again while it still runs here: one run.
                continue;
            }
            claimed.push(Claimed {
                seq: stored.seq,
                item: NewItem {
                    custom_id: stored.custom_id,
                    payload: base64::engine::general_purpose::STANDARD
                        .decode(stored.payload_b64)
                        .unwrap_or_default()
                        .into(),
                    attributes: stored.attributes,
                    cost: stored.cost,
                    batch_key: stored.batch_key,
                },
            });
        }
    }
    Ok(claimed)
}

pub(super) async fn record(inner: &Inner, id: &str, done: Vec<Done>) -> StoreResult<JobInfo> {
    // Every result sent first, then their answers awaited: one round trip
    // for the call, not one per item.
    let mut sent = Vec::with_capacity(done.len());
    let mut failure = None;
    for d in done {
        let Some(held) = inner.held().remove(&(id.to_owned(), d.seq)) else {
            // Recorded already (or not claimed here).
            continue;
        };
        if failure.is_some() {
            back(held).await;
            continue;
        }
        match results::send(inner, id, (d.seq, &held.custom_id), &d.outcome, d.batch_id).await {
            Ok(answer) => sent.push((held, answer)),
            Err(e) => {
                failure = Some(e);
                back(held).await;
            }
        }
    }
    for (held, answer) in sent {
        match answer.await {
            Ok(_) => {
                let _ = held.message.ack().await;
            }
            Err(e) => {
                failure.get_or_insert_with(|| inner.refused("storing a result", e));
                back(held).await;
            }
        }
    }
    match failure {
        // Nowhere to keep results: the job fails with the reason (its items
        // that never ran end with it).
        Some(StoreError::Limit(reason)) => {
            records::update(inner, id, |r| {
                if r.state().ended() {
                    return Ok(false);
                }
                r.reason.clone_from(&reason);
                r.code = FAILED_PRECONDITION;
                r.set_state(JobState::Failed);
                Ok(true)
            })
            .await?;
            // What never ran ends failed if there is room for it now.
            let _ = sweep(inner, id).await;
            records::info(inner, id).await
        }
        Some(e) => Err(e),
        None => records::info(inner, id).await,
    }
}

/// An item whose result was not stored: it runs again (now if NATS takes
/// the word, else after ack_wait), wherever it is claimed.
async fn back(held: Held) {
    let _ = held.message.ack_with(AckKind::Nak(None)).await;
}

/// How a job's items that never ran end.
pub(super) enum Ending {
    Cancel,
    Fail(i32, String),
}

/// How an item of job `r` that never ran ends, if it does.
fn ending(r: &records::Record) -> Option<(Kind, i32, String)> {
    let (state, reason) = (r.state(), r.reason.as_str());
    match state {
        JobState::Cancelling | JobState::Cancelled => Some((
            Kind::Cancelled,
            CANCELLED,
            "the job was cancelled".to_owned(),
        )),
        JobState::Expired => Some((
            Kind::Expired,
            DEADLINE_EXCEEDED,
            "the job's completion window passed before the item ran".to_owned(),
        )),
        JobState::Failed => Some((
            Kind::Failed,
            if r.code == 0 {
                FAILED_PRECONDITION
            } else {
                r.code
            },
            reason.to_owned(),
        )),
        _ => None,
    }
}

pub(super) async fn release(inner: &Inner, id: &str, seqs: Vec<u64>) -> StoreResult<()> {
    let record = records::load(inner, id).await?.map(|(r, _)| r);
    for seq in seqs {
        let Some(held) = inner.held().remove(&(id.to_owned(), seq)) else {
            continue;
        };
        match record.as_ref().and_then(ending) {
            Some((kind, code, message)) => {
                results::end(inner, id, (seq, &held.custom_id), kind, (code, &message)).await?;
                let _ = held.message.ack().await;
            }
            None => {
                let _ = held.message.ack_with(AckKind::Nak(None)).await;
            }
        }
    }
    Ok(())
}

/// Ends what of job `id` has not run as its state says (cancelled,
/// expired, failed): every item its consumer still has.
async fn sweep(inner: &Inner, id: &str) -> StoreResult<()> {
    let Some((record, _)) = records::load(inner, id).await? else {
        return Ok(());
    };
    let Some((kind, code, message)) = ending(&record) else {
        return Ok(());
    };
    loop {
        let fetched = fetch(inner, id, SWEEP).await?;
        if fetched.is_empty() {
            return Ok(());
        }
        for (m, stored) in fetched {
            results::end(
                inner,
                id,
                (stored.seq, &stored.custom_id),
                kind,
                (code, &message),
            )
            .await?;
            let _ = m.ack().await;
        }
    }
}

pub(super) async fn end(inner: &Inner, id: &str, how: Ending) -> StoreResult<JobInfo> {
    let job = records::info(inner, id).await?;
    match &how {
        Ending::Cancel if !job.state.runs() => return Ok(job),
        Ending::Fail(..) if job.state.ended() => return Ok(job),
        _ => {}
    }
    records::update(inner, id, |r| {
        match &how {
            Ending::Cancel if r.state().runs() => r.set_state(JobState::Cancelling),
            Ending::Fail(code, reason) if !r.state().ended() => {
                r.reason.clone_from(reason);
                r.code = *code;
                r.set_state(JobState::Failed);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })
    .await?;
    sweep(inner, id).await?;
    records::info(inner, id).await
}

pub(super) async fn expire(inner: &Inner, now_ms: u64) -> StoreResult<Vec<JobInfo>> {
    let mut ended = Vec::new();
    for job in records::open_jobs(inner).await? {
        if job.state.runs() && job.expires_ms <= now_ms {
            records::update(inner, &job.id, |r| {
                if !r.state().runs() {
                    return Ok(false);
                }
                r.set_state(JobState::Expired);
                Ok(true)
            })
            .await?;
            sweep(inner, &job.id).await?;
            ended.push(records::info(inner, &job.id).await?);
        } else if !job.state.runs() {
            // Cancelling: items put back or delivered again end too.
            sweep(inner, &job.id).await?;
        }
    }
    // Failed or expired lately with items out: what comes back ends too.
    let lately = now_ms
        .saturating_sub(2 * u64::try_from(inner.ack_wait.as_millis()).unwrap_or(u64::MAX) + 60_000);
    for r in records::ended_since(inner, lately).await? {
        let job = records::info(inner, &r.id).await?;
        if job.counts.done() < job.counts.total {
            sweep(inner, &r.id).await?;
        }
    }
    Ok(ended)
}

//! Results on the stream `P_RESULTS`: subject `P.results.JOB.K` (K: `s`
//! succeeded, `f` failed, `c` cancelled, `x` expired), message id
//! `JOB.SEQ` so the stream's duplicate window keeps one result per item.
//! A job's counts are its four subjects' message counts; its results are
//! read in the order they were stored.

use std::collections::HashMap;

use async_nats::{
    HeaderMap,
    jetstream::{consumer, context::PublishAckFuture},
};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::Inner;
use crate::jobs::{Counts, JobResult, Outcome, StoreResult};

/// Which count a result goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

impl Kind {
    fn letter(self) -> &'static str {
        match self {
            Self::Succeeded => "s",
            Self::Failed => "f",
            Self::Cancelled => "c",
            Self::Expired => "x",
        }
    }
}

/// A result as published.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    custom_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload_b64: Option<String>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    attributes: HashMap<String, String>,
    #[serde(default)]
    code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(default)]
    batch_id: u64,
}

/// Job `id`'s counts (without its total).
pub(super) async fn counts(inner: &Inner, id: &str) -> StoreResult<Counts> {
    inner.within("counting results", count_now(inner, id)).await
}

async fn count_now(inner: &Inner, id: &str) -> StoreResult<Counts> {
    let p = &inner.prefix;
    let mut info = inner
        .h()
        .await?
        .results
        .info_with_subjects(format!("{p}.results.{id}.*"))
        .await
        .map_err(|e| inner.down("counting results", e))?;
    let mut counts = Counts::default();
    while let Some(entry) = info.next().await {
        let (subject, n) = entry.map_err(|e| inner.down("counting results", e))?;
        match subject.rsplit('.').next() {
            Some("s") => counts.succeeded += n as u64,
            Some("f") => counts.failed += n as u64,
            Some("c") => counts.cancelled += n as u64,
            Some("x") => counts.expired += n as u64,
            _ => {}
        }
    }
    Ok(counts)
}

/// Publishes item `seq`'s result; the answer (awaited later, so a call's
/// results travel together) says whether it had one already.
pub(super) async fn send(
    inner: &Inner,
    id: &str,
    (seq, custom_id): (u64, &str),
    outcome: &Outcome,
    batch_id: u64,
) -> StoreResult<PublishAckFuture> {
    let (kind, stored) = match outcome {
        Outcome::Ok {
            payload,
            attributes,
        } => (
            Kind::Succeeded,
            Stored {
                seq,
                custom_id: custom_id.to_owned(),
                payload_b64: Some(base64::engine::general_purpose::STANDARD.encode(payload)),
                attributes: attributes.clone(),
                code: 0,
                message: String::new(),
                batch_id,
            },
        ),
        Outcome::Err { code, message } => (
            Kind::Failed,
            Stored {
                seq,
                custom_id: custom_id.to_owned(),
                payload_b64: None,
                attributes: HashMap::new(),
                code: *code,
                message: message.clone(),
                batch_id,
            },
        ),
    };
    publish_only(inner, id, kind, &stored).await
}

/// An item that never ran ends as `kind` with `code` and `message`.
pub(super) async fn end(
    inner: &Inner,
    id: &str,
    (seq, custom_id): (u64, &str),
    kind: Kind,
    (code, message): (i32, &str),
) -> StoreResult<bool> {
    let stored = Stored {
        seq,
        custom_id: custom_id.to_owned(),
        payload_b64: None,
        attributes: HashMap::new(),
        code,
        message: message.to_owned(),
        batch_id: 0,
    };
    publish(inner, id, kind, &stored).await
}

async fn publish(inner: &Inner, id: &str, kind: Kind, stored: &Stored) -> StoreResult<bool> {
    let ack = publish_only(inner, id, kind, stored)
        .await?
        .await
        .map_err(|e| inner.down("storing a result", e))?;
    Ok(!ack.duplicate)
}

async fn publish_only(
    inner: &Inner,
    id: &str,
    kind: Kind,
    stored: &Stored,
) -> StoreResult<PublishAckFuture> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{id}.{}", stored.seq).as_str());
    let subject = format!("{}.results.{id}.{}", inner.prefix, kind.letter());
    let body = serde_json::to_vec(stored).unwrap_or_default();
    inner
        .js
        .publish_with_headers(subject, headers, body.into())
        .await
        .map_err(|e| inner.down("storing a result", e))
}

/// Job `id`'s results from `offset` (their place among its results), at
/// most `limit`, only errors if asked (the caller checked it exists).
pub(super) async fn read(
    inner: &Inner,
    id: &str,
    offset: u64,
    limit: usize,
    errors_only: bool,
) -> StoreResult<Vec<JobResult>> {
    let read = read_now(inner, id, offset, limit, errors_only);
    inner.within("reading results", read).await
}

async fn read_now(
    inner: &Inner,
    id: &str,
    offset: u64,
    limit: usize,
    errors_only: bool,
) -> StoreResult<Vec<JobResult>> {
    let p = &inner.prefix;
    // Going on from where the last read stopped: start at its sequence.
    let cursor = inner
        .cursors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(id)
        .copied()
        .filter(|&(next, _)| next <= offset);
    let (mut at, deliver_policy) = match cursor {
        Some((next, seq)) => (
            next,
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq,
            },
        ),
        None => (0, consumer::DeliverPolicy::All),
    };
    let reader = inner
        .h()
        .await?
        .results
        .create_consumer(consumer::pull::Config {
            deliver_policy,
            filter_subject: format!("{p}.results.{id}.*"),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: std::time::Duration::from_secs(30),
            ..consumer::pull::Config::default()
        })
        .await
        .map_err(|e| inner.down("reading results", e))?;
    let mut out = Vec::new();
    let mut next_seq = None;
    'pages: loop {
        let mut page = reader
            .fetch()
            .max_messages(1_000)
            .messages()
            .await
            .map_err(|e| inner.down("reading results", e))?;
        let mut got = 0;
        while let Some(message) = page.next().await {
            let message = message.map_err(|e| inner.down("reading results", e))?;
            got += 1;
            let here = at;
            at += 1;
            next_seq = message.info().ok().map(|i| i.stream_sequence + 1);
            if here < offset {
                continue;
            }
            let Ok(stored) = serde_json::from_slice::<Stored>(&message.payload) else {
                continue;
            };
            let outcome = match stored.payload_b64 {
                Some(b64) if stored.code == 0 => Outcome::Ok {
                    payload: Bytes::from(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .unwrap_or_default(),
                    ),
                    attributes: stored.attributes,
                },
                _ => Outcome::Err {
                    code: stored.code,
                    message: stored.message,
                },
            };
            if errors_only && matches!(outcome, Outcome::Ok { .. }) {
                continue;
            }
            out.push(JobResult {
                offset: here,
                custom_id: stored.custom_id,
                outcome,
                batch_id: stored.batch_id,
            });
            if out.len() >= limit {
                break 'pages;
            }
        }
        if got == 0 {
            break;
        }
    }
    let _ = inner
        .h()
        .await?
        .results
        .delete_consumer(&reader.cached_info().name)
        .await;
    if let Some(seq) = next_seq {
        inner
            .cursors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), (at, seq));
    }
    Ok(out)
}

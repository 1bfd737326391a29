//! Running: items claimed and recorded; cancel, fail and expire end
//! what has not run.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::*;

pub(super) fn claim(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    n: usize,
) -> StoreResult<Vec<Claimed>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let job = load(tx, ctx, id)?;
    if !job.state.runs() {
        return Ok(Vec::new());
    }
    let claimed: Vec<Claimed> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT seq, custom_id, payload, attributes, cost, batch_key FROM items
                 WHERE job = ?1 AND seq >= (SELECT next_seq FROM jobs WHERE id = ?1)
                   AND state = 0 ORDER BY seq LIMIT ?2",
            )
            .map_err(e)?;
        stmt.query_map(params![id, n as i64], |r| {
            let attributes: String = r.get(3)?;
            let payload: Vec<u8> = r.get(2)?;
            Ok(Claimed {
                seq: r.get::<_, i64>(0)?.max(0) as u64,
                item: NewItem {
                    custom_id: r.get(1)?,
                    payload: payload.into(),
                    attributes: serde_json::from_str::<HashMap<String, String>>(&attributes)
                        .unwrap_or_default(),
                    cost: r.get::<_, Option<i64>>(4)?.map(|c| c.max(0) as u64),
                    batch_key: r.get(5)?,
                },
            })
        })
        .map_err(e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(e)?
    };
    let mut mark = tx
        .prepare_cached("UPDATE items SET state = ?3 WHERE job = ?1 AND seq = ?2")
        .map_err(e)?;
    for c in &claimed {
        mark.execute(params![id, c.seq as i64, RUNNING])
            .map_err(e)?;
    }
    // Items before the cursor are never pending again (until a restart
    // puts back what was claimed and moves it back).
    let next = claimed.last().map_or(job.counts.total, |c| c.seq + 1);
    tx.execute(
        "UPDATE jobs SET running = running + ?2, next_seq = ?3,
               state = CASE state WHEN 'queued' THEN 'in_progress' ELSE state END
             WHERE id = ?1",
        params![id, claimed.len() as i64, next as i64],
    )
    .map_err(e)?;
    Ok(claimed)
}

pub(super) fn record(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    done: Vec<Done>,
) -> StoreResult<JobInfo> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let mut offset: i64 = tx
        .query_row(
            "SELECT succeeded + failed + cancelled + expired FROM jobs WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .optional()
        .map_err(e)?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let (mut ok, mut failed, mut recorded) = (0i64, 0i64, 0i64);
    {
        let mut mark = tx
                .prepare_cached(
                    "UPDATE items SET state = 2 WHERE job = ?1 AND seq = ?2 AND state = ?3 RETURNING custom_id",
                )
                .map_err(e)?;
        let mut insert = tx
                .prepare_cached(
                    "INSERT INTO results(job, offset, custom_id, code, message, payload, attributes, batch)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(e)?;
        for d in &done {
            let custom_id: Option<String> = mark
                .query_row(params![id, d.seq as i64, RUNNING], |r| r.get(0))
                .optional()
                .map_err(e)?;
            let Some(custom_id) = custom_id else {
                continue;
            };
            let (code, message, payload, attributes) = match &d.outcome {
                Outcome::Ok {
                    payload,
                    attributes,
                } => {
                    ok += 1;
                    (
                        0,
                        "",
                        Some(&payload[..]),
                        serde_json::to_string(attributes).ok(),
                    )
                }
                Outcome::Err { code, message } => {
                    failed += 1;
                    (*code, message.as_str(), None, None)
                }
            };
            insert
                .execute(params![
                    id,
                    offset,
                    custom_id,
                    code,
                    message,
                    payload,
                    attributes,
                    d.batch_id.min(i64::MAX as u64) as i64
                ])
                .map_err(e)?;
            offset += 1;
            recorded += 1;
        }
    }
    tx.execute(
        "UPDATE jobs SET succeeded = succeeded + ?2, failed = failed + ?3,
               running = MAX(running - ?4, 0) WHERE id = ?1",
        params![id, ok, failed, recorded],
    )
    .map_err(e)?;
    settle(tx, ctx, id)
}

pub(super) fn cancel(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    let job = load(tx, ctx, id)?;
    if !job.state.runs() {
        return Ok(job);
    }
    end_pending(tx, ctx, id, CANCELLED, "the job was cancelled", "cancelled")?;
    tx.execute("UPDATE jobs SET state = 'cancelling' WHERE id = ?1", [&id])
        .map_err(|e| sql(ctx, &e))?;
    settle(tx, ctx, id)
}

pub(super) fn fail(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    code: i32,
    reason: &str,
) -> StoreResult<JobInfo> {
    let job = load(tx, ctx, id)?;
    if job.state.ended() {
        return Ok(job);
    }
    end_pending(tx, ctx, id, code, reason, "failed")?;
    tx.execute(
        "UPDATE jobs SET state = 'failed', reason = ?2, ended = ?3 WHERE id = ?1",
        params![id, reason, now_ms() as i64],
    )
    .map_err(|e| sql(ctx, &e))?;
    load(tx, ctx, id)
}

pub(super) fn expire(tx: &Transaction<'_>, ctx: &Ctx, now_ms: u64) -> StoreResult<Vec<JobInfo>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let due: Vec<String> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id FROM jobs WHERE state IN ('queued', 'in_progress') AND expires <= ?1",
            )
            .map_err(e)?;
        stmt.query_map([now_ms as i64], |r| r.get(0))
            .map_err(e)?
            .collect::<rusqlite::Result<_>>()
            .map_err(e)?
    };
    let mut out = Vec::with_capacity(due.len());
    for id in due {
        end_pending(
            tx,
            ctx,
            &id,
            DEADLINE_EXCEEDED,
            "the job's completion window passed before the item ran",
            "expired",
        )?;
        tx.execute(
            "UPDATE jobs SET state = 'expired', ended = ?2 WHERE id = ?1",
            params![id, now_ms as i64],
        )
        .map_err(e)?;
        out.push(load(tx, ctx, &id)?);
    }
    Ok(out)
}

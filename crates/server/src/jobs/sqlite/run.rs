//! Running: items claimed and recorded; cancel, fail and expire end
//! what has not run.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    chunk::Entry,
    ends::{done_count, end_as, end_pending, write_chunk},
    *,
};

pub(super) fn claim(tx: &Connection, ctx: &Ctx, id: &str, n: usize) -> StoreResult<Vec<Claimed>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let job = load(tx, ctx, id)?;
    if !job.state.runs() {
        return Ok(Vec::new());
    }
    const COLUMNS: &str = "seq, custom_id, payload, attributes, cost, batch_key";
    let mut out = Vec::with_capacity(n);
    let mut memory = ctx.memory.borrow_mut();
    // First what a restart put back.
    if let Some(redo) = memory.redo.get_mut(id) {
        let mut one = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE job = ?1 AND seq = ?2"
            ))
            .map_err(e)?;
        while out.len() < n {
            let Some(seq) = redo.pop_front() else { break };
            if let Some(c) = one
                .query_row(params![id, seq as i64], claimed)
                .optional()
                .map_err(e)?
            {
                out.push(c);
            }
        }
        if redo.is_empty() {
            memory.redo.remove(id);
        }
    }
    let mut next: i64 = row(tx, "SELECT next_seq FROM jobs WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .map_err(e)?;
    if out.len() < n {
        let mut range = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE job = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3"
            ))
            .map_err(e)?;
        let rows = range
            .query_map(params![id, next, (n - out.len()) as i64], claimed)
            .map_err(e)?;
        for row in rows {
            let c = row.map_err(e)?;
            next = c.seq as i64 + 1;
            out.push(c);
        }
    }
    if out.is_empty() {
        return Ok(out);
    }
    exec(
        tx,
        "UPDATE jobs SET running = running + ?2, next_seq = ?3,
           state = CASE state WHEN 'queued' THEN 'in_progress' ELSE state END
         WHERE id = ?1",
        params![id, out.len() as i64, next],
    )
    .map_err(e)?;
    let running = memory.running.entry(id.to_owned()).or_default();
    for c in &out {
        running.insert(c.seq, c.item.custom_id.clone());
    }
    Ok(out)
}

/// An item row as claimed.
fn claimed(r: &rusqlite::Row<'_>) -> rusqlite::Result<Claimed> {
    // No attributes are stored as "" (no JSON to parse).
    let attributes = r.get_ref(3)?.as_str()?;
    let attributes = if attributes.is_empty() {
        HashMap::new()
    } else {
        serde_json::from_str::<HashMap<String, String>>(attributes).unwrap_or_default()
    };
    let payload = bytes::Bytes::copy_from_slice(r.get_ref(2)?.as_blob()?);
    Ok(Claimed {
        seq: r.get::<_, i64>(0)?.max(0) as u64,
        item: NewItem {
            custom_id: r.get(1)?,
            payload,
            attributes,
            cost: r.get::<_, Option<i64>>(4)?.map(|c| c.max(0) as u64),
            batch_key: r.get(5)?,
        },
    })
}

pub(super) fn record(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    done: Vec<Done>,
) -> StoreResult<JobInfo> {
    let mut entries = Vec::with_capacity(done.len());
    let (mut ok, mut failed) = (0i64, 0i64);
    {
        let mut memory = ctx.memory.borrow_mut();
        if let Some(running) = memory.running.get_mut(id) {
            for d in done {
                // Recorded already, or never claimed: skipped.
                let Some(custom_id) = running.remove(&d.seq) else {
                    continue;
                };
                match d.outcome {
                    Outcome::Ok { .. } => ok += 1,
                    Outcome::Err { .. } => failed += 1,
                }
                entries.push(Entry {
                    seq: d.seq,
                    custom_id,
                    outcome: d.outcome,
                    batch_id: d.batch_id,
                });
            }
            if running.is_empty() {
                memory.running.remove(id);
            }
        }
    }
    if entries.is_empty() {
        return load(tx, ctx, id);
    }
    let first = done_count(tx, ctx, id)?;
    write_chunk(tx, ctx, id, first, &entries)?;
    exec(
        tx,
        "UPDATE jobs SET succeeded = succeeded + ?2, failed = failed + ?3,
               running = MAX(running - ?4, 0) WHERE id = ?1",
        params![id, ok, failed, ok + failed],
    )
    .map_err(|e| sql(ctx, &e))?;
    settle(tx, ctx, id)
}

pub(super) fn release(tx: &Connection, ctx: &Ctx, id: &str, seqs: Vec<u64>) -> StoreResult<()> {
    let job = load(tx, ctx, id)?;
    let back: Vec<u64> = {
        let mut memory = ctx.memory.borrow_mut();
        let Some(running) = memory.running.get_mut(id) else {
            return Ok(());
        };
        let back = seqs
            .into_iter()
            .filter(|s| running.remove(s).is_some())
            .collect();
        if running.is_empty() {
            memory.running.remove(id);
        }
        back
    };
    exec(
        tx,
        "UPDATE jobs SET running = MAX(running - ?2, 0) WHERE id = ?1",
        params![id, back.len() as i64],
    )
    .map_err(|e| sql(ctx, &e))?;
    if job.state.runs() {
        ctx.memory
            .borrow_mut()
            .redo
            .entry(id.to_owned())
            .or_default()
            .extend(back);
    } else {
        // The job ended meanwhile: these end as it did.
        end_as(tx, ctx, id, Some(job.state), &job.reason, back)?;
        settle(tx, ctx, id)?;
    }
    Ok(())
}

pub(super) fn cancel(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    let job = load(tx, ctx, id)?;
    if !job.state.runs() {
        return Ok(job);
    }
    end_pending(tx, ctx, id, CANCELLED, "the job was cancelled", "cancelled")?;
    exec(
        tx,
        "UPDATE jobs SET state = 'cancelling' WHERE id = ?1",
        [&id],
    )
    .map_err(|e| sql(ctx, &e))?;
    settle(tx, ctx, id)
}

pub(super) fn fail(
    tx: &Connection,
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
    exec(
        tx,
        "UPDATE jobs SET state = 'failed', reason = ?2, ended = ?3 WHERE id = ?1",
        params![id, reason, now_ms() as i64],
    )
    .map_err(|e| sql(ctx, &e))?;
    load(tx, ctx, id)
}

pub(super) fn expire(tx: &Connection, ctx: &Ctx, now_ms: u64) -> StoreResult<Vec<JobInfo>> {
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
        exec(
            tx,
            "UPDATE jobs SET state = 'expired', ended = ?2 WHERE id = ?1",
            params![id, now_ms as i64],
        )
        .map_err(e)?;
        out.push(load(tx, ctx, &id)?);
    }
    Ok(out)
}

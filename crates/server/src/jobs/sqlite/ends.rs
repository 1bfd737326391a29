//! Results written as chunks; the ends of items that never ran (cancel,
//! failure, expiry); and what a restart puts back.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    CANCELLED, Ctx, DEADLINE_EXCEEDED, JobState, Outcome, StoreError, StoreResult,
    chunk::{self, Entry},
    exec, now_ms, row, sql,
};

/// Results in one chunk when many items end at once.
const ENDED_CHUNK: usize = 4_096;
/// The code of items a failed job never ran (a restart's recovery).
const FAILED_PRECONDITION: i32 = 9;

/// Results stored for job `id` so far: the next result's offset.
pub(super) fn done_count(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<u64> {
    let done: Option<i64> = row(
        tx,
        "SELECT succeeded + failed + cancelled + expired FROM jobs WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| sql(ctx, &e))?;
    done.map(|d| d.max(0) as u64)
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

/// Stores `entries` as the job's results from offset `first`.
pub(super) fn write_chunk(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    first: u64,
    entries: &[Entry],
) -> StoreResult<()> {
    let errors = entries
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Err { .. }))
        .count();
    tx.prepare_cached(
        "INSERT INTO chunks(job, first, count, errors, results) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            first as i64,
            entries.len() as i64,
            errors as i64,
            chunk::encode(entries)
        ])
    })
    .map_err(|e| sql(ctx, &e))?;
    Ok(())
}

/// Ends with `code` and `message` the items of `id` never claimed (and
/// those a restart put back), counted in `column`; nothing is left to
/// claim after.
pub(super) fn end_pending(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    code: i32,
    message: &str,
    column: &str,
) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let redo = ctx.memory.borrow_mut().redo.remove(id).unwrap_or_default();
    let next: i64 = row(tx, "SELECT next_seq FROM jobs WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .map_err(e)?;
    let mut ids: Vec<(u64, String)> = Vec::new();
    {
        let mut one = tx
            .prepare_cached("SELECT custom_id FROM items WHERE job = ?1 AND seq = ?2")
            .map_err(e)?;
        for seq in redo {
            let custom_id: String = one
                .query_row(params![id, seq as i64], |r| r.get(0))
                .map_err(e)?;
            ids.push((seq, custom_id));
        }
        let mut rest = tx
            .prepare_cached(
                "SELECT seq, custom_id FROM items WHERE job = ?1 AND seq >= ?2 ORDER BY seq",
            )
            .map_err(e)?;
        let rows = rest
            .query_map(params![id, next], |r| {
                Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get(1)?))
            })
            .map_err(e)?;
        for row in rows {
            ids.push(row.map_err(e)?);
        }
    }
    end_items(tx, ctx, id, ids, code, message, column)?;
    exec(tx, "UPDATE jobs SET next_seq = total WHERE id = ?1", [id]).map_err(e)?;
    Ok(())
}

/// Stores `items` as ended with `code` and `message`, counted in `column`.
pub(super) fn end_items(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    items: Vec<(u64, String)>,
    code: i32,
    message: &str,
    column: &str,
) -> StoreResult<()> {
    let mut first = done_count(tx, ctx, id)?;
    let n = items.len();
    let entries: Vec<Entry> = items
        .into_iter()
        .map(|(seq, custom_id)| Entry {
            seq,
            custom_id,
            outcome: Outcome::Err {
                code,
                message: message.to_owned(),
            },
            batch_id: 0,
        })
        .collect();
    for part in entries.chunks(ENDED_CHUNK) {
        write_chunk(tx, ctx, id, first, part)?;
        first += part.len() as u64;
    }
    exec(
        tx,
        &format!("UPDATE jobs SET {column} = {column} + ?2 WHERE id = ?1"),
        params![id, n as i64],
    )
    .map_err(|e| sql(ctx, &e))?;
    Ok(())
}

/// Ends claimed items `seqs` that never ran as their ended job did:
/// cancelled, expired, or failed with `reason`.
pub(super) fn end_as(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    state: Option<JobState>,
    reason: &str,
    seqs: Vec<u64>,
) -> StoreResult<()> {
    let (code, message, column) = match state {
        Some(JobState::Expired) => (
            DEADLINE_EXCEEDED,
            "the job's completion window passed before the item ran",
            "expired",
        ),
        Some(JobState::Failed) => (FAILED_PRECONDITION, reason, "failed"),
        _ => (CANCELLED, "the job was cancelled", "cancelled"),
    };
    let mut ids = Vec::with_capacity(seqs.len());
    {
        let mut one = tx
            .prepare_cached("SELECT custom_id FROM items WHERE job = ?1 AND seq = ?2")
            .map_err(|e| sql(ctx, &e))?;
        for seq in seqs {
            let custom_id = one
                .query_row(params![id, seq as i64], |r| r.get(0))
                .map_err(|e| sql(ctx, &e))?;
            ids.push((seq, custom_id));
        }
    }
    end_items(tx, ctx, id, ids, code, message, column)
}

/// Puts back what a crash left: uploads never sealed go; items claimed
/// and never recorded run again (a running job) or end as their job did
/// (cancelled, expired, failed); a job cancelling is cancelled.
///
/// `uploads`: at a start, uploads never sealed go too (not when a stopped
/// store starts again: their calls are still going).
pub(super) fn recover(tx: &Connection, ctx: &Ctx, uploads: bool) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    if uploads {
        tx.execute_batch(
            "DELETE FROM items WHERE job IN (SELECT id FROM jobs WHERE state = 'validating');
             DELETE FROM jobs WHERE state = 'validating';",
        )
        .map_err(e)?;
    }
    exec(tx, "UPDATE jobs SET running = 0 WHERE running != 0", []).map_err(e)?;
    // A job with fewer results than items claimed had items in flight.
    let cut: Vec<(String, String, String, i64)> = {
        let mut stmt = tx
            .prepare(
                "SELECT id, state, reason, next_seq FROM jobs
                 WHERE next_seq > succeeded + failed + cancelled + expired",
            )
            .map_err(e)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(e)?
            .collect::<rusqlite::Result<_>>()
            .map_err(e)?
    };
    for (id, state, reason, next) in cut {
        let mut recorded = HashSet::new();
        {
            let mut stmt = tx
                .prepare("SELECT results FROM chunks WHERE job = ?1")
                .map_err(e)?;
            let mut rows = stmt.query([&id]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let entries = chunk::read(ctx, row, 0)?;
                recorded.extend(entries.into_iter().map(|x| x.seq));
            }
        }
        let missing: Vec<u64> = (0..next.max(0) as u64)
            .filter(|s| !recorded.contains(s))
            .collect();
        let (code, message, column) = match JobState::parse(&state) {
            Some(JobState::Queued | JobState::InProgress) => {
                ctx.memory.borrow_mut().redo.insert(id, missing.into());
                continue;
            }
            Some(JobState::Expired) => (
                DEADLINE_EXCEEDED,
                "the job's completion window passed before the item ran".to_owned(),
                "expired",
            ),
            Some(JobState::Failed) => (FAILED_PRECONDITION, reason, "failed"),
            _ => (CANCELLED, "the job was cancelled".to_owned(), "cancelled"),
        };
        let mut ids = Vec::with_capacity(missing.len());
        {
            let mut one = tx
                .prepare_cached("SELECT custom_id FROM items WHERE job = ?1 AND seq = ?2")
                .map_err(e)?;
            for seq in missing {
                ids.push((
                    seq,
                    one.query_row(params![id, seq as i64], |r| r.get(0))
                        .map_err(e)?,
                ));
            }
        }
        end_items(tx, ctx, &id, ids, code, &message, column)?;
    }
    exec(
        tx,
        "UPDATE jobs SET state = 'cancelled', ended = ?1 WHERE state = 'cancelling'",
        [now_ms() as i64],
    )
    .map_err(e)?;
    Ok(())
}

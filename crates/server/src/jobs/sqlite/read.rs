//! Looks: jobs, pages of them, the open ones, results; and removal.

use rusqlite::{Connection, params};

use super::{chunk, *};

pub(super) fn get(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    load(tx, ctx, id)
}

pub(super) fn list(tx: &Connection, ctx: &Ctx, filter: Filter) -> StoreResult<Vec<JobInfo>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state != 'validating'
                   AND (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2)
                   AND (?3 IS NULL OR (created, id) < (SELECT created, id FROM jobs WHERE id = ?3))
                 ORDER BY created DESC, id DESC LIMIT ?4"
        ))
        .map_err(e)?;
    stmt.query_map(
        params![
            filter.queue,
            filter.state.map(JobState::as_str),
            filter.before,
            filter.limit as i64
        ],
        job_row,
    )
    .map_err(e)?
    .collect::<rusqlite::Result<_>>()
    .map_err(e)
}

pub(super) fn open_jobs(tx: &Connection, ctx: &Ctx) -> StoreResult<Vec<JobInfo>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'in_progress', 'cancelling')
                 ORDER BY priority DESC, created, id"
        ))
        .map_err(e)?;
    stmt.query_map([], job_row)
        .map_err(e)?
        .collect::<rusqlite::Result<_>>()
        .map_err(e)
}

pub(super) fn results(
    tx: &Connection,
    ctx: &Ctx,
    id: &str,
    offset: u64,
    limit: usize,
    errors_only: bool,
) -> StoreResult<Vec<JobResult>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    load(tx, ctx, id)?;
    let offset = offset.min(i64::MAX as u64);
    // The chunk that holds `offset`, and those after it.
    let start: Option<i64> = row(
        tx,
        "SELECT MAX(first) FROM chunks WHERE job = ?1 AND first <= ?2",
        params![id, offset as i64],
        |r| r.get(0),
    )
    .map_err(e)?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT first, results FROM chunks WHERE job = ?1 AND first >= ?2
               AND (?3 = 0 OR errors > 0) ORDER BY first",
        )
        .map_err(e)?;
    let mut rows = stmt
        .query(params![id, start.unwrap_or(0), errors_only])
        .map_err(e)?;
    let mut out = Vec::with_capacity(limit.min(4_096));
    while let Some(row) = rows.next().map_err(e)? {
        let first = row.get::<_, i64>(0).map_err(e)?.max(0) as u64;
        let entries = chunk::read(ctx, row, 1)?;
        for (i, entry) in entries.into_iter().enumerate() {
            let at = first + i as u64;
            if at < offset || (errors_only && matches!(entry.outcome, Outcome::Ok { .. })) {
                continue;
            }
            out.push(JobResult {
                offset: at,
                custom_id: entry.custom_id,
                outcome: entry.outcome,
                batch_id: entry.batch_id,
            });
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

pub(super) fn delete(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<()> {
    let job = load(tx, ctx, id)?;
    if !job.state.ended() {
        return Err(StoreError::State(format!(
            "job {id} is {}: cancel it first",
            job.state.as_str()
        )));
    }
    remove(tx, ctx, id)
}

pub(super) fn purge(tx: &Connection, ctx: &Ctx, before_ms: u64) -> StoreResult<u64> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let old: Vec<String> = {
        let mut stmt = tx
            .prepare_cached("SELECT id FROM jobs WHERE ended > 0 AND ended < ?1")
            .map_err(e)?;
        stmt.query_map([before_ms.min(i64::MAX as u64) as i64], |r| r.get(0))
            .map_err(e)?
            .collect::<rusqlite::Result<_>>()
            .map_err(e)?
    };
    for id in &old {
        remove(tx, ctx, id)?;
    }
    Ok(old.len() as u64)
}

//! Looks: jobs, pages of them, the open ones, results; and removal.

use rusqlite::{Transaction, params};

use super::*;

pub(super) fn get(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    load(tx, ctx, id)
}

pub(super) fn list(tx: &Transaction<'_>, ctx: &Ctx, filter: Filter) -> StoreResult<Vec<JobInfo>> {
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

pub(super) fn open_jobs(tx: &Transaction<'_>, ctx: &Ctx) -> StoreResult<Vec<JobInfo>> {
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
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    offset: u64,
    limit: usize,
    errors_only: bool,
) -> StoreResult<Vec<JobResult>> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    load(tx, ctx, id)?;
    let mut stmt = tx
            .prepare_cached(
                "SELECT offset, custom_id, code, message, payload, attributes, batch FROM results
                 WHERE job = ?1 AND offset >= ?2 AND (?3 = 0 OR code != 0) ORDER BY offset LIMIT ?4",
            )
            .map_err(e)?;
    stmt.query_map(
        params![
            id,
            offset.min(i64::MAX as u64) as i64,
            errors_only,
            limit as i64
        ],
        |r| {
            let code: i32 = r.get(2)?;
            let outcome = if code == 0 {
                let payload: Option<Vec<u8>> = r.get(4)?;
                let attributes: Option<String> = r.get(5)?;
                Outcome::Ok {
                    payload: payload.unwrap_or_default().into(),
                    attributes: attributes
                        .and_then(|a| serde_json::from_str(&a).ok())
                        .unwrap_or_default(),
                }
            } else {
                Outcome::Err {
                    code,
                    message: r.get(3)?,
                }
            };
            Ok(JobResult {
                offset: r.get::<_, i64>(0)?.max(0) as u64,
                custom_id: r.get(1)?,
                outcome,
                batch_id: r.get::<_, i64>(6)?.max(0) as u64,
            })
        },
    )
    .map_err(e)?
    .collect::<rusqlite::Result<_>>()
    .map_err(e)
}

pub(super) fn delete(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<()> {
    let job = load(tx, ctx, id)?;
    if !job.state.ended() {
        return Err(StoreError::State(format!(
            "job {id} is {}: cancel it first",
            job.state.as_str()
        )));
    }
    remove(tx, ctx, id)
}

pub(super) fn purge(tx: &Transaction<'_>, ctx: &Ctx, before_ms: u64) -> StoreResult<u64> {
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

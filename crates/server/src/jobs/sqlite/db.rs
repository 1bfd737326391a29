//! What every part of the store shares: the call context ([`Ctx`]), what
//! the store's thread keeps besides the file ([`Memory`]), the statement
//! cache helpers, a job's row, and loading, settling and removing a job.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    path::PathBuf,
};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    super::{Counts, JobInfo, JobState, StoreError, StoreResult, now_ms},
    Limits,
};

/// gRPC codes stored for items that never ran.
pub(super) const CANCELLED: i32 = 1;
pub(super) const DEADLINE_EXCEEDED: i32 = 4;

/// What each call's closure gets: the open transaction's connection, and
/// the store's facts.
pub(super) struct Ctx {
    pub(super) path: PathBuf,
    pub(super) limits: Limits,
    pub(super) memory: RefCell<Memory>,
    /// Set when a write failed (see `group.rs`): what failed, and when the
    /// store last tried to start again.
    pub(super) stopped: RefCell<Option<super::group::Stopped>>,
}

/// What the store's thread keeps besides the file: the items claimed and
/// not yet recorded (their results come in chunks, so the file has no
/// per-item state to update), and those a restart put back.
#[derive(Debug, Default)]
pub(super) struct Memory {
    /// By job: seq → custom_id.
    pub(super) running: HashMap<String, HashMap<u64, String>>,
    /// By job: claimed before a restart and never recorded, to claim
    /// before the cursor's next.
    pub(super) redo: HashMap<String, VecDeque<u64>>,
}

/// `execute` through the connection's statement cache: the hot statements
/// are parsed once, not on every call.
pub(super) fn exec<P: rusqlite::Params>(
    tx: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see [`exec`]).
pub(super) fn row<T, P: rusqlite::Params>(
    tx: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(params, f)
}

/// A SQLite failure as the store's error, naming the file.
pub(super) fn sql(ctx: &Ctx, e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable {
        path: ctx.path.clone(),
        reason: e.to_string(),
    }
}

pub(super) const JOB_COLUMNS: &str = "id, queue, state, reason, priority, labels, created, expires, ended, \
     total, succeeded, failed, cancelled, expired, bytes";

pub(super) fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobInfo> {
    let u = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let labels: String = row.get(5)?;
    let state: String = row.get(2)?;
    Ok(JobInfo {
        id: row.get(0)?,
        queue: row.get(1)?,
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        reason: row.get(3)?,
        priority: u32::try_from(u(4)?).unwrap_or(u32::MAX),
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        created_ms: u(6)?,
        expires_ms: u(7)?,
        ended_ms: u(8)?,
        counts: Counts {
            total: u(9)?,
            succeeded: u(10)?,
            failed: u(11)?,
            cancelled: u(12)?,
            expired: u(13)?,
        },
        bytes: u(14)?,
    })
}

pub(super) fn load(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    row(
        tx,
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND state != 'validating'"),
        [id],
        job_row,
    )
    .optional()
    .map_err(|e| sql(ctx, &e))?
    .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

/// Ends the job as `state` (with `reason`) once nothing runs.
pub(super) fn settle(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let now = now_ms() as i64;
    exec(tx,
        "UPDATE jobs SET state = CASE state WHEN 'cancelling' THEN 'cancelled' ELSE 'completed' END,
           ended = ?2
         WHERE id = ?1 AND state IN ('queued', 'in_progress', 'cancelling') AND running = 0
           AND succeeded + failed + cancelled + expired >= total",
        params![id, now],
    )
    .map_err(e)?;
    load(tx, ctx, id)
}

/// Removes a job with its items and results.
pub(super) fn remove(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let mut memory = ctx.memory.borrow_mut();
    memory.running.remove(id);
    memory.redo.remove(id);
    for table in ["items", "chunks"] {
        exec(tx, &format!("DELETE FROM {table} WHERE job = ?1"), [id]).map_err(e)?;
    }
    exec(tx, "DELETE FROM jobs WHERE id = ?1", [id]).map_err(e)?;
    Ok(())
}

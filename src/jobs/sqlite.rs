//! The embedded job store: one SQLite file (rusqlite, SQLite compiled in),
//! WAL journal, one thread that owns the connection and runs every call as
//! one transaction, in the order they came. The file is held exclusively:
//! a second server on it is refused at start, naming the file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::mpsc,
};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::{
    Begun, Claimed, Counts, Done, Filter, JobInfo, JobResult, JobState, JobStore, NewItem, NewJob,
    Outcome, StoreError, StoreResult, new_id, now_ms,
};
use crate::handler::BoxFuture;

/// Longest `custom_id`, bytes.
pub const MAX_CUSTOM_ID: usize = 256;
/// gRPC codes stored for items that never ran.
const CANCELLED: i32 = 1;
const DEADLINE_EXCEEDED: i32 = 4;

/// The limits the store enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_items_per_job: u64,
    pub max_job_bytes: u64,
    pub max_open_jobs: u64,
    pub max_store_bytes: u64,
}

/// What each call's closure gets: the open transaction's connection, and
/// the store's facts.
struct Ctx {
    path: PathBuf,
    limits: Limits,
}

type Op = Box<dyn FnOnce(&mut Connection, &Ctx) + Send>;

/// A SQLite file of jobs.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    ops: mpsc::Sender<Op>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY, queue TEXT NOT NULL, state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL,
  labels TEXT NOT NULL, idem TEXT, created INTEGER NOT NULL,
  expires INTEGER NOT NULL, ended INTEGER NOT NULL DEFAULT 0,
  total INTEGER NOT NULL DEFAULT 0, succeeded INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,
  expired INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
  running INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created, id);
CREATE TABLE IF NOT EXISTS items(
  job TEXT NOT NULL, seq INTEGER NOT NULL, custom_id TEXT NOT NULL,
  payload BLOB NOT NULL, attributes TEXT NOT NULL, cost INTEGER,
  batch_key TEXT, state INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(job, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS items_custom ON items(job, custom_id);
CREATE INDEX IF NOT EXISTS items_pending ON items(job, seq) WHERE state = 0;
CREATE TABLE IF NOT EXISTS results(
  job TEXT NOT NULL, offset INTEGER NOT NULL, custom_id TEXT NOT NULL,
  code INTEGER NOT NULL, message TEXT NOT NULL, payload BLOB,
  attributes TEXT, batch INTEGER NOT NULL,
  PRIMARY KEY(job, offset)) WITHOUT ROWID;
";

/// An item claimed and not yet recorded, in the `items` table (0: not yet
/// claimed, 2: recorded).
const RUNNING: i64 = 1;

impl SqliteStore {
    /// Opens (or creates) the store at `path`, takes it for this process,
    /// and puts back what a crash left: uploads never sealed are removed,
    /// items claimed but not recorded run again.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] naming the file: it cannot be created,
    /// is not a database, is read-only, or another process holds it.
    pub fn open(path: &Path, limits: Limits) -> StoreResult<Self> {
        let fail = |reason: String| StoreError::Unavailable {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        if path.is_dir() {
            return Err(fail("is a directory".into()));
        }
        let mut conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        let setup = |conn: &mut Connection| -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            let tx = conn.transaction()?;
            recover(&tx)?;
            tx.commit()
        };
        setup(&mut conn).map_err(|e| {
            let text = e.to_string();
            if text.contains("locked") || text.contains("busy") {
                fail(format!("{text} (another batchgate holds it?)"))
            } else {
                fail(text)
            }
        })?;
        let (ops, rx) = mpsc::channel::<Op>();
        let ctx = Ctx {
            path: path.to_owned(),
            limits,
        };
        std::thread::Builder::new()
            .name("job-store".into())
            .spawn(move || {
                while let Ok(op) = rx.recv() {
                    op(&mut conn, &ctx);
                }
            })
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            ops,
        })
    }

    /// Runs `f` in one transaction on the store's thread.
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &Ctx) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .ops
            .send(Box::new(move |conn: &mut Connection, ctx: &Ctx| {
                let result = conn.transaction().map_err(|e| sql(ctx, &e)).and_then(|t| {
                    let out = f(&t, ctx)?;
                    t.commit().map_err(|e| sql(ctx, &e))?;
                    Ok(out)
                });
                let _ = tx.send(result);
            }));
        Box::pin(async move {
            let stopped = || StoreError::Unavailable {
                path: self.path.clone(),
                reason: "its thread has stopped".into(),
            };
            sent.map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())?
        })
    }
}

/// A SQLite failure as the store's error, naming the file.
fn sql(ctx: &Ctx, e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable {
        path: ctx.path.clone(),
        reason: e.to_string(),
    }
}

/// Puts back what a crash left.
fn recover(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DELETE FROM items WHERE job IN (SELECT id FROM jobs WHERE state = 'validating');
         DELETE FROM jobs WHERE state = 'validating';
         UPDATE items SET state = 0 WHERE state = 1;
         UPDATE jobs SET running = 0;",
    )?;
    let now = now_ms() as i64;
    tx.execute(
        "UPDATE jobs SET state = 'cancelled', ended = ?1 WHERE state = 'cancelling'",
        [now],
    )?;
    Ok(())
}

const JOB_COLUMNS: &str = "id, queue, state, reason, priority, labels, created, expires, ended, \
     total, succeeded, failed, cancelled, expired, bytes";

fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobInfo> {
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

fn load(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    tx.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND state != 'validating'"),
        [id],
        job_row,
    )
    .optional()
    .map_err(|e| sql(ctx, &e))?
    .ok_or_else(|| StoreError::NotFound(id.to_owned()))
}

/// Ends every item of `id` not yet claimed with `code` and `message`,
/// counted in `column`.
fn end_pending(
    tx: &Transaction<'_>,
    ctx: &Ctx,
    id: &str,
    code: i32,
    message: &str,
    column: &str,
) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let done: i64 = tx
        .query_row(
            "SELECT succeeded + failed + cancelled + expired FROM jobs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .map_err(e)?;
    let pending: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare("SELECT seq, custom_id FROM items WHERE job = ?1 AND state = 0 ORDER BY seq")
            .map_err(e)?;
        stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<rusqlite::Result<_>>()
            .map_err(e)?
    };
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO results(job, offset, custom_id, code, message, batch) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )
        .map_err(e)?;
    for (n, (_, custom_id)) in pending.iter().enumerate() {
        insert
            .execute(params![id, done + n as i64, custom_id, code, message])
            .map_err(e)?;
    }
    tx.execute(
        "UPDATE items SET state = 2 WHERE job = ?1 AND state = 0",
        [id],
    )
    .map_err(e)?;
    tx.execute(
        &format!("UPDATE jobs SET {column} = {column} + ?2 WHERE id = ?1"),
        params![id, pending.len() as i64],
    )
    .map_err(e)?;
    Ok(())
}

/// Ends the job as `state` (with `reason`) once nothing runs.
fn settle(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    let now = now_ms() as i64;
    tx.execute(
        "UPDATE jobs SET state = CASE state WHEN 'cancelling' THEN 'cancelled' ELSE 'completed' END,
           ended = ?2
         WHERE id = ?1 AND state IN ('queued', 'in_progress', 'cancelling') AND running = 0
           AND succeeded + failed + cancelled + expired >= total",
        params![id, now],
    )
    .map_err(e)?;
    load(tx, ctx, id)
}

impl JobStore for SqliteStore {
    fn begin(&self, job: NewJob) -> BoxFuture<'_, StoreResult<Begun>> {
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            if let Some(key) = &job.idempotency_key {
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT id FROM jobs WHERE idem = ?1 AND state != 'validating'",
                        [key],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(e)?;
                if let Some(id) = existing {
                    return Ok(Begun::Existing(load(tx, ctx, &id)?));
                }
            }
            let open: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM jobs WHERE state NOT IN ('completed', 'failed', 'expired', 'cancelled')",
                    [],
                    |r| r.get(0),
                )
                .map_err(e)?;
            if open as u64 >= ctx.limits.max_open_jobs {
                return Err(StoreError::Limit(format!(
                    "{open} jobs are open, the most jobs.max_open_jobs allows"
                )));
            }
            let id = new_id();
            let now = now_ms();
            let window = u64::try_from(job.window.as_millis()).unwrap_or(u64::MAX);
            tx.execute(
                "INSERT INTO jobs(id, queue, state, priority, labels, idem, created, expires)
                 VALUES (?1, ?2, 'validating', ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    job.queue,
                    job.priority,
                    serde_json::to_string(&job.labels).unwrap_or_default(),
                    job.idempotency_key,
                    now as i64,
                    now.saturating_add(window).min(i64::MAX as u64) as i64,
                ],
            )
            .map_err(e)?;
            Ok(Begun::New(id))
        })
    }

    fn append(&self, id: &str, first: u64, items: Vec<NewItem>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            let (total, bytes): (i64, i64) = tx
                .query_row(
                    "SELECT total, bytes FROM jobs WHERE id = ?1 AND state = 'validating'",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(e)?
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let stored: i64 = tx
                .query_row("SELECT COALESCE(SUM(bytes), 0) FROM jobs", [], |r| r.get(0))
                .map_err(e)?;
            let (total, mut bytes, mut stored) = (total as u64, bytes as u64, stored as u64);
            let limits = &ctx.limits;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO items(job, seq, custom_id, payload, attributes, cost, batch_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(e)?;
            for (n, item) in items.iter().enumerate() {
                let seq = total + n as u64;
                let bad = |reason: String| StoreError::BadItem {
                    index: first + n as u64,
                    custom_id: item.custom_id.clone(),
                    reason,
                };
                if seq >= limits.max_items_per_job {
                    return Err(StoreError::Limit(format!(
                        "item {} (custom_id {:?}) is past jobs.max_items_per_job ({})",
                        first + n as u64,
                        item.custom_id,
                        limits.max_items_per_job
                    )));
                }
                bytes += item.bytes();
                stored += item.bytes();
                if bytes > limits.max_job_bytes || stored > limits.max_store_bytes {
                    return Err(StoreError::Limit(format!(
                        "item {} (custom_id {:?}) takes the job past jobs.max_job_bytes ({}) or the store past jobs.max_store_bytes ({})",
                        first + n as u64,
                        item.custom_id,
                        limits.max_job_bytes,
                        limits.max_store_bytes
                    )));
                }
                let attributes = serde_json::to_string(&item.attributes).unwrap_or_default();
                match insert.execute(params![
                    id,
                    seq as i64,
                    item.custom_id,
                    &item.payload[..],
                    attributes,
                    item.cost.map(|c| c.min(i64::MAX as u64) as i64),
                    item.batch_key,
                ]) {
                    Ok(_) => {}
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        return Err(bad("duplicate custom_id in the job".into()));
                    }
                    Err(err) => return Err(e(err)),
                }
            }
            tx.execute(
                "UPDATE jobs SET total = ?2, bytes = ?3 WHERE id = ?1",
                params![id, (total + items.len() as u64) as i64, bytes as i64],
            )
            .map_err(e)?;
            Ok(())
        })
    }

    fn seal(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            let sealed = tx
                .execute(
                    "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'validating'",
                    [&id],
                )
                .map_err(e)?;
            if sealed == 0 {
                return Err(StoreError::NotFound(id));
            }
            // An empty job is done at once.
            settle(tx, ctx, &id)
        })
    }

    fn abort(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            tx.execute(
                "DELETE FROM items WHERE job = ?1 AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND state = 'validating')",
                [&id],
            )
            .map_err(e)?;
            tx.execute("DELETE FROM jobs WHERE id = ?1 AND state = 'validating'", [&id])
                .map_err(e)?;
            Ok(())
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| load(tx, ctx, &id))
    }

    fn list(&self, filter: Filter) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| {
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
        })
    }

    fn open_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| {
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
        })
    }

    fn claim(&self, id: &str, n: usize) -> BoxFuture<'_, StoreResult<Vec<Claimed>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            let job = load(tx, ctx, &id)?;
            if !job.state.runs() {
                return Ok(Vec::new());
            }
            let claimed: Vec<Claimed> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT seq, custom_id, payload, attributes, cost, batch_key FROM items
                         WHERE job = ?1 AND state = 0 ORDER BY seq LIMIT ?2",
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
                            attributes: serde_json::from_str::<HashMap<String, String>>(
                                &attributes,
                            )
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
            tx.execute(
                "UPDATE jobs SET running = running + ?2,
                   state = CASE state WHEN 'queued' THEN 'in_progress' ELSE state END
                 WHERE id = ?1",
                params![id, claimed.len() as i64],
            )
            .map_err(e)?;
            Ok(claimed)
        })
    }

    fn record(&self, id: &str, done: Vec<Done>) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            let mut offset: i64 = tx
                .query_row(
                    "SELECT succeeded + failed + cancelled + expired FROM jobs WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(e)?
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
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
                            (0, "", Some(&payload[..]), serde_json::to_string(attributes).ok())
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
            settle(tx, ctx, &id)
        })
    }

    fn cancel(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let job = load(tx, ctx, &id)?;
            if !job.state.runs() {
                return Ok(job);
            }
            end_pending(
                tx,
                ctx,
                &id,
                CANCELLED,
                "the job was cancelled",
                "cancelled",
            )?;
            tx.execute("UPDATE jobs SET state = 'cancelling' WHERE id = ?1", [&id])
                .map_err(|e| sql(ctx, &e))?;
            settle(tx, ctx, &id)
        })
    }

    fn fail(&self, id: &str, code: i32, reason: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.call(move |tx, ctx| {
            let job = load(tx, ctx, &id)?;
            if job.state.ended() {
                return Ok(job);
            }
            end_pending(tx, ctx, &id, code, &reason, "failed")?;
            tx.execute(
                "UPDATE jobs SET state = 'failed', reason = ?2, ended = ?3 WHERE id = ?1",
                params![id, reason, now_ms() as i64],
            )
            .map_err(|e| sql(ctx, &e))?;
            load(tx, ctx, &id)
        })
    }

    fn expire(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| {
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
        })
    }

    fn results(
        &self,
        id: &str,
        offset: u64,
        limit: usize,
        errors_only: bool,
    ) -> BoxFuture<'_, StoreResult<Vec<JobResult>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let e = |e: rusqlite::Error| sql(ctx, &e);
            load(tx, ctx, &id)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT offset, custom_id, code, message, payload, attributes, batch FROM results
                     WHERE job = ?1 AND offset >= ?2 AND (?3 = 0 OR code != 0) ORDER BY offset LIMIT ?4",
                )
                .map_err(e)?;
            stmt.query_map(
                params![id, offset.min(i64::MAX as u64) as i64, errors_only, limit as i64],
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
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| {
            let job = load(tx, ctx, &id)?;
            if !job.state.ended() {
                return Err(StoreError::State(format!(
                    "job {id} is {}: cancel it first",
                    job.state.as_str()
                )));
            }
            remove(tx, ctx, &id)
        })
    }

    fn purge(&self, before_ms: u64) -> BoxFuture<'_, StoreResult<u64>> {
        self.call(move |tx, ctx| {
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
        })
    }
}

/// Removes a job with its items and results.
fn remove(tx: &Transaction<'_>, ctx: &Ctx, id: &str) -> StoreResult<()> {
    let e = |e: rusqlite::Error| sql(ctx, &e);
    for table in ["items", "results"] {
        tx.execute(&format!("DELETE FROM {table} WHERE job = ?1"), [id])
            .map_err(e)?;
    }
    tx.execute("DELETE FROM jobs WHERE id = ?1", [id])
        .map_err(e)?;
    Ok(())
}

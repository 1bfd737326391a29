//! The embedded job store: one SQLite file (rusqlite, SQLite compiled in),
//! WAL journal, one thread that owns the connection and runs every call as
//! one transaction, in the order they came. The file is held exclusively:
//! a second server on it is refused at start, naming the file.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::mpsc,
};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{
    Begun, Claimed, Counts, Done, Filter, JobInfo, JobResult, JobState, JobStore, NewItem, NewJob,
    Outcome, StoreError, StoreResult, new_id, now_ms,
};
use crate::handler::BoxFuture;

mod chunk;
mod ends;
mod group;
mod read;
mod run;
mod upload;

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
    memory: RefCell<Memory>,
    /// Set when a write failed (see `group.rs`): what failed, and when the
    /// store last tried to start again.
    stopped: RefCell<Option<group::Stopped>>,
}

/// SQLite's word for a file it cannot use ("disk I/O error", "unable to
/// open database file"), with the system's reason when it cannot write it.
fn why(path: &Path, said: String) -> String {
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        Err(io) => format!("{said} (cannot write it: {io})"),
        Ok(_) => said,
    }
}

/// A SQLite file of jobs.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    ops: mpsc::Sender<group::Op>,
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
  running INTEGER NOT NULL DEFAULT 0, next_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created, id);
CREATE TABLE IF NOT EXISTS items(
  job TEXT NOT NULL, seq INTEGER NOT NULL, custom_id TEXT NOT NULL,
  payload BLOB NOT NULL, attributes TEXT NOT NULL, cost INTEGER,
  batch_key TEXT,
  PRIMARY KEY(job, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS items_custom ON items(job, custom_id);
CREATE TABLE IF NOT EXISTS chunks(
  job TEXT NOT NULL, first INTEGER NOT NULL, count INTEGER NOT NULL,
  errors INTEGER NOT NULL, results BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_at ON chunks(job, first);
";

/// What the store's thread keeps besides the file: the items claimed and
/// not yet recorded (their results come in chunks, so the file has no
/// per-item state to update), and those a restart put back.
#[derive(Debug, Default)]
struct Memory {
    /// By job: seq → custom_id.
    running: HashMap<String, HashMap<u64, String>>,
    /// By job: claimed before a restart and never recorded, to claim
    /// before the cursor's next.
    redo: HashMap<String, VecDeque<u64>>,
}

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
        let mut conn = Connection::open(path).map_err(|e| fail(why(path, e.to_string())))?;
        let setup = |conn: &mut Connection| -> rusqlite::Result<()> {
            conn.busy_timeout(std::time::Duration::ZERO)?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "cache_size", -8_192)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.set_prepared_statement_cache_capacity(64);
            conn.execute_batch(SCHEMA)
        };
        let said = |e: rusqlite::Error| {
            let text = e.to_string();
            if text.contains("locked") || text.contains("busy") {
                fail(format!("{text} (another batchgate holds it?)"))
            } else {
                fail(why(path, text))
            }
        };
        setup(&mut conn).map_err(said)?;
        let ctx = Ctx {
            path: path.to_owned(),
            limits,
            memory: RefCell::new(Memory::default()),
            stopped: RefCell::new(None),
        };
        let tx = conn.transaction().map_err(said)?;
        ends::recover(&tx, &ctx, true)?;
        tx.commit().map_err(said)?;
        let (ops, rx) = mpsc::channel::<group::Op>();
        std::thread::Builder::new()
            .name("job-store".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut ops = vec![first];
                    while ops.len() < group::GROUP {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    group::run(&mut conn, &ctx, ops);
                }
            })
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            ops,
        })
    }

    /// Runs `f` on the store's thread, in a transaction it may share with
    /// other calls (see [`group::GROUP`]).
    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
    ) -> BoxFuture<'_, StoreResult<T>> {
        self.send(f, false)
    }

    /// Caps the file at `pages` pages (SQLite's `max_page_count`; pages
    /// are 4 KiB) as a full disk would, and says how many it has now: for
    /// tests of what a full disk does. Applies even to a stopped store.
    #[doc(hidden)]
    pub fn cap_pages(&self, pages: u64) -> BoxFuture<'_, StoreResult<u64>> {
        self.send(
            move |conn, ctx| {
                let e = |e: rusqlite::Error| sql(ctx, &e);
                conn.pragma_update(None, "max_page_count", pages as i64)
                    .map_err(e)?;
                conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
                    .map_err(e)
            },
            true,
        )
    }

    /// [`SqliteStore::call`], or a call run alone (see `group::Call::alone`).
    fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
        alone: bool,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.ops.send(Box::new(group::CallOf { f, tx, alone }));
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

/// `execute` through the connection's statement cache: the hot statements
/// are parsed once, not on every call.
fn exec<P: rusqlite::Params>(tx: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see [`exec`]).
fn row<T, P: rusqlite::Params>(
    tx: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(params, f)
}

/// A SQLite failure as the store's error, naming the file.
fn sql(ctx: &Ctx, e: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable {
        path: ctx.path.clone(),
        reason: e.to_string(),
    }
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

fn load(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
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
fn settle(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<JobInfo> {
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

impl JobStore for SqliteStore {
    fn begin(&self, job: NewJob) -> BoxFuture<'_, StoreResult<Begun>> {
        self.call(move |tx, ctx| upload::begin(tx, ctx, job))
    }

    fn append(&self, id: &str, first: u64, items: Vec<NewItem>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| upload::append(tx, ctx, &id, first, items))
    }

    fn seal(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| upload::seal(tx, ctx, &id))
    }

    fn abort(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| upload::abort(tx, ctx, &id))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| read::get(tx, ctx, &id))
    }

    fn list(&self, filter: Filter) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| read::list(tx, ctx, filter))
    }

    fn open_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(read::open_jobs)
    }

    fn claim(&self, id: &str, n: usize) -> BoxFuture<'_, StoreResult<Vec<Claimed>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| run::claim(tx, ctx, &id, n))
    }

    fn record(&self, id: &str, done: Vec<Done>) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| run::record(tx, ctx, &id, done))
    }

    fn release(&self, id: &str, seqs: Vec<u64>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| run::release(tx, ctx, &id, seqs))
    }

    fn cancel(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| run::cancel(tx, ctx, &id))
    }

    fn fail(&self, id: &str, code: i32, reason: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        let reason = reason.to_owned();
        self.call(move |tx, ctx| run::fail(tx, ctx, &id, code, &reason))
    }

    fn expire(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| run::expire(tx, ctx, now_ms))
    }

    fn results(
        &self,
        id: &str,
        offset: u64,
        limit: usize,
        errors_only: bool,
    ) -> BoxFuture<'_, StoreResult<Vec<JobResult>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| read::results(tx, ctx, &id, offset, limit, errors_only))
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| read::delete(tx, ctx, &id))
    }

    fn purge(&self, before_ms: u64) -> BoxFuture<'_, StoreResult<u64>> {
        self.call(move |tx, ctx| read::purge(tx, ctx, before_ms))
    }
}

/// Removes a job with its items and results.
fn remove(tx: &Connection, ctx: &Ctx, id: &str) -> StoreResult<()> {
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

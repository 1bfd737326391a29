//! The store itself: opening the file (held exclusively, a crash's leftovers
//! put back), the thread that owns the connection and runs each call as one
//! transaction in the order they came, and the `JobStore` methods, each a
//! call on that thread.

use std::{
    cell::RefCell,
    path::{Path, PathBuf},
    sync::mpsc,
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::super::{
    Begun, Claimed, Done, Filter, JobInfo, JobResult, JobStore, NewItem, NewJob, StoreError,
    StoreResult,
};
use super::db::{Ctx, Memory, sql};
use crate::handler::BoxFuture;

/// Longest `custom_id`, bytes.
pub const MAX_CUSTOM_ID: usize = 256;
/// The limits the store enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_items_per_job: u64,
    pub max_job_bytes: u64,
    pub max_open_jobs: u64,
    pub max_store_bytes: u64,
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
    ops: mpsc::Sender<super::group::Op>,
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
        super::ends::recover(&tx, &ctx, true)?;
        tx.commit().map_err(said)?;
        let (ops, rx) = mpsc::channel::<super::group::Op>();
        std::thread::Builder::new()
            .name("job-store".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut ops = vec![first];
                    while ops.len() < super::group::GROUP {
                        match rx.try_recv() {
                            Ok(op) => ops.push(op),
                            Err(_) => break,
                        }
                    }
                    super::group::apply_all(&mut conn, &ctx, ops);
                }
            })
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        Ok(Self {
            path: path.to_owned(),
            ops,
        })
    }

    /// Runs `f` on the store's thread, in a transaction it may share with
    /// other calls (see [`super::group::GROUP`]).
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

    /// [`SqliteStore::call`], or a call run alone (see `super::group::Call::alone`).
    fn send<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
        alone: bool,
    ) -> BoxFuture<'_, StoreResult<T>> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .ops
            .send(Box::new(super::group::CallOf { f, tx, alone }));
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

impl JobStore for SqliteStore {
    fn begin(&self, job: NewJob) -> BoxFuture<'_, StoreResult<Begun>> {
        self.call(move |tx, ctx| super::upload::begin(tx, ctx, job))
    }

    fn append(&self, id: &str, first: u64, items: Vec<NewItem>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::upload::append(tx, ctx, &id, first, items))
    }

    fn seal(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::upload::seal(tx, ctx, &id))
    }

    fn abort(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::upload::abort(tx, ctx, &id))
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::read::get(tx, ctx, &id))
    }

    fn list(&self, filter: Filter) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| super::read::list(tx, ctx, filter))
    }

    fn open_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(super::read::open_jobs)
    }

    fn claim(&self, id: &str, n: usize) -> BoxFuture<'_, StoreResult<Vec<Claimed>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::run::claim(tx, ctx, &id, n))
    }

    fn record(&self, id: &str, done: Vec<Done>) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::run::record(tx, ctx, &id, done))
    }

    fn release(&self, id: &str, seqs: Vec<u64>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::run::release(tx, ctx, &id, seqs))
    }

    fn cancel(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::run::cancel(tx, ctx, &id))
    }

    fn fail(&self, id: &str, code: i32, reason: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        let reason = reason.to_owned();
        self.call(move |tx, ctx| super::run::fail(tx, ctx, &id, code, &reason))
    }

    fn expire(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        self.call(move |tx, ctx| super::run::expire(tx, ctx, now_ms))
    }

    fn results(
        &self,
        id: &str,
        offset: u64,
        limit: usize,
        errors_only: bool,
    ) -> BoxFuture<'_, StoreResult<Vec<JobResult>>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::read::results(tx, ctx, &id, offset, limit, errors_only))
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        self.call(move |tx, ctx| super::read::delete(tx, ctx, &id))
    }

    fn purge(&self, before_ms: u64) -> BoxFuture<'_, StoreResult<u64>> {
        self.call(move |tx, ctx| super::read::purge(tx, ctx, before_ms))
    }
}

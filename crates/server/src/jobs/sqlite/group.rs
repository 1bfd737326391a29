//! How calls reach the file: the store's thread runs the calls that wait
//! in one transaction (each in its own savepoint), and stops writing when
//! a write fails.
//!
//! A failed write (disk full, an I/O error) may leave the store's memory
//! (which items are running) ahead of the file. So the store stops: every
//! call is refused with the first failure, naming the file, and at most
//! once a second the store tries to start again as it does after a crash
//! ([`ends::recover`] without forgetting uploads): items whose results
//! were not stored run again, and answers of the items in flight then are
//! not stored (each `custom_id` keeps exactly one result). Online traffic
//! never touches the store.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::{Ctx, Memory, StoreError, StoreResult, ends, sql};

/// Most calls run in one transaction (each in its own savepoint): calls
/// that wait while the thread works share the next commit.
pub(super) const GROUP: usize = 64;

/// How often a stopped store tries to start again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Why the store stopped writing, and when it last tried to start again.
#[derive(Debug)]
pub(super) struct Stopped {
    reason: String,
    tried: Instant,
}

/// How a call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ran {
    Ok,
    /// Refused for what it asked (a bad item, a limit, no such job).
    Refused,
    /// The file failed it (why).
    Failed(String),
}

/// One call to the store's thread.
pub(super) trait Call: Send {
    /// Runs it; how it went, and what answers its caller once the group's
    /// transaction has committed (or failed to).
    fn apply(self: Box<Self>, conn: &Connection, ctx: &Ctx) -> (Ran, Answer);
    /// Answers its caller with `error` without running it.
    fn refuse(self: Box<Self>, error: StoreError);
    /// Whether it runs on its own, outside any transaction, even when the
    /// store has stopped (a setting of the connection).
    fn alone(&self) -> bool;
}

/// Answers a caller with its call's result, or the commit's failure.
pub(super) type Answer = Box<dyn FnOnce(Option<StoreError>) + Send>;

pub(super) type Op = Box<dyn Call>;

/// A call of `f`, answered on `tx`.
pub(super) struct CallOf<T, F> {
    pub f: F,
    pub tx: oneshot::Sender<StoreResult<T>>,
    /// See [`Call::alone`].
    pub alone: bool,
}

impl<T, F> Call for CallOf<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
{
    fn apply(self: Box<Self>, conn: &Connection, ctx: &Ctx) -> (Ran, Answer) {
        let CallOf { f, tx, .. } = *self;
        let result = f(conn, ctx);
        let ran = match &result {
            Ok(_) => Ran::Ok,
            Err(StoreError::Unavailable { reason, .. }) => Ran::Failed(reason.clone()),
            Err(_) => Ran::Refused,
        };
        let ok = ran == Ran::Ok;
        let answer = Box::new(move |commit: Option<StoreError>| {
            let _ = tx.send(match commit {
                Some(e) if ok => Err(e),
                _ => result,
            });
        });
        (ran, answer)
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.tx.send(Err(error));
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

/// Runs `ops` in one transaction, each in its own savepoint (one that
/// fails is undone alone), then answers them all. A stopped store first
/// tries to start again, or refuses them.
pub(super) fn apply_all(conn: &mut Connection, ctx: &Ctx, ops: Vec<Op>) {
    let (alone, ops): (Vec<Op>, Vec<Op>) = ops.into_iter().partition(|op| op.alone());
    for op in alone {
        op.apply(conn, ctx).1(None);
    }
    if ops.is_empty() {
        return;
    }
    if let Err(e) = restart(conn, ctx) {
        for op in ops {
            op.refuse(e.clone());
        }
        return;
    }
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            stop(ctx, &e.to_string());
            for op in ops {
                op.refuse(sql(ctx, &e));
            }
            return;
        }
    };
    let mut answers: Vec<(Answer, Option<StoreError>)> = Vec::with_capacity(ops.len());
    let mut failed = None;
    for op in ops {
        if let Err(e) = savepoint(&tx, "SAVEPOINT call") {
            failed.get_or_insert_with(|| e.to_string());
            op.refuse(sql(ctx, &e));
            continue;
        }
        let (ran, answer) = op.apply(&tx, ctx);
        // A call that did not go well is undone alone.
        if ran != Ran::Ok
            && let Err(e) = savepoint(&tx, "ROLLBACK TO call")
        {
            failed.get_or_insert_with(|| e.to_string());
        }
        let released = savepoint(&tx, "RELEASE call").err().map(|e| sql(ctx, &e));
        let own = match ran {
            Ran::Ok => released,
            Ran::Refused => None,
            Ran::Failed(reason) => {
                failed.get_or_insert(reason);
                None
            }
        };
        if let Some(StoreError::Unavailable { reason, .. }) = &own {
            failed.get_or_insert_with(|| reason.clone());
        }
        answers.push((answer, own));
    }
    let commit = tx.commit().err().map(|e| sql(ctx, &e));
    if let Some(StoreError::Unavailable { reason, .. }) = &commit {
        failed = Some(reason.clone());
    }
    if let Some(reason) = failed {
        stop(ctx, &reason);
    }
    for (answer, own) in answers {
        answer(own.or_else(|| commit.clone()));
    }
}

/// A savepoint statement, parsed once (rusqlite's `Savepoint` parses its
/// statements on every call).
fn savepoint(conn: &Connection, statement: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(statement)?.execute([]).map(|_| ())
}

/// Stops the store after a failed write.
fn stop(ctx: &Ctx, reason: &str) {
    let mut stopped = ctx.stopped.borrow_mut();
    if stopped.is_none() {
        tracing::error!(
            path = %ctx.path.display(),
            error = reason,
            "job store: a write failed; job calls are refused until it writes again (it tries every second)"
        );
        *stopped = Some(Stopped {
            reason: reason.to_owned(),
            tried: Instant::now(),
        });
    }
}

/// A stopped store's attempt to start again, at most once a second: its
/// memory rebuilt from the file as at a start. `Err` while it cannot.
fn restart(conn: &mut Connection, ctx: &Ctx) -> StoreResult<()> {
    let refused = |s: &Stopped| StoreError::Unavailable {
        path: ctx.path.clone(),
        reason: format!(
            "stopped after a failed write ({}); it tries again every second",
            s.reason
        ),
    };
    {
        let mut stopped = ctx.stopped.borrow_mut();
        let Some(s) = stopped.as_mut() else {
            return Ok(());
        };
        if s.tried.elapsed() < RETRY_EVERY {
            return Err(refused(s));
        }
        s.tried = Instant::now();
    }
    *ctx.memory.borrow_mut() = Memory::default();
    let again = conn.transaction().map_err(|e| sql(ctx, &e)).and_then(|tx| {
        ends::recover(&tx, ctx, false)?;
        tx.commit().map_err(|e| sql(ctx, &e))
    });
    let mut stopped = ctx.stopped.borrow_mut();
    match again {
        Ok(()) => {
            tracing::info!(path = %ctx.path.display(), "job store: writes again; items whose results were not stored run again");
            *stopped = None;
            Ok(())
        }
        Err(e) => {
            let s = stopped.as_mut().map(|s| {
                s.reason = e.to_string();
                refused(s)
            });
            Err(s.unwrap_or(e))
        }
    }
}

//! The embedded job store: one SQLite file (rusqlite, SQLite compiled in),
//! WAL journal, one thread that owns the connection and runs every call as
//! one transaction, in the order they came. The file is held exclusively:
//! a second server on it is refused at start, naming the file.

mod chunk;
mod db;
mod ends;
mod group;
mod read;
mod run;
mod store;
mod upload;

pub use self::store::{Limits, MAX_CUSTOM_ID, SqliteStore};

// What the parts share: the store's types, and the helpers in db.rs.
use self::db::{
    CANCELLED, Ctx, DEADLINE_EXCEEDED, JOB_COLUMNS, Memory, exec, job_row, load, remove, row,
    settle, sql,
};
use super::{
    Begun, Claimed, Done, Filter, JobInfo, JobResult, JobState, NewItem, NewJob, Outcome,
    StoreError, StoreResult, new_id, now_ms,
};

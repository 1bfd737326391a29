//! `batchgate jobs`: upload a JSONL file as a job, follow it, read its
//! results (the Jobs API).

mod commands;
mod jsonl;

pub use self::commands::{JobsArgs, run};

//! The integration tests, one binary: every module starts real servers on
//! 127.0.0.1 (port 0) or drives the queue actor on a paused clock, and
//! talks through the generated clients. Two other binaries stay apart:
//! `tests/jobs/` (the job stores and a binary killed mid-job) and
//! `tests/otel.rs` (it installs the process's global trace exporter).

use batchgate_test_support as common;

mod bad_input;
mod cli;
mod control;
mod dns;
mod http_backend;
mod inference;
mod kserve;
mod limits;
mod pace;
mod packed;
mod queue;
mod reload;
mod remote;
mod service;
mod shutdown;
mod target;
mod tls;

//! batchgate: a gRPC batching service.
//!
//! Clients send single items (`Submit`, or many over one `StreamSubmit`);
//! batchgate groups the items of each named queue into batches by the
//! queue's policy, hands each batch to the queue's handler and answers every
//! item on its own, as soon as its result exists.
//!
//! # Request flow
//! ```text
//! client ─Submit/StreamSubmit─▶ api ─▶ registry (queue by name) ─▶ queue actor
//!    ▲                                                              │ policy decides
//!    └──── per-item answer ◀──── ResultSink ◀──── batch task ◀──────┘ when a batch closes
//!                                                   │
//!                                                   ▼
//!                                        handler (echo, sim, …)
//! ```
//!
//! # Modules
//! - [`config`]: reads the configuration file and maps it onto the types
//!   each layer owns (policy in [`queue`], handler settings in [`handler`],
//!   TLS in [`tls`]); [`validation`]: the error they share; [`limits`]:
//!   every bound of a configured number, in one table, with one range check.
//! - [`app`]: wiring and ordered shutdown; [`connections`]: the cap on a
//!   listener's open connections.
//! - [`api`]: the tonic services (convert, enqueue, answer; no logic).
//! - [`control`]: the BatchControl service (runtime queue management).
//! - [`registry`]: queue name → running queue; [`reload`]: applies a new
//!   configuration file to it (SIGHUP, `--watch-config`).
//! - [`contract`]: the handler contract both the queue and the handlers use
//!   (batch, item, output, trigger, the answering [`contract::ResultSink`]).
//! - [`queue`]: the policy (pure), the backlog, the per-queue actor with its
//!   inbox and alarm, batches.
//! - [`handler`]: the handler trait, the built-in handlers and the remote
//!   (gRPC, HTTP) backends; each remote queue's endpoints are
//!   `tower::Service`s behind tower's power-of-two-choices balancer, fed by
//!   a `tower::discover` stream (config, DNS, RegisterEndpoint, leases).
//! - [`error`]: refusals and their gRPC status codes, in one place.
//! - [`metrics`]: Prometheus metric names, per-queue handles, `/metrics`.
//! - [`telemetry`], [`shutdown`]: logging and signals for the binary;
//!   [`otel`]: OpenTelemetry spans (off by default) and `traceparent`
//!   propagation, used by `api`, `queue` and `handler`, depending on none.
//! - [`timer`]: sub-millisecond wake-ups, for `max_delay` and the `sim`
//!   handler's time.
//! - [`tls`]: certificates from files for servers, backends and the CLI.
//! - [`stdout`]: output of the client subcommands (the `batchgate-cli`
//!   crate has the command line, `batchgate-bench` the load generator).
//! - [`pb`]: the generated protobuf code (the `batchgate-proto` crate, with
//!   its codec).
//! - [`oip`]: the Open Inference Protocol (KServe v2): its generated code,
//!   tensor datatypes and a queue's `v2` model declaration.
//!
//! # Guarantees
//! Every accepted item gets exactly one answer: its [`queue::Reply`] is
//! consumed by answering, and whoever holds it last (the queue, a batch's
//! [`queue::BatchSink`], the shutdown path) answers it.
//!
//! # Layers
//! Arrows run one way (`.ci/layers.py` checks that no module imports one
//! that imports it back): `api` → `queue` → `handler` → `contract`, with
//! `queue` → `contract` too; answers come back through the contract's
//! [`contract::ResultSink`] as plain [`queue::Answer`]s, and `api` alone
//! turns them into protobuf.

/// `println!` for the client subcommands: when stdout is closed (a reader
/// such as `head` went away) the process ends quietly instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write_out(format_args!($($arg)*), true)
    };
}

/// `print!` with the same broken-pipe handling as [`outln!`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write_out(format_args!($($arg)*), false)
    };
}

/// Cases per fuzz target (`BATCHGATE_FUZZ_CASES`, default 256): a short
/// budget under `cargo test`, a long one from `bench/fuzz.sh`.
#[cfg(test)]
pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("BATCHGATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

pub mod api;
pub mod app;
pub mod config;
pub mod connections;
pub mod console;
pub mod contract;
pub mod control;
pub mod dial;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod handler;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod oip;
pub mod otel;
pub mod pb;
pub mod queue;
pub mod ready;
pub mod registry;
pub mod reload;
pub mod shutdown;
pub mod stdout;
pub mod telemetry;
pub mod timer;
pub mod tls;
pub mod validation;

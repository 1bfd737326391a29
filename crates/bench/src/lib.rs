//! The load generator (`batchgate bench`), the no-batching baseline server
//! (`batchgate bare-echo`) and the chart of a benchmark suite
//! (`batchgate bench-chart`).
//!
//! The generator drives any server that speaks `batchgate.v1.Batcher` over
//! real gRPC: unary calls over several connections, or bidi streams with a
//! window of items in flight each; closed loop (fixed concurrency) or open
//! loop (fixed arrival rate, latency measured from each item's intended send
//! time). It reuses its connections, pipelines stream writes and reads, and
//! reports its own CPU use so it can be seen not to be the bottleneck.

#[macro_use]
extern crate batchgate;

pub mod bare;
pub mod chart;
mod command;
pub mod costs;
pub mod load;
pub mod report;
pub mod tally;

pub use self::command::{BareEchoArgs, BenchArgs, Mode, Sweep, bare_echo, run};

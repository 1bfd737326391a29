//! The command line: one binary that serves and is its own client.
//!
//! - `batchgate serve`: run the server (embedded default config, or
//!   `--config FILE`, with flags and `BATCHGATE_*` variables on top).
//! - `batchgate submit`: one item through `Submit`.
//! - `batchgate stream`: stdin lines as items over one `StreamSubmit`.
//! - `batchgate ctl`: the BatchControl API (queues, endpoints, stats).
//! - `batchgate jobs`: the Jobs API (upload a JSONL file, follow, results).
//! - `batchgate bench`: the load generator (the `batchgate-bench` crate).
//! - `batchgate config-reference`: the configuration reference, generated.
//!
//! `args` has the command line itself; one file per subcommand beside it.

mod args;
mod ctl;
mod jobs;
mod output;
mod reference;
mod serve;
mod stream;
mod submit;

pub use self::args::{ClientArgs, EXIT_BAD_CONFIG, parse, run};
pub use self::{
    ctl::CtlArgs, jobs::JobsArgs, serve::ServeArgs, stream::StreamArgs, submit::SubmitArgs,
};
pub use batchgate::dial::{TlsArgs, address_url, connect, error_chain, explain};

//! The `batchgate` binary: parse the command line, run it. The server is
//! the `batchgate` library; the load generator is `batchgate-bench`.

#[macro_use]
extern crate batchgate;

mod cli;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        Ok(cli) => cli::run(cli).await,
        Err(code) => code,
    }
}

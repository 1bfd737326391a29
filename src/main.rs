//! The `batchgate` binary: parse the command line, run it.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    batchgate::cli::run(batchgate::cli::Cli::parse()).await
}

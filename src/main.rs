//! The `batchgate` binary: parse the command line, run it.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match batchgate::cli::parse(std::env::args_os()) {
        Ok(cli) => batchgate::cli::run(cli).await,
        Err(code) => code,
    }
}

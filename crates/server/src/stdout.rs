//! Standard output for the client commands (`submit`, `stream`, `ctl`,
//! `bench`): written line by line and flushed, and a closed pipe ends the
//! process quietly. The `outln!`/`out!` macros of the crate root call it.

use std::io::Write;

/// Writes to stdout and flushes, so each line reaches a pipe at once. When
/// the reader has gone away (`batchgate ctl queues | head -2`) the process
/// exits 0 at once, quietly: nobody is left to read the rest.
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| {
            if newline {
                out.write_all(b"\n")
            } else {
                Ok(())
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("batchgate: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

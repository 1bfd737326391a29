//! Wiring: builds the queues, the gRPC server (Batcher, the v2 inference
//! front door, health, reflection)
//! and the metrics endpoint from a [`Config`], runs them until the shutdown
//! signal, then shuts down in order:
//!
//! 1. health reports NOT_SERVING;
//! 2. new items are refused UNAVAILABLE and stream readers stop reading;
//! 3. every queue drains: pending items are dispatched (trigger `drain`) and
//!    in-flight batches finish, within `shutdown_grace`;
//! 4. if the grace runs out, batches still running are abandoned and their
//!    items answered UNAVAILABLE;
//! 5. the gRPC server sends its last answers and stops; `run` returns.
//!
//! `run` has the sequence; `servers` starts and stops the listeners' servers,
//! `jobs` opens the job store, `listeners` binds the addresses, `error` says
//! why a server could not run.

mod error;
mod jobs;
mod listeners;
mod run;
mod servers;

pub use self::{
    error::AppError,
    listeners::Listeners,
    run::{run, run_with},
};

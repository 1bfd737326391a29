//! `batchgate ctl`: the BatchControl API from the shell, as tables for
//! people or `--json` for programs. One file per group of subcommands:
//! `queues`, `endpoints` and `watch`; `flags` has the create/update flags,
//! `tables` how answers print, and `replicas` what `--all` needs.

mod commands;
mod endpoints;
mod flags;
mod queues;
mod replicas;
mod tables;
mod watch;

pub use self::commands::{CtlArgs, run};
pub use self::{endpoints::EndpointAction, queues::QueueAction};

// The client every action uses.
use self::commands::Ctl;

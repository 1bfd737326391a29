//! Handlers: what processes a queue's batches.
//!
//! Every kind of backend (the built-in ones here; remote gRPC and HTTP
//! backends later) implements [`Handler`]. A handler reads the batch and
//! answers items through the [`ResultSink`](crate::contract::ResultSink) in any order, as soon as each
//! result exists; batchgate forwards each answer to its caller at once.
//!
//! Contract:
//! - answer each item at most once (`ResultSink::send` refuses a second
//!   answer and the first stands);
//! - return `Err(status)` for a failure of the whole batch: the items not
//!   answered yet get that status, the answered ones keep their results;
//! - items left unanswered when `process` returns `Ok` get INTERNAL.

mod build;
pub mod config;
mod each;
mod echo;
pub mod remote;
mod sim;

pub use self::build::{BoxFuture, Handler, build};
pub use self::{
    config::{HandlerConfig, HandlerKind},
    each::Each,
    echo::Echo,
    remote::Remote,
    sim::Sim,
};

//! The `batchgate.v1.BatchControl` service: list, inspect, create, change,
//! pause, flush, drain and delete queues, and manage remote endpoints, at
//! runtime. Guarded by [`BearerAuth`] when a token is configured.

mod auth;
mod convert;
mod describe;
mod service;

pub use self::{
    auth::BearerAuth,
    describe::{snapshot, unix_ms, update},
    service::ControlService,
};

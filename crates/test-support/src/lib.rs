//! What batchgate's tests share: a real server on 127.0.0.1 (port 0) with
//! the helpers tests use with it ([`server`]), fake backends and their
//! serving ([`backend`], [`upper`]), and a queue without a server for the
//! queue-actor tests and the scheduler benchmark ([`queue`]).

#![allow(dead_code)]

pub mod backend;
pub mod queue;
pub mod server;
pub mod upper;

pub use self::server::{
    TestServer, assert_status, config, metrics_text, sample, stream_all, submit_request, wait_until,
};

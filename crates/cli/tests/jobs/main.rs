//! Jobs: the store's conformance tests, the Jobs API against a real server
//! (uploads refused whole, results read back once each, cancel, a deleted
//! queue, jobs off), and the binary killed mid-job and restarted.

use batchgate_test_support as common;

mod crash;
mod disk;
mod nats;
mod replicas;
mod service;
mod store;

//! Prometheus metrics: names in one place, handles registered once per queue
//! (no label lookups on the hot path), and the `/metrics` HTTP endpoint.
//!
//! Each server owns its own recorders instead of installing a global one,
//! so several servers in one process (the tests) each report only their own
//! numbers. The two per-item timings use [`buckets`] instead of the
//! recorder's histograms (see there why).
//!
//! # Series that come and go
//! A queue's or a remote endpoint's series live in a [`Scope`] of their own
//! (a recorder of their own), held by their handles: when the queue is
//! deleted or the endpoint deregistered and the last handle is dropped,
//! its series are gone from `/metrics` and their memory is freed. The
//! exporter cannot remove a series from a recorder, so this is the one
//! place where series are removed: [`Metrics::render`] merges the server's
//! recorder with every live scope, family by family. A queue (or endpoint)
//! made again while the old one's handles live shares its scope, so its
//! counters go on instead of appearing twice.

pub mod buckets;
mod families;
mod handles;
mod names;
mod recent;
mod registry;
mod scope;
mod server;

pub use self::{
    handles::{DnsMetrics, EndpointMetrics, ItemTimings, QueueMetrics, QueueTotals, ReloadMetrics},
    names::*,
    recent::{Dispatched, OTHER_KEY, Percentiles, QueueCounts},
    registry::Metrics,
    scope::Scope,
};

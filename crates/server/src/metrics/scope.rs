//! The series of one queue or endpoint, in a recorder of their own that
//! goes with the last handle (see the parent's docs).

use std::{
    collections::BTreeMap,
    sync::{Arc, Weak},
};

use metrics::{Key, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;

use super::handles::ItemTimings;

/// What a scope belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Owner {
    /// A queue, by name.
    Queue(String),
    /// A remote endpoint of a queue.
    Endpoint { queue: String, address: String },
}

/// The series of one queue or endpoint: removed with the last handle.
#[derive(Debug)]
pub struct Scope {
    /// Where its handles are registered.
    pub(super) recorder: PrometheusRecorder,
    /// A queue's per-item timings.
    pub(super) timings: Option<Arc<ItemTimings>>,
}

impl Scope {
    /// Registers a counter of this scope.
    pub(super) fn counter(&self, key: &Key) -> metrics::Counter {
        self.recorder.register_counter(key, &metadata())
    }

    /// Registers a gauge of this scope.
    pub(super) fn gauge(&self, key: &Key) -> metrics::Gauge {
        self.recorder.register_gauge(key, &metadata())
    }

    /// Registers a histogram of this scope.
    pub(super) fn histogram(&self, key: &Key) -> metrics::Histogram {
        self.recorder.register_histogram(key, &metadata())
    }
}

/// The live scopes by owner, and when to sweep out the dead.
#[derive(Debug, Default)]
pub(super) struct Scopes {
    /// Scopes by owner, held weakly.
    by_owner: BTreeMap<Owner, Weak<Scope>>,
    /// Entries past which the dead ones are swept (amortised).
    sweep_at: usize,
}

impl Scopes {
    /// The live scope of `owner`, or a new one made by `make`.
    pub(super) fn get_or_make(&mut self, owner: Owner, make: impl FnOnce() -> Scope) -> Arc<Scope> {
        if let Some(live) = self.by_owner.get(&owner).and_then(Weak::upgrade) {
            return live;
        }
        if self.by_owner.len() >= self.sweep_at {
            self.by_owner.retain(|_, scope| scope.strong_count() > 0);
            self.sweep_at = 2 * self.by_owner.len() + 64;
        }
        let scope = Arc::new(make());
        self.by_owner.insert(owner, Arc::downgrade(&scope));
        scope
    }

    /// The live scopes, in owner order; the dead are swept out.
    pub(super) fn live(&mut self) -> Vec<(Owner, Arc<Scope>)> {
        self.by_owner.retain(|_, scope| scope.strong_count() > 0);
        self.by_owner
            .iter()
            .filter_map(|(owner, scope)| Some((owner.clone(), scope.upgrade()?)))
            .collect()
    }
}

pub(super) fn metadata() -> metrics::Metadata<'static> {
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, None)
}

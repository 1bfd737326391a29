//! One backend replica: its shared state (lease, ejection, counts, the
//! slots of `max_in_flight`, its call-time estimate), and the
//! `tower::Service` the balancer holds for it.
//!
//! The service hands out a [`Ticket`], a place in the endpoint's line for
//! one of its slots, rather than making the call itself: a batch's call
//! writes each item's result as it arrives and a retry carries only the
//! items still open, so the call stays with the batch and only the choice
//! of endpoint is tower's.
//! - [`EndpointService`] is ready while the endpoint is neither ejected nor removed;
//!   a full endpoint stays ready, its tickets wait for a slot, and its load
//!   says how long they would wait.
//! - Its [`Load`] is the expected time of one more call: the endpoint's
//!   peak-sensitive moving average of call times (a slower call replaces
//!   the estimate, faster ones pull it down over `RTT_DECAY`, as in
//!   `tower::load::PeakEwma`) times `1 + pending / max_in_flight`, the
//!   calls running or waiting per slot. PeakEwma's own cost, estimate
//!   times `pending + 1`, assumes a backend that runs one call at a time:
//!   behind it a fast replica with a few batches running looked as costly
//!   as an idle one ten times slower, and the slow one kept a share of the
//!   batches large enough to set the p99 (bench/BALANCE.md).
//! - An endpoint that failed recently (within `eject_for`, and not
//!   answered since) loses to any that did not, so a retry goes elsewhere
//!   when it can.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tower::{Service, load::Load};

use super::Conn;
use crate::{metrics::EndpointMetrics, pb};

/// What an endpoint's call time is taken to be before any was measured.
const DEFAULT_RTT: Duration = Duration::from_millis(10);
/// How fast old call times are forgotten (tower's PeakEwma default).
const RTT_DECAY: Duration = Duration::from_secs(10);

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A peak-sensitive moving average of call times.
#[derive(Debug)]
struct Rtt {
    /// The estimate, in nanoseconds.
    ns: f64,
    /// When it was last updated.
    at: Instant,
    /// Whether any call was measured (until then `ns` is `DEFAULT_RTT`).
    measured: bool,
}

impl Rtt {
    /// Folds in a call that took `sample` ns: the first one, or a slower
    /// one, replaces the estimate; a faster one moves it by the share of
    /// `RTT_DECAY` that passed since the last update.
    fn update(&mut self, sample: f64, now: Instant) {
        if sample > self.ns || !self.measured {
            self.measured = true;
            self.ns = sample;
        } else {
            self.decay_toward(sample, now);
        }
        self.at = now;
    }

    /// The estimate now, forgetting toward 0 while no call ends, so an
    /// endpoint passed over as slow is tried again after a while.
    fn decayed(&mut self, now: Instant) -> f64 {
        if self.measured {
            self.decay_toward(0.0, now);
            self.at = now;
        }
        self.ns
    }

    fn decay_toward(&mut self, sample: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let keep = (-elapsed / RTT_DECAY.as_secs_f64()).exp();
        self.ns = self.ns * keep + sample * (1.0 - keep);
    }
}

/// One backend replica.
#[derive(Debug)]
pub struct Endpoint {
    /// Its URL, which also identifies it within the queue.
    pub address: String,
    /// How batches reach it.
    pub(crate) conn: Conn,
    /// Batches it may process at once.
    pub(super) max_in_flight: usize,
    /// Its `max_in_flight` slots; closed when it is removed.
    slots: Arc<Semaphore>,
    /// Leases out now (calls running).
    pub(super) in_flight: AtomicUsize,
    /// Calls running or waiting for a slot.
    pending: AtomicUsize,
    /// Its call-time estimate.
    rtt: Mutex<Rtt>,
    /// When its lease lapses (`None`: no lease).
    pub(super) lease_until: Mutex<Option<Instant>>,
    /// It gets no batches until then.
    pub(super) ejected_until: Mutex<Option<Instant>>,
    /// When its last call failed, if no call succeeded since.
    pub(super) failed_at: Mutex<Option<Instant>>,
    /// Failed calls since the last success.
    pub(super) failures_in_a_row: AtomicU32,
    /// Calls that succeeded (at the batch level).
    pub(super) batches_ok: AtomicU64,
    /// Calls that failed.
    pub(super) batches_failed: AtomicU64,
    /// Times ejected.
    pub(super) ejections: AtomicU64,
    /// From the config file rather than registered at runtime.
    pub(super) configured: bool,
    /// The parallelism it declared (0: none).
    pub(super) parallelism: AtomicUsize,
    /// Deregistered or lease lapsed: no new batches.
    removed: AtomicBool,
    /// Its Prometheus series.
    pub(super) metrics: EndpointMetrics,
}

impl Endpoint {
    /// A new endpoint with `max_in_flight` free slots.
    pub(super) fn new(
        address: &str,
        conn: Conn,
        max_in_flight: usize,
        lease_until: Option<Instant>,
        configured: bool,
        metrics: EndpointMetrics,
    ) -> Self {
        Self {
            address: address.to_owned(),
            conn,
            max_in_flight,
            slots: Arc::new(Semaphore::new(max_in_flight)),
            in_flight: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            rtt: Mutex::new(Rtt {
                ns: DEFAULT_RTT.as_nanos() as f64,
                at: Instant::now(),
                measured: false,
            }),
            lease_until: Mutex::new(lease_until),
            ejected_until: Mutex::new(None),
            failed_at: Mutex::new(None),
            failures_in_a_row: AtomicU32::new(0),
            batches_ok: AtomicU64::new(0),
            batches_failed: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            configured,
            parallelism: AtomicUsize::new(0),
            removed: AtomicBool::new(false),
            metrics,
        }
    }

    pub(super) fn usable(&self, now: Instant) -> bool {
        !self.is_removed()
            && lock(&self.ejected_until).is_none_or(|until| until <= now)
            && lock(&self.lease_until).is_none_or(|until| until > now)
    }

    pub(super) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// No new batches; those waiting for a slot pick again.
    pub(super) fn remove(&self) {
        self.removed.store(true, Ordering::Relaxed);
        self.slots.close();
    }

    /// A snapshot for the control API.
    pub fn info(&self, now: Instant) -> pb::EndpointInfo {
        let left = |at: Option<Instant>| {
            at.map_or(0, |at| {
                u64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
            })
        };
        pb::EndpointInfo {
            address: self.address.clone(),
            max_in_flight: u32::try_from(self.max_in_flight).unwrap_or(u32::MAX),
            in_flight: u32::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            lease_remaining_ms: left(*lock(&self.lease_until)),
            ejected_for_ms: left(*lock(&self.ejected_until)),
            batches_ok: self.batches_ok.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            configured: self.configured,
            parallelism: u32::try_from(self.parallelism.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX),
            ejections: self.ejections.load(Ordering::Relaxed),
            rtt_ms: lock(&self.rtt).decayed(now) / 1e6,
        }
    }

    /// The expected time of one more call, in ns (see the module docs).
    fn cost(&self) -> f64 {
        let rtt = lock(&self.rtt).decayed(Instant::now());
        let pending = self.pending.load(Ordering::Relaxed) as f64;
        rtt * (1.0 + pending / self.max_in_flight.max(1) as f64)
    }
}

/// A place in an endpoint's line: counted in its load until dropped.
#[derive(Debug)]
pub struct Ticket {
    endpoint: Arc<Endpoint>,
}

impl Ticket {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.pending.fetch_add(1, Ordering::Relaxed);
        Self { endpoint }
    }

    /// Waits for one of the endpoint's slots until `deadline`.
    pub(super) async fn lease(self, deadline: Instant) -> Waited {
        let slots = self.endpoint.slots.clone();
        let Ok(permit) = tokio::time::timeout_at(deadline, slots.acquire_owned()).await else {
            return Waited::Deadline;
        };
        // Err: the semaphore was closed, the endpoint removed.
        let Ok(permit) = permit else {
            return Waited::PickAgain;
        };
        if !self.endpoint.usable(Instant::now()) {
            return Waited::PickAgain;
        }
        self.endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        self.endpoint.metrics.in_flight.increment(1.0);
        Waited::Leased(Lease {
            ticket: self,
            _permit: permit,
            started: Instant::now(),
        })
    }
}

/// How a wait in an endpoint's line ended.
#[derive(Debug)]
pub(super) enum Waited {
    /// With a slot.
    Leased(Lease),
    /// The endpoint was removed or ejected meanwhile.
    PickAgain,
    /// The deadline passed first.
    Deadline,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.endpoint.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An endpoint with one of its batch slots, held for one call.
#[derive(Debug)]
pub struct Lease {
    /// The place in line it came from (and the endpoint).
    ticket: Ticket,
    /// The slot; freed on drop.
    _permit: OwnedSemaphorePermit,
    /// When the call began, for the endpoint's call-time estimate.
    started: Instant,
}

impl Lease {
    /// The endpoint the slot is on.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.ticket.endpoint
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let e = &self.ticket.endpoint;
        e.in_flight.fetch_sub(1, Ordering::Relaxed);
        e.metrics.in_flight.decrement(1.0);
        let now = Instant::now();
        let took = now.saturating_duration_since(self.started).as_nanos() as f64;
        lock(&e.rtt).update(took, now);
    }
}

/// The request for a place in line (the call itself stays with the batch).
#[derive(Debug, Clone, Copy)]
pub struct Pick;

/// The endpoint was removed: the balancer drops it.
#[derive(Debug, thiserror::Error)]
#[error("endpoint removed")]
pub struct Removed;

/// The balancer's service for one endpoint (see the module docs).
pub struct EndpointService {
    endpoint: Arc<Endpoint>,
    /// Wakes the balancer when an ejection ends.
    ejection: Option<Pin<Box<Sleep>>>,
    /// How long a failure counts against the endpoint.
    penalty: Duration,
}

impl EndpointService {
    /// The balancer's service for `endpoint`, a failure counting against
    /// it for `penalty`.
    pub(super) fn new(endpoint: Arc<Endpoint>, penalty: Duration) -> Self {
        Self {
            endpoint,
            ejection: None,
            penalty,
        }
    }
}

impl Service<Pick> for EndpointService {
    type Response = Ticket;
    type Error = Removed;
    type Future = std::future::Ready<Result<Ticket, Removed>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Removed>> {
        let e = &self.endpoint;
        if e.is_removed() {
            return Poll::Ready(Err(Removed));
        }
        let until = *lock(&e.ejected_until);
        if let Some(until) = until.filter(|&u| u > Instant::now()) {
            let sleep = self
                .ejection
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
            sleep.as_mut().reset(until);
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Pick) -> Self::Future {
        std::future::ready(Ok(Ticket::new(self.endpoint.clone())))
    }
}

impl Load for EndpointService {
    /// (failed recently, expected call time in ns): compared in that order.
    type Metric = (bool, f64);

    fn load(&self) -> Self::Metric {
        let e = &self.endpoint;
        let failed = lock(&e.failed_at).is_some_and(|at| at.elapsed() < self.penalty);
        (failed, e.cost())
    }
}

/// The balancer's view of the endpoint set changes.
pub(super) type Change = tower::discover::Change<String, EndpointService>;
/// What the balancer reads the changes from.
pub(super) type Changes =
    tokio_stream::wrappers::UnboundedReceiverStream<Result<Change, Infallible>>;

//! The endpoints of a remote queue: leases, per-endpoint concurrency,
//! ejection of failing endpoints, and picking the least-loaded healthy one.
//!
//! Why not tower's balancer: a retry must go to *another* endpoint, a
//! failure must be charged to the endpoint that failed, and endpoints come
//! and go by lease; a balancer that hides which endpoint served a call fits
//! none of these. Each endpoint's limit is a semaphore; freeing a permit or
//! changing the set wakes the batches waiting for capacity.

use std::{
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tonic::Status;

use super::Conn;
use crate::{
    handler::config::HandlerKind,
    metrics::{CallOutcome, EndpointMetrics, Metrics},
    pb,
};

/// One backend replica.
#[derive(Debug)]
pub struct Endpoint {
    /// Its URL, which also identifies it within the queue.
    pub address: String,
    /// How batches reach it.
    pub(crate) conn: Conn,
    /// Batches it may process at once.
    max_in_flight: usize,
    /// One permit per batch it may still take.
    permits: Arc<Semaphore>,
    /// When its lease lapses (`None`: no lease).
    lease_until: Mutex<Option<Instant>>,
    /// It gets no batches until then.
    ejected_until: Mutex<Option<Instant>>,
    /// Failed calls since the last success.
    failures_in_a_row: AtomicU32,
    /// Calls that succeeded (at the batch level).
    batches_ok: AtomicU64,
    /// Calls that failed.
    batches_failed: AtomicU64,
    /// From the config file rather than registered at runtime.
    configured: bool,
    /// Deregistered or lease lapsed: no new batches.
    removed: AtomicBool,
    /// Its Prometheus series.
    metrics: EndpointMetrics,
}

impl Endpoint {
    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn usable(&self, now: Instant) -> bool {
        !self.removed.load(Ordering::Relaxed)
            && Self::lock(&self.ejected_until).is_none_or(|until| until <= now)
            && Self::lock(&self.lease_until).is_none_or(|until| until > now)
    }

    fn in_flight(&self) -> usize {
        self.max_in_flight - self.permits.available_permits().min(self.max_in_flight)
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
            in_flight: u32::try_from(self.in_flight()).unwrap_or(u32::MAX),
            lease_remaining_ms: left(*Self::lock(&self.lease_until)),
            ejected_for_ms: left(*Self::lock(&self.ejected_until)),
            batches_ok: self.batches_ok.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            configured: self.configured,
        }
    }
}

/// An endpoint with one of its batch slots, held for one call.
#[derive(Debug)]
pub struct Lease {
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// The slot; freed on drop.
    _permit: OwnedSemaphorePermit,
    /// Woken when the slot is freed.
    freed: Arc<Notify>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.metrics.in_flight.decrement(1.0);
        self.freed.notify_waiters();
    }
}

/// Settings every endpoint of a queue shares.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// grpc or http.
    pub kind: HandlerKind,
    /// Default batches per endpoint.
    pub max_in_flight: usize,
    /// Consecutive failures before ejection.
    pub eject_after: u32,
    /// Ejection length.
    pub eject_for: Duration,
    /// CA bundle for `https://` gRPC endpoints.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// The endpoints of one remote queue.
#[derive(Debug)]
pub struct EndpointPool {
    /// The queue, for messages.
    queue: Arc<str>,
    /// Shared settings.
    settings: PoolSettings,
    /// Live endpoints.
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    /// Woken when capacity is freed or the set changes.
    changed: Arc<Notify>,
    /// Connection pool shared by the http endpoints.
    http: reqwest::Client,
    /// Where each endpoint's series are registered.
    metrics: Arc<Metrics>,
}

impl EndpointPool {
    /// An empty pool.
    pub fn new(queue: Arc<str>, settings: PoolSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            queue,
            settings,
            endpoints: RwLock::default(),
            changed: Arc::new(Notify::new()),
            http: reqwest::Client::new(),
            metrics,
        }
    }

    /// The queue this pool serves.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The handler kind of this pool.
    pub fn kind(&self) -> HandlerKind {
        self.settings.kind
    }

    /// Adds an endpoint, or renews the lease of the one at `address`.
    /// `max_in_flight` 0 means the pool's default; `lease` `None` means none.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an address that is not an http(s) URL.
    pub fn register(
        &self,
        address: &str,
        max_in_flight: usize,
        lease: Option<Duration>,
        configured: bool,
    ) -> Result<pb::EndpointInfo, Status> {
        crate::handler::config::validate_endpoint(address).map_err(Status::invalid_argument)?;
        let now = Instant::now();
        let lease_until = lease.map(|ttl| now + ttl);
        let mut endpoints = self.write();
        endpoints.retain(|e| !e.removed.load(Ordering::Relaxed));
        if let Some(existing) = endpoints.iter().find(|e| e.address == address) {
            *Endpoint::lock(&existing.lease_until) = lease_until;
            return Ok(existing.info(now));
        }
        let conn = Conn::new(
            self.settings.kind,
            address,
            &self.http,
            self.settings.tls_ca_file.as_deref(),
        )?;
        let max_in_flight = if max_in_flight == 0 {
            self.settings.max_in_flight
        } else {
            max_in_flight
        };
        let endpoint = Arc::new(Endpoint {
            address: address.to_owned(),
            conn,
            max_in_flight,
            permits: Arc::new(Semaphore::new(max_in_flight)),
            lease_until: Mutex::new(lease_until),
            ejected_until: Mutex::new(None),
            failures_in_a_row: AtomicU32::new(0),
            batches_ok: AtomicU64::new(0),
            batches_failed: AtomicU64::new(0),
            configured,
            removed: AtomicBool::new(false),
            metrics: self.metrics.endpoint(&self.queue, address),
        });
        let info = endpoint.info(now);
        endpoints.push(endpoint);
        drop(endpoints);
        self.changed.notify_waiters();
        tracing::info!(queue = %self.queue, address, ?lease, "endpoint registered");
        Ok(info)
    }

    /// Removes an endpoint: no new batches; batches it runs finish.
    /// Returns whether it was there.
    pub fn deregister(&self, address: &str) -> bool {
        let mut endpoints = self.write();
        let before = endpoints.len();
        endpoints.retain(|e| {
            let keep = e.address != address;
            if !keep {
                e.removed.store(true, Ordering::Relaxed);
            }
            keep
        });
        let found = endpoints.len() != before;
        drop(endpoints);
        if found {
            self.changed.notify_waiters();
            tracing::info!(queue = %self.queue, address, "endpoint deregistered");
        }
        found
    }

    /// The endpoints whose lease has not lapsed.
    pub fn list(&self) -> Vec<pb::EndpointInfo> {
        let now = Instant::now();
        self.reap(now);
        self.read().iter().map(|e| e.info(now)).collect()
    }

    /// Waits for a slot on the least-loaded usable endpoint, preferring
    /// endpoints not in `avoid` (those already failed this batch).
    ///
    /// # Errors
    /// UNAVAILABLE when no endpoint is usable; DEADLINE_EXCEEDED when none
    /// had a free slot before `deadline`.
    pub async fn acquire(
        &self,
        avoid: &[Arc<Endpoint>],
        deadline: Instant,
    ) -> Result<Lease, Status> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            self.reap(now);
            let (fresh, tried): (Vec<_>, Vec<_>) = self
                .read()
                .iter()
                .filter(|e| e.usable(now))
                .cloned()
                .partition(|e| !avoid.iter().any(|a| Arc::ptr_eq(a, e)));
            let candidates = if fresh.is_empty() { tried } else { fresh };
            if candidates.is_empty() {
                return Err(Status::unavailable(format!(
                    "queue {:?} has no healthy backend endpoint",
                    self.queue
                )));
            }
            let best = candidates
                .iter()
                .max_by_key(|e| e.permits.available_permits())
                .and_then(|e| {
                    let permit = e.permits.clone().try_acquire_owned().ok()?;
                    Some((e.clone(), permit))
                });
            if let Some((endpoint, permit)) = best {
                endpoint.metrics.in_flight.increment(1.0);
                return Ok(Lease {
                    endpoint,
                    _permit: permit,
                    freed: self.changed.clone(),
                });
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Status::deadline_exceeded(format!(
                        "no backend endpoint of queue {:?} had capacity before the deadline",
                        self.queue
                    )));
                }
            }
        }
    }

    /// Records how a call to `endpoint` ended. An answer (even a rejection)
    /// clears its failures in a row; a call that could not be served adds
    /// one, and `eject_after` in a row eject it for `eject_for`. A call cut
    /// by its deadline is counted but charged neither way: the deadline is
    /// usually the items' own (a caller's short timeout), and charging it
    /// would eject the only backend of a queue whose callers are impatient.
    pub fn record(&self, endpoint: &Endpoint, outcome: CallOutcome) {
        endpoint.metrics.call(outcome);
        match outcome {
            CallOutcome::Ok | CallOutcome::Rejected => {
                endpoint.batches_ok.fetch_add(1, Ordering::Relaxed);
                endpoint.failures_in_a_row.store(0, Ordering::Relaxed);
            }
            CallOutcome::Deadline => {
                endpoint.batches_failed.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Unavailable => {
                endpoint.batches_failed.fetch_add(1, Ordering::Relaxed);
                let in_a_row = endpoint.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if in_a_row >= self.settings.eject_after {
                    endpoint.failures_in_a_row.store(0, Ordering::Relaxed);
                    *Endpoint::lock(&endpoint.ejected_until) =
                        Some(Instant::now() + self.settings.eject_for);
                    endpoint.metrics.ejections.increment(1);
                    tracing::warn!(
                        queue = %self.queue,
                        address = %endpoint.address,
                        eject_for = ?self.settings.eject_for,
                        "endpoint ejected after repeated failures"
                    );
                }
            }
        }
    }

    /// Counts a retry caused by a failed call to `endpoint`.
    pub fn retried(&self, endpoint: &Endpoint) {
        endpoint.metrics.retries.increment(1);
    }

    /// Drops endpoints whose lease lapsed.
    fn reap(&self, now: Instant) {
        let lapsed = |e: &Arc<Endpoint>| Endpoint::lock(&e.lease_until).is_some_and(|u| u <= now);
        if !self.read().iter().any(lapsed) {
            return;
        }
        let mut endpoints = self.write();
        endpoints.retain(|e| {
            if lapsed(e) {
                e.removed.store(true, Ordering::Relaxed);
                tracing::info!(queue = %self.queue, address = %e.address, "endpoint lease lapsed");
                false
            } else {
                true
            }
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Endpoint>>> {
        self.endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> EndpointPool {
        EndpointPool::new(
            "q".into(),
            PoolSettings {
                kind: HandlerKind::Grpc,
                max_in_flight: 1,
                eject_after: 2,
                eject_for: Duration::from_secs(5),
                tls_ca_file: None,
            },
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_lapses_unless_renewed() {
        let pool = pool();
        pool.register(
            "http://127.0.0.1:1",
            0,
            Some(Duration::from_secs(10)),
            false,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        pool.register(
            "http://127.0.0.1:1",
            0,
            Some(Duration::from_secs(10)),
            false,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(pool.list().len(), 1, "renewed at 8 s, so alive at 16 s");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(pool.list().is_empty(), "lapsed at 18 s");
        let err = pool
            .acquire(&[], Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_free_up_failing_endpoints_are_ejected_and_return() {
        let pool = pool();
        pool.register("http://127.0.0.1:1", 0, None, true).unwrap();
        let lease = pool
            .acquire(&[], Instant::now() + Duration::from_secs(1))
            .await
            .unwrap();
        // The only slot is taken: a second caller waits, then times out.
        let waited = pool
            .acquire(&[], Instant::now() + Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(waited.code(), tonic::Code::DeadlineExceeded);
        let endpoint = lease.endpoint.clone();
        drop(lease);
        pool.record(&endpoint, CallOutcome::Unavailable);
        pool.record(&endpoint, CallOutcome::Unavailable);
        let ejected = pool
            .acquire(&[], Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(ejected.code(), tonic::Code::Unavailable);
        assert!(pool.list()[0].ejected_for_ms > 4_000);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            pool.acquire(&[], Instant::now() + Duration::from_secs(1))
                .await
                .is_ok(),
            "back after the ejection period"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_not_held_against_an_endpoint() {
        let pool = pool();
        pool.register("http://127.0.0.1:1", 0, None, true).unwrap();
        let endpoint = pool
            .acquire(&[], Instant::now() + Duration::from_secs(1))
            .await
            .unwrap()
            .endpoint
            .clone();
        for _ in 0..10 {
            pool.record(&endpoint, CallOutcome::Deadline);
        }
        assert!(
            pool.acquire(&[], Instant::now() + Duration::from_secs(1))
                .await
                .is_ok(),
            "ten deadlines in a row do not eject"
        );
        let info = &pool.list()[0];
        assert_eq!((info.ejected_for_ms, info.batches_failed), (0, 10));
        // Nor do they break a run of availability failures.
        pool.record(&endpoint, CallOutcome::Unavailable);
        pool.record(&endpoint, CallOutcome::Deadline);
        pool.record(&endpoint, CallOutcome::Unavailable);
        assert!(pool.list()[0].ejected_for_ms > 4_000);
    }
}

//! The endpoints of a remote queue: registration and leases, ejection of
//! failing endpoints, and the choice of endpoint for each call, which is
//! tower's: a `tower::balance::p2c::Balance` (power of two choices by
//! expected call time, see `endpoint.rs`) over a `tower::discover` stream the
//! pool feeds as endpoints come (config, DNS, RegisterEndpoint) and go
//! (deregistered, lease lapsed). The balancer is shared by the queue's
//! batches behind an async mutex: a batch holds it only while the
//! balancer picks, then waits in the picked endpoint's line for a slot.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use tonic::Status;
use tower::{Service, ServiceExt, balance::p2c::Balance};

use super::{
    Conn,
    endpoint::{Change, Changes, Endpoint, EndpointService, Lease, Pick, Waited, lock},
};
use crate::{
    handler::config::HandlerKind,
    metrics::{CallOutcome, Metrics},
    pb,
};

/// Settings every endpoint of a queue shares.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// grpc or http.
    pub kind: HandlerKind,
    /// Default batches per endpoint.
    pub max_in_flight: usize,
    /// Consecutive failures before ejection.
    pub eject_after: u32,
    /// The parallelism each endpoint starts with (0: not said), until it
    /// declares its own.
    pub parallelism: usize,
    /// Ejection length (and how long a failure weighs on the choice).
    pub eject_for: Duration,
    /// CA bundle for `https://` gRPC endpoints.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// The balancer over the queue's endpoints.
type Balancer = Balance<Changes, Pick>;

/// The endpoints of one remote queue.
pub struct EndpointPool {
    /// The queue, for messages.
    queue: Arc<str>,
    /// Shared settings.
    settings: PoolSettings,
    /// Live endpoints, for the control API and the usable check.
    endpoints: RwLock<Vec<Arc<Endpoint>>>,
    /// Feeds the balancer's discover stream.
    changes: mpsc::UnboundedSender<Result<Change, std::convert::Infallible>>,
    /// Picks the endpoint of each call.
    balancer: tokio::sync::Mutex<Balancer>,
    /// Woken when the set changes or an endpoint is ejected.
    changed: Notify,
    /// Connection pool shared by the http endpoints.
    http: reqwest::Client,
    /// Where each endpoint's series are registered.
    metrics: Arc<Metrics>,
    /// The parallelism its endpoints declare, added (0: none said).
    declared: AtomicUsize,
}

impl std::fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPool")
            .field("queue", &self.queue)
            .field("endpoints", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl EndpointPool {
    /// An empty pool.
    pub fn new(queue: Arc<str>, settings: PoolSettings, metrics: Arc<Metrics>) -> Self {
        let (changes, discover) = mpsc::unbounded_channel();
        let discover = tokio_stream::wrappers::UnboundedReceiverStream::new(discover);
        Self {
            queue,
            settings,
            endpoints: RwLock::default(),
            changes,
            balancer: tokio::sync::Mutex::new(Balance::new(discover)),
            changed: Notify::new(),
            // Without a CA file the roots are built in and cannot fail;
            // a client without TLS is the fallback all the same.
            http: crate::tls::http_client_tls(None)
                .ok()
                .and_then(|tls| {
                    reqwest::Client::builder()
                        .use_preconfigured_tls(tls)
                        .build()
                        .ok()
                })
                .unwrap_or_default(),
            metrics,
            declared: AtomicUsize::new(0),
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
        endpoints.retain(|e| !e.is_removed());
        if let Some(existing) = endpoints.iter().find(|e| e.address == address) {
            *lock(&existing.lease_until) = lease_until;
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
        let endpoint = Arc::new(Endpoint::new(
            address,
            conn,
            max_in_flight,
            lease_until,
            configured,
            self.metrics.endpoint(&self.queue, address),
        ));
        endpoint
            .parallelism
            .store(self.settings.parallelism, Ordering::Relaxed);
        let info = endpoint.info(now);
        let service = EndpointService::new(endpoint.clone(), self.settings.eject_for);
        let _ = self
            .changes
            .send(Ok(Change::Insert(address.to_owned(), service)));
        endpoints.push(endpoint);
        drop(endpoints);
        self.absorb();
        self.changed.notify_waiters();
        tracing::info!(queue = %self.queue, address, ?lease, "endpoint registered");
        Ok(info)
    }

    /// Sets the parallelism the endpoint at `address` declares (0: none);
    /// whether it is there.
    pub fn declare(&self, address: &str, parallelism: usize) -> bool {
        let found = self.read().iter().any(|e| {
            let here = e.address == address && !e.is_removed();
            if here {
                e.parallelism.store(parallelism, Ordering::Relaxed);
            }
            here
        });
        self.absorb();
        found
    }

    /// The parallelism the endpoints declare, added; `None` when none says.
    pub fn parallelism(&self) -> Option<usize> {
        Some(self.declared.load(Ordering::Relaxed)).filter(|&p| p > 0)
    }

    /// Removes an endpoint: no new batches; batches it runs finish.
    /// Returns whether it was there.
    pub fn deregister(&self, address: &str) -> bool {
        let mut endpoints = self.write();
        let before = endpoints.len();
        endpoints.retain(|e| {
            let keep = e.address != address;
            if !keep {
                self.remove(e);
            }
            keep
        });
        let found = endpoints.len() != before;
        drop(endpoints);
        if found {
            self.absorb();
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

    /// Waits for a slot on the endpoint the balancer picks.
    ///
    /// # Errors
    /// UNAVAILABLE when no endpoint is usable (none, or all ejected);
    /// DEADLINE_EXCEEDED when none had a free slot before `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<Lease, Status> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            self.reap(now);
            if !self.read().iter().any(|e| e.usable(now)) {
                return Err(Status::unavailable(format!(
                    "queue {:?} has no healthy backend endpoint",
                    self.queue
                )));
            }
            let mut balancer = tokio::select! {
                balancer = self.balancer.lock() => balancer,
                () = tokio::time::sleep_until(deadline) => return Err(self.no_capacity()),
            };
            let ticket = tokio::select! {
                ready = balancer.ready() => match ready {
                    // Err: removed between ready and call, so pick again.
                    Ok(ready) => match ready.call(Pick).await {
                        Ok(ticket) => ticket,
                        Err(_) => continue,
                    },
                    Err(e) => {
                        return Err(Status::unavailable(format!(
                            "queue {:?}: the endpoint balancer failed: {e}",
                            self.queue
                        )));
                    }
                },
                // An endpoint came, went or was ejected: look again.
                () = &mut changed => continue,
                () = tokio::time::sleep_until(deadline) => return Err(self.no_capacity()),
            };
            drop(balancer);
            match ticket.lease(deadline).await {
                Waited::Leased(lease) => return Ok(lease),
                Waited::PickAgain => {}
                Waited::Deadline => return Err(self.no_capacity()),
            }
        }
    }

    fn no_capacity(&self) -> Status {
        Status::deadline_exceeded(format!(
            "no backend endpoint of queue {:?} had capacity before the deadline",
            self.queue
        ))
    }

    /// Records how a call to `endpoint` ended. An answer (even a rejection)
    /// clears its failures in a row; a call that could not be served adds
    /// one (and weighs on the endpoint's choice for `eject_for`), and
    /// `eject_after` in a row eject it for `eject_for`. A call cut by its
    /// deadline is counted but charged neither way: the deadline is
    /// usually the items' own (a caller's short timeout), and charging it
    /// would eject the only backend of a queue whose callers are impatient.
    pub fn record(&self, endpoint: &Endpoint, outcome: CallOutcome) {
        endpoint.metrics.call(outcome);
        match outcome {
            CallOutcome::Ok | CallOutcome::Rejected => {
                endpoint.batches_ok.fetch_add(1, Ordering::Relaxed);
                endpoint.failures_in_a_row.store(0, Ordering::Relaxed);
                *lock(&endpoint.failed_at) = None;
            }
            CallOutcome::Deadline => {
                endpoint.batches_failed.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Unavailable => {
                endpoint.batches_failed.fetch_add(1, Ordering::Relaxed);
                *lock(&endpoint.failed_at) = Some(Instant::now());
                let in_a_row = endpoint.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if in_a_row >= self.settings.eject_after {
                    endpoint.failures_in_a_row.store(0, Ordering::Relaxed);
                    *lock(&endpoint.ejected_until) = Some(Instant::now() + self.settings.eject_for);
                    endpoint.metrics.ejections.increment(1);
                    endpoint.ejections.fetch_add(1, Ordering::Relaxed);
                    self.changed.notify_waiters();
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

    /// Marks `endpoint` removed and takes it out of the balancer.
    fn remove(&self, endpoint: &Endpoint) {
        endpoint.remove();
        let _ = self
            .changes
            .send(Ok(Change::Remove(endpoint.address.clone())));
    }

    /// Drops endpoints whose lease lapsed.
    fn reap(&self, now: Instant) {
        let lapsed = |e: &Arc<Endpoint>| lock(&e.lease_until).is_some_and(|u| u <= now);
        if !self.read().iter().any(lapsed) {
            return;
        }
        let mut endpoints = self.write();
        endpoints.retain(|e| {
            if lapsed(e) {
                self.remove(e);
                tracing::info!(queue = %self.queue, address = %e.address, "endpoint lease lapsed");
                false
            } else {
                true
            }
        });
        drop(endpoints);
        self.absorb();
        self.changed.notify_waiters();
    }

    /// Lets the balancer take the changes sent to it so far, so that a
    /// removed endpoint is dropped (its connection, its series) even while
    /// no batch picks: otherwise registering and deregistering with no
    /// traffic piles both changes up in the discover channel. Skipped when
    /// a batch holds the balancer, since its pick takes them. The endpoints'
    /// readiness reserves nothing, so a poll without a call is harmless.
    fn absorb(&self) {
        let declared = self
            .read()
            .iter()
            .map(|e| e.parallelism.load(Ordering::Relaxed))
            .fold(0usize, usize::saturating_add);
        self.declared.store(declared, Ordering::Relaxed);
        if let Ok(mut balancer) = self.balancer.try_lock() {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let _ = balancer.poll_ready(&mut cx);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Endpoint>>> {
        self.endpoints
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;

//! Endpoints from DNS: a remote handler's endpoint written
//! `dns:///NAME:PORT` (a Kubernetes headless Service, say) is resolved
//! again and again; every address it resolves to is an endpoint
//! (`http://ADDRESS:PORT`). Addresses that appear are registered, those
//! that disappear are deregistered (their in-flight batches finish), and a
//! failed lookup keeps the last good set. The system resolver gives no
//! TTLs, so names are looked up every `resolve_every`.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Weak},
    time::Duration,
};

use super::EndpointPool;
use crate::handler::BoxFuture;
use crate::{handler::config::DnsName, metrics::DnsMetrics};

/// Looks names up; the seam tests replace.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    /// The addresses of `host`, with `port`.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, String>>;
}

/// The operating system's resolver (getaddrinfo, through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>, String>> {
        Box::pin(async move {
            tokio::net::lookup_host((host, port))
                .await
                .map(Iterator::collect)
                .map_err(|e| e.to_string())
        })
    }
}

/// The endpoint URL of a resolved address.
fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Keeps the endpoints of `name` in `pool` in step with DNS until the pool
/// is dropped; looks up at once, then every `every`.
pub fn watch(
    pool: &Arc<EndpointPool>,
    name: DnsName,
    every: Duration,
    resolver: Arc<dyn Resolve>,
    metrics: DnsMetrics,
) {
    let pool = Arc::downgrade(pool);
    tokio::spawn(async move {
        let mut current: BTreeSet<String> = BTreeSet::new();
        loop {
            let answer = resolver.lookup(&name.host, name.port).await;
            let Some(strong) = Weak::upgrade(&pool) else {
                return;
            };
            match answer {
                Ok(addrs) if !addrs.is_empty() => {
                    metrics.ok.increment(1);
                    let fresh: BTreeSet<String> = addrs.into_iter().map(url).collect();
                    apply(&strong, &name, &current, &fresh);
                    current = fresh;
                }
                Ok(_) => {
                    metrics.error.increment(1);
                    tracing::warn!(queue = %strong.queue(), name = %name.host, "DNS name resolved to no address; keeping the last set");
                }
                Err(error) => {
                    metrics.error.increment(1);
                    tracing::warn!(queue = %strong.queue(), name = %name.host, %error, "DNS lookup failed; keeping the last set");
                }
            }
            drop(strong);
            tokio::time::sleep(every).await;
        }
    });
}

/// Registers what appeared, deregisters what went.
fn apply(
    pool: &EndpointPool,
    name: &DnsName,
    current: &BTreeSet<String>,
    fresh: &BTreeSet<String>,
) {
    for gone in current.difference(fresh) {
        pool.deregister(gone);
    }
    for new in fresh.difference(current) {
        if let Err(e) = pool.register(new, 0, None, true) {
            tracing::warn!(queue = %pool.queue(), name = %name.host, endpoint = %new, error = %e.message(), "resolved endpoint refused");
        }
    }
    if current != fresh {
        tracing::info!(queue = %pool.queue(), name = %name.host, endpoints = fresh.len(), "endpoints from DNS changed");
    }
}

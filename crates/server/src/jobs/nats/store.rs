//! The store itself: connecting (in the background while NATS is down)
//! and the `JobStore` methods, each one of `records`, `items` or
//! `results`.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;

use super::{
    super::{
        Begun, Claimed, Done, Filter, JobInfo, JobResult, JobStore, NewItem, NewJob, StoreError,
        StoreResult, sqlite::Limits,
    },
    connection::Inner,
    items, records, results,
};
use crate::{config::NatsConfig, handler::BoxFuture};

/// The NATS JetStream job store.
#[derive(Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsStore")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl NatsStore {
    /// Connects to the server of `config` (in the background when it is
    /// down: the client reconnects by itself); the streams and the bucket
    /// are made on the first call that reaches it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] naming the server and why.
    pub async fn open(config: &NatsConfig, limits: Limits) -> StoreResult<Self> {
        let down = |what: &str, e: &dyn std::fmt::Display| StoreError::Unavailable {
            path: PathBuf::from(&config.url),
            reason: format!("{what}: {e}"),
        };
        let mut options = async_nats::ConnectOptions::new()
            .name("batchgate")
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if let Some(creds) = &config.credentials {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| down(&format!("credentials {}", creds.display()), &e))?;
        }
        if let Some(ca) = &config.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let client = options
            .connect(&config.url)
            .await
            .map_err(|e| down("connecting", &e))?;
        // Requests wait for an answer this long before UNAVAILABLE.
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        Ok(Self {
            inner: Arc::new(Inner {
                url: config.url.clone(),
                prefix: config.prefix.clone(),
                replicas: config.replicas,
                limits,
                ack_wait: config.ack_wait,
                client,
                js,
                handles: tokio::sync::OnceCell::new(),
                held: Mutex::new(HashMap::new()),
                cursors: Mutex::new(HashMap::new()),
                uploads: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl JobStore for NatsStore {
    fn begin(&self, job: NewJob) -> BoxFuture<'_, StoreResult<Begun>> {
        Box::pin(records::begin(&self.inner, job))
    }

    fn append(&self, id: &str, first: u64, items: Vec<NewItem>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        Box::pin(async move { items::append(&self.inner, &id, first, items).await })
    }

    fn seal(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        Box::pin(async move { items::seal(&self.inner, &id).await })
    }

    fn abort(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        Box::pin(async move { records::remove(&self.inner, &id, true).await })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        Box::pin(async move { records::info(&self.inner, &id).await })
    }

    fn list(&self, filter: Filter) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        Box::pin(records::list(&self.inner, filter))
    }

    fn open_jobs(&self) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        Box::pin(records::open_jobs(&self.inner))
    }

    fn claim(&self, id: &str, n: usize) -> BoxFuture<'_, StoreResult<Vec<Claimed>>> {
        let id = id.to_owned();
        Box::pin(async move { items::claim(&self.inner, &id, n).await })
    }

    fn record(&self, id: &str, done: Vec<Done>) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        Box::pin(async move { items::record(&self.inner, &id, done).await })
    }

    fn release(&self, id: &str, seqs: Vec<u64>) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        Box::pin(async move { items::release(&self.inner, &id, seqs).await })
    }

    fn cancel(&self, id: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let id = id.to_owned();
        Box::pin(async move { items::end(&self.inner, &id, items::Ending::Cancel).await })
    }

    fn fail(&self, id: &str, code: i32, reason: &str) -> BoxFuture<'_, StoreResult<JobInfo>> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        Box::pin(
            async move { items::end(&self.inner, &id, items::Ending::Fail(code, reason)).await },
        )
    }

    fn expire(&self, now_ms: u64) -> BoxFuture<'_, StoreResult<Vec<JobInfo>>> {
        Box::pin(items::expire(&self.inner, now_ms))
    }

    fn results(
        &self,
        id: &str,
        offset: u64,
        limit: usize,
        errors_only: bool,
    ) -> BoxFuture<'_, StoreResult<Vec<JobResult>>> {
        let id = id.to_owned();
        Box::pin(async move {
            records::info(&self.inner, &id).await?;
            results::read(&self.inner, &id, offset, limit, errors_only).await
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, StoreResult<()>> {
        let id = id.to_owned();
        Box::pin(async move { records::delete(&self.inner, &id).await })
    }

    fn purge(&self, before_ms: u64) -> BoxFuture<'_, StoreResult<u64>> {
        Box::pin(records::purge(&self.inner, before_ms))
    }
}

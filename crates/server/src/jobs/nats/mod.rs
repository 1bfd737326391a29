//! The NATS JetStream job store (`jobs.store = "nats"`): every replica of
//! a deployment shares its jobs, and a replica that dies loses nothing.
//!
//! What lives where (`P` is `jobs.nats.prefix`):
//! - a job's record (queue, state, totals, window, labels) in the key-value
//!   bucket `P_jobs`, changed with compare-and-set ([`records`]);
//! - its items on the work-queue stream `P_ITEMS`, subject `P.items.JOB`,
//!   taken through a durable pull consumer per job that every replica
//!   shares: an item is acknowledged only once its result is stored, so a
//!   replica killed mid-batch has its items delivered to another after
//!   `ack_wait` ([`items`]);
//! - its results on the stream `P_RESULTS`, subject `P.results.JOB.K` with
//!   K the outcome (`s` succeeded, `f` failed, `c` cancelled, `x`
//!   expired), each published with the message id `JOB.SEQ`: the stream's
//!   duplicate window (four `ack_wait`s, at least ten minutes) drops a
//!   second result of an item, which is how a redelivered item keeps one
//!   result; a job's counts are its subjects' message counts, so they are
//!   never behind its results ([`results`]).
//!
//! Online items never touch NATS. When it is unreachable, job calls fail
//! UNAVAILABLE naming the server, and the client reconnects by itself.

mod items;
mod records;
mod results;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_nats::jetstream::{self, Context, kv, stream};

use super::{
    Begun, Claimed, Done, Filter, JobInfo, JobResult, JobStore, NewItem, NewJob, StoreError,
    StoreResult, sqlite::Limits,
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

struct Inner {
    url: String,
    prefix: String,
    limits: Limits,
    ack_wait: Duration,
    client: async_nats::Client,
    replicas: usize,
    js: Context,
    /// The bucket and streams, made (or found) at the first call that
    /// reaches the server.
    handles: tokio::sync::OnceCell<Handles>,
    /// Items this replica claimed and has not recorded or released, by
    /// job and seq: acknowledged when recorded.
    held: Mutex<HashMap<(String, u64), items::Held>>,
    /// Where the last read of each job's results stopped: its next offset
    /// and stream sequence (a reader going on starts there).
    cursors: Mutex<HashMap<String, (u64, u64)>>,
    /// The custom_ids of the jobs this replica is uploading.
    uploads: Mutex<HashMap<String, HashSet<String>>>,
}

/// The bucket and the streams of the store.
struct Handles {
    jobs: kv::Store,
    items: stream::Stream,
    results: stream::Stream,
}

impl Inner {
    /// The bucket and streams, made on first use (so a server starts while
    /// NATS is down, and job calls fail UNAVAILABLE until it is up).
    async fn h(&self) -> StoreResult<&Handles> {
        self.handles.get_or_try_init(|| self.make()).await
    }

    async fn make(&self) -> StoreResult<Handles> {
        let (p, js, replicas) = (&self.prefix, &self.js, self.replicas);
        let jobs = js
            .create_key_value(kv::Config {
                bucket: format!("{p}_jobs"),
                history: 1,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..kv::Config::default()
            })
            .await
            .map_err(|e| self.down(&format!("the bucket {p}_jobs"), e))?;
        let items = js
            .get_or_create_stream(stream::Config {
                name: format!("{p}_ITEMS"),
                subjects: vec![format!("{p}.items.>")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                ..stream::Config::default()
            })
            .await
            .map_err(|e| self.down(&format!("the stream {p}_ITEMS"), e))?;
        let window = (self.ack_wait * 4).max(Duration::from_secs(600));
        let results = js
            .get_or_create_stream(stream::Config {
                name: format!("{p}_RESULTS"),
                subjects: vec![format!("{p}.results.>")],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: window,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| self.down(&format!("the stream {p}_RESULTS"), e))?;
        Ok(Handles {
            jobs,
            items,
            results,
        })
    }

    /// A NATS failure as the store's: UNAVAILABLE, naming the server.
    fn down(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            path: PathBuf::from(&self.url),
            reason: format!("{what}: {e}"),
        }
    }

    /// A refused publish as the store's: past a JetStream limit (the
    /// stream, the account or the server's storage is full) is a limit,
    /// with NATS's reason; anything else UNAVAILABLE.
    fn refused(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        let text = e.to_string();
        if full(&text) {
            StoreError::Limit(format!("{what}: NATS JetStream is full ({text})"))
        } else {
            self.down(what, text)
        }
    }

    /// `f` within 10 s: a request whose answer was lost in a reconnect
    /// (a pull, a listing) fails UNAVAILABLE instead of waiting forever.
    async fn within<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| Err(self.down(what, "no answer in 10s")))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), items::Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a JetStream error says a limit was reached (storage, messages,
/// bytes).
fn full(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["insufficient", "maximum", "exceed"]
        .iter()
        .any(|w| text.contains(w))
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

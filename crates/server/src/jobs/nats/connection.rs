//! The connection's shared state ([`Inner`]): the client, the bucket and
//! streams (made at the first call that reaches NATS), what this replica
//! holds, and how NATS failures become the store's errors.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_nats::jetstream::{Context, kv, stream};

use super::{
    super::{StoreError, StoreResult, sqlite::Limits},
    items,
};

/// What every call of the store shares.
pub(super) struct Inner {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) limits: Limits,
    pub(super) ack_wait: Duration,
    pub(super) client: async_nats::Client,
    pub(super) replicas: usize,
    pub(super) js: Context,
    /// The bucket and streams, made (or found) at the first call that
    /// reaches the server.
    pub(super) handles: tokio::sync::OnceCell<Handles>,
    /// Items this replica claimed and has not recorded or released, by
    /// job and seq: acknowledged when recorded.
    pub(super) held: Mutex<HashMap<(String, u64), items::Held>>,
    /// Where the last read of each job's results stopped: its next offset
    /// and stream sequence (a reader going on starts there).
    pub(super) cursors: Mutex<HashMap<String, (u64, u64)>>,
    /// The custom_ids of the jobs this replica is uploading.
    pub(super) uploads: Mutex<HashMap<String, HashSet<String>>>,
}

/// The bucket and the streams of the store.
pub(super) struct Handles {
    pub(super) jobs: kv::Store,
    pub(super) items: stream::Stream,
    pub(super) results: stream::Stream,
}

impl Inner {
    /// The bucket and streams, made on first use (so a server starts while
    /// NATS is down, and job calls fail UNAVAILABLE until it is up).
    pub(super) async fn h(&self) -> StoreResult<&Handles> {
        self.handles.get_or_try_init(|| self.make()).await
    }

    pub(super) async fn make(&self) -> StoreResult<Handles> {
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
    pub(super) fn down(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            path: PathBuf::from(&self.url),
            reason: format!("{what}: {e}"),
        }
    }

    /// A refused publish as the store's: past a JetStream limit (the
    /// stream, the account or the server's storage is full) is a limit,
    /// with NATS's reason; anything else UNAVAILABLE.
    pub(super) fn refused(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        let text = e.to_string();
        if full(&text) {
            StoreError::Limit(format!("{what}: NATS JetStream is full ({text})"))
        } else {
            self.down(what, text)
        }
    }

    /// `f` within 10 s: a request whose answer was lost in a reconnect
    /// (a pull, a listing) fails UNAVAILABLE instead of waiting forever.
    pub(super) async fn within<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| Err(self.down(what, "no answer in 10s")))
    }

    pub(super) fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), items::Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
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

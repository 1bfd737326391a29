//! The queue registry: queue name → running queue. It is the seam the
//! control plane changes at runtime (create, delete), and the data plane's
//! only shared lookup: a read lock held for one map lookup, never across an
//! `.await`.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, atomic::AtomicU64},
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{ConfigError, QueueConfig, validate_queue_name},
    handler,
    metrics::Metrics,
    queue::{Policy, QueueHandle, QueueSpec},
};

/// A registry change that cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// A queue of that name exists already.
    #[error("queue {0:?} already exists")]
    Exists(String),
    /// The queue's config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The running queues of a server.
#[derive(Debug)]
pub struct Registry {
    /// Queues by name.
    queues: RwLock<HashMap<Arc<str>, QueueHandle>>,
    /// Every queue actor, so shutdown can wait for all of them.
    tasks: TaskTracker,
    /// Where queues register their metric handles.
    metrics: Arc<Metrics>,
    /// Server-wide batch id source.
    batch_ids: Arc<AtomicU64>,
    /// Fires when the shutdown grace is over.
    abort: CancellationToken,
}

impl Registry {
    /// An empty registry; `abort` ends in-flight batches at the end of the
    /// shutdown grace.
    pub fn new(metrics: Arc<Metrics>, abort: CancellationToken) -> Self {
        Self {
            queues: RwLock::default(),
            tasks: TaskTracker::new(),
            metrics,
            batch_ids: Arc::new(AtomicU64::new(1)),
            abort,
        }
    }

    /// Starts a queue.
    ///
    /// # Errors
    /// [`RegistryError::Exists`] for a taken name, [`RegistryError::Config`]
    /// for an invalid name or policy.
    pub fn create(&self, name: &str, config: &QueueConfig) -> Result<QueueHandle, RegistryError> {
        validate_queue_name(name)?;
        config.validate(&format!("queues.{name}"))?;
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        if queues.contains_key(name) {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        let name: Arc<str> = Arc::from(name);
        let (handle, actor) = QueueHandle::new(QueueSpec {
            name: name.clone(),
            policy: Policy::from(config),
            handler: handler::build(&config.handler),
            metrics: Arc::new(self.metrics.queue(&name)),
            batch_ids: self.batch_ids.clone(),
            abort: self.abort.clone(),
        });
        self.tasks.spawn(actor);
        queues.insert(name, handle.clone());
        Ok(handle)
    }

    /// The queue of that name, if it exists.
    pub fn get(&self, name: &str) -> Option<QueueHandle> {
        self.queues
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Names of all queues, sorted.
    pub fn names(&self) -> Vec<String> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = queues.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    /// Drains every queue and waits until all have stopped: pending items
    /// are dispatched and in-flight batches finish (or are abandoned when the
    /// abort token fires).
    pub async fn drain_all(&self) {
        let handles: Vec<QueueHandle> = self
            .queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handle in &handles {
            handle.drain().await;
        }
        drop(handles);
        self.tasks.close();
        self.tasks.wait().await;
    }
}

//! The queue registry: queue name → running queue. It is the seam the
//! control plane changes at runtime (create, update, delete, endpoints), and
//! the data plane's only shared lookup: a read lock held for one map lookup,
//! never across an `.await`.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock, atomic::AtomicU64},
};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::{ConfigError, ModelSpec, QueueConfig, validate_queue_name},
    handler::{self, Handler, HandlerConfig, remote::EndpointPool},
    metrics::{Metrics, Outcome, QueueMetrics},
    queue::{Command, QueueHandle, QueueSpec},
    timer::PreciseTimer,
};

/// A registry change that cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// A queue of that name exists already.
    #[error("queue {0:?} already exists")]
    Exists(String),
    /// No queue has that name.
    #[error("queue {} not found", crate::error::quoted(.0))]
    NotFound(String),
    /// The queue's config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The handler could not be built (e.g. a bad endpoint).
    #[error("queue {queue:?}: {message}")]
    Handler { queue: String, message: String },
    /// The queue has stopped (drained).
    #[error("queue {0:?} has drained and takes no commands")]
    Stopped(String),
    /// A change to what is fixed when a queue is created.
    #[error(
        "queue {queue:?}: shards is fixed when a queue is created ({now}); delete and re-create the queue to change it"
    )]
    Fixed { queue: String, now: usize },
}

impl From<RegistryError> for tonic::Status {
    fn from(e: crate::registry::RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::Exists(_) => tonic::Status::already_exists(message),
            RegistryError::NotFound(_) => tonic::Status::not_found(message),
            RegistryError::Config(_) | RegistryError::Handler { .. } => {
                tonic::Status::invalid_argument(message)
            }
            RegistryError::Stopped(_) | RegistryError::Fixed { .. } => {
                tonic::Status::failed_precondition(message)
            }
        }
    }
}

/// What the v2 front door needs of a queue, from one lookup.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The queue.
    pub queue: QueueHandle,
    /// Its v2 model, if it declares one.
    pub model: Option<Arc<ModelSpec>>,
    /// Its policy's `priority_levels`.
    pub priority_levels: u32,
}

/// One running queue, as the control plane sees it.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    /// The way in.
    pub handle: QueueHandle,
    /// Its current configuration (policy changes included).
    pub config: QueueConfig,
    /// Its handler.
    pub handler: Arc<dyn Handler>,
    /// Its metric handles and counters.
    pub metrics: Arc<QueueMetrics>,
    /// The Open Inference Protocol model it serves, if any (its config's
    /// `v2`, shared with the calls in progress).
    pub model: Option<Arc<ModelSpec>>,
}

impl QueueEntry {
    /// The remote endpoints, for grpc and http queues.
    pub fn endpoints(&self) -> Option<Arc<EndpointPool>> {
        self.handler.endpoints()
    }
}

/// The running queues of a server.
#[derive(Debug)]
pub struct Registry {
    /// Queues by name.
    queues: RwLock<HashMap<Arc<str>, QueueEntry>>,
    /// Every queue actor, so shutdown can wait for all of them.
    tasks: TaskTracker,
    /// Where queues register their metric handles.
    metrics: Arc<Metrics>,
    /// Server-wide batch id source.
    batch_ids: Arc<AtomicU64>,
    /// Fires when the shutdown grace is over.
    abort: CancellationToken,
    /// Sub-millisecond `max_delay` wake-ups shared by every queue.
    precise: Option<Arc<PreciseTimer>>,
    /// The metrics of the queues [`Registry::drain_all`] took away, so
    /// items refused during shutdown are still counted for their queue.
    drained: RwLock<HashMap<Arc<str>, Arc<QueueMetrics>>>,
    /// The server's `max_message_bytes`, which bounds `max_batch_bytes`.
    max_message_bytes: usize,
}

impl Registry {
    /// An empty registry; `abort` ends in-flight batches at the end of the
    /// shutdown grace.
    pub fn new(metrics: Arc<Metrics>, abort: CancellationToken, max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            queues: RwLock::default(),
            tasks: TaskTracker::new(),
            metrics,
            batch_ids: Arc::new(AtomicU64::new(1)),
            abort,
            drained: RwLock::default(),
            precise: match PreciseTimer::start() {
                Ok(timer) => Some(Arc::new(timer)),
                Err(e) => {
                    tracing::warn!(error = %e, "no precise timer thread: max_delay gets whole-millisecond precision");
                    None
                }
            },
        }
    }

    /// Starts a queue.
    ///
    /// # Errors
    /// [`RegistryError::Exists`] for a taken name, [`RegistryError::Config`]
    /// for an invalid name or policy, [`RegistryError::Handler`] for a
    /// handler that cannot be built.
    pub fn create(&self, name: &str, config: &QueueConfig) -> Result<QueueHandle, RegistryError> {
        validate_queue_name(name)?;
        config.validate(&format!("queues.{name}"), self.max_message_bytes)?;
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        if queues.contains_key(name) {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        let name: Arc<str> = Arc::from(name);
        let handler = handler::build(
            name.clone(),
            &config.handler,
            config.v2.as_ref(),
            self.metrics.clone(),
            self.precise.clone(),
        )
        .map_err(|s| RegistryError::Handler {
            queue: name.to_string(),
            message: s.message().to_owned(),
        })?;
        let metrics = Arc::new(self.metrics.queue(&name));
        let (handle, actor) = QueueHandle::new(QueueSpec {
            name: name.clone(),
            policy: config.policy.clone(),
            handler: handler.clone(),
            metrics: metrics.clone(),
            batch_ids: self.batch_ids.clone(),
            abort: self.abort.clone(),
            precise: self.precise.clone(),
        });
        self.tasks.spawn(actor);
        queues.insert(
            name,
            QueueEntry {
                handle: handle.clone(),
                config: config.clone(),
                handler,
                metrics,
                model: config.v2.clone().map(Arc::new),
            },
        );
        Ok(handle)
    }

    /// The queue of that name, if it exists (the data plane's lookup).
    pub fn get(&self, name: &str) -> Option<QueueHandle> {
        self.read().get(name).map(|e| e.handle.clone())
    }

    /// The queue of that name, the v2 model it serves (`None` if it serves
    /// none) and its priority levels; `None` if there is no such queue.
    pub fn model(&self, name: &str) -> Option<ModelEntry> {
        self.read().get(name).map(|e| ModelEntry {
            queue: e.handle.clone(),
            model: e.model.clone(),
            priority_levels: e.config.policy.priority_levels,
        })
    }

    /// The names of the queues that serve a v2 model.
    pub fn model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, e)| e.model.is_some())
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        names
    }

    /// Counts `n` items refused on the way to queue `name` (e.g. at
    /// shutdown) as `rejected`, if such a queue exists or was drained.
    pub fn count_rejected(&self, name: &str, n: u64) {
        let metrics = match self.read().get(name) {
            Some(entry) => Some(entry.metrics.clone()),
            None => self
                .drained
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(name)
                .cloned(),
        };
        if let Some(metrics) = metrics {
            metrics.items(Outcome::Rejected, n);
        }
    }

    /// Everything about one queue.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub fn entry(&self, name: &str) -> Result<QueueEntry, RegistryError> {
        self.read()
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))
    }

    /// Every queue, by name.
    pub fn entries(&self) -> Vec<(String, QueueEntry)> {
        let mut entries: Vec<_> = self
            .read()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// Names of all queues, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    /// Changes a queue's policy and, with `new_handler`, its handler:
    /// `change` edits a copy of its config, which must still validate; the
    /// queue applies it from its next batch on. A new handler replaces the
    /// old for new batches; the old one's batches in flight finish on it
    /// (endpoints registered at runtime stay with the old handler: a
    /// backend renewing its lease registers with the new one).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::Config`],
    /// [`RegistryError::Handler`], or [`RegistryError::Stopped`] if the
    /// queue has drained.
    pub async fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut QueueConfig),
        new_handler: Option<HandlerConfig>,
    ) -> Result<QueueEntry, RegistryError> {
        let (handle, config, handler) = {
            let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
            let entry = queues
                .get_mut(name)
                .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
            let mut config = entry.config.clone();
            let handler = config.handler.clone();
            change(&mut config);
            config.handler = new_handler.unwrap_or(handler);
            if config.policy.shards != entry.config.policy.shards {
                return Err(RegistryError::Fixed {
                    queue: name.to_owned(),
                    now: entry.config.policy.shards,
                });
            }
            config.validate(&format!("queues.{name}"), self.max_message_bytes)?;
            // A changed handler is built anew; batches in flight finish on
            // the old one, which goes when they do.
            // A kserve handler stacks rows by the queue's v2 tensors.
            let same_layout =
                config.handler.kind != handler::HandlerKind::Kserve || config.v2 == entry.config.v2;
            let handler = if config.handler == entry.config.handler && same_layout {
                None
            } else {
                let queue: Arc<str> = Arc::from(name);
                let built = handler::build(
                    queue,
                    &config.handler,
                    config.v2.as_ref(),
                    self.metrics.clone(),
                    self.precise.clone(),
                )
                .map_err(|s| RegistryError::Handler {
                    queue: name.to_owned(),
                    message: s.message().to_owned(),
                })?;
                entry.handler = built.clone();
                Some(built)
            };
            if config.v2 != entry.config.v2 {
                entry.model = config.v2.clone().map(Arc::new);
            }
            entry.config = config.clone();
            (entry.handle.clone(), config, handler)
        };
        handle
            .control(Command::Update(config.policy.clone(), handler))
            .await
            .map_err(|_| RegistryError::Stopped(name.to_owned()))?;
        self.entry(name)
    }

    /// Removes a queue from the registry (new items get NOT_FOUND) and
    /// drains it; with `force`, its pending items are answered UNAVAILABLE.
    /// Returns how many items were answered so.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`].
    pub async fn delete(&self, name: &str, force: bool) -> Result<u64, RegistryError> {
        let entry = self
            .queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_owned()))?;
        Ok(entry.handle.drain_with(force).await)
    }

    /// Drains every queue and waits until all have stopped: pending items
    /// are dispatched and in-flight batches finish (or are abandoned when the
    /// abort token fires).
    pub async fn drain_all(&self) {
        let entries =
            std::mem::take(&mut *self.queues.write().unwrap_or_else(PoisonError::into_inner));
        let handles: Vec<QueueHandle> = {
            let mut drained = self.drained.write().unwrap_or_else(PoisonError::into_inner);
            entries
                .into_iter()
                .map(|(name, e)| {
                    drained.insert(name, e.metrics);
                    e.handle
                })
                .collect()
        };
        for handle in &handles {
            handle.drain().await;
        }
        drop(handles);
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, QueueEntry>> {
        self.queues.read().unwrap_or_else(PoisonError::into_inner)
    }
}

//! Queues: the policy (pure), the pending items, the per-queue actor that
//! owns them, and the batches it dispatches.
//!
//! A [`QueueHandle`] is the cheap, cloneable way in; the actor behind it is
//! the only owner of the queue's state.

mod actor;
mod alarm;
mod backlog;
mod batch;
mod command;
mod fit;
mod inbox;
mod item;
mod pending;
mod policy;
mod target;
pub mod timer;

use std::sync::{Arc, atomic::AtomicU64};

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use self::{
    backlog::GONE_SWEEP_EVERY,
    batch::BatchSink,
    command::{ActorStats, Command, Learned},
    item::{Answer, BatchFacts, Item, Reply, StreamAnswer, StreamLink, StreamReply},
    policy::{Decision, Mode, PendingView, Policy, decide},
};
use crate::{
    error::Refusal,
    handler::Handler,
    metrics::{Outcome, QueueMetrics},
};

/// Answers items a queue that has stopped can no longer take: UNAVAILABLE,
/// counted as rejected.
pub(crate) fn refuse_gone(
    queue: &str,
    metrics: &QueueMetrics,
    items: impl IntoIterator<Item = Item>,
) {
    let status = tonic::Status::from(Refusal::Draining(queue.to_owned()));
    let mut n = 0;
    for item in items {
        item.reply.err(status.clone(), None);
        n += 1;
    }
    if n > 0 {
        metrics.items(Outcome::Rejected, n);
    }
}

/// A cloneable handle to a running queue.
#[derive(Debug, Clone)]
pub struct QueueHandle {
    /// The queue's name.
    name: Arc<str>,
    /// The actor's inbox.
    commands: mpsc::UnboundedSender<Command>,
    /// Room for item commands in the inbox: a permit per command, given
    /// back by the actor in bulk once per turn.
    room: Arc<Semaphore>,
    /// For items refused because the actor is gone.
    metrics: Arc<QueueMetrics>,
}

/// What it takes to start a queue.
#[derive(Debug)]
pub struct QueueSpec {
    /// Name clients use.
    pub name: Arc<str>,
    /// Batching policy.
    pub policy: Policy,
    /// Where batches go.
    pub handler: Arc<dyn Handler>,
    /// Metric handles of this queue.
    pub metrics: Arc<QueueMetrics>,
    /// Server-wide batch id source.
    pub batch_ids: Arc<AtomicU64>,
    /// Fires when the shutdown grace is over.
    pub abort: CancellationToken,
    /// Sub-millisecond wake-ups for `max_delay`; `None` uses tokio's timer
    /// alone (whole milliseconds, rounded up), which a paused test clock
    /// needs.
    pub precise: Option<Arc<timer::PreciseTimer>>,
}

impl QueueHandle {
    /// Creates a queue: returns its handle and the actor future, which the
    /// caller spawns (or drives itself in a test).
    pub fn new(spec: QueueSpec) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(inbox::INBOX_ROOM));
        let handle = Self {
            name: spec.name.clone(),
            commands: tx,
            room: room.clone(),
            metrics: spec.metrics.clone(),
        };
        let actor = actor::run(spec, inbox::Inbox::new(rx, room));
        (handle, actor)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the queue has stopped taking commands.
    pub fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }

    /// Hands an item to the queue; the queue answers it through its reply,
    /// and if the queue is gone it is answered UNAVAILABLE here. Waits while
    /// the queue's inbox is full.
    pub async fn submit(&self, item: Item) {
        if !self.enter().await {
            return refuse_gone(&self.name, &self.metrics, [item]);
        }
        if let Err(mpsc::error::SendError(Command::Submit(item))) =
            self.commands.send(Command::Submit(item))
        {
            refuse_gone(&self.name, &self.metrics, [item]);
        }
    }

    /// Hands several items to the queue in one command (same answers as
    /// [`QueueHandle::submit`] for each).
    pub async fn submit_many(&self, items: Vec<Item>) {
        if !self.enter().await {
            return refuse_gone(&self.name, &self.metrics, items);
        }
        if let Err(mpsc::error::SendError(Command::SubmitMany(items))) =
            self.commands.send(Command::SubmitMany(items))
        {
            refuse_gone(&self.name, &self.metrics, items);
        }
    }

    /// Waits for room in the inbox for one item command; false once the
    /// queue has stopped.
    async fn enter(&self) -> bool {
        match self.room.acquire().await {
            // The actor gives the room back when it takes the command.
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Dispatches everything pending now; returns how many items that was.
    ///
    /// # Errors
    /// [`Refusal::Draining`] if the queue is gone.
    pub async fn flush(&self) -> Result<usize, Refusal> {
        let (tx, rx) = oneshot::channel();
        let gone = || Refusal::Draining(self.name.to_string());
        self.commands.send(Command::Flush(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Asks the queue to drain: refuse new items, dispatch all, then stop.
    pub async fn drain(&self) {
        let _ = self.commands.send(Command::Drain {
            force: false,
            dropped: None,
        });
    }

    /// Drains the queue; with `force`, pending items are answered
    /// UNAVAILABLE instead. Returns how many were answered so.
    pub async fn drain_with(&self, force: bool) -> u64 {
        let (tx, rx) = oneshot::channel();
        let command = Command::Drain {
            force,
            dropped: Some(tx),
        };
        if self.commands.send(command).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Sends a control command (pause, resume, policy update). Item
    /// commands take the same way in as [`QueueHandle::submit`], so they
    /// wait for room like any other.
    ///
    /// # Errors
    /// [`Refusal::Draining`] if the queue is gone.
    pub async fn control(&self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::Submit(item) => self.submit(item).await,
            Command::SubmitMany(items) => self.submit_many(items).await,
            command => self
                .commands
                .send(command)
                .map_err(|_| Refusal::Draining(self.name.to_string()))?,
        }
        Ok(())
    }

    /// The queue's live state; `None` once it has stopped.
    pub async fn stats(&self) -> Option<ActorStats> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

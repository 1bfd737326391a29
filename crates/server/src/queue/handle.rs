//! The way in to a running queue: a [`QueueHandle`] holds every shard's
//! inbox, its room and the queue's idempotency keys; cloning it is cheap.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{
    ActorStats, Command, Item, QueueSpec, actor, command::refuse_gone, idempotency, inbox, shards,
};
use crate::{
    error::Refusal,
    metrics::{Outcome, QueueMetrics},
};

/// Item commands waiting in a shard's inbox from which the next item goes
/// to the next shard: the actor is not keeping up. Streams send their
/// items in few commands (one per read), so a full inbox would come too
/// late to tell.
pub const SPILL_AT: usize = 4;

/// A cloneable handle to a running queue: the way in to each of its
/// shards' actors (one unless the policy's `shards` says more).
#[derive(Debug, Clone)]
pub struct QueueHandle {
    /// The queue's name.
    name: Arc<str>,
    /// The shards' inboxes, shard 0 first.
    shards: Arc<[Shard]>,
    /// Which shard a submitter waits on when every inbox is full.
    spill: Arc<AtomicUsize>,
    /// For items refused because the actor is gone.
    metrics: Arc<QueueMetrics>,
    /// The idempotency keys of all shards.
    keys: Arc<idempotency::Keys>,
    /// Every shard's published depth, and the queue's `max_queue_items`.
    load: Arc<shards::Load>,
}

/// The way in to one shard's actor.
#[derive(Debug)]
struct Shard {
    /// The actor's inbox.
    commands: mpsc::UnboundedSender<Command>,
    /// Room for item commands in the inbox: a permit per command, given
    /// back by the actor in bulk once per turn.
    room: Arc<Semaphore>,
}

impl QueueHandle {
    /// Creates a queue: returns its handle and the actor future, which the
    /// caller spawns (or drives itself in a test). With several shards the
    /// future spawns the other shards' actors as tasks of their own when
    /// first polled, runs shard 0's itself, and ends when all have.
    pub fn new(spec: QueueSpec) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let count = spec.policy.shards.max(1);
        let load = Arc::new(shards::Load::new(count));
        load.set_limit(spec.policy.max_queue_items);
        let mut shards = Vec::with_capacity(count);
        let mut actors = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = mpsc::unbounded_channel();
            let room = Arc::new(Semaphore::new(inbox::INBOX_ROOM));
            shards.push(Shard {
                commands: tx,
                room: room.clone(),
            });
            let place = actor::Place {
                index,
                load: load.clone(),
            };
            actors.push(actor::run(spec.clone(), place, inbox::Inbox::new(rx, room)));
        }
        let handle = Self {
            name: spec.name.clone(),
            shards: shards.into(),
            spill: Arc::new(AtomicUsize::new(0)),
            metrics: spec.metrics.clone(),
            keys: Arc::new(idempotency::Keys::new(
                spec.name.clone(),
                &spec.policy,
                spec.metrics.clone(),
            )),
            load,
        };
        let mut actors = actors.into_iter();
        let first = actors.next();
        let run = async move {
            let others: Vec<_> = actors.map(tokio::spawn).collect();
            if let Some(first) = first {
                first.await;
            }
            for other in others {
                if let Err(e) = other.await {
                    tracing::error!(error = %e, "queue shard failed");
                }
            }
        };
        (handle, run)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Idempotency keys in flight or remembered.
    pub fn idempotency_keys(&self) -> usize {
        self.keys.count()
    }

    /// Room for more items under `max_queue_items` as last published, and
    /// that limit: for a request of many items to be refused whole.
    pub fn room(&self) -> (usize, usize) {
        self.load.room()
    }

    /// The queue's metric handles and counters.
    pub fn metrics(&self) -> &Arc<QueueMetrics> {
        &self.metrics
    }

    /// Counts `n` items refused before they reached the queue.
    pub fn count_rejected(&self, n: u64) {
        self.metrics.items(Outcome::Rejected, n);
    }

    /// Whether the queue has stopped taking commands.
    pub fn is_closed(&self) -> bool {
        self.shards.iter().all(|s| s.commands.is_closed())
    }

    /// Hands an item to the queue; the queue answers it through its reply,
    /// and if the queue is gone it is answered UNAVAILABLE here. Waits while
    /// the queue's inbox is full.
    pub async fn submit(&self, item: Item) {
        let Some(item) = self.keys.admit(item) else {
            return;
        };
        let entered = match self.key_shard(item.key.as_deref()) {
            Some(at) => {
                let shard = &self.shards[at];
                Self::wait_room(shard).await.then_some(shard)
            }
            None => self.enter().await,
        };
        let Some(shard) = entered else {
            return refuse_gone(&self.name, &self.metrics, [item]);
        };
        if let Err(mpsc::error::SendError(Command::Submit(item))) =
            shard.commands.send(Command::Submit(item))
        {
            refuse_gone(&self.name, &self.metrics, [item]);
        }
    }

    /// Hands several items to the queue in one command (same answers as
    /// [`QueueHandle::submit`] for each; they go to one shard together).
    pub async fn submit_many(&self, items: Vec<Item>) {
        let items: Vec<Item> = if items.iter().any(|i| i.idempotency_key.is_some()) {
            items
                .into_iter()
                .filter_map(|i| self.keys.admit(i))
                .collect()
        } else {
            items
        };
        if items.is_empty() {
            return;
        }
        if self.shards.len() > 1 && items.iter().any(|i| i.key.is_some()) {
            return self.submit_keyed(items).await;
        }
        let shard = self.enter().await;
        self.send_many(shard, items);
    }

    /// Sends `items` to `shard` in one command, once room for it was taken;
    /// without a shard (the queue stopped) or if it is gone meanwhile, they
    /// are answered UNAVAILABLE.
    fn send_many(&self, shard: Option<&Shard>, items: Vec<Item>) {
        let Some(shard) = shard else {
            return refuse_gone(&self.name, &self.metrics, items);
        };
        if let Err(mpsc::error::SendError(Command::SubmitMany(items))) =
            shard.commands.send(Command::SubmitMany(items))
        {
            refuse_gone(&self.name, &self.metrics, items);
        }
    }

    /// The shard of items with batch key `key` when there are several:
    /// chosen by the key, so that a key's items meet in one shard.
    fn key_shard(&self, key: Option<&str>) -> Option<usize> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let key = key?;
        if self.shards.len() == 1 {
            return None;
        }
        // A fixed hasher: the same key goes to the same shard every time.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        usize::try_from(hash % self.shards.len() as u64).ok()
    }

    /// Hands items of which some have batch keys to several shards: keyed
    /// ones to their key's shard, the rest together as usual.
    async fn submit_keyed(&self, items: Vec<Item>) {
        let mut by_shard: Vec<Vec<Item>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        let mut unkeyed = Vec::new();
        for item in items {
            match self.key_shard(item.key.as_deref()) {
                Some(at) => by_shard[at].push(item),
                None => unkeyed.push(item),
            }
        }
        for (shard, items) in self.shards.iter().zip(by_shard) {
            if !items.is_empty() {
                let entered = Self::wait_room(shard).await.then_some(shard);
                self.send_many(entered, items);
            }
        }
        if !unkeyed.is_empty() {
            let shard = self.enter().await;
            self.send_many(shard, unkeyed);
        }
    }

    /// Takes room for one item command in the first shard whose actor is
    /// keeping up (fewer than [`SPILL_AT`] commands waiting in its inbox);
    /// when none is, waits its turn at one shard (round robin). `None` once
    /// the queue has stopped.
    async fn enter(&self) -> Option<&Shard> {
        let shards = &*self.shards;
        if let [only] = shards {
            return Self::wait_room(only).await.then_some(only);
        }
        for shard in shards {
            let waiting = inbox::INBOX_ROOM.saturating_sub(shard.room.available_permits());
            if waiting < SPILL_AT
                && let Ok(permit) = shard.room.try_acquire()
            {
                // The actor gives the room back when it takes the command.
                permit.forget();
                return Some(shard);
            }
        }
        let at = self.spill.fetch_add(1, Ordering::Relaxed) % shards.len();
        let shard = &shards[at];
        Self::wait_room(shard).await.then_some(shard)
    }

    /// Waits for room for one item command in `shard`'s inbox; false once
    /// it has stopped.
    async fn wait_room(shard: &Shard) -> bool {
        match shard.room.acquire().await {
            // The actor gives the room back when it takes the command.
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Sends a control command to every shard; false if one is gone.
    fn broadcast(&self, command: impl Fn() -> Command) -> bool {
        // Every shard gets it, even after one refused.
        let refused = self
            .shards
            .iter()
            .filter(|s| s.commands.send(command()).is_err())
            .count();
        refused == 0
    }

    /// Dispatches everything pending now; returns how many items that was.
    ///
    /// # Errors
    /// [`Refusal::Draining`] if the queue is gone.
    pub async fn flush(&self) -> Result<usize, Refusal> {
        let gone = || Refusal::Draining(self.name.to_string());
        let mut answers = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            shard
                .commands
                .send(Command::Flush(tx))
                .map_err(|_| gone())?;
            answers.push(rx);
        }
        let mut total = 0;
        for rx in answers {
            total += rx.await.map_err(|_| gone())?;
        }
        Ok(total)
    }

    /// Asks the queue to drain: refuse new items, dispatch all, then stop.
    pub async fn drain(&self) {
        self.broadcast(|| Command::Drain {
            force: false,
            dropped: None,
        });
    }

    /// Drains the queue; with `force`, pending items are answered
    /// UNAVAILABLE instead. Returns how many were answered so.
    pub async fn drain_with(&self, force: bool) -> u64 {
        let mut answers = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            let command = Command::Drain {
                force,
                dropped: Some(tx),
            };
            if shard.commands.send(command).is_ok() {
                answers.push(rx);
            }
        }
        let mut total = 0;
        for rx in answers {
            total += rx.await.unwrap_or(0);
        }
        total
    }

    /// Sends a control command (pause, resume, policy update) to every
    /// shard. Item commands take the same way in as
    /// [`QueueHandle::submit`], so they wait for room like any other.
    ///
    /// # Errors
    /// [`Refusal::Draining`] if the queue is gone.
    pub async fn control(&self, command: Command) -> Result<(), Refusal> {
        let gone = || Refusal::Draining(self.name.to_string());
        let sent = match command {
            Command::Submit(item) => {
                self.submit(item).await;
                true
            }
            Command::SubmitMany(items) => {
                self.submit_many(items).await;
                true
            }
            Command::Pause => self.broadcast(|| Command::Pause),
            Command::Resume => self.broadcast(|| Command::Resume),
            Command::Update(policy, handler) => {
                self.keys.configure(&policy);
                self.load.set_limit(policy.max_queue_items);
                self.broadcast(|| Command::Update(policy.clone(), handler.clone()))
            }
            Command::Flush(reply) => {
                let _ = reply.send(self.flush().await?);
                true
            }
            Command::Drain { force, dropped } => {
                let n = self.drain_with(force).await;
                if let Some(dropped) = dropped {
                    let _ = dropped.send(n);
                }
                true
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats().await.ok_or_else(gone)?);
                true
            }
        };
        if sent { Ok(()) } else { Err(gone()) }
    }

    /// The queue's live state, its shards' summed; `None` once it has
    /// stopped.
    pub async fn stats(&self) -> Option<ActorStats> {
        let mut answers = Vec::with_capacity(self.shards.len());
        for shard in self.shards.iter() {
            let (tx, rx) = oneshot::channel();
            shard.commands.send(Command::Stats(tx)).ok()?;
            answers.push(rx);
        }
        let mut total: Option<ActorStats> = None;
        for rx in answers {
            let one = rx.await.ok()?;
            total = Some(match total {
                None => one,
                Some(sum) => sum.merge(one),
            });
        }
        total
    }
}

//! Feeds stored jobs into their queues and stores what their items came to.
//!
//! Job items enter the queue's own scheduler (its policy, lanes, cost
//! budget, keys, handler, retries) like online items, at the background
//! priority (below every online priority: in a lane, an online item is
//! always taken first; a batch that online items leave short is topped up
//! with job items), and only while the queue has room for them: fewer than `max_batch_size`
//! items waiting in it and fewer than `jobs.max_in_flight_per_queue` job
//! items in it at once (by default enough for every batch in flight and
//! the next: `max_batch_size × (max_in_flight_batches + 1)`), so a job
//! uses what online traffic leaves.
//! Jobs of a queue go by priority; jobs of one priority share the room in
//! turn. Each item carries the attribute
//! `idempotency_key = "<job id>/<custom_id>"`.
//!
//! An item's answer is stored as its result, once. At shutdown the runner
//! stops feeding; items the drain could not run (UNAVAILABLE) stay claimed
//! and run again at the next start.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Notify, oneshot, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::Code;

use super::{
    Claimed, Done, JobInfo, JobState, JobStore, JobsConfig, Outcome, StoreError, StoreResult,
    now_ms,
};
use crate::{
    metrics::Metrics,
    queue::{BACKGROUND, Item, Reply, budget::Charge},
    registry::{QueueEntry, Registry},
};

/// How often the runner looks for work without being woken.
const TICK: Duration = Duration::from_millis(100);
/// How often expired jobs are ended.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// How often ended jobs past their retention are removed.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Most items claimed in one store call.
const MAX_CLAIM: usize = 256;
/// Whether an item refused with `code` before it ran goes back to its job
/// (to run later) rather than failing.
fn requeue(code: Code) -> bool {
    matches!(
        code,
        Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded
    )
}

/// The attribute each job item carries.
pub const IDEMPOTENCY_ATTRIBUTE: &str = "idempotency_key";

/// The jobs side of a server: the store and what feeds it to the queues.
#[derive(Debug)]
pub struct Runner {
    store: Arc<dyn JobStore>,
    config: JobsConfig,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Bumped whenever a job changes (WatchJob, ReadResults' follow).
    changed: watch::Sender<u64>,
    wake: Arc<Notify>,
    /// Job items each queue holds now.
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    /// Turn of the jobs that share a queue's room.
    turn: AtomicUsize,
    /// Whether the open jobs changed since the runner last looked (a job
    /// created, cancelled, failed or expired).
    stale: AtomicBool,
    /// Cancelled at shutdown: no more feeding.
    stop: CancellationToken,
    /// The tasks waiting on job items' answers.
    tasks: TaskTracker,
}

impl Runner {
    /// A runner over `store` for the queues of `registry`.
    pub fn new(
        store: Arc<dyn JobStore>,
        config: JobsConfig,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            registry,
            metrics,
            changed: watch::channel(0).0,
            wake: Arc::new(Notify::new()),
            in_flight: Mutex::new(HashMap::new()),
            turn: AtomicUsize::new(0),
            stale: AtomicBool::new(true),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// The `[jobs]` settings.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// Whether `queue` exists.
    pub fn has_queue(&self, queue: &str) -> Option<QueueEntry> {
        self.registry.entry(queue).ok()
    }

    /// Fires whenever a job changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Something changed (a job created or cancelled): look for work now.
    pub fn poke(&self) {
        self.changed.send_modify(|v| *v += 1);
        self.stale.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Feeds queues until [`Runner::stop`]; then waits for the answers of
    /// the items in flight (the queues' drain gives them) and stores them.
    pub async fn run(self: Arc<Self>) {
        let (mut expired_at, mut purged_at) = (Instant::now(), Instant::now());
        // The open jobs as last looked up: again when one changed, and
        // every tick (an answer's wake-up only feeds).
        let (mut open, mut looked) = (Vec::new(), Instant::now());
        // A store that stopped says so on every call: said once.
        let mut said = String::new();
        let mut warn = |what: &str, e: StoreError| {
            let text = e.to_string();
            if text != said {
                tracing::warn!(error = %text, "jobs: {what} failed");
                said = text;
            }
        };
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
            if self.stale.swap(false, Ordering::AcqRel) || looked.elapsed() >= TICK {
                match self.open_jobs().await {
                    Ok(jobs) => (open, looked) = (jobs, Instant::now()),
                    Err(e) => warn("reading the open jobs", e),
                }
            }
            if let Err(e) = self.feed(&open).await {
                warn("feeding the queues", e);
            }
            if expired_at.elapsed() >= EXPIRE_EVERY {
                expired_at = Instant::now();
                match self.store.expire(now_ms()).await {
                    Ok(jobs) => {
                        for job in &jobs {
                            self.count(&job.queue, "expired", job.counts.expired);
                        }
                        if !jobs.is_empty() {
                            self.poke();
                        }
                    }
                    Err(e) => warn("expiring", e),
                }
            }
            if purged_at.elapsed() >= PURGE_EVERY {
                purged_at = Instant::now();
                let before = now_ms().saturating_sub(
                    u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX),
                );
                if let Err(e) = self.store.purge(before).await {
                    warn("removing old jobs", e);
                }
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Stops feeding (shutdown).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Counts `n` job items of `queue` that ended as `outcome`.
    fn count(&self, queue: &str, outcome: &'static str, n: u64) {
        if n > 0 {
            self.metrics.job_items(queue, outcome).increment(n);
        }
    }

    /// The counter of `queue`'s job items in flight.
    fn in_flight(&self, queue: &str) -> Arc<AtomicUsize> {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(queue.to_owned()).or_default().clone()
    }

    /// The open jobs, and the gauge of them by state.
    async fn open_jobs(&self) -> StoreResult<Vec<JobInfo>> {
        let jobs = self.store.open_jobs().await?;
        for state in [JobState::Queued, JobState::InProgress, JobState::Cancelling] {
            let n = jobs.iter().filter(|j| j.state == state).count();
            self.metrics.jobs(state.as_str()).set(n as f64);
        }
        let pending: u64 = jobs
            .iter()
            .map(|j| j.counts.total.saturating_sub(j.counts.done()))
            .sum();
        self.metrics.job_items_pending().set(pending as f64);
        Ok(jobs)
    }

    /// One round: every open job's queue gets what room it has.
    async fn feed(&self, jobs: &[JobInfo]) -> StoreResult<()> {
        let mut by_queue: Vec<(&str, Vec<&JobInfo>)> = Vec::new();
        for job in jobs.iter().filter(|j| j.state.runs()) {
            match by_queue.iter_mut().find(|(q, _)| *q == job.queue) {
                Some((_, list)) => list.push(job),
                None => by_queue.push((&job.queue, vec![job])),
            }
        }
        for (queue, jobs) in by_queue {
            let Ok(entry) = self.registry.entry(queue) else {
                for job in &jobs {
                    let reason = format!("queue {queue:?} does not exist (deleted?)");
                    let failed = self
                        .store
                        .fail(&job.id, Code::FailedPrecondition as i32, &reason)
                        .await?;
                    self.count(queue, "error", failed.counts.failed - job.counts.failed);
                }
                self.poke();
                continue;
            };
            self.feed_queue(&entry, queue, &jobs).await?;
        }
        Ok(())
    }

    /// Gives `queue`'s room to its jobs (ordered by priority, highest
    /// first), in turn among those of one priority.
    async fn feed_queue(
        &self,
        entry: &QueueEntry,
        queue: &str,
        jobs: &[&JobInfo],
    ) -> StoreResult<()> {
        let policy = &entry.config.policy;
        let cap = match self.config.max_in_flight_per_queue {
            0 => policy
                .max_batch_size
                .saturating_mul(policy.max_in_flight_batches.saturating_add(1)),
            n => n,
        };
        let counter = self.in_flight(queue);
        let (room, limit) = entry.handle.room();
        let waiting = limit.saturating_sub(room);
        let mut left = cap
            .saturating_sub(counter.load(Ordering::Acquire))
            .min(policy.max_batch_size.saturating_sub(waiting))
            .min(room);
        let mut at = 0;
        while left > 0 && at < jobs.len() {
            let priority = jobs[at].priority;
            let group: Vec<&JobInfo> = jobs[at..]
                .iter()
                .copied()
                .take_while(|j| j.priority == priority)
                .collect();
            at += group.len();
            let first = self.turn.fetch_add(1, Ordering::Relaxed) % group.len();
            for k in 0..group.len() {
                if left == 0 {
                    break;
                }
                let job = group[(first + k) % group.len()];
                let share = left.div_ceil(group.len() - k).clamp(1, MAX_CLAIM);
                let claimed = self.store.claim(&job.id, share).await?;
                left = left.saturating_sub(claimed.len());
                if !claimed.is_empty() {
                    self.submit(entry, job, claimed, &counter).await;
                }
            }
        }
        Ok(())
    }

    /// Hands `claimed` to the queue; a task stores their answers.
    async fn submit(
        &self,
        entry: &QueueEntry,
        job: &JobInfo,
        claimed: Vec<Claimed>,
        counter: &Arc<AtomicUsize>,
    ) {
        let gauge = self.metrics.job_items_in_flight(&job.queue);
        counter.fetch_add(claimed.len(), Ordering::AcqRel);
        gauge.set(counter.load(Ordering::Acquire) as f64);
        let mut items = Vec::with_capacity(claimed.len());
        let mut answers = Vec::with_capacity(claimed.len());
        for c in claimed {
            let (tx, rx) = oneshot::channel();
            let mut attributes = c.item.attributes;
            attributes.insert(
                IDEMPOTENCY_ATTRIBUTE.to_owned(),
                format!("{}/{}", job.id, c.item.custom_id),
            );
            items.push(Item {
                payload: c.item.payload,
                attributes,
                priority: BACKGROUND,
                timeout: None,
                answer_within: None,
                trace_id: None,
                trace: None,
                key: c.item.batch_key.map(Arc::from),
                cost: c.item.cost,
                idempotency_key: None,
                reply: Reply::Unary(tx),
                charge: Charge::none(),
            });
            answers.push((c.seq, rx));
        }
        entry.handle.submit_many(items).await;
        let (store, metrics, counter) = (self.store.clone(), self.metrics.clone(), counter.clone());
        let (id, queue, stop) = (job.id.clone(), job.queue.clone(), self.stop.clone());
        let (changed, notify) = (self.changed.clone(), self.wake.clone());
        self.tasks.spawn(async move {
            let mut done = Vec::with_capacity(answers.len());
            let mut back = Vec::new();
            let (mut ok, mut failed) = (0, 0);
            for (seq, rx) in answers {
                let answer = rx.await;
                counter.fetch_sub(1, Ordering::AcqRel);
                gauge.set(counter.load(Ordering::Acquire) as f64);
                notify.notify_one();
                let Ok(answer) = answer else {
                    failed += 1;
                    done.push(Done {
                        seq,
                        outcome: Outcome::Err {
                            code: Code::Internal as i32,
                            message: "the item was dropped without an answer".into(),
                        },
                        batch_id: 0,
                    });
                    continue;
                };
                let batch_id = answer.batch.map_or(0, |b| b.id);
                let outcome = match answer.result {
                    Ok(output) => {
                        ok += 1;
                        Outcome::Ok {
                            payload: output.payload,
                            attributes: output.attributes,
                        }
                    }
                    // Refused before it ran (the queue full or draining,
                    // or it waited past the queue's item timeout): it runs
                    // later; at shutdown, at the next start.
                    Err(status) if batch_id == 0 && requeue(status.code()) => {
                        if !stop.is_cancelled() {
                            back.push(seq);
                        }
                        continue;
                    }
                    Err(status) => {
                        failed += 1;
                        Outcome::Err {
                            code: status.code() as i32,
                            message: status.message().to_owned(),
                        }
                    }
                };
                done.push(Done {
                    seq,
                    outcome,
                    batch_id,
                });
            }
            if !back.is_empty()
                && let Err(e) = store.release(&id, back).await
            {
                tracing::warn!(job = %id, error = %e, "jobs: putting refused items back failed; they run again once the store writes again");
            }
            if done.is_empty() {
                // Items put back may have ended their job (a cancelled one).
                changed.send_modify(|v| *v += 1);
                return;
            }
            let started = Instant::now();
            match store.record(&id, done).await {
                Ok(_) => {
                    metrics.job_store_seconds().record(started.elapsed().as_secs_f64());
                    if ok > 0 {
                        metrics.job_items(&queue, "ok").increment(ok);
                    }
                    if failed > 0 {
                        metrics.job_items(&queue, "error").increment(failed);
                    }
                }
                Err(e) => tracing::error!(job = %id, error = %e, "jobs: storing results failed; those items run again once the store writes again"),
            }
            changed.send_modify(|v| *v += 1);
        });
    }
}

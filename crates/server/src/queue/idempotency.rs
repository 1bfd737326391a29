//! Idempotency keys, for clients that retry (the guarantee of Kafka's
//! idempotent producer): an item carrying a key is executed once per key
//! and queue. A retry while the first is in flight waits for its answer; a
//! retry within `idempotency_window` after it was answered gets a copy of
//! that answer. Both are answered without a second execution.
//!
//! An answer is remembered only if its item reached a handler (it carries
//! a batch): an item refused or expired before dispatch never ran, so its
//! retry runs. Memory is bounded by `idempotency_max_keys` (keys in flight
//! plus answers remembered); a new key past it is refused
//! RESOURCE_EXHAUSTED, and remembered answers go when their window ends.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    Answer, Item, Policy, Reply,
    item::{Answered, Gathered},
    policy::MAX_IDEMPOTENCY_KEY_BYTES,
};
use crate::{
    error::Refusal,
    metrics::{KeyOutcome, Outcome, QueueMetrics},
};

/// The keys of one queue (all its shards).
#[derive(Debug)]
pub struct Keys {
    /// The queue's name, for refusals.
    queue: Arc<str>,
    /// Counters and the keys gauge.
    metrics: Arc<QueueMetrics>,
    /// The keys and the settings they are kept by.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// How long an answer is kept (zero: keys are ignored).
    window: Duration,
    /// Most entries.
    max_keys: usize,
    /// Every key in flight or remembered.
    entries: HashMap<Arc<str>, Entry>,
    /// Remembered keys by when they are forgotten, oldest first (an entry
    /// answered again later is found by its `until`).
    expiring: VecDeque<(Instant, Arc<str>)>,
}

#[derive(Debug)]
struct Entry {
    /// A fingerprint of the first item's payload: a retry must carry the
    /// same payload (a key reused for other work is refused).
    payload: u64,
    /// Where the key's execution is.
    state: Run,
}

#[derive(Debug)]
enum Run {
    /// Executing; the retries that came meanwhile wait here.
    InFlight(Vec<Reply>),
    /// Answered; kept for retries until `until`.
    Answered { answer: Answer, until: Instant },
}

/// A fingerprint of `payload` (SipHash with fixed keys: the same in every
/// process, which nothing relies on).
fn fingerprint(payload: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    payload.hash(&mut h);
    h.finish()
}

impl Keys {
    /// The keys of `queue`, kept as `policy` says.
    pub fn new(queue: Arc<str>, policy: &Policy, metrics: Arc<QueueMetrics>) -> Self {
        Self {
            queue,
            metrics,
            state: Mutex::new(State {
                window: policy.idempotency_window,
                max_keys: policy.idempotency_max_keys,
                entries: HashMap::new(),
                expiring: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the window and bound of a changed policy (kept answers stay
    /// until their own window ends).
    pub fn configure(&self, policy: &Policy) {
        let mut state = self.lock();
        state.window = policy.idempotency_window;
        state.max_keys = policy.idempotency_max_keys;
    }

    /// Keys in flight or remembered.
    pub fn count(&self) -> usize {
        self.lock().entries.len()
    }

    /// Admits `item`: an item to execute comes back (its answer will be
    /// remembered under its key); a retry of a known key, or a key refused
    /// because the store is full, is answered here and `None` comes back.
    pub fn admit(self: &Arc<Self>, item: Item) -> Option<Item> {
        let Some(key) = item.idempotency_key.clone() else {
            return Some(item);
        };
        if key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            let refusal = Refusal::IdempotencyKeyTooLong {
                len: key.len(),
                max: MAX_IDEMPOTENCY_KEY_BYTES,
            };
            item.reply.err(refusal.into(), None);
            self.metrics.items(Outcome::Rejected, 1);
            return None;
        }
        let now = Instant::now();
        let mut state = self.lock();
        if state.window.is_zero() {
            return Some(item);
        }
        state.expire(now);
        let full = state.entries.len() >= state.max_keys;
        let payload = fingerprint(&item.payload);
        if let Some(entry) = state.entries.get(&key)
            && entry.payload != payload
        {
            drop(state);
            let refusal = Refusal::IdempotencyKeyReused {
                key: key.to_string(),
            };
            item.reply.err(refusal.into(), None);
            self.metrics.items(Outcome::Rejected, 1);
            self.counted(KeyOutcome::Refused, None);
            return None;
        }
        match state.entries.get_mut(&key).map(|e| &mut e.state) {
            Some(Run::InFlight(waiting)) => {
                waiting.push(item.reply);
                drop(state);
                self.counted(KeyOutcome::Joined, None);
                None
            }
            Some(Run::Answered { answer, .. }) => {
                let answer = answer.clone();
                drop(state);
                item.reply.answer(answer);
                self.counted(KeyOutcome::Replayed, None);
                None
            }
            None if full => {
                let max = state.max_keys;
                drop(state);
                let status = Refusal::IdempotencyFull {
                    queue: self.queue.to_string(),
                    max,
                };
                item.reply.err(status.into(), None);
                self.metrics.items(Outcome::Rejected, 1);
                self.counted(KeyOutcome::Refused, None);
                None
            }
            None => {
                state.entries.insert(
                    key.clone(),
                    Entry {
                        payload,
                        state: Run::InFlight(Vec::new()),
                    },
                );
                let len = state.entries.len();
                drop(state);
                self.counted(KeyOutcome::First, Some(len));
                let keys = self.clone();
                Some(item.with_reply(|inner| {
                    Reply::Keyed(Box::new(KeyedReply {
                        key,
                        keys,
                        inner: Some(inner),
                    }))
                }))
            }
        }
    }

    fn counted(&self, outcome: KeyOutcome, len: Option<usize>) {
        self.metrics.idempotent(outcome);
        if let Some(len) = len {
            self.metrics.idempotency_keys.set(len as f64);
        }
    }

    /// Records the answer of `key`'s execution; returns the retries that
    /// waited for it.
    fn finish(&self, key: &Arc<str>, answer: &Answer) -> Vec<Reply> {
        let now = Instant::now();
        let mut state = self.lock();
        // Only the key's one execution finishes it, so it is in flight.
        let (payload, waiting) = match state.entries.remove(key) {
            Some(Entry {
                payload,
                state: Run::InFlight(waiting),
            }) => (payload, waiting),
            _ => return Vec::new(),
        };
        // Never dispatched: it did not run, so a retry may run it.
        if answer.batch.is_some() && !state.window.is_zero() {
            let until = now + state.window;
            state.entries.insert(
                key.clone(),
                Entry {
                    payload,
                    state: Run::Answered {
                        answer: answer.clone(),
                        until,
                    },
                },
            );
            state.expiring.push_back((until, key.clone()));
        }
        state.expire(now);
        self.metrics
            .idempotency_keys
            .set(state.entries.len() as f64);
        waiting
    }
}

impl State {
    /// Forgets the answers whose window has ended.
    fn expire(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiring.front() {
            if *until > now {
                break;
            }
            let Some((until, key)) = self.expiring.pop_front() else {
                break;
            };
            if matches!(self.entries.get(&key), Some(Entry { state: Run::Answered { until: u, .. }, .. }) if *u == until)
            {
                self.entries.remove(&key);
            }
        }
    }
}

/// The reply of a key's first item: its answer goes to the caller, to the
/// retries that waited, and into the store for later ones.
#[derive(Debug)]
pub struct KeyedReply {
    /// The item's key.
    key: Arc<str>,
    /// The store it is remembered in.
    keys: Arc<Keys>,
    /// The first caller's reply; taken when answered.
    inner: Option<Reply>,
}

impl Answered for KeyedReply {
    /// Answers the first caller and every retry waiting; `gathered` takes
    /// the first caller's stream answer if given.
    fn answer(mut self: Box<Self>, answer: Answer, gathered: Option<&mut Gathered>) {
        let waiting = self.keys.finish(&self.key, &answer);
        for reply in waiting {
            reply.answer(answer.clone());
        }
        if let Some(inner) = self.inner.take() {
            match gathered {
                Some(gathered) => inner.answer_into(answer, gathered),
                None => inner.answer(answer),
            }
        }
    }
}

impl Drop for KeyedReply {
    /// Never dropped unanswered by the queue; if it were, the key must not
    /// keep its retries waiting.
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let answer = Answer {
                result: Err(tonic::Status::unavailable(
                    "the item was dropped unanswered",
                )),
                batch: None,
            };
            for reply in self.keys.finish(&self.key, &answer) {
                reply.answer(answer.clone());
            }
            inner.answer(answer);
        }
    }
}

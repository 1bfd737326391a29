//! An item on its way through a queue, and the channel its one answer takes
//! back to the caller.
//!
//! A [`Reply`] is consumed by answering, so an item can be answered at most
//! once by construction; whoever holds it last (queue, batch, or drop path)
//! answers it, so it is answered at least once too. Answers are plain
//! [`Answer`]s; the API turns them into protobuf.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::budget::Charge;
use crate::{
    contract::{ItemOutput, ItemResult, Trigger},
    otel::ItemTrace,
};

/// The priority of background items (job items): below every priority
/// level, so an online item never waits behind one in its lane.
pub const BACKGROUND: u32 = u32::MAX;

/// One client request on its way to a queue.
#[derive(Debug)]
pub struct Item {
    /// Opaque bytes for the handler.
    pub payload: Bytes,
    /// String attributes for the handler.
    pub attributes: HashMap<String, String>,
    /// Priority level; higher goes first ([`BACKGROUND`]: after all).
    pub priority: u32,
    /// The timeout the request asked for, if any; the queue's default item
    /// timeout caps it.
    pub timeout: Option<Duration>,
    /// The call's own deadline (a unary call's `grpc-timeout`, less a
    /// margin): the item must be answered by then, queued or in its
    /// batch's handler. The queue owns it either way.
    pub answer_within: Option<Duration>,
    /// The client's request id (`x-request-id`), for the backend's logs.
    pub trace_id: Option<String>,
    /// The span of the call that brought it, for its batch span's link
    /// (only when traces are on).
    pub trace: Option<ItemTrace>,
    /// Its batch key from the request or its header (the queue may find
    /// one in its attributes instead); `None`: no key given.
    pub key: Option<Arc<str>>,
    /// Its cost from the request's `cost` field (the queue may find one in
    /// its attributes instead); `None`: not given.
    pub cost: Option<u64>,
    /// Its idempotency key from the request or its header; `None`: none
    /// (see `idempotency.rs`).
    pub idempotency_key: Option<Arc<str>>,
    /// Where the answer goes.
    pub reply: Reply,
    /// Its bytes of the server's memory budget, given back when it is
    /// answered (see `budget.rs`).
    pub charge: Charge,
}

/// Facts about the batch an item rode in, stamped on its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFacts {
    /// Server-unique batch id.
    pub id: u64,
    /// Items in the batch.
    pub size: u32,
    /// Why it closed.
    pub trigger: Trigger,
    /// How long this item waited for dispatch, microseconds.
    pub queued_us: u64,
    /// How long the batch had been in the handler when this item was
    /// answered, microseconds.
    pub handler_us: u64,
}

/// The one answer an item gets.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its output, or why it failed.
    pub result: ItemResult,
    /// The batch it rode in, if it was dispatched.
    pub batch: Option<BatchFacts>,
}

/// The answer of one stream item, with the client's id for it.
#[derive(Debug)]
pub struct StreamAnswer {
    /// The client's id for the item.
    pub id: String,
    /// The answer.
    pub answer: Answer,
}

/// The one-shot way back to whoever submitted an item.
#[derive(Debug)]
pub enum Reply {
    /// A unary `Submit` call waiting on its answer.
    Unary(oneshot::Sender<Answer>),
    /// An item of a `StreamSubmit` stream.
    Stream(StreamReply),
    /// A reply that does more with the answer than deliver it (the first
    /// item of an idempotency key: its answer is also kept for the key's
    /// retries, see `idempotency.rs`).
    Keyed(Box<dyn Answered>),
}

/// A reply that hands its answer on itself.
pub trait Answered: Send + std::fmt::Debug {
    /// Delivers the answer; a stream item's into `gathered` if given.
    fn answer(self: Box<Self>, answer: Answer, gathered: Option<&mut Gathered>);
}

impl Item {
    /// The item with its reply replaced by `f` of it.
    pub fn with_reply(self, f: impl FnOnce(Reply) -> Reply) -> Item {
        Item {
            reply: f(self.reply),
            ..self
        }
    }
}

/// Where a stream's answers go: a channel of answer groups (a batch's
/// answers for one stream travel as one message). It is unbounded: the
/// stream's window (permits taken before each item is read) bounds what
/// is in it, so answering never waits.
pub type StreamAnswers = mpsc::UnboundedSender<Vec<StreamAnswer>>;

/// The answer path of a stream item.
#[derive(Debug)]
pub struct StreamReply {
    /// The client's id for the item.
    pub id: String,
    /// The stream's answer channel.
    pub answers: StreamAnswers,
    /// Shared state of the stream, to see whether the client went away.
    pub link: Arc<StreamLink>,
}

/// Stream answers gathered while a batch answers several items at once,
/// sent as one message per stream by [`Gathered::send`].
#[derive(Debug, Default)]
pub struct Gathered {
    /// One group per stream (a stream may have two if its items were far
    /// apart in the batch).
    groups: Vec<(StreamAnswers, Vec<StreamAnswer>)>,
}

/// How many of the latest groups an answer looks through for its stream's:
/// a batch's items of one stream are mostly together.
const GROUPS_SEARCHED: usize = 8;

impl Gathered {
    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    fn push(&mut self, to: StreamAnswers, answer: StreamAnswer) {
        let group = self
            .groups
            .iter_mut()
            .rev()
            .take(GROUPS_SEARCHED)
            .find(|(tx, _)| tx.same_channel(&to));
        match group {
            Some((_, answers)) => answers.push(answer),
            None => self.groups.push((to, vec![answer])),
        }
    }

    /// Sends every group, one message per group.
    pub fn send(&mut self) {
        for (tx, answers) in self.groups.drain(..) {
            // A closed channel: the client went away, nobody reads.
            let _ = tx.send(answers);
        }
    }
}

/// State shared by a stream's reader, its outbound side and its items.
#[derive(Debug, Default)]
pub struct StreamLink {
    /// Set when the outbound stream was dropped: the client is gone.
    gone: AtomicBool,
    /// The status the stream ends with after its last answer (set when the
    /// server stopped reading early: shutdown, or a broken request stream).
    terminal: OnceLock<Status>,
}

impl StreamLink {
    /// Marks the client as gone; its queued items will be skipped.
    pub fn set_gone(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }

    /// Whether the client went away.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Sets the status the stream ends with; the first one set wins.
    pub fn end_with(&self, status: Status) {
        let _ = self.terminal.set(status);
    }

    /// The status the stream ends with, if not OK.
    pub fn terminal(&self) -> Option<Status> {
        self.terminal.get().cloned()
    }
}

impl Reply {
    /// Whether nobody waits for this answer any more (call cancelled,
    /// stream dropped), so the item need not be processed.
    pub fn is_gone(&self) -> bool {
        match self {
            Reply::Unary(tx) => tx.is_closed(),
            Reply::Stream(s) => s.link.is_gone(),
            // A retry may come for its answer: it runs either way.
            Reply::Keyed(_) => false,
        }
    }

    /// Delivers the answer.
    pub fn answer(self, answer: Answer) {
        match self {
            Reply::Unary(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Stream(s) => {
                let _ = s.answers.send(vec![StreamAnswer { id: s.id, answer }]);
            }
            Reply::Keyed(k) => k.answer(answer, None),
        }
    }

    /// Delivers the answer, a stream item's into `gathered` to go out with
    /// its stream's other answers (the caller sends them).
    pub fn answer_into(self, answer: Answer, gathered: &mut Gathered) {
        match self {
            Reply::Unary(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Stream(s) => gathered.push(s.answers, StreamAnswer { id: s.id, answer }),
            Reply::Keyed(k) => k.answer(answer, Some(gathered)),
        }
    }

    /// Delivers a successful result of batch `batch`.
    pub fn ok(self, output: ItemOutput, batch: BatchFacts) {
        self.answer(Answer {
            result: Ok(output),
            batch: Some(batch),
        });
    }

    /// Delivers a failure, with the batch the item rode in if it was
    /// dispatched.
    pub fn err(self, status: Status, batch: Option<BatchFacts>) {
        self.answer(Answer {
            result: Err(status),
            batch,
        });
    }
}

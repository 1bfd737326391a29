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
use tokio::sync::{mpsc::OwnedPermit, oneshot};
use tonic::Status;

use crate::{
    contract::{ItemOutput, ItemResult, Trigger},
    otel::ItemTrace,
};

/// One client request on its way to a queue.
#[derive(Debug)]
pub struct Item {
    /// Opaque bytes for the handler.
    pub payload: Bytes,
    /// String attributes for the handler.
    pub attributes: HashMap<String, String>,
    /// Priority level; higher goes first.
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
    /// Where the answer goes.
    pub reply: Reply,
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
#[derive(Debug)]
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
}

/// The answer path of a stream item: a reserved slot in the stream's
/// outbound channel, so answering never waits and never fails for room.
#[derive(Debug)]
pub struct StreamReply {
    /// The client's id for the item.
    pub id: String,
    /// A reserved place in the stream's bounded outbound channel; the
    /// stream's window is exactly these permits.
    pub permit: OwnedPermit<StreamAnswer>,
    /// Shared state of the stream, to see whether the client went away.
    pub link: Arc<StreamLink>,
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
        }
    }

    /// Delivers the answer.
    pub fn answer(self, answer: Answer) {
        match self {
            Reply::Unary(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Stream(s) => {
                s.permit.send(StreamAnswer { id: s.id, answer });
            }
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

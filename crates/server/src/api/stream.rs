//! `StreamSubmit`: one reader task per stream feeds items to their queues;
//! answers flow back through a channel, a batch's answers for the stream
//! as one message.
//!
//! The reader takes a permit of the stream's window *before* it reads an
//! item; the answer side gives permits back as answers arrive. So a stream
//! with `stream_window` unanswered items is simply not read further (HTTP/2
//! flow control then pushes back on the client), and since the window
//! bounds what the channel holds, answering never waits.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio_stream::Stream;
use tonic::{Status, Streaming};

use super::{ApiState, convert};
use crate::{
    api::receive::Received,
    error::Refusal,
    otel::ItemTrace,
    pb,
    queue::{
        Item, QueueHandle, Reply, StreamAnswer, StreamAnswers, StreamLink, StreamReply,
        budget::item_bytes,
    },
    ready::ready_now,
};

/// The response side of a `StreamSubmit` call.
///
/// It yields answers as they come, then ends with OK, or with the status
/// that stopped the reader early (shutdown, a broken request stream) once
/// every item read has been answered. Dropping it (the client went away)
/// marks the stream gone, so its queued items are skipped.
#[derive(Debug)]
pub struct OutStream {
    /// Answers from the queues, in groups.
    answers: mpsc::UnboundedReceiver<Vec<StreamAnswer>>,
    /// The group being yielded.
    group: std::vec::IntoIter<StreamAnswer>,
    /// The stream's window: a permit per unanswered item.
    window: Arc<Semaphore>,
    /// Shared with the reader and every item.
    link: Arc<StreamLink>,
    /// Set once the final status has been yielded.
    finished: bool,
}

impl Stream for OutStream {
    type Item = Result<pb::StreamResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if let Some(answer) = self.group.next() {
            return Poll::Ready(Some(Ok(convert::stream_response(answer))));
        }
        match self.answers.poll_recv(cx) {
            Poll::Ready(Some(group)) => {
                // Their items are answered: room for as many more.
                self.window.add_permits(group.len());
                self.group = group.into_iter();
                match self.group.next() {
                    Some(answer) => Poll::Ready(Some(Ok(convert::stream_response(answer)))),
                    // An empty group (none is sent): look again.
                    None => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(self.link.terminal().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for OutStream {
    fn drop(&mut self) {
        self.link.set_gone();
        // A reader waiting for room learns that nobody listens.
        self.window.close();
    }
}

/// Where a stream's items come from, for their traces.
#[derive(Debug, Default)]
pub struct Origin {
    /// The stream's `x-request-id`; each item's trace id is it plus `/` and
    /// the item's id.
    pub request_id: Option<String>,
    /// The stream's span (traces on): it lasts as long as the reader, and
    /// every item's batch links to it.
    pub span: Option<tracing::Span>,
    /// The stream's `x-batch-key` header: the key of items that name none.
    pub key: Option<Arc<str>>,
}

/// Starts serving one stream: spawns its reader, returns its answers;
/// `received` has the charges of its messages.
pub fn start(
    state: ApiState,
    inbound: Streaming<pb::StreamRequest>,
    origin: Origin,
    received: Received,
) -> OutStream {
    let (tx, rx) = mpsc::unbounded_channel();
    let window = Arc::new(Semaphore::new(state.stream_window));
    let link = Arc::new(StreamLink::default());
    let trace = origin.span.as_ref().and_then(crate::otel::link_of);
    let reader = read(
        state.clone(),
        inbound,
        (tx, window.clone()),
        link.clone(),
        (origin.request_id, trace, origin.key),
        received,
    );
    match origin.span {
        Some(span) => state
            .tasks
            .spawn(tracing::Instrument::instrument(reader, span)),
        None => state.tasks.spawn(reader),
    };
    OutStream {
        answers: rx,
        group: Vec::new().into_iter(),
        window,
        link,
        finished: false,
    }
}

/// Most items the reader hands to a queue in one command.
const CHUNK: usize = 128;

/// Items read but not yet handed to their queue, all for one queue.
struct Chunk {
    /// The queue they go to.
    queue: Option<QueueHandle>,
    /// The items.
    items: Vec<Item>,
    /// The charges of the stream's messages, one per item read.
    received: Received,
}

impl Chunk {
    /// Hands the gathered items to their queue.
    async fn flush(&mut self) {
        if let Some(queue) = &self.queue
            && !self.items.is_empty()
        {
            queue.submit_many(std::mem::take(&mut self.items)).await;
        }
    }
}

/// What became of one read.
enum Read {
    /// An item (its window permit taken).
    Item(Box<pb::StreamRequest>),
    /// The client half-closed.
    End,
    /// The request stream broke, or the server stops accepting.
    Stop(Status),
}

/// Reads items until the client half-closes, the request stream breaks, or
/// the server stops accepting. Items that are already buffered are handed
/// to their queue together, one command per chunk.
async fn read(
    state: ApiState,
    mut inbound: Streaming<pb::StreamRequest>,
    (tx, window): (StreamAnswers, Arc<Semaphore>),
    link: Arc<StreamLink>,
    origin: (Option<String>, Option<ItemTrace>, Option<Arc<str>>),
    received: Received,
) {
    let stop = state.stop_accepting.clone();
    // One registration for the whole stream; polled only when the reader
    // would otherwise wait, so a busy stream never touches the token.
    let stopped = stop.triggered();
    tokio::pin!(stopped);
    let mut chunk = Chunk {
        queue: None,
        items: Vec::new(),
        received,
    };
    'stream: loop {
        if stop.is_triggered() {
            link.end_with(Refusal::ShuttingDown.into());
            break;
        }
        // The first item of a chunk may wait for room in the window.
        match window.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => tokio::select! {
                permit = window.acquire() => match permit {
                    Ok(permit) => permit.forget(),
                    // Closed: the client dropped the response side.
                    Err(_) => break,
                },
                () = &mut stopped => {
                    link.end_with(Refusal::ShuttingDown.into());
                    break;
                }
            },
            // The client dropped the response side: nobody listens.
            Err(TryAcquireError::Closed) => break,
        }
        let first = tokio::select! {
            biased;
            message = inbound.message() => to_read(message),
            () = &mut stopped => Read::Stop(Refusal::ShuttingDown.into()),
        };
        let mut next = Some(first);
        // Then take whatever is already buffered, without waiting.
        while let Some(read) = next.take() {
            match read {
                Read::Item(request) => {
                    accept(&state, (&link, &tx), &origin, &mut chunk, *request).await;
                }
                Read::End => {
                    chunk.flush().await;
                    break 'stream;
                }
                Read::Stop(status) => {
                    chunk.flush().await;
                    link.end_with(status);
                    break 'stream;
                }
            }
            if chunk.items.len() >= CHUNK {
                break;
            }
            let Ok(permit) = window.try_acquire() else {
                break;
            };
            next = ready_now(std::pin::pin!(inbound.message())).map(to_read);
            // Kept only for an item read now.
            if next.is_some() {
                permit.forget();
            }
        }
        chunk.flush().await;
    }
}

fn to_read(message: Result<Option<pb::StreamRequest>, Status>) -> Read {
    match message {
        Ok(Some(request)) => Read::Item(Box::new(request)),
        Ok(None) => Read::End,
        Err(status) => Read::Stop(status),
    }
}

/// Turns one request into an item of the chunk, or answers it at once if
/// it is bad.
async fn accept(
    state: &ApiState,
    (link, answers): (&Arc<StreamLink>, &StreamAnswers),
    (request_id, trace, stream_key): &(Option<String>, Option<ItemTrace>, Option<Arc<str>>),
    chunk: &mut Chunk,
    request: pb::StreamRequest,
) {
    // Taken first, so the charges stay in step with the messages.
    let mut charge = chunk.received.next();
    let empty_id = request.id.is_empty();
    let trace_id = request_id.as_ref().map(|r| format!("{r}/{}", request.id));
    let reply = Reply::Stream(StreamReply {
        id: request.id,
        answers: answers.clone(),
        link: link.clone(),
    });
    if empty_id {
        return reply.err(Refusal::EmptyId.into(), None);
    }
    let same_queue = chunk
        .queue
        .as_ref()
        .is_some_and(|q| q.name() == request.queue && !q.is_closed());
    if !same_queue {
        chunk.flush().await;
        match state.queue(&request.queue) {
            Ok(q) => chunk.queue = Some(q),
            Err(refusal) => {
                chunk.queue = None;
                return reply.err(refusal.into(), None);
            }
        }
    }
    let bytes = item_bytes(request.payload.len(), &request.attributes);
    if state.budget.top_up(&mut charge, bytes).is_err() {
        // The items gathered may be what holds the budget: they go first,
        // then the stream waits for room (its client is held back).
        chunk.flush().await;
        if let Err(refusal) = state.budget.top_up_waiting(&mut charge, bytes).await {
            state.registry.count_rejected(&request.queue, 1);
            return reply.err(refusal.into(), None);
        }
    }
    let key = if request.batch_key.is_empty() {
        stream_key.clone()
    } else {
        Some(request.batch_key.into())
    };
    chunk.items.push(Item {
        key,
        payload: request.payload,
        attributes: request.attributes,
        priority: request.priority,
        timeout: convert::item_timeout(request.timeout_ms, None),
        answer_within: None,
        trace_id,
        trace: trace.clone(),
        cost: request.cost,
        idempotency_key: (!request.idempotency_key.is_empty())
            .then(|| request.idempotency_key.into()),
        reply,
        charge,
    });
}

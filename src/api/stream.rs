//! `StreamSubmit`: one reader task per stream feeds items to their queues;
//! answers flow back through a bounded channel whose capacity is the
//! stream's window.
//!
//! The reader reserves a place for an item's answer *before* it reads the
//! item, so every item read can always be answered without waiting, and a
//! stream with `stream_window` unanswered items is simply not read further
//! (HTTP/2 flow control then pushes back on the client).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Status, Streaming};

use super::{ApiState, convert};
use crate::{
    error::Refusal,
    pb,
    queue::{Item, QueueHandle, Reply, StreamLink, StreamReply},
};

/// The response side of a `StreamSubmit` call.
///
/// It yields answers as they come, then ends with OK, or with the status
/// that stopped the reader early (shutdown, a broken request stream) once
/// every item read has been answered. Dropping it (the client went away)
/// marks the stream gone, so its queued items are skipped.
#[derive(Debug)]
pub struct OutStream {
    /// Answers from the queues.
    answers: mpsc::Receiver<pb::StreamResponse>,
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
        match self.answers.poll_recv(cx) {
            Poll::Ready(Some(answer)) => Poll::Ready(Some(Ok(answer))),
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
    }
}

/// Starts serving one stream: spawns its reader, returns its answers.
/// `request_id` is the stream's `x-request-id`; each item's trace id is it
/// plus `/` and the item's id.
pub fn start(
    state: ApiState,
    inbound: Streaming<pb::StreamRequest>,
    request_id: Option<String>,
) -> OutStream {
    let (tx, rx) = mpsc::channel(state.stream_window);
    let link = Arc::new(StreamLink::default());
    let reader = read(state.clone(), inbound, tx, link.clone(), request_id);
    state.tasks.spawn(reader);
    OutStream {
        answers: rx,
        link,
        finished: false,
    }
}

/// Reads items until the client half-closes, the request stream breaks, or
/// the server stops accepting.
async fn read(
    state: ApiState,
    mut inbound: Streaming<pb::StreamRequest>,
    tx: mpsc::Sender<pb::StreamResponse>,
    link: Arc<StreamLink>,
    request_id: Option<String>,
) {
    let stop = state.stop_accepting.clone();
    // One registration for the whole stream; polled only when the reader
    // would otherwise wait, so a busy stream never touches the token.
    let stopped = stop.triggered();
    tokio::pin!(stopped);
    let mut queue: Option<QueueHandle> = None;
    loop {
        if stop.is_triggered() {
            break link.end_with(Refusal::ShuttingDown.into());
        }
        let permit = match tx.clone().try_reserve_owned() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(tx)) => tokio::select! {
                permit = tx.reserve_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut stopped => break link.end_with(Refusal::ShuttingDown.into()),
            },
            // The client dropped the response side: nobody listens.
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        };
        let message = tokio::select! {
            biased;
            message = inbound.message() => message,
            () = &mut stopped => break link.end_with(Refusal::ShuttingDown.into()),
        };
        let request = match message {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(status) => break link.end_with(status),
        };
        let empty_id = request.id.is_empty();
        let trace_id = request_id.as_ref().map(|r| format!("{r}/{}", request.id));
        let reply = Reply::Stream(StreamReply {
            id: request.id,
            permit,
            link: link.clone(),
        });
        if empty_id {
            reply.err(Refusal::EmptyId.into(), None);
            continue;
        }
        let target = match queue.take() {
            Some(q) if q.name() == request.queue && !q.is_closed() => q,
            _ => match state.queue(&request.queue) {
                Ok(q) => q,
                Err(refusal) => {
                    reply.err(refusal.into(), None);
                    continue;
                }
            },
        };
        target
            .submit(Item {
                payload: request.payload,
                attributes: request.attributes,
                priority: request.priority,
                timeout: convert::item_timeout(request.timeout_ms, None),
                trace_id,
                reply,
            })
            .await;
        queue = Some(target);
    }
}

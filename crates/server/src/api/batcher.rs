//! The `batchgate.v1.Batcher` service: `Submit` and `StreamSubmit`.

use tokio::sync::oneshot;
use tonic::{Request, Response, Status, Streaming};

use super::{ApiState, convert, receive::Received, stream};
use crate::{
    error::Refusal,
    otel,
    pb::{self, batcher_server::Batcher},
    queue::{
        Reply,
        budget::{Charge, item_bytes},
    },
};

/// The data-plane service.
#[derive(Debug, Clone)]
pub struct BatcherService {
    /// Shared state of every call.
    state: ApiState,
}

impl BatcherService {
    /// A service over the given state.
    pub fn new(state: ApiState) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Batcher for BatcherService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let queue = self.state.queue(&request.queue)?;
        // The message's charge, grown to the item's: held by this call
        // until its response has been sent (a cancelled call's item leaves
        // the queue before dispatch).
        let mut charge = Received::of(&extensions).next();
        let bytes = item_bytes(request.payload.len(), &request.attributes);
        self.state.top_up(&request.queue, &mut charge, bytes, 1)?;
        // Traces on: the call's span, ended when this future is.
        let span = otel::submit_span(&request.queue, &metadata);
        let (tx, rx) = oneshot::channel();
        let mut item = convert::unary_item(request, &metadata, Reply::Unary(tx), Charge::none());
        item.trace = span.as_ref().and_then(otel::link_of);
        let keyed = item.idempotency_key.is_some();
        queue.submit(item).await;
        // The queue owns the call's deadline (it answers DEADLINE_EXCEEDED
        // just before tonic's own timer would say CANCELLED), queued or in
        // the handler. If this future is dropped (the client cancelled),
        // `rx` goes with it and the queue skips the item before dispatch.
        // An idempotent item is its key's: it runs on whatever this caller
        // does, so the caller waits here with its own deadline.
        let answer = match convert::call_deadline(&metadata).filter(|_| keyed) {
            Some(within) => tokio::time::timeout(within, rx)
                .await
                .map_err(|_| Refusal::GaveUpWaiting)?,
            None => rx.await,
        };
        if let (Some(span), Ok(answer)) = (&span, &answer) {
            let code = answer
                .result
                .as_ref()
                .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
            otel::record_answer(span, answer.batch.map(|b| (b.id, b.size)), code);
        }
        match answer {
            Ok(answer) => {
                let mut response = Response::new(convert::submit_response(answer)?);
                let bytes = response.get_ref().payload.len();
                self.state.keep(charge, bytes, &mut response);
                Ok(response)
            }
            Err(_) => Err(Status::internal("item was dropped without an answer")),
        }
    }

    type StreamSubmitStream = stream::OutStream;

    async fn stream_submit(
        &self,
        request: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamSubmitStream>, Status> {
        let origin = stream::Origin {
            request_id: convert::request_id(request.metadata()),
            span: otel::stream_span(request.metadata()),
            key: convert::header_key(request.metadata()),
        };
        let received = Received::of(request.extensions());
        Ok(Response::new(stream::start(
            self.state.clone(),
            request.into_inner(),
            origin,
            received,
        )))
    }
}

//! The limit: a bare tonic server with batchgate's own `Batcher` messages
//! and no batching at all. `Submit` answers at once; `StreamSubmit` answers
//! each item as it is read. Whatever it reaches on a machine is the most any
//! gRPC service with these message shapes can do there.
//!
//! The same server also implements `batchgate.v1.Backend` as an echo, so a
//! queue can send its batches to it: the cost of a remote backend hop,
//! measured against the built-in echo handler.

use std::{pin::Pin, sync::Arc};

use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming, transport::server::TcpIncoming};

use batchgate::pb::{
    self,
    backend_server::{Backend, BackendServer},
    batcher_server::{Batcher, BatcherServer},
};

/// The no-batching echo service.
#[derive(Debug, Clone, Default)]
pub struct BareEcho {
    /// As a Backend: how long each batch takes before its answer (a model's
    /// time, for spreading batches over replicas of unequal speed).
    pub batch_delay: std::time::Duration,
    /// Held for each batch's time when set: one batch at a time, as on a
    /// GPU, so calls in flight wait for each other.
    pub serial: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl BareEcho {
    async fn model_time(&self) {
        if self.batch_delay.is_zero() {
            return;
        }
        let _turn = match &self.serial {
            Some(serial) => Some(serial.lock().await),
            None => None,
        };
        tokio::time::sleep(self.batch_delay).await;
    }
}

fn echo(
    payload: bytes::Bytes,
    attributes: std::collections::HashMap<String, String>,
) -> pb::SubmitResponse {
    pb::SubmitResponse {
        payload,
        attributes,
        batch: Some(pb::BatchInfo {
            batch_id: 0,
            batch_size: 1,
            trigger: pb::Trigger::Unspecified as i32,
            queued_us: 0,
            handler_us: 0,
        }),
    }
}

#[tonic::async_trait]
impl Batcher for BareEcho {
    async fn submit(
        &self,
        r: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let r = r.into_inner();
        Ok(Response::new(echo(r.payload, r.attributes)))
    }

    type StreamSubmitStream =
        Pin<Box<dyn Stream<Item = Result<pb::StreamResponse, Status>> + Send>>;

    async fn stream_submit(
        &self,
        r: Request<Streaming<pb::StreamRequest>>,
    ) -> Result<Response<Self::StreamSubmitStream>, Status> {
        let mut inbound = r.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(Ok(item)) = inbound.next().await {
                let response = pb::StreamResponse {
                    id: item.id,
                    outcome: Some(pb::stream_response::Outcome::Result(echo(
                        item.payload,
                        item.attributes,
                    ))),
                };
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl Backend for BareEcho {
    async fn process_batch(
        &self,
        r: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        self.model_time().await;
        let results = r.into_inner().items.into_iter().map(echo_item).collect();
        Ok(Response::new(pb::BatchResponse {
            results,
            ..Default::default()
        }))
    }

    type ProcessBatchStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::ItemResult, Status>> + Send>>;

    async fn process_batch_stream(
        &self,
        r: Request<pb::BatchRequest>,
    ) -> Result<Response<Self::ProcessBatchStreamStream>, Status> {
        self.model_time().await;
        let results: Vec<_> = r
            .into_inner()
            .items
            .into_iter()
            .map(|i| Ok(echo_item(i)))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(results))))
    }
}

fn echo_item(item: pb::BackendItem) -> pb::ItemResult {
    pb::ItemResult {
        index: item.index,
        outcome: Some(pb::item_result::Outcome::Ok(pb::ItemOutput {
            payload: item.payload,
            attributes: item.attributes,
        })),
    }
}

/// Serves `echo` on `listener` until the process ends.
///
/// # Errors
/// The server's transport error.
pub async fn serve(listener: TcpListener, echo: BareEcho) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(BatcherServer::new(echo.clone()))
        .add_service(BackendServer::new(echo))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
}

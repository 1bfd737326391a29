//! A `batchgate.v1.Backend` that upper-cases every payload, for tests that
//! need a real remote backend and care only that items get through.

use std::pin::Pin;

use batchgate::pb::{
    BatchRequest, BatchResponse, ItemOutput, ItemResult, backend_server::Backend,
    item_result::Outcome,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Upper-cases payloads; the streaming variant is not offered.
#[derive(Debug, Clone, Copy)]
pub struct Upper;

#[tonic::async_trait]
impl Backend for Upper {
    async fn process_batch(
        &self,
        r: Request<BatchRequest>,
    ) -> Result<Response<BatchResponse>, Status> {
        let results = r
            .into_inner()
            .items
            .into_iter()
            .map(|i| ItemResult {
                index: i.index,
                outcome: Some(Outcome::Ok(ItemOutput {
                    payload: i.payload.to_ascii_uppercase().into(),
                    attributes: Default::default(),
                })),
            })
            .collect();
        Ok(Response::new(BatchResponse {
            results,
            ..Default::default()
        }))
    }

    type ProcessBatchStreamStream = Pin<Box<dyn Stream<Item = Result<ItemResult, Status>> + Send>>;

    async fn process_batch_stream(
        &self,
        _: Request<BatchRequest>,
    ) -> Result<Response<Self::ProcessBatchStreamStream>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

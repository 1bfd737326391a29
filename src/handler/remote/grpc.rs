//! Calling a `batchgate.v1.Backend` endpoint.

use tonic::Status;

use super::{CallError, CallInput};
use crate::{
    contract::ItemOutput,
    pb::{self, backend_client::BackendClient, item_result::Outcome},
};

/// Sends the items of `input` in one call and delivers each result.
pub(super) async fn call(
    mut client: BackendClient<tonic::transport::Channel>,
    input: &CallInput<'_>,
    streaming: bool,
    deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>),
) -> Result<(), CallError> {
    let batch = input.batch;
    let items = input
        .indexes
        .iter()
        .map(|&i| pb::BackendItem {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            payload: batch.items[i].payload.clone(),
            attributes: batch.items[i].attributes.clone(),
            trace_id: input.trace_id(i),
        })
        .collect();
    let timeout_ms = input.timeout_ms();
    let mut request = tonic::Request::new(pb::BatchRequest {
        batch_id: batch.id,
        queue: batch.queue.to_string(),
        timeout_ms,
        items,
        trigger: pb::Trigger::from(batch.trigger) as i32,
    });
    request.set_timeout(std::time::Duration::from_millis(u64::from(timeout_ms)));
    if streaming {
        let mut results = client
            .process_batch_stream(request)
            .await
            .map_err(CallError::from_status)?
            .into_inner();
        while let Some(result) = results.message().await.map_err(CallError::from_status)? {
            deliver_one(result, deliver);
        }
    } else {
        let response = client
            .process_batch(request)
            .await
            .map_err(CallError::from_status)?
            .into_inner();
        for result in response.results {
            deliver_one(result, deliver);
        }
    }
    Ok(())
}

fn deliver_one(result: pb::ItemResult, deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>)) {
    let outcome = match result.outcome {
        Some(Outcome::Ok(out)) => Ok(ItemOutput {
            payload: out.payload,
            attributes: out.attributes,
        }),
        Some(Outcome::Error(e)) => Err(super::item_error(e.code, e.message)),
        None => Err(Status::internal("backend result has neither ok nor error")),
    };
    deliver(result.index, outcome);
}

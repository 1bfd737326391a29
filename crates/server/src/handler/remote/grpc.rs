//! Calling a `batchgate.v1.Backend` endpoint, with a message per item or
//! packed (see [`super::packed`]).

use tonic::Status;

use super::{
    call::{CallError, CallInput, item_error},
    packed,
};
use crate::{
    contract::ItemOutput,
    handler::config::Encoding,
    pb::{self, backend_client::BackendClient, item_result::Outcome},
};

/// Sends the items of `input` in one call and delivers each result.
pub(super) async fn call(
    mut client: BackendClient<tonic::transport::Channel>,
    input: &CallInput<'_>,
    (streaming, encoding): (bool, Encoding),
    headers: &[(&'static str, String)],
    deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>),
) -> Result<(), CallError> {
    let batch = input.batch;
    let is_packed = encoding == Encoding::Packed;
    let (items, packed) = if is_packed {
        let packed = packed::pack(input.indexes.iter().map(|&i| &batch.items[i]))
            .map_err(|e| CallError::Rejected(Status::internal(e)))?;
        (Vec::new(), Some(packed))
    } else {
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
        (items, None)
    };
    let timeout_ms = input.timeout_ms();
    let mut request = tonic::Request::new(pb::BatchRequest {
        batch_id: batch.id,
        queue: batch.queue.to_string(),
        timeout_ms,
        items,
        trigger: pb::Trigger::from(batch.trigger) as i32,
        packed,
        pad_to: input.pad_to(),
        batch_key: batch.key.as_deref().unwrap_or_default().to_owned(),
    });
    request.set_timeout(std::time::Duration::from_millis(u64::from(timeout_ms)));
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert(*name, value);
        }
    }
    // In a packed call results name positions; map them to batch indexes.
    let mut answers = Answers {
        sent: input.indexes,
        by_position: is_packed,
        deliver,
    };
    if streaming {
        let mut results = client
            .process_batch_stream(request)
            .await
            .map_err(CallError::from_status)?
            .into_inner();
        while let Some(result) = results.message().await.map_err(CallError::from_status)? {
            answers.result(result);
        }
    } else {
        let response = client
            .process_batch(request)
            .await
            .map_err(CallError::from_status)?
            .into_inner();
        answers.response(response)?;
    }
    Ok(())
}

/// Turns a backend's answers into deliveries by batch index.
struct Answers<'a, F> {
    /// The batch index of each item the call carried, by position.
    sent: &'a [usize],
    /// Whether an `ItemResult.index` names a position (a packed request)
    /// rather than a batch index.
    by_position: bool,
    deliver: &'a mut F,
}

impl<F: FnMut(u32, Result<ItemOutput, Status>)> Answers<'_, F> {
    fn result(&mut self, result: pb::ItemResult) {
        let outcome = match result.outcome {
            Some(Outcome::Ok(out)) => Ok(ItemOutput {
                payload: out.payload,
                attributes: out.attributes,
            }),
            Some(Outcome::Error(e)) => Err(item_error(e.code, e.message)),
            None => Err(Status::internal("backend result has neither ok nor error")),
        };
        if self.by_position {
            self.at_position(result.index, outcome);
        } else {
            (self.deliver)(result.index, outcome);
        }
    }

    /// Delivers the answer for the item at `position` of the call; an
    /// answer for a position past its items is ignored.
    fn at_position(&mut self, position: u32, outcome: Result<ItemOutput, Status>) {
        match self.sent.get(position as usize) {
            Some(&i) => (self.deliver)(u32::try_from(i).unwrap_or(u32::MAX), outcome),
            None => tracing::warn!(
                position,
                "backend answered a position past the request's items; ignored"
            ),
        }
    }

    /// A whole response: the packed answer (checked first, all or
    /// nothing), its errors, then any per-item results.
    fn response(&mut self, response: pb::BatchResponse) -> Result<(), CallError> {
        let count = self.sent.len();
        let outputs = match response.packed {
            Some(p) => {
                if p.count as usize != count {
                    return Err(bad_answer(format!(
                        "{} packed results for {count} items",
                        p.count
                    )));
                }
                packed::unpack(p).map_err(bad_answer)?
            }
            None => Vec::new(),
        };
        let mut failed = vec![false; count];
        for e in response.errors {
            let status = match e.error {
                Some(e) => item_error(e.code, e.message),
                None => Status::unknown("backend reported a failure without a status"),
            };
            if let Some(slot) = failed.get_mut(e.position as usize) {
                *slot = true;
            }
            self.at_position(e.position, Err(status));
        }
        for (position, output) in outputs.into_iter().enumerate() {
            if !failed[position] {
                self.at_position(u32::try_from(position).unwrap_or(u32::MAX), Ok(output));
            }
        }
        for result in response.results {
            self.result(result);
        }
        Ok(())
    }
}

fn bad_answer(problem: String) -> CallError {
    CallError::BadAnswer(Status::internal(format!(
        "backend's packed answer is malformed: {problem}"
    )))
}

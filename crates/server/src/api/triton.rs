//! Triton's extensions of the Open Inference Protocol, as tritonclient and
//! perf_analyzer use them: streaming inference (`ModelStreamInfer`, answers
//! in completion order, each with its request's id), a model's
//! configuration (`ModelConfig`: the queue's batching as Triton's
//! `max_batch_size` and `dynamic_batching`), cumulative statistics
//! (`ModelStatistics`: Triton's success / fail / queue / compute split,
//! from the queue's counters) and the models served (`RepositoryIndex`).

use std::{pin::Pin, sync::Arc};

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Status, Streaming};

use super::receive::Received;
use crate::{
    oip::{DataType, TensorSpec, pb},
    registry::{QueueEntry, Registry},
};

/// Requests of one stream in progress at once; the next message is read
/// when one ends (the memory budget bounds their bytes too).
const STREAM_IN_FLIGHT: usize = 4_096;

/// The answers of a `ModelStreamInfer` call.
pub type AnswerStream =
    Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

/// One inference as the stream runs it: the call's metadata, the
/// request's charge, the request.
pub type Infer = Arc<
    dyn Fn(
            tonic::metadata::MetadataMap,
            crate::queue::budget::Charge,
            pb::ModelInferRequest,
        ) -> crate::handler::BoxFuture<'static, Result<pb::ModelInferResponse, Status>>
        + Send
        + Sync,
>;

/// Runs every request of the stream with `infer` (a `ModelInfer`) and
/// sends each answer as it is ready; a request that fails is answered
/// with its error message (and its id), the stream goes on. The call's
/// `grpc-timeout` is the stream's, not each request's.
pub fn stream_infer(
    infer: Infer,
    request: Request<Streaming<pb::ModelInferRequest>>,
) -> AnswerStream {
    let (mut metadata, extensions, mut requests) = request.into_parts();
    metadata.remove("grpc-timeout");
    let received = Received::of(&extensions);
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(STREAM_IN_FLIGHT));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let r = match requests.next().await {
                Some(Ok(r)) => r,
                Some(Err(status)) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => return,
            };
            let charge = received.next();
            let (infer, metadata, tx) = (infer.clone(), metadata.clone(), tx.clone());
            tokio::spawn(async move {
                let (id, model_name, model_version) =
                    (r.id.clone(), r.model_name.clone(), r.model_version.clone());
                let answer = match infer(metadata, charge, r).await {
                    Ok(response) => pb::ModelStreamInferResponse {
                        error_message: String::new(),
                        infer_response: Some(response),
                    },
                    Err(status) => pb::ModelStreamInferResponse {
                        error_message: format!("{:?}: {}", status.code(), status.message()),
                        infer_response: Some(pb::ModelInferResponse {
                            model_name,
                            model_version,
                            id,
                            ..Default::default()
                        }),
                    },
                };
                let _ = tx.send(Ok(answer)).await;
                drop(slot);
            });
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Triton's name of a datatype.
fn data_type(t: DataType) -> pb::DataType {
    match t {
        DataType::Bool => pb::DataType::TypeBool,
        DataType::Uint8 => pb::DataType::TypeUint8,
        DataType::Uint16 => pb::DataType::TypeUint16,
        DataType::Uint32 => pb::DataType::TypeUint32,
        DataType::Uint64 => pb::DataType::TypeUint64,
        DataType::Int8 => pb::DataType::TypeInt8,
        DataType::Int16 => pb::DataType::TypeInt16,
        DataType::Int32 => pb::DataType::TypeInt32,
        DataType::Int64 => pb::DataType::TypeInt64,
        DataType::Fp16 => pb::DataType::TypeFp16,
        DataType::Fp32 => pb::DataType::TypeFp32,
        DataType::Fp64 => pb::DataType::TypeFp64,
        DataType::Bf16 => pb::DataType::TypeBf16,
        DataType::Bytes => pb::DataType::TypeString,
    }
}

/// One row's dims (a row of one value: `[1]`, as Triton writes it).
fn dims(t: &TensorSpec) -> Vec<i64> {
    if t.shape.is_empty() {
        return vec![1];
    }
    t.shape.clone()
}

/// The model config of queue `name`: its tensors, and its batching as
/// Triton's (max_batch_size, and a dynamic batcher with the queue's
/// delay, allowed sizes and priority levels).
pub fn config(name: &str, entry: &QueueEntry) -> pb::ModelConfigResponse {
    let policy = &entry.config.policy;
    let model = entry.model.as_deref();
    let inputs = model.map_or(&[][..], |m| &m.inputs[..]);
    let outputs = model.map_or(&[][..], |m| &m.outputs[..]);
    let batching = pb::ModelDynamicBatching {
        preferred_batch_size: policy
            .allowed_batch_sizes
            .iter()
            .map(|&n| i32::try_from(n).unwrap_or(i32::MAX))
            .collect(),
        max_queue_delay_microseconds: u64::try_from(policy.max_delay.as_micros())
            .unwrap_or(u64::MAX),
        preserve_ordering: false,
        priority_levels: u64::from(policy.priority_levels),
        // Triton's levels are 1 (highest) ..= priority_levels; a request
        // without one goes in the lowest, as batchgate's priority 0.
        default_priority_level: u64::from(policy.priority_levels),
    };
    pb::ModelConfigResponse {
        config: Some(pb::ModelConfig {
            name: name.to_owned(),
            platform: "batchgate".to_owned(),
            backend: entry.config.handler.kind.as_str().to_owned(),
            max_batch_size: i32::try_from(policy.max_batch_size).unwrap_or(i32::MAX),
            input: inputs
                .iter()
                .map(|t| pb::ModelInput {
                    name: t.name.clone(),
                    data_type: data_type(t.datatype) as i32,
                    dims: dims(t),
                })
                .collect(),
            output: outputs
                .iter()
                .map(|t| pb::ModelOutput {
                    name: t.name.clone(),
                    data_type: data_type(t.datatype) as i32,
                    dims: dims(t),
                })
                .collect(),
            scheduling_choice: Some(pb::model_config::SchedulingChoice::DynamicBatching(
                batching,
            )),
        }),
    }
}

fn duration(count: u64, ns: u64) -> Option<pb::StatisticDuration> {
    Some(pb::StatisticDuration { count, ns })
}

/// The statistics of the named models (queues that serve one): `success`
/// and `fail` count the v2 requests (their rows are the inferences),
/// `queue` and `compute_infer` the queue's items (a row, or a request with
/// `rows = "together"`): their time in the queue, their batch's handler
/// time. Each is a count and a sum, so an average per item is `ns / count`.
pub fn statistics(registry: &Registry, names: Vec<String>) -> pb::ModelStatisticsResponse {
    let model_stats = names
        .into_iter()
        .filter_map(|name| {
            let entry = registry.entry(&name).ok()?;
            let counts = entry.metrics.counts();
            let totals = entry.metrics.totals();
            Some(pb::ModelStatistics {
                version: entry
                    .model
                    .as_ref()
                    .map(|m| m.version.clone())
                    .unwrap_or_default(),
                name,
                last_inference: totals.last_ms,
                inference_count: totals.request_rows,
                execution_count: counts.batches,
                inference_stats: Some(pb::InferStatistics {
                    success: duration(totals.requests_ok, totals.request_ns),
                    fail: duration(totals.requests_failed, 0),
                    queue: duration(totals.queued, totals.queue_ns),
                    compute_input: duration(totals.answered, 0),
                    compute_infer: duration(totals.answered, totals.compute_ns),
                    compute_output: duration(totals.answered, 0),
                }),
                batch_stats: Vec::new(),
            })
        })
        .collect();
    pb::ModelStatisticsResponse { model_stats }
}

/// Every queue that serves a model, ready unless it is closed or the
/// server is stopping.
pub fn index(registry: &Registry, stopping: bool, ready_only: bool) -> pb::RepositoryIndexResponse {
    let models = registry
        .model_names()
        .into_iter()
        .filter_map(|name| {
            let crate::registry::ModelEntry { queue, model, .. } = registry.model(&name)?;
            let ready = !stopping && !queue.is_closed();
            (ready || !ready_only).then(|| pb::repository_index_response::ModelIndex {
                version: model.map(|m| m.version.clone()).unwrap_or_default(),
                state: if ready { "READY" } else { "UNAVAILABLE" }.to_owned(),
                reason: if ready {
                    String::new()
                } else {
                    "the server is stopping or the queue is closed".to_owned()
                },
                name,
            })
        })
        .collect();
    pb::RepositoryIndexResponse { models }
}

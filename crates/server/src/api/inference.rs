//! The Open Inference Protocol front door (`inference.GRPCInferenceService`,
//! KServe v2): a model name is a queue name. A ModelInfer request of N rows
//! (dim 0 = N) becomes N items of that queue, each the row of every input
//! (see [`crate::oip::model`]), or one item with `rows = "together"`; the
//! answers are stacked back into the response's tensors, in order. One row
//! failing fails the request with that row's status.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use super::{
    ApiState,
    call::{Call, item},
    receive::Received,
    tensors::{
        Inputs, bad, read_inputs, requested_outputs, row_payload, row_shape, stack_outputs,
        whole_payload,
    },
};
use crate::{
    error::{Refusal, quoted},
    oip::{
        ModelSpec, Rows, TensorSpec,
        pb::{self, grpc_inference_service_server::GrpcInferenceService},
    },
    queue::{
        Answer, QueueHandle, Reply,
        budget::{Charge, item_bytes},
    },
    registry::ModelEntry,
};

/// Items handed to a queue per command (as a stream does).
const CHUNK: usize = 128;

/// The v2 data-plane service.
#[derive(Debug, Clone)]
pub struct InferenceService {
    /// Shared state of every call.
    state: ApiState,
}

impl InferenceService {
    /// A service over the given state.
    pub fn new(state: ApiState) -> Self {
        Self { state }
    }

    /// The queue serving model `name` at `version` ("" for its own), its
    /// model and its priority levels.
    fn model(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(QueueHandle, Arc<ModelSpec>, u32), Status> {
        if self.state.stop_accepting.is_triggered() {
            // Counted and refused as for any item at shutdown.
            self.state.queue(name)?;
        }
        let ModelEntry {
            queue,
            model,
            priority_levels,
        } = self
            .state
            .registry
            .model(name)
            .ok_or_else(|| Status::not_found(format!("no model named {}", quoted(name))))?;
        let model = model.ok_or_else(|| {
            Status::not_found(format!(
                "queue {name:?} serves no v2 model (its config declares no v2 = {{ inputs, outputs }})"
            ))
        })?;
        if !version.is_empty() && version != model.version {
            return Err(Status::not_found(format!(
                "model {name:?} has no version {} (it serves version {:?})",
                quoted(version),
                model.version
            )));
        }
        Ok((queue, model, priority_levels))
    }
}

impl InferenceService {
    /// Whether a request of `rows` rows may enter `queue` as a whole, before
    /// any item is built: within the model's `max_rows_per_request`, the
    /// queue's room and the server's memory budget, into which `charge`
    /// (the message's) grows to cover every item.
    fn admit(
        &self,
        queue: &QueueHandle,
        model: &ModelSpec,
        rows: usize,
        input_bytes: usize,
        charge: &mut Charge,
    ) -> Result<(), Status> {
        if rows > model.max_rows_per_request {
            return Err(bad(format!(
                "the request has {rows} rows; model {} takes at most {} per request (v2.max_rows_per_request)",
                quoted(queue.name()),
                model.max_rows_per_request
            )));
        }
        // A row's bytes: the inputs' bytes shared out (BYTES rows vary).
        let (items, per_item) = match model.rows {
            Rows::Split => (rows, item_bytes(input_bytes.div_ceil(rows.max(1)), [])),
            Rows::Together => (1, item_bytes(input_bytes, [])),
        };
        let (room, limit) = queue.room();
        if items > room {
            queue.count_rejected(items as u64);
            return Err(Refusal::NoRoomFor {
                queue: queue.name().to_owned(),
                items,
                room,
                limit,
            }
            .into());
        }
        let bytes = per_item.saturating_mul(items);
        self.state
            .top_up(queue.name(), charge, bytes, items as u64)?;
        Ok(())
    }
}

fn metadata_of(t: &TensorSpec) -> pb::model_metadata_response::TensorMetadata {
    pb::model_metadata_response::TensorMetadata {
        name: t.name.clone(),
        datatype: t.datatype.as_str().to_owned(),
        shape: row_shape(-1, t),
    }
}

/// Hands the payloads to the queue and waits for every answer, in order
/// (the call holds their charge).
async fn submit_rows(
    queue: &QueueHandle,
    payloads: Vec<Bytes>,
    call: &Call,
) -> Result<Vec<Bytes>, Status> {
    let mut waiting = Vec::with_capacity(payloads.len());
    let mut payloads = payloads.into_iter().peekable();
    while payloads.peek().is_some() {
        let mut items = Vec::with_capacity(CHUNK);
        for payload in payloads.by_ref().take(CHUNK) {
            let (tx, rx) = oneshot::channel();
            items.push(item(payload, call, Reply::Unary(tx), Charge::none()));
            waiting.push(rx);
        }
        queue.submit_many(items).await;
    }
    let mut answers = Vec::with_capacity(waiting.len());
    for rx in waiting {
        let Answer { result, .. } = rx
            .await
            .map_err(|_| Status::internal("item was dropped without an answer"))?;
        answers.push(result?.payload);
    }
    Ok(answers)
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let ready = !self.stopping();
        Ok(Response::new(pb::ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        r: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready = self.is_ready(&r.name, &r.version);
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "batchgate".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // Triton's names of the extensions served (perf_analyzer
            // reports server-side times only with "statistics").
            extensions: vec!["model_configuration".to_owned(), "statistics".to_owned()],
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        self.metadata(&r.name, &r.version).map(Response::new)
    }

    async fn model_infer(
        &self,
        r: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let (metadata, extensions, r) = r.into_parts();
        let charge = Received::of(&extensions).next();
        let (response, charge, bytes) = self.infer(&metadata, charge, r).await?;
        let mut response = Response::new(response);
        self.state.keep(charge, bytes, &mut response);
        Ok(response)
    }

    type ModelStreamInferStream = super::triton::AnswerStream;

    async fn model_stream_infer(
        &self,
        r: Request<tonic::Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let service = self.clone();
        let infer: super::triton::Infer = Arc::new(move |metadata, charge, r| {
            let service = service.clone();
            Box::pin(async move {
                let (response, _charge, _) = service.infer(&metadata, charge, r).await?;
                Ok(response)
            })
        });
        Ok(Response::new(super::triton::stream_infer(infer, r)))
    }

    async fn model_config(
        &self,
        r: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let r = r.into_inner();
        self.config(&r.name, &r.version).map(Response::new)
    }

    async fn model_statistics(
        &self,
        r: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let r = r.into_inner();
        self.statistics(&r.name, &r.version).map(Response::new)
    }

    async fn repository_index(
        &self,
        r: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        Ok(Response::new(self.index(r.into_inner().ready)))
    }
}

/// What both sides of the protocol (gRPC and REST) answer alike.
impl InferenceService {
    /// A charge of `bytes` on the server's memory budget (a REST body,
    /// before it is read).
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the budget has no room for it.
    pub(super) fn charge(&self, bytes: usize) -> Result<Charge, Status> {
        let mut charge = Charge::none();
        self.grow(&mut charge, bytes)?;
        Ok(charge)
    }

    /// Grows `charge` to at least `bytes`.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the budget has no room for it.
    pub(super) fn grow(&self, charge: &mut Charge, bytes: usize) -> Result<(), Status> {
        if bytes > charge.bytes() {
            self.state.budget.top_up(charge, bytes)?;
        }
        Ok(())
    }

    /// Whether shutdown began.
    pub(super) fn stopping(&self) -> bool {
        self.state.stop_accepting.is_triggered()
    }

    /// Whether model `name` (at `version`) takes requests.
    pub(super) fn is_ready(&self, name: &str, version: &str) -> bool {
        !self.stopping()
            && self
                .model(name, version)
                .is_ok_and(|(queue, _, _)| !queue.is_closed())
    }

    /// A model's tensors.
    pub(super) fn metadata(
        &self,
        name: &str,
        version: &str,
    ) -> Result<pb::ModelMetadataResponse, Status> {
        let (_, model, _) = self.model(name, version)?;
        Ok(pb::ModelMetadataResponse {
            name: name.to_owned(),
            versions: vec![model.version.clone()],
            platform: "batchgate".to_owned(),
            inputs: model.inputs.iter().map(metadata_of).collect(),
            outputs: model.outputs.iter().map(metadata_of).collect(),
        })
    }

    /// A model's configuration (Triton's).
    pub(super) fn config(
        &self,
        name: &str,
        version: &str,
    ) -> Result<pb::ModelConfigResponse, Status> {
        self.model(name, version)?;
        let entry = (self.state.registry)
            .entry(name)
            .map_err(|_| Status::not_found(format!("no model named {}", quoted(name))))?;
        Ok(super::triton::config(name, &entry))
    }

    /// One model's statistics, or every model's (`name` empty).
    pub(super) fn statistics(
        &self,
        name: &str,
        version: &str,
    ) -> Result<pb::ModelStatisticsResponse, Status> {
        let names = if name.is_empty() {
            self.state.registry.model_names()
        } else {
            self.model(name, version)?;
            vec![name.to_owned()]
        };
        Ok(super::triton::statistics(&self.state.registry, names))
    }

    /// The models served.
    pub(super) fn index(&self, ready_only: bool) -> pb::RepositoryIndexResponse {
        super::triton::index(&self.state.registry, self.stopping(), ready_only)
    }
}

impl InferenceService {
    /// One inference: the response, the charge that covers it and its
    /// bytes (for [`ApiState::keep`]).
    pub(super) async fn infer(
        &self,
        metadata: &MetadataMap,
        charge: Charge,
        r: pb::ModelInferRequest,
    ) -> Result<(pb::ModelInferResponse, Charge, usize), Status> {
        let started = std::time::Instant::now();
        let (queue, model, levels) = self.model(&r.model_name, &r.model_version)?;
        let mut rows = 0;
        let answer = self
            .infer_on(&queue, (model, levels), metadata, charge, r, &mut rows)
            .await;
        (queue.metrics()).request(answer.is_ok(), rows, started.elapsed());
        answer
    }

    /// [`InferenceService::infer`] on the model's queue; `rows` hears the
    /// request's rows once they are known.
    async fn infer_on(
        &self,
        queue: &QueueHandle,
        (model, levels): (Arc<ModelSpec>, u32),
        metadata: &MetadataMap,
        mut charge: Charge,
        mut r: pb::ModelInferRequest,
        rows_seen: &mut usize,
    ) -> Result<(pb::ModelInferResponse, Charge, usize), Status> {
        let name = r.model_name.clone();
        let Inputs {
            rows,
            inputs,
            length,
        } = read_inputs(&name, &model, &mut r)?;
        *rows_seen = rows;
        let picked = requested_outputs(&name, &model, &r)?;
        let mut call = Call::new(metadata, &r, levels)?;
        if let Some(length) = length {
            // Variable rows: a queue batches by length with
            // cost_attribute = "length" (and cost_buckets).
            call.attributes
                .insert("length".to_owned(), length.to_string());
        }
        let input_bytes = inputs.iter().map(|i| i.data.len()).sum();
        self.admit(queue, &model, rows, input_bytes, &mut charge)?;
        let payloads = match model.rows {
            Rows::Split => (0..rows).map(|i| row_payload(&inputs, i)).collect(),
            Rows::Together => {
                call.cost = Some(rows as u64);
                call.attributes.insert("rows".to_owned(), rows.to_string());
                vec![whole_payload(&inputs)]
            }
        };
        let answers = submit_rows(queue, payloads, &call).await?;
        let stacked = stack_outputs(&name, &model, rows, &answers, &picked)?;
        let bytes = stacked.iter().map(|o| o.data.len()).sum();
        let response = pb::ModelInferResponse {
            model_name: name,
            model_version: model.version.clone(),
            id: r.id,
            parameters: HashMap::new(),
            outputs: picked
                .iter()
                .zip(&stacked)
                .map(|(&k, o)| {
                    let t = &model.outputs[k];
                    pb::model_infer_response::InferOutputTensor {
                        name: t.name.clone(),
                        datatype: t.datatype.as_str().to_owned(),
                        shape: o.shape.clone(),
                        parameters: HashMap::new(),
                        contents: None,
                    }
                })
                .collect(),
            raw_output_contents: stacked.into_iter().map(|o| o.data).collect(),
        };
        Ok((response, charge, bytes))
    }
}

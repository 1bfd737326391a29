//! The Open Inference Protocol front door (`inference.GRPCInferenceService`,
//! KServe v2): a model name is a queue name. A ModelInfer request of N rows
//! (dim 0 = N) becomes N items of that queue, each the row of every input
//! (see [`crate::oip::model`]), or one item with `rows = "together"`; the
//! answers are stacked back into the response's tensors, in order. One row
//! failing fails the request with that row's status.

use std::{collections::HashMap, sync::Arc};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status, metadata::MetadataMap};

use super::{ApiState, convert};
use crate::{
    error::{Refusal, quoted},
    oip::{
        DataType, ModelSpec, Rows, TensorSpec,
        pb::{self, grpc_inference_service_server::GrpcInferenceService},
        tensor::contents_to_bytes,
    },
    queue::{
        Answer, Item, QueueHandle, Reply,
        budget::{Charge, item_bytes},
    },
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

    /// The queue serving model `name` at `version` ("" for its own), and
    /// its model.
    fn model(&self, name: &str, version: &str) -> Result<(QueueHandle, Arc<ModelSpec>), Status> {
        if self.state.stop_accepting.is_triggered() {
            // Counted and refused as for any item at shutdown.
            self.state.queue(name)?;
        }
        let (queue, model) = self
            .state
            .registry
            .model(name)
            .ok_or_else(|| Status::not_found(format!("no model named {name:?}")))?;
        let model = model.ok_or_else(|| {
            Status::not_found(format!(
                "queue {name:?} serves no v2 model (its config declares no v2 = {{ inputs, outputs }})"
            ))
        })?;
        if !version.is_empty() && version != model.version {
            return Err(Status::not_found(format!(
                "model {name:?} has no version {version:?} (it serves version {:?})",
                model.version
            )));
        }
        Ok((queue, model))
    }
}

impl InferenceService {
    /// Whether a request of `rows` rows may enter `queue` as a whole, before
    /// any item is built: within the model's `max_rows_per_request`, the
    /// queue's room and the server's memory budget. Returns the request's
    /// charge and each item's part of it.
    fn admit(
        &self,
        queue: &QueueHandle,
        model: &ModelSpec,
        rows: usize,
    ) -> Result<(Charge, usize), Status> {
        if rows > model.max_rows_per_request {
            return Err(bad(format!(
                "the request has {rows} rows; model {} takes at most {} per request (v2.max_rows_per_request)",
                quoted(queue.name()),
                model.max_rows_per_request
            )));
        }
        let (items, per_item) = match model.rows {
            Rows::Split => (rows, item_bytes(model.input_row_bytes(), [])),
            Rows::Together => (
                1,
                item_bytes(model.input_row_bytes().saturating_mul(rows), []),
            ),
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
        let charge =
            self.state
                .charge(queue.name(), per_item.saturating_mul(items), items as u64)?;
        Ok((charge, per_item))
    }
}

fn names(tensors: &[TensorSpec]) -> String {
    tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn metadata_of(t: &TensorSpec) -> pb::model_metadata_response::TensorMetadata {
    pb::model_metadata_response::TensorMetadata {
        name: t.name.clone(),
        datatype: t.datatype.as_str().to_owned(),
        shape: row_shape(-1, t),
    }
}

/// `[rows, the row's shape...]`.
fn row_shape(rows: i64, t: &TensorSpec) -> Vec<i64> {
    std::iter::once(rows)
        .chain(
            t.shape
                .iter()
                .map(|&d| i64::try_from(d).unwrap_or(i64::MAX)),
        )
        .collect()
}

fn bad(message: String) -> Status {
    Status::invalid_argument(message)
}

/// A request's inputs, checked against the model: the row count and each
/// declared input's bytes, in the model's order.
fn read_inputs(
    name: &str,
    model: &ModelSpec,
    r: &mut pb::ModelInferRequest,
) -> Result<(usize, Vec<Bytes>), Status> {
    let raw = std::mem::take(&mut r.raw_input_contents);
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(bad(format!(
            "raw_input_contents holds {} buffers for {} inputs",
            raw.len(),
            r.inputs.len()
        )));
    }
    for (i, given) in r.inputs.iter().enumerate() {
        if !model.inputs.iter().any(|t| t.name == given.name) {
            return Err(bad(format!(
                "model {name:?} has no input {:?} (it takes {})",
                given.name,
                names(&model.inputs)
            )));
        }
        if r.inputs[..i].iter().any(|o| o.name == given.name) {
            return Err(bad(format!("input {:?} is given twice", given.name)));
        }
    }
    let mut rows: Option<(usize, &str)> = None;
    let mut out = Vec::with_capacity(model.inputs.len());
    for spec in &model.inputs {
        let (at, given) = r
            .inputs
            .iter()
            .enumerate()
            .find(|(_, g)| g.name == spec.name)
            .ok_or_else(|| {
                bad(format!(
                    "input {:?} is missing (model {name:?} takes {})",
                    spec.name,
                    names(&model.inputs)
                ))
            })?;
        let what = format!("input {:?}", spec.name);
        if DataType::parse(&given.datatype) != Some(spec.datatype) {
            return Err(bad(format!(
                "{what} is {:?}; model {name:?} takes {}",
                given.datatype,
                spec.datatype.as_str()
            )));
        }
        let want = row_shape(-1, spec);
        let shape_ok = given.shape.len() == want.len()
            && given.shape.first().is_some_and(|&n| n >= 1)
            && given.shape[1..] == want[1..];
        if !shape_ok {
            return Err(bad(format!(
                "{what} has shape {:?}; model {name:?} takes {} (N ≥ 1 rows)",
                given.shape,
                format!("{want:?}").replace("-1", "N")
            )));
        }
        let n =
            usize::try_from(given.shape[0]).map_err(|_| bad(format!("{what}: too many rows")))?;
        match rows {
            Some((m, other)) if m != n => {
                return Err(bad(format!("{what} has {n} rows, input {other:?} has {m}")));
            }
            _ => rows = Some((n, &spec.name)),
        }
        let elements = n
            .checked_mul(spec.row_elements())
            .ok_or_else(|| bad(format!("{what}: too many rows")))?;
        let bytes = if raw.is_empty() {
            let contents = given.contents.clone().unwrap_or_default();
            contents_to_bytes(spec.datatype, &contents, elements)
                .map_err(|e| bad(format!("{what}: {e}")))?
        } else {
            if given.contents.is_some() {
                return Err(bad(format!(
                    "{what} has contents while the request uses raw_input_contents"
                )));
            }
            let buffer = raw[at].clone();
            let need = elements.saturating_mul(spec.datatype.size());
            if buffer.len() != need {
                return Err(bad(format!(
                    "{what}: raw_input_contents[{at}] holds {} bytes; {:?} {} needs {need}",
                    buffer.len(),
                    given.shape,
                    spec.datatype.as_str()
                )));
            }
            buffer
        };
        out.push(bytes);
    }
    Ok((rows.map_or(0, |r| r.0), out))
}

/// The outputs a request asks for, as indexes into the model's (all of
/// them if it names none).
fn requested_outputs(
    name: &str,
    model: &ModelSpec,
    r: &pb::ModelInferRequest,
) -> Result<Vec<usize>, Status> {
    if r.outputs.is_empty() {
        return Ok((0..model.outputs.len()).collect());
    }
    let mut picked: Vec<usize> = Vec::with_capacity(r.outputs.len());
    for asked in &r.outputs {
        let at = model
            .outputs
            .iter()
            .position(|t| t.name == asked.name)
            .ok_or_else(|| {
                bad(format!(
                    "model {name:?} has no output {:?} (it gives {})",
                    asked.name,
                    names(&model.outputs)
                ))
            })?;
        if !picked.contains(&at) {
            picked.push(at);
        }
    }
    Ok(picked)
}

/// The item of one payload, with the call's deadline, request id, key
/// and priority.
fn item(payload: Bytes, call: &Call, reply: Reply, charge: Charge) -> Item {
    Item {
        payload,
        attributes: call.attributes.clone(),
        priority: call.priority,
        timeout: convert::item_timeout(0, call.timeout),
        answer_within: call
            .timeout
            .map(|t| t.saturating_sub(convert::GRPC_DEADLINE_MARGIN)),
        trace_id: call.request_id.clone(),
        trace: None,
        key: call.key.clone(),
        cost: call.cost,
        // One call is many rows; a retried ModelInfer has no key to meet.
        idempotency_key: None,
        reply,
        charge,
    }
}

/// What every item of one call shares.
struct Call {
    timeout: Option<std::time::Duration>,
    request_id: Option<String>,
    key: Option<Arc<str>>,
    priority: u32,
    cost: Option<u64>,
    attributes: HashMap<String, String>,
}

impl Call {
    fn new(metadata: &MetadataMap, r: &pb::ModelInferRequest) -> Result<Self, Status> {
        let priority = match r
            .parameters
            .get("priority")
            .and_then(|p| p.parameter_choice.as_ref())
        {
            None => 0,
            Some(pb::infer_parameter::ParameterChoice::Int64Param(p)) => u32::try_from(*p)
                .map_err(|_| bad(format!("parameter priority must be ≥ 0, got {p}")))?,
            Some(_) => return Err(bad("parameter priority must be an int64_param".to_owned())),
        };
        Ok(Self {
            timeout: convert::parse_grpc_timeout(metadata),
            request_id: convert::request_id(metadata),
            key: convert::header_key(metadata),
            priority,
            cost: None,
            attributes: HashMap::new(),
        })
    }
}

/// Hands the payloads to the queue and waits for every answer, in order;
/// `charge` holds the memory budget of all of them, `per_item` each one's.
async fn run(
    queue: &QueueHandle,
    payloads: Vec<Bytes>,
    call: &Call,
    (mut charge, per_item): (Charge, usize),
) -> Result<Vec<Bytes>, Status> {
    let mut waiting = Vec::with_capacity(payloads.len());
    let mut payloads = payloads.into_iter().peekable();
    while payloads.peek().is_some() {
        let mut items = Vec::with_capacity(CHUNK);
        for payload in payloads.by_ref().take(CHUNK) {
            let (tx, rx) = oneshot::channel();
            let own = charge.split_off(per_item);
            items.push(item(payload, call, Reply::Unary(tx), own));
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

/// The payload of row `i` of every input (a slice of the request's buffer
/// when there is one input).
fn row_payload(inputs: &[Bytes], model: &ModelSpec, i: usize) -> Bytes {
    if let [only] = inputs {
        let size = model.inputs[0].row_bytes();
        return only.slice(i * size..(i + 1) * size);
    }
    let mut payload = BytesMut::with_capacity(model.input_row_bytes());
    for (bytes, spec) in inputs.iter().zip(&model.inputs) {
        let size = spec.row_bytes();
        payload.extend_from_slice(&bytes[i * size..(i + 1) * size]);
    }
    payload.freeze()
}

/// Cuts the answers (one per row, or one for all rows) into the requested
/// outputs' buffers.
fn stack_outputs(
    name: &str,
    model: &ModelSpec,
    rows: usize,
    answers: &[Bytes],
    picked: &[usize],
) -> Result<Vec<Bytes>, Status> {
    let per_row = model.output_row_bytes();
    let (pieces, expect) = match model.rows {
        Rows::Split => (rows, per_row),
        Rows::Together => (1, per_row.saturating_mul(rows)),
    };
    if let Some(wrong) = answers.iter().find(|a| a.len() != expect) {
        return Err(Status::internal(format!(
            "the handler of queue {name:?} answered {} bytes where the v2 outputs ({}) need {expect}",
            wrong.len(),
            names(&model.outputs)
        )));
    }
    let rows_per_piece = rows / pieces.max(1);
    let mut out = Vec::with_capacity(picked.len());
    for &k in picked {
        let offset: usize = model.outputs[..k].iter().map(TensorSpec::row_bytes).sum();
        let size = model.outputs[k].row_bytes() * rows_per_piece;
        let start = offset * rows_per_piece;
        if answers.len() == 1 {
            out.push(answers[0].slice(start..start + size));
            continue;
        }
        let mut buffer = BytesMut::with_capacity(size * answers.len());
        for a in answers {
            buffer.extend_from_slice(&a[start..start + size]);
        }
        out.push(buffer.freeze());
    }
    Ok(out)
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
        let ready = !self.state.stop_accepting.is_triggered();
        Ok(Response::new(pb::ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        r: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = r.into_inner();
        let ready = !self.state.stop_accepting.is_triggered()
            && self
                .model(&r.name, &r.version)
                .is_ok_and(|(queue, _)| !queue.is_closed());
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "batchgate".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        r: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = r.into_inner();
        let (_, model) = self.model(&r.name, &r.version)?;
        Ok(Response::new(pb::ModelMetadataResponse {
            name: r.name,
            versions: vec![model.version.clone()],
            platform: "batchgate".to_owned(),
            inputs: model.inputs.iter().map(metadata_of).collect(),
            outputs: model.outputs.iter().map(metadata_of).collect(),
        }))
    }

    async fn model_infer(
        &self,
        r: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let (metadata, _, mut r) = r.into_parts();
        let (queue, model) = self.model(&r.model_name, &r.model_version)?;
        let name = r.model_name.clone();
        let (rows, inputs) = read_inputs(&name, &model, &mut r)?;
        let picked = requested_outputs(&name, &model, &r)?;
        let mut call = Call::new(&metadata, &r)?;
        let charge = self.admit(&queue, &model, rows)?;
        let payloads = match model.rows {
            Rows::Split => (0..rows).map(|i| row_payload(&inputs, &model, i)).collect(),
            Rows::Together => {
                call.cost = Some(rows as u64);
                call.attributes.insert("rows".to_owned(), rows.to_string());
                if let [only] = &inputs[..] {
                    vec![only.clone()]
                } else {
                    let mut payload = BytesMut::with_capacity(model.input_row_bytes() * rows);
                    inputs.iter().for_each(|b| payload.extend_from_slice(b));
                    vec![payload.freeze()]
                }
            }
        };
        let answers = run(&queue, payloads, &call, charge).await?;
        let raw_output_contents = stack_outputs(&name, &model, rows, &answers, &picked)?;
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        Ok(Response::new(pb::ModelInferResponse {
            model_name: name,
            model_version: model.version.clone(),
            id: r.id,
            parameters: HashMap::new(),
            outputs: picked
                .iter()
                .map(|&k| {
                    let t = &model.outputs[k];
                    pb::model_infer_response::InferOutputTensor {
                        name: t.name.clone(),
                        datatype: t.datatype.as_str().to_owned(),
                        shape: row_shape(rows, t),
                        parameters: HashMap::new(),
                        contents: None,
                    }
                })
                .collect(),
            raw_output_contents,
        }))
    }
}

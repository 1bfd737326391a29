//! Calling an Open Inference Protocol (KServe v2) server: the items of a
//! call become one ModelInfer whose inputs are their rows stacked along
//! dim 0 (each item's payload is its rows of every input, input by input,
//! as the v2 front door makes them; see [`crate::oip::model`]), and the
//! output rows are cut back to the items. Padding rows (`pad_to`) are
//! zeros (empty strings for BYTES) and are dropped on the way back.
//!
//! BYTES rows stack as their length-prefixed elements (Triton's raw
//! layout). Rows of `-1` dimensions stack when their dimensions agree: a
//! call whose items differ is one ModelInfer per set of dimensions, one
//! after the other (`cost_buckets` on the `length` attribute keeps a
//! batch to one length, so to one ModelInfer).

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tonic::{Status, transport::Channel};

use super::call::{CallError, CallInput};
use crate::{
    contract::{BatchItem, ItemOutput},
    oip::{
        DataType, ModelSpec, TensorSpec, bytes as bytes_tensor,
        pb::{
            self,
            grpc_inference_service_client::GrpcInferenceServiceClient,
            model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
        },
        rows::{self, Segment},
        tensor::contents_to_bytes,
    },
};

/// `[rows, the row's shape with dims...]`.
fn shape(rows: usize, t: &TensorSpec, dims: &[u32]) -> Vec<i64> {
    std::iter::once(i64::try_from(rows).unwrap_or(i64::MAX))
        .chain(t.shape_with(dims))
        .collect()
}

fn bad_answer(problem: String) -> CallError {
    CallError::BadAnswer(Status::internal(format!(
        "v2 server's answer is malformed: {problem}"
    )))
}

/// An item's rows (how many, and each input's segment of its payload),
/// or why it cannot be sent as rows of `layout`'s inputs: the caller's to
/// fix, whatever the endpoints' health (checked before an endpoint is
/// picked). A fixed-size model's row count is the payload's length over a
/// row's; otherwise an item is one row, or the `rows` its attributes say
/// (a v2 request kept whole).
pub(super) fn read_rows(
    item: &BatchItem,
    layout: &ModelSpec,
) -> Result<(usize, Vec<Segment>), Status> {
    let len = item.payload.len();
    let rows = if rows::fixed(&layout.inputs) {
        let row_bytes = layout.input_row_bytes();
        if len == 0 || !len.is_multiple_of(row_bytes) {
            return Err(Status::invalid_argument(format!(
                "a payload of {len} bytes is not whole rows of the v2 inputs ({row_bytes} bytes a row)"
            )));
        }
        len / row_bytes
    } else {
        match item.attributes.get("rows").map(|r| r.parse::<usize>()) {
            None => 1,
            Some(Ok(n)) if n >= 1 => n,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "attribute rows must be a whole number ≥ 1",
                ));
            }
        }
    };
    let segments = rows::split(&layout.inputs, &item.payload, rows).map_err(|e| {
        Status::invalid_argument(format!(
            "a payload of {len} bytes is not {rows} rows of the v2 inputs: {e}"
        ))
    })?;
    Ok((rows, segments))
}

/// One item of a call, read: its batch index, rows and segments.
struct Sent {
    index: usize,
    rows: usize,
    segments: Vec<Segment>,
}

/// Sends the items of `input` as ModelInfers of `model` (one per set of
/// variable dimensions) and delivers each item its rows of every output.
pub(super) async fn call(
    client: GrpcInferenceServiceClient<Channel>,
    input: &CallInput<'_>,
    (model, layout): (&str, &ModelSpec),
    headers: &[(&'static str, String)],
    deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>),
) -> Result<(), CallError> {
    let batch = input.batch;
    // Items grouped by their inputs' variable dimensions (one group for a
    // fixed model), in batch order; an item that is not rows fails alone.
    let mut groups: Vec<(Vec<Vec<u32>>, Vec<Sent>)> = Vec::new();
    for &i in input.indexes {
        let (rows, segments) = match read_rows(&batch.items[i], layout) {
            Ok(read) => read,
            Err(status) => {
                deliver(u32::try_from(i).unwrap_or(u32::MAX), Err(status));
                continue;
            }
        };
        let dims: Vec<Vec<u32>> = segments.iter().map(|s| s.dims.clone()).collect();
        let sent = Sent {
            index: i,
            rows,
            segments,
        };
        match groups.iter_mut().find(|(d, _)| *d == dims) {
            Some((_, items)) => items.push(sent),
            None => groups.push((dims, vec![sent])),
        }
    }
    // Padding to an allowed size applies to a call that is one ModelInfer.
    let pad = match &groups[..] {
        [(_, items)] => (input.pad_to() as usize).saturating_sub(items.len()),
        _ => 0,
    };
    for (dims, items) in &groups {
        let mut request = tonic::Request::new(request(input, (model, layout), dims, items, pad));
        let timeout_ms = input.timeout_ms();
        request.set_timeout(std::time::Duration::from_millis(u64::from(timeout_ms)));
        for (name, value) in headers {
            if let Ok(value) = value.parse() {
                request.metadata_mut().insert(*name, value);
            }
        }
        let response = client
            .clone()
            .model_infer(request)
            .await
            .map_err(CallError::from_status)?
            .into_inner();
        let total = items.iter().map(|s| s.rows).sum::<usize>() + pad;
        let outputs = read_outputs(layout, total, response)?;
        let mut start = 0;
        for sent in items {
            let n = sent.rows;
            let mut payload = BytesMut::new();
            for (bytes, offsets, dims) in &outputs {
                payload.extend_from_slice(&rows::dims_prefix(dims));
                payload.extend_from_slice(&bytes[offsets[start]..offsets[start + n]]);
            }
            start += n;
            let output = ItemOutput {
                payload: payload.freeze(),
                attributes: HashMap::new(),
            };
            deliver(u32::try_from(sent.index).unwrap_or(u32::MAX), Ok(output));
        }
    }
    Ok(())
}

/// The ModelInfer of one group of items (their inputs' variable
/// dimensions `dims`), with `pad` rows of zeros after theirs.
fn request(
    input: &CallInput<'_>,
    (model, layout): (&str, &ModelSpec),
    dims: &[Vec<u32>],
    items: &[Sent],
    pad: usize,
) -> pb::ModelInferRequest {
    let batch = input.batch;
    let total = items.iter().map(|s| s.rows).sum::<usize>() + pad;
    let mut inputs = Vec::with_capacity(layout.inputs.len());
    let mut raw = Vec::with_capacity(layout.inputs.len());
    for (k, spec) in layout.inputs.iter().enumerate() {
        let size: usize = items.iter().map(|s| s.segments[k].rows.len()).sum();
        // A padding row: zeros, which for BYTES are empty elements.
        let pad_row = spec
            .elements_with(&dims[k])
            .saturating_mul(match spec.datatype {
                DataType::Bytes => bytes_tensor::PREFIX,
                other => other.size(),
            });
        let mut buffer = BytesMut::with_capacity(size + pad * pad_row);
        for s in items {
            buffer.extend_from_slice(&batch.items[s.index].payload[s.segments[k].rows.clone()]);
        }
        buffer.resize(size + pad * pad_row, 0);
        raw.push(buffer.freeze());
        inputs.push(InferInputTensor {
            name: spec.name.clone(),
            datatype: spec.datatype.as_str().to_owned(),
            shape: shape(total, spec, &dims[k]),
            parameters: HashMap::new(),
            contents: None,
        });
    }
    pb::ModelInferRequest {
        model_name: model.to_owned(),
        model_version: String::new(),
        id: batch.id.to_string(),
        parameters: HashMap::new(),
        inputs,
        outputs: layout
            .outputs
            .iter()
            .map(|t| InferRequestedOutputTensor {
                name: t.name.clone(),
                parameters: HashMap::new(),
            })
            .collect(),
        raw_input_contents: raw,
    }
}

/// One output of an answer: its bytes, where each row starts (and the
/// last ends), its variable dimensions.
type Output = (Bytes, Vec<usize>, Vec<u32>);

/// Each declared output's bytes for `rows` rows, checked against the
/// model (raw or typed), with where each row starts and its variable
/// dimensions.
fn read_outputs(
    layout: &ModelSpec,
    rows: usize,
    response: pb::ModelInferResponse,
) -> Result<Vec<Output>, CallError> {
    let mut out = Vec::with_capacity(layout.outputs.len());
    for spec in &layout.outputs {
        let (at, got) = response
            .outputs
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == spec.name)
            .ok_or_else(|| bad_answer(format!("no output {:?}", spec.name)))?;
        if got.datatype != spec.datatype.as_str() {
            return Err(bad_answer(format!(
                "output {:?} is {:?}, not {}",
                spec.name,
                got.datatype,
                spec.datatype.as_str()
            )));
        }
        let dims = match got.shape.split_first() {
            Some((&n, row)) if usize::try_from(n) == Ok(rows) => spec.variable_dims(row).ok(),
            _ => None,
        };
        let dims = dims.ok_or_else(|| {
            bad_answer(format!(
                "output {:?} has shape {:?}, not {:?}",
                spec.name,
                got.shape,
                shape(rows, spec, &[])
            ))
        })?;
        let elements = spec.elements_with(&dims).saturating_mul(rows);
        let bytes = match response.raw_output_contents.get(at) {
            Some(raw) => raw.clone(),
            None if response.raw_output_contents.is_empty() => {
                let contents = got.contents.clone().unwrap_or_default();
                if spec.datatype == DataType::Bytes {
                    bytes_tensor::encode(&contents.bytes_contents)
                } else {
                    contents_to_bytes(spec.datatype, &contents, elements)
                }
                .map_err(|e| bad_answer(format!("output {:?}: {e}", spec.name)))?
            }
            None => {
                return Err(bad_answer(format!(
                    "{} raw_output_contents for {} outputs",
                    response.raw_output_contents.len(),
                    response.outputs.len()
                )));
            }
        };
        let offsets = rows::row_offsets(spec, &dims, &bytes, rows)
            .map_err(|e| bad_answer(format!("output {:?}: {e}", spec.name)))?;
        out.push((bytes, offsets, dims));
    }
    Ok(out)
}

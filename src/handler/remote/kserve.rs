//! Calling an Open Inference Protocol (KServe v2) server: the items of a
//! call become one ModelInfer whose inputs are their rows stacked along
//! dim 0 (each item's payload is its rows of every input, input by input,
//! as the v2 front door makes them; see [`crate::oip::model`]), and the
//! output rows are cut back to the items. Padding rows (`pad_to`) are
//! zeros and are dropped on the way back.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tonic::{Status, transport::Channel};

use super::{CallError, CallInput};
use crate::{
    contract::ItemOutput,
    oip::{
        ModelSpec, TensorSpec,
        pb::{
            self,
            grpc_inference_service_client::GrpcInferenceServiceClient,
            model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
        },
        tensor::contents_to_bytes,
    },
};

/// `[rows, the row's shape...]`.
fn shape(rows: usize, t: &TensorSpec) -> Vec<i64> {
    std::iter::once(i64::try_from(rows).unwrap_or(i64::MAX))
        .chain(t.shape.iter().copied())
        .collect()
}

fn bad_answer(problem: String) -> CallError {
    CallError::BadAnswer(Status::internal(format!(
        "v2 server's answer is malformed: {problem}"
    )))
}

/// Why a payload of `len` bytes cannot be sent as rows of `layout`'s
/// inputs, if it cannot: the caller's to fix, whatever the endpoints'
/// health (checked before an endpoint is picked).
pub(super) fn not_whole_rows(len: usize, layout: &ModelSpec) -> Option<Status> {
    let row_bytes = layout.input_row_bytes();
    (len == 0 || !len.is_multiple_of(row_bytes)).then(|| {
        Status::invalid_argument(format!(
            "a payload of {len} bytes is not whole rows of the v2 inputs ({row_bytes} bytes a row)"
        ))
    })
}

/// Sends the items of `input` as one ModelInfer of `model` and delivers
/// each item its rows of every output.
pub(super) async fn call(
    mut client: GrpcInferenceServiceClient<Channel>,
    input: &CallInput<'_>,
    (model, layout): (&str, &ModelSpec),
    headers: &[(&'static str, String)],
    deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>),
) -> Result<(), CallError> {
    let batch = input.batch;
    let row_bytes = layout.input_row_bytes();
    // (batch index, its rows); an item that is not whole rows fails alone.
    let mut sent: Vec<(usize, usize)> = Vec::with_capacity(input.indexes.len());
    for &i in input.indexes {
        let len = batch.items[i].payload.len();
        if let Some(status) = not_whole_rows(len, layout) {
            deliver(u32::try_from(i).unwrap_or(u32::MAX), Err(status));
            continue;
        }
        sent.push((i, len / row_bytes));
    }
    if sent.is_empty() {
        return Ok(());
    }
    let rows: usize = sent.iter().map(|s| s.1).sum();
    let pad = (input.pad_to() as usize).saturating_sub(sent.len());
    let total = rows + pad;
    let mut inputs = Vec::with_capacity(layout.inputs.len());
    let mut raw = Vec::with_capacity(layout.inputs.len());
    for (k, spec) in layout.inputs.iter().enumerate() {
        let before: usize = layout.inputs[..k].iter().map(TensorSpec::row_bytes).sum();
        let size = spec.row_bytes();
        let mut buffer = BytesMut::with_capacity(total * size);
        for &(i, n) in &sent {
            let payload = &batch.items[i].payload;
            buffer.extend_from_slice(&payload[n * before..n * (before + size)]);
        }
        buffer.resize(total * size, 0);
        raw.push(buffer.freeze());
        inputs.push(InferInputTensor {
            name: spec.name.clone(),
            datatype: spec.datatype.as_str().to_owned(),
            shape: shape(total, spec),
            parameters: HashMap::new(),
            contents: None,
        });
    }
    let timeout_ms = input.timeout_ms();
    let mut request = tonic::Request::new(pb::ModelInferRequest {
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
    });
    request.set_timeout(std::time::Duration::from_millis(u64::from(timeout_ms)));
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            request.metadata_mut().insert(*name, value);
        }
    }
    let response = client
        .model_infer(request)
        .await
        .map_err(CallError::from_status)?
        .into_inner();
    let outputs = read_outputs(layout, total, response)?;
    let mut start = 0;
    for (i, n) in sent {
        let mut payload = BytesMut::with_capacity(n * layout.output_row_bytes());
        for (bytes, spec) in outputs.iter().zip(&layout.outputs) {
            let size = spec.row_bytes();
            payload.extend_from_slice(&bytes[start * size..(start + n) * size]);
        }
        start += n;
        let output = ItemOutput {
            payload: payload.freeze(),
            attributes: HashMap::new(),
        };
        deliver(u32::try_from(i).unwrap_or(u32::MAX), Ok(output));
    }
    Ok(())
}

/// Each declared output's bytes for `rows` rows, checked against the
/// model, raw or typed.
fn read_outputs(
    layout: &ModelSpec,
    rows: usize,
    response: pb::ModelInferResponse,
) -> Result<Vec<Bytes>, CallError> {
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
        let want = shape(rows, spec);
        if got.shape != want {
            return Err(bad_answer(format!(
                "output {:?} has shape {:?}, not {want:?}",
                spec.name, got.shape
            )));
        }
        let need = rows * spec.row_bytes();
        let bytes = match response.raw_output_contents.get(at) {
            Some(raw) => raw.clone(),
            None if response.raw_output_contents.is_empty() => {
                let contents = got.contents.clone().unwrap_or_default();
                contents_to_bytes(spec.datatype, &contents, rows * spec.row_elements())
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
        if bytes.len() != need {
            return Err(bad_answer(format!(
                "output {:?} holds {} bytes, not {need}",
                spec.name,
                bytes.len()
            )));
        }
        out.push(bytes);
    }
    Ok(out)
}

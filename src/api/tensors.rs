//! A ModelInfer's tensors, checked against the model and cut into rows,
//! and the answers stacked back into the requested outputs.

use bytes::{Bytes, BytesMut};
use tonic::Status;

use crate::{
    error::quoted,
    oip::{DataType, ModelSpec, Rows, TensorSpec, pb, tensor::contents_to_bytes},
};

fn names(tensors: &[TensorSpec]) -> String {
    tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[rows, the row's shape...]`.
pub(super) fn row_shape(rows: i64, t: &TensorSpec) -> Vec<i64> {
    std::iter::once(rows)
        .chain(
            t.shape
                .iter()
                .map(|&d| i64::try_from(d).unwrap_or(i64::MAX)),
        )
        .collect()
}

pub(super) fn bad(message: String) -> Status {
    Status::invalid_argument(message)
}

/// A request's inputs, checked against the model: the row count and each
/// declared input's bytes, in the model's order.
pub(super) fn read_inputs(
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
                "model {name:?} has no input {} (it takes {})",
                quoted(&given.name),
                names(&model.inputs)
            )));
        }
        if r.inputs[..i].iter().any(|o| o.name == given.name) {
            return Err(bad(format!("input {} is given twice", quoted(&given.name))));
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
                "{what} is {}; model {name:?} takes {}",
                quoted(&given.datatype),
                spec.datatype.as_str()
            )));
        }
        let want = row_shape(-1, spec);
        let shape_ok = given.shape.len() == want.len()
            && given.shape.first().is_some_and(|&n| n >= 1)
            && given.shape[1..] == want[1..];
        if !shape_ok {
            return Err(bad(format!(
                "{what} has shape {}; model {name:?} takes {} (N ≥ 1 rows)",
                shape_text(&given.shape),
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
                    "{what}: raw_input_contents[{at}] holds {} bytes; {} {} needs {need}",
                    buffer.len(),
                    shape_text(&given.shape),
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
pub(super) fn requested_outputs(
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
                    "model {name:?} has no output {} (it gives {})",
                    quoted(&asked.name),
                    names(&model.outputs)
                ))
            })?;
        if !picked.contains(&at) {
            picked.push(at);
        }
    }
    Ok(picked)
}

/// The payload of row `i` of every input (a slice of the request's buffer
/// when there is one input).
pub(super) fn row_payload(inputs: &[Bytes], model: &ModelSpec, i: usize) -> Bytes {
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
pub(super) fn stack_outputs(
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

/// A client's shape as `[a, b, …]`, its first 8 dimensions and how many
/// there are past them, so a huge shape cannot blow up a message.
fn shape_text(shape: &[i64]) -> String {
    const SHOWN: usize = 8;
    if shape.len() <= SHOWN {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..SHOWN].iter().map(i64::to_string).collect();
    format!("[{}, … {} more]", head.join(", "), shape.len() - SHOWN)
}

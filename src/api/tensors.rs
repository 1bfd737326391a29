//! A ModelInfer's tensors, checked against the model and cut into rows,
//! and the answers stacked back into the requested outputs.

use bytes::{Bytes, BytesMut};
use tonic::Status;

use crate::{
    error::quoted,
    oip::{
        DataType, ModelSpec, Rows, TensorSpec, bytes as bytes_tensor, pb, tensor::contents_to_bytes,
    },
};

/// One input of a request, checked: its bytes, and where its rows are.
#[derive(Debug, Clone)]
pub(super) struct Input {
    /// The whole tensor (for BYTES, in the raw length-prefixed layout).
    pub data: Bytes,
    /// Where each row starts (and the last ends), for BYTES; `None`: rows
    /// of `row_bytes` each.
    offsets: Option<Vec<usize>>,
    row_bytes: usize,
}

impl Input {
    /// Row `i`'s bytes.
    fn row(&self, i: usize) -> Bytes {
        match &self.offsets {
            Some(o) => self.data.slice(o[i]..o[i + 1]),
            None => self
                .data
                .slice(i * self.row_bytes..(i + 1) * self.row_bytes),
        }
    }
}

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
) -> Result<(usize, Vec<Input>), Status> {
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
        if spec.datatype == DataType::Bytes {
            let data = if raw.is_empty() {
                let elements_given = given
                    .contents
                    .as_ref()
                    .map_or(&[][..], |c| &c.bytes_contents[..]);
                if elements_given.len() != elements {
                    return Err(bad(format!(
                        "{what}: bytes_contents holds {} elements; {} BYTES needs {elements}",
                        elements_given.len(),
                        shape_text(&given.shape)
                    )));
                }
                bytes_tensor::encode(elements_given).map_err(|e| bad(format!("{what}: {e}")))?
            } else {
                raw[at].clone()
            };
            let offsets = bytes_tensor::row_offsets(&data, n, spec.row_elements())
                .map_err(|e| bad(format!("{what} (BYTES, raw_input_contents[{at}]): {e}")))?;
            out.push(Input {
                data,
                offsets: Some(offsets),
                row_bytes: 0,
            });
            continue;
        }
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
        out.push(Input {
            data: bytes,
            offsets: None,
            row_bytes: spec.row_bytes(),
        });
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
pub(super) fn row_payload(inputs: &[Input], i: usize) -> Bytes {
    if let [only] = inputs {
        return only.row(i);
    }
    let rows: Vec<Bytes> = inputs.iter().map(|input| input.row(i)).collect();
    let mut payload = BytesMut::with_capacity(rows.iter().map(Bytes::len).sum());
    rows.iter().for_each(|r| payload.extend_from_slice(r));
    payload.freeze()
}

/// Cuts the answers (one per row, or one for all rows) into the requested
/// outputs' buffers: each answer holds its rows of every output in order
/// (numeric at their size, BYTES as length-prefixed elements).
pub(super) fn stack_outputs(
    name: &str,
    model: &ModelSpec,
    rows: usize,
    answers: &[Bytes],
    picked: &[usize],
) -> Result<Vec<Bytes>, Status> {
    let pieces = match model.rows {
        Rows::Split => rows,
        Rows::Together => 1,
    };
    let rows_per_piece = rows / pieces.max(1);
    // Where each output starts in each answer, and where the last ends.
    let mut cuts = Vec::with_capacity(answers.len());
    for a in answers {
        let mut at = 0;
        let mut starts = Vec::with_capacity(model.outputs.len() + 1);
        for spec in &model.outputs {
            starts.push(at);
            at = if spec.datatype == DataType::Bytes {
                bytes_tensor::elements_end(
                    a,
                    at,
                    spec.row_elements().saturating_mul(rows_per_piece),
                )
                .map_err(|e| wrong_answer(name, model, &format!("output {:?}: {e}", spec.name)))?
            } else {
                at.saturating_add(spec.row_bytes().saturating_mul(rows_per_piece))
            };
        }
        if at != a.len() {
            return Err(Status::internal(format!(
                "the handler of queue {name:?} answered {} bytes where the v2 outputs ({}) need {at}",
                a.len(),
                names(&model.outputs)
            )));
        }
        starts.push(at);
        cuts.push(starts);
    }
    let mut out = Vec::with_capacity(picked.len());
    for &k in picked {
        if let ([a], [c]) = (answers, &cuts[..]) {
            out.push(a.slice(c[k]..c[k + 1]));
            continue;
        }
        let size = answers
            .iter()
            .zip(&cuts)
            .map(|(_, c)| c[k + 1] - c[k])
            .sum();
        let mut buffer = BytesMut::with_capacity(size);
        for (a, c) in answers.iter().zip(&cuts) {
            buffer.extend_from_slice(&a[c[k]..c[k + 1]]);
        }
        out.push(buffer.freeze());
    }
    Ok(out)
}

/// An answer that does not hold the model's outputs.
fn wrong_answer(name: &str, model: &ModelSpec, what: &str) -> Status {
    Status::internal(format!(
        "the handler of queue {name:?} answered what the v2 outputs ({}) cannot be read from: {what}",
        names(&model.outputs)
    ))
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

//! A ModelInfer's tensors, checked against the model and cut into rows,
//! and the answers stacked back into the requested outputs.

use bytes::{Bytes, BytesMut};
use tonic::Status;

use crate::{
    error::quoted,
    oip::{
        DataType, ModelSpec, Rows, TensorSpec, bytes as bytes_tensor, pb, rows,
        tensor::contents_to_bytes,
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
    /// Its variable dimensions as they lead each of its rows in a payload
    /// (4-byte little-endian each); empty for a fixed shape.
    pub prefix: Bytes,
}

fn dims_prefix(dims: &[u32]) -> Bytes {
    rows::dims_prefix(dims).into()
}

impl Input {
    /// Row `i`'s bytes (without the prefix).
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
        .chain(t.shape.iter().copied())
        .collect()
}

pub(super) fn bad(message: String) -> Status {
    Status::invalid_argument(message)
}

/// A request's inputs, checked against the model.
pub(super) struct Inputs {
    /// Its rows (dim 0).
    pub rows: usize,
    /// Each declared input, in the model's order.
    pub inputs: Vec<Input>,
    /// The product of the variable dimensions of the first input that has
    /// any (a row's length), if one has.
    pub length: Option<u64>,
}

/// A request's inputs, checked against the model: the row count and each
/// declared input's bytes, in the model's order.
pub(super) fn read_inputs(
    name: &str,
    model: &ModelSpec,
    r: &mut pb::ModelInferRequest,
) -> Result<Inputs, Status> {
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
    let mut length = None;
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
        let dims = match given.shape.split_first() {
            Some((&n, row)) if n >= 1 => spec.variable_dims(row).map_err(|e| format!(": {e}")),
            _ => Err(String::new()),
        };
        let dims = dims.map_err(|e| {
            bad(format!(
                "{what} has shape {}; model {name:?} takes {} (N ≥ 1 rows){e}",
                shape_text(&given.shape),
                shape_text(&want).replacen("-1", "N", 1)
            ))
        })?;
        if length.is_none() && !dims.is_empty() {
            length = Some(dims.iter().map(|&d| u64::from(d)).product());
        }
        let per_row = spec.elements_with(&dims);
        let n =
            usize::try_from(given.shape[0]).map_err(|_| bad(format!("{what}: too many rows")))?;
        match rows {
            Some((m, other)) if m != n => {
                return Err(bad(format!("{what} has {n} rows, input {other:?} has {m}")));
            }
            _ => rows = Some((n, &spec.name)),
        }
        let buffer = (!raw.is_empty()).then(|| &raw[at]);
        out.push(input_of(
            &what,
            spec,
            given,
            (at, buffer),
            n,
            per_row,
            &dims,
        )?);
    }
    Ok(Inputs {
        rows: rows.map_or(0, |r| r.0),
        inputs: out,
        length,
    })
}

/// The contents of one input, `given` for `spec`: `n` rows of `per_row`
/// elements (`dims` its variable dimensions), from its buffer in
/// raw_input_contents (`raw`: its index there, and the buffer when the
/// request uses them) or from its typed contents.
fn input_of(
    what: &str,
    spec: &TensorSpec,
    given: &pb::model_infer_request::InferInputTensor,
    raw: (usize, Option<&Bytes>),
    n: usize,
    per_row: usize,
    dims: &[u32],
) -> Result<Input, Status> {
    let elements = n
        .checked_mul(per_row)
        .ok_or_else(|| bad(format!("{what}: too many rows")))?;
    if spec.datatype == DataType::Bytes {
        let data = match raw.1 {
            None => {
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
            }
            Some(buffer) => buffer.clone(),
        };
        let at = raw.0;
        let offsets = bytes_tensor::row_offsets(&data, n, per_row)
            .map_err(|e| bad(format!("{what} (BYTES, raw_input_contents[{at}]): {e}")))?;
        return Ok(Input {
            data,
            offsets: Some(offsets),
            row_bytes: 0,
            prefix: dims_prefix(dims),
        });
    }
    let bytes = match raw.1 {
        None => {
            let contents = given.contents.clone().unwrap_or_default();
            contents_to_bytes(spec.datatype, &contents, elements)
                .map_err(|e| bad(format!("{what}: {e}")))?
        }
        Some(buffer) => {
            let at = raw.0;
            if given.contents.is_some() {
                return Err(bad(format!(
                    "{what} has contents while the request uses raw_input_contents"
                )));
            }
            let need = elements.saturating_mul(spec.datatype.size());
            if buffer.len() != need {
                return Err(bad(format!(
                    "{what}: raw_input_contents[{at}] holds {} bytes; {} {} needs {need}",
                    buffer.len(),
                    shape_text(&given.shape),
                    spec.datatype.as_str()
                )));
            }
            buffer.clone()
        }
    };
    Ok(Input {
        data: bytes,
        offsets: None,
        row_bytes: per_row.saturating_mul(spec.datatype.size()),
        prefix: dims_prefix(dims),
    })
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
    if let [only] = inputs
        && only.prefix.is_empty()
    {
        return only.row(i);
    }
    let rows: Vec<Bytes> = inputs.iter().map(|input| input.row(i)).collect();
    let size = rows.iter().map(Bytes::len).sum::<usize>()
        + inputs.iter().map(|i| i.prefix.len()).sum::<usize>();
    let mut payload = BytesMut::with_capacity(size);
    for (input, row) in inputs.iter().zip(&rows) {
        payload.extend_from_slice(&input.prefix);
        payload.extend_from_slice(row);
    }
    payload.freeze()
}

/// The payload of a request kept whole: every input's rows, input by
/// input, each led by its variable dimensions.
pub(super) fn whole_payload(inputs: &[Input]) -> Bytes {
    if let [only] = inputs
        && only.prefix.is_empty()
    {
        return only.data.clone();
    }
    let size = inputs.iter().map(|i| i.prefix.len() + i.data.len()).sum();
    let mut payload = BytesMut::with_capacity(size);
    for input in inputs {
        payload.extend_from_slice(&input.prefix);
        payload.extend_from_slice(&input.data);
    }
    payload.freeze()
}

/// One output of a response: its bytes and its shape (dim 0 included).
#[derive(Debug)]
pub(super) struct Output {
    pub data: Bytes,
    pub shape: Vec<i64>,
}

/// Cuts the answers (one per row, or one for all rows) into the requested
/// outputs' buffers: each answer holds its rows of every output in order
/// (numeric at their size, BYTES as length-prefixed elements, a variable
/// output led by its variable dimensions, which every answer of the
/// request must agree on).
pub(super) fn stack_outputs(
    name: &str,
    model: &ModelSpec,
    rows: usize,
    answers: &[Bytes],
    picked: &[usize],
) -> Result<Vec<Output>, Status> {
    let pieces = match model.rows {
        Rows::Split => rows,
        Rows::Together => 1,
    };
    let rows_per_piece = rows / pieces.max(1);
    // Where each output's rows start and end in each answer.
    let mut cuts: Vec<Vec<(usize, usize)>> = Vec::with_capacity(answers.len());
    // Each output's variable dimensions (from the first answer).
    let mut dims: Vec<Option<Vec<u32>>> = vec![None; model.outputs.len()];
    for a in answers {
        let segments = rows::split(&model.outputs, a, rows_per_piece)
            .map_err(|e| wrong_answer(name, model, &e))?;
        let mut spans = Vec::with_capacity(model.outputs.len());
        for (k, (spec, segment)) in model.outputs.iter().zip(segments).enumerate() {
            match &dims[k] {
                Some(first) if *first != segment.dims => {
                    return Err(wrong_answer(
                        name,
                        model,
                        &format!(
                            "output {:?}: rows of one request answered variable dimensions {first:?} and {:?} (a response tensor has one shape)",
                            spec.name, segment.dims
                        ),
                    ));
                }
                Some(_) => {}
                None => dims[k] = Some(segment.dims),
            }
            spans.push((segment.rows.start, segment.rows.end));
        }
        cuts.push(spans);
    }
    let rows_i64 = i64::try_from(rows).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(picked.len());
    for &k in picked {
        let spec = &model.outputs[k];
        let shape = std::iter::once(rows_i64)
            .chain(spec.shape_with(dims[k].as_deref().unwrap_or_default()))
            .collect();
        if let ([a], [c]) = (answers, &cuts[..]) {
            out.push(Output {
                data: a.slice(c[k].0..c[k].1),
                shape,
            });
            continue;
        }
        let size = cuts.iter().map(|c| c[k].1 - c[k].0).sum();
        let mut buffer = BytesMut::with_capacity(size);
        for (a, c) in answers.iter().zip(&cuts) {
            buffer.extend_from_slice(&a[c[k].0..c[k].1]);
        }
        out.push(Output {
            data: buffer.freeze(),
            shape,
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelSpec {
        toml::from_str(
            r#"
inputs = [{ name = "x", datatype = "INT8", shape = [-1] }]
outputs = [{ name = "y", datatype = "INT8", shape = [-1, 2] }]
"#,
        )
        .unwrap()
    }

    fn answer(len: u32, data: &[u8]) -> Bytes {
        len.to_le_bytes().iter().chain(data).copied().collect()
    }

    #[test]
    fn variable_outputs_are_stacked_under_their_dims() {
        let m = model();
        let out =
            stack_outputs("m", &m, 2, &[answer(1, &[1, 2]), answer(1, &[3, 4])], &[0]).unwrap();
        assert_eq!(out[0].shape, vec![2, 1, 2]);
        assert_eq!(&out[0].data[..], &[1, 2, 3, 4]);
    }

    #[test]
    fn answers_with_other_dims_or_short_prefixes_are_internal_errors() {
        let m = model();
        let e =
            stack_outputs("m", &m, 2, &[answer(1, &[1, 2]), answer(2, &[0; 4])], &[0]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert!(e.message().contains("[1] and [2]"), "{}", e.message());
        let e = stack_outputs("m", &m, 1, &[Bytes::from_static(&[1, 0])], &[0]).unwrap_err();
        assert!(e.message().contains("passes the end"), "{}", e.message());
        let e = stack_outputs("m", &m, 1, &[answer(0, &[])], &[0]).unwrap_err();
        assert!(e.message().contains("is 0"), "{}", e.message());
        let e = stack_outputs("m", &m, 1, &[answer(2, &[0; 3])], &[0]).unwrap_err();
        assert!(
            e.message().contains("need 4 bytes, 3 are left"),
            "{}",
            e.message()
        );
        let e = stack_outputs("m", &m, 1, &[answer(1, &[0; 3])], &[0]).unwrap_err();
        assert!(
            e.message().contains("1 bytes left after"),
            "{}",
            e.message()
        );
    }
}

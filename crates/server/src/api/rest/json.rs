//! The REST side's tensors: JSON `data` (nested or flat arrays of numbers
//! or booleans) to and from the raw little-endian bytes the gRPC side
//! carries, and Triton's binary tensor extension (a JSON header of
//! `Inference-Header-Content-Length` bytes, then each binary tensor's bytes
//! in order).

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value, json};

use crate::oip::{DataType, pb};

/// A REST request or answer that cannot be read or written: a 400 with
/// the protocol's `{"error": ...}`.
pub type Bad = String;

/// The JSON `data` of one tensor as raw bytes of `datatype`.
///
/// # Errors
/// An element of the wrong kind or out of the datatype's range, or a
/// datatype that travels as binary data only.
pub fn raw_of(name: &str, datatype: DataType, data: &Value) -> Result<Bytes, Bad> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    if datatype == DataType::Bytes {
        // Strings, in the raw length-prefixed layout.
        let strings = flat
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| format!("input {name:?}: element {i} ({v}) is not a string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return crate::oip::bytes::encode(&strings).map_err(|e| format!("input {name:?}: {e}"));
    }
    let mut out = BytesMut::with_capacity(flat.len() * datatype.size());
    for (i, v) in flat.iter().enumerate() {
        let bad = || {
            format!(
                "input {name:?}: element {i} ({v}) is not a {}",
                datatype.as_str()
            )
        };
        match datatype {
            DataType::Bool => out.extend_from_slice(&[u8::from(v.as_bool().ok_or_else(bad)?)]),
            DataType::Uint8 => out.extend_from_slice(&uint::<u8>(v).ok_or_else(bad)?.to_le_bytes()),
            DataType::Uint16 => {
                out.extend_from_slice(&uint::<u16>(v).ok_or_else(bad)?.to_le_bytes());
            }
            DataType::Uint32 => {
                out.extend_from_slice(&uint::<u32>(v).ok_or_else(bad)?.to_le_bytes());
            }
            DataType::Uint64 => out.extend_from_slice(&v.as_u64().ok_or_else(bad)?.to_le_bytes()),
            DataType::Int8 => out.extend_from_slice(&int::<i8>(v).ok_or_else(bad)?.to_le_bytes()),
            DataType::Int16 => out.extend_from_slice(&int::<i16>(v).ok_or_else(bad)?.to_le_bytes()),
            DataType::Int32 => out.extend_from_slice(&int::<i32>(v).ok_or_else(bad)?.to_le_bytes()),
            DataType::Int64 => out.extend_from_slice(&v.as_i64().ok_or_else(bad)?.to_le_bytes()),
            #[allow(clippy::cast_possible_truncation)]
            DataType::Fp32 => {
                out.extend_from_slice(&(v.as_f64().ok_or_else(bad)? as f32).to_le_bytes());
            }
            DataType::Fp64 => out.extend_from_slice(&v.as_f64().ok_or_else(bad)?.to_le_bytes()),
            DataType::Fp16 | DataType::Bf16 | DataType::Bytes => {
                // (BYTES was taken above.)
                return Err(format!(
                    "input {name:?}: {} travels as binary data only (parameters.binary_data_size)",
                    datatype.as_str()
                ));
            }
        }
    }
    Ok(out.freeze())
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn uint<T: TryFrom<u64>>(v: &Value) -> Option<T> {
    v.as_u64().and_then(|n| T::try_from(n).ok())
}

fn int<T: TryFrom<i64>>(v: &Value) -> Option<T> {
    v.as_i64().and_then(|n| T::try_from(n).ok())
}

/// Raw bytes of `datatype` as a flat JSON array (`None`: it travels as
/// binary data only).
pub fn json_of(datatype: DataType, raw: &[u8]) -> Option<Value> {
    if datatype == DataType::Bytes {
        let strings = crate::oip::bytes::decode(raw)?;
        return Some(Value::Array(
            strings
                .into_iter()
                .map(|s| Value::String(String::from_utf8_lossy(s).into_owned()))
                .collect(),
        ));
    }
    let width = datatype.size();
    if width == 0 || matches!(datatype, DataType::Fp16 | DataType::Bf16) {
        return None;
    }
    let values = raw.chunks_exact(width).map(|c| {
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(c);
        match datatype {
            DataType::Bool => json!(c[0] != 0),
            DataType::Uint8 => json!(c[0]),
            DataType::Uint16 => json!(u16::from_le_bytes([c[0], c[1]])),
            DataType::Uint32 => json!(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DataType::Uint64 => json!(u64::from_le_bytes(b)),
            DataType::Int8 => json!(i8::from_le_bytes([c[0]])),
            DataType::Int16 => json!(i16::from_le_bytes([c[0], c[1]])),
            DataType::Int32 => json!(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            DataType::Int64 => json!(i64::from_le_bytes(b)),
            DataType::Fp32 => json!(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => json!(f64::from_le_bytes(b)),
        }
    });
    Some(Value::Array(values.collect()))
}

/// A REST inference request, read: the gRPC request it stands for, and
/// whether each output (by name; `None`: every output) goes back binary.
pub struct Request {
    pub infer: pb::ModelInferRequest,
    /// Outputs asked for binary data; `all_binary` for every output.
    pub binary: Vec<String>,
    pub all_binary: bool,
    /// The `timeout` parameter, microseconds.
    pub timeout_us: Option<u64>,
}

/// Reads a REST inference body: `header_len` is the
/// `Inference-Header-Content-Length` (the whole body when absent).
///
/// # Errors
/// What is wrong with the body, naming the tensor.
pub fn read_request(
    model: &str,
    version: &str,
    body: &Bytes,
    header_len: Option<usize>,
) -> Result<Request, Bad> {
    let header_len = header_len.unwrap_or(body.len());
    if header_len > body.len() {
        return Err(format!(
            "Inference-Header-Content-Length is {header_len} but the body has {} bytes",
            body.len()
        ));
    }
    let header: Value = serde_json::from_slice(&body[..header_len])
        .map_err(|e| format!("the request is not JSON: {e}"))?;
    let empty = Map::new();
    let object = header
        .as_object()
        .ok_or("the request must be a JSON object")?;
    let params = object
        .get("parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut binary_at = header_len;
    let mut inputs = Vec::new();
    let mut raw = Vec::new();
    for (i, t) in object
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("the request has no \"inputs\" array")?
        .iter()
        .enumerate()
    {
        let (input, bytes) = read_input(i, t, body, &mut binary_at)?;
        inputs.push(input);
        raw.push(bytes);
    }
    if binary_at != body.len() {
        return Err(format!(
            "{} bytes of binary data after the inputs' binary_data_size",
            body.len() - binary_at
        ));
    }
    let all_binary = params
        .get("binary_data_output")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (outputs, binary) = read_outputs(object)?;
    let (parameters, timeout_us) = read_parameters(params)?;
    Ok(Request {
        infer: pb::ModelInferRequest {
            model_name: model.to_owned(),
            model_version: version.to_owned(),
            id: object
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            parameters,
            inputs,
            outputs,
            raw_input_contents: raw,
        },
        binary,
        all_binary,
        timeout_us,
    })
}

/// Input `i` of a request, `t`, and its contents: from its JSON `data`, or
/// the next `binary_data_size` bytes of the body after `binary_at`.
fn read_input(
    i: usize,
    t: &Value,
    body: &Bytes,
    binary_at: &mut usize,
) -> Result<(pb::model_infer_request::InferInputTensor, Bytes), Bad> {
    let field = |k: &str| t.get(k);
    let name = field("name")
        .and_then(Value::as_str)
        .ok_or(format!("inputs[{i}] has no \"name\""))?;
    let datatype_name = field("datatype")
        .and_then(Value::as_str)
        .ok_or(format!("input {name:?} has no \"datatype\""))?;
    let shape = field("shape")
        .and_then(Value::as_array)
        .ok_or(format!("input {name:?} has no \"shape\""))?
        .iter()
        .map(|d| {
            d.as_i64().ok_or(format!(
                "input {name:?}: the shape holds {d}, not a whole number"
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let binary_size = field("parameters")
        .and_then(|p| p.get("binary_data_size"))
        .map(|n| {
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(format!(
                    "input {name:?}: binary_data_size {n} is not a size"
                ))
        })
        .transpose()?;
    let bytes = match (binary_size, field("data")) {
        (Some(size), _) => {
            let end = binary_at
                .checked_add(size)
                .filter(|&e| e <= body.len())
                .ok_or(format!(
                    "input {name:?}: binary_data_size {size} passes the end of the body ({} bytes of binary data left)",
                    body.len() - *binary_at
                ))?;
            let b = body.slice(*binary_at..end);
            *binary_at = end;
            b
        }
        (None, Some(data)) => {
            let datatype = DataType::parse(datatype_name).ok_or(format!(
                "input {name:?}: unknown datatype {datatype_name:?}"
            ))?;
            raw_of(name, datatype, data)?
        }
        (None, None) => {
            return Err(format!(
                "input {name:?} has neither \"data\" nor binary data"
            ));
        }
    };
    let input = pb::model_infer_request::InferInputTensor {
        name: name.to_owned(),
        datatype: datatype_name.to_owned(),
        shape,
        ..Default::default()
    };
    Ok((input, bytes))
}

/// The outputs a request asks for, and those of them asked as binary data.
fn read_outputs(
    object: &Map<String, Value>,
) -> Result<
    (
        Vec<pb::model_infer_request::InferRequestedOutputTensor>,
        Vec<String>,
    ),
    Bad,
> {
    let mut binary = Vec::new();
    let mut outputs = Vec::new();
    for (i, o) in object
        .get("outputs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .ok_or(format!("outputs[{i}] has no \"name\""))?;
        if o.get("parameters")
            .and_then(|p| p.get("binary_data"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            binary.push(name.to_owned());
        }
        outputs.push(pb::model_infer_request::InferRequestedOutputTensor {
            name: name.to_owned(),
            ..Default::default()
        });
    }
    Ok((outputs, binary))
}

/// A request's `priority` (as the gRPC side's parameter) and `timeout`
/// (microseconds).
fn read_parameters(
    params: &Map<String, Value>,
) -> Result<
    (
        std::collections::HashMap<String, pb::InferParameter>,
        Option<u64>,
    ),
    Bad,
> {
    let mut parameters = std::collections::HashMap::new();
    if let Some(p) = params.get("priority") {
        let p = p
            .as_i64()
            .ok_or(format!("parameter priority {p} is not a whole number"))?;
        parameters.insert(
            "priority".to_owned(),
            pb::InferParameter {
                parameter_choice: Some(pb::infer_parameter::ParameterChoice::Int64Param(p)),
            },
        );
    }
    let timeout_us = params
        .get("timeout")
        .map(|t| {
            t.as_u64()
                .ok_or(format!("parameter timeout {t} is not microseconds"))
        })
        .transpose()?;
    Ok((parameters, timeout_us))
}

/// A gRPC answer as a REST body: the JSON header, and the binary data
/// after it when an output goes binary (then `Some(header length)`).
pub fn write_response(
    r: pb::ModelInferResponse,
    binary: &[String],
    all_binary: bool,
) -> (Vec<u8>, Option<usize>) {
    let mut tail = Vec::new();
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .zip(&r.raw_output_contents)
        .map(|(t, raw)| {
            let datatype = DataType::parse(&t.datatype);
            let as_json = datatype.and_then(|d| json_of(d, raw));
            let wants_binary = all_binary || binary.contains(&t.name);
            match as_json {
                Some(data) if !wants_binary => json!({
                    "name": t.name, "datatype": t.datatype, "shape": t.shape, "data": data,
                }),
                _ => {
                    tail.extend_from_slice(raw);
                    json!({
                        "name": t.name, "datatype": t.datatype, "shape": t.shape,
                        "parameters": { "binary_data_size": raw.len() },
                    })
                }
            }
        })
        .collect();
    let mut header = json!({
        "model_name": r.model_name,
        "model_version": r.model_version,
        "outputs": outputs,
    });
    if !r.id.is_empty() {
        header["id"] = json!(r.id);
    }
    let mut body = header.to_string().into_bytes();
    if tail.is_empty() {
        return (body, None);
    }
    let header_len = body.len();
    body.extend_from_slice(&tail);
    (body, Some(header_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_data_round_trips_through_raw_bytes() {
        for (t, data) in [
            (DataType::Fp32, json!([[1.5, -2.0], [3.25, 0.0]])),
            (DataType::Int64, json!([-5, 7, i64::MAX])),
            (DataType::Uint8, json!([0, 255])),
            (DataType::Bool, json!([true, false])),
            (DataType::Int16, json!([-32768, 32767])),
        ] {
            let raw = raw_of("x", t, &data).unwrap();
            let mut flat = Vec::new();
            flatten(&data, &mut flat);
            assert_eq!(
                json_of(t, &raw).unwrap(),
                Value::Array(flat.into_iter().cloned().collect())
            );
        }
        let e = raw_of("x", DataType::Uint8, &json!([256])).unwrap_err();
        assert!(e.contains("element 0 (256) is not a UINT8"), "{e}");
        let e = raw_of("x", DataType::Fp32, &json!(["one"])).unwrap_err();
        assert!(e.contains("is not a FP32"), "{e}");
        assert!(
            raw_of("x", DataType::Fp16, &json!([1]))
                .unwrap_err()
                .contains("binary data only")
        );
        let text = raw_of(
            "s",
            DataType::Bytes,
            &json!([["a", ""], ["\u{e9}t\u{e9}", "z"]]),
        )
        .unwrap();
        assert_eq!(
            json_of(DataType::Bytes, &text).unwrap(),
            json!(["a", "", "\u{e9}t\u{e9}", "z"])
        );
        assert!(
            raw_of("s", DataType::Bytes, &json!([1]))
                .unwrap_err()
                .contains("is not a string")
        );
    }

    #[test]
    fn binary_inputs_follow_the_header_and_are_checked() {
        let header = br#"{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"priority":2,"timeout":5000}}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[0u8; 8]);
        let r = read_request("m", "", &Bytes::from(body.clone()), Some(header.len())).unwrap();
        assert_eq!(r.infer.raw_input_contents[0].len(), 8);
        assert_eq!(r.binary, ["y"]);
        assert_eq!(r.timeout_us, Some(5_000));
        assert!(r.infer.parameters.contains_key("priority"));
        body.truncate(body.len() - 1);
        let e = read_request("m", "", &Bytes::from(body), Some(header.len()))
            .err()
            .unwrap();
        assert!(e.contains("passes the end of the body"), "{e}");
        let e = read_request("m", "", &Bytes::from_static(b"{}"), Some(99))
            .err()
            .unwrap();
        assert!(e.contains("Inference-Header-Content-Length is 99"), "{e}");
        let e = read_request("m", "", &Bytes::from_static(b"[1]"), None)
            .err()
            .unwrap();
        assert!(e.contains("JSON object"), "{e}");
    }
}

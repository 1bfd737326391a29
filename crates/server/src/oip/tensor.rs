//! Tensor datatypes of the Open Inference Protocol and the typed
//! `contents` → raw little-endian bytes conversion. Pure functions.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::pb::InferTensorContents;

/// A tensor element type, by its protocol name (`"FP32"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    /// One byte, 0 or 1.
    Bool,
    /// Unsigned integers.
    Uint8,
    #[allow(missing_docs)]
    Uint16,
    #[allow(missing_docs)]
    Uint32,
    #[allow(missing_docs)]
    Uint64,
    /// Signed integers.
    Int8,
    #[allow(missing_docs)]
    Int16,
    #[allow(missing_docs)]
    Int32,
    #[allow(missing_docs)]
    Int64,
    /// IEEE half precision (raw contents only).
    Fp16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// bfloat16 (raw contents only).
    Bf16,
    /// Variable-length byte strings: declared only to be refused by name
    /// (a row of them has no fixed size to batch by).
    Bytes,
}

impl DataType {
    /// Every datatype, in the protocol's order.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bf16,
        DataType::Bytes,
    ];

    /// The protocol's name of it.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bf16 => "BF16",
            DataType::Bytes => "BYTES",
        }
    }

    /// The datatype of that protocol name.
    pub fn parse(name: &str) -> Option<DataType> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element (0 for BYTES, which has no fixed size).
    pub fn size(self) -> usize {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => 0,
        }
    }
}

/// The raw little-endian bytes of `elements` values of type `dt` given as
/// typed `contents`.
///
/// # Errors
/// A message (without the tensor's name) when the contents hold another
/// count of values than `elements`, use a field of another datatype, hold
/// a value out of the datatype's range, or the datatype travels raw only.
pub fn contents_to_bytes(
    dt: DataType,
    c: &InferTensorContents,
    elements: usize,
) -> Result<Bytes, String> {
    let given = [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ];
    let field = match dt {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => {
            return Err(format!(
                "{} tensors travel in raw_input_contents only",
                dt.as_str()
            ));
        }
    };
    if let Some((other, _)) = given.iter().find(|(f, n)| *f != field && *n > 0) {
        return Err(format!(
            "{} contents go in {field}, not {other}",
            dt.as_str()
        ));
    }
    let count = given.iter().find(|(f, _)| *f == field).map_or(0, |g| g.1);
    if count != elements {
        return Err(format!(
            "{field} holds {count} values where the shape needs {elements}"
        ));
    }
    let mut out = BytesMut::with_capacity(elements * dt.size());
    let range = |v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(format!("{v} is out of range for {}", dt.as_str()))
        }
    };
    match dt {
        DataType::Bool => c
            .bool_contents
            .iter()
            .for_each(|&b| out.put_u8(u8::from(b))),
        DataType::Int8 => {
            for &v in &c.int_contents {
                range(v.into(), i8::MIN.into(), i8::MAX.into())?;
                out.put_i8(v as i8);
            }
        }
        DataType::Int16 => {
            for &v in &c.int_contents {
                range(v.into(), i16::MIN.into(), i16::MAX.into())?;
                out.put_i16_le(v as i16);
            }
        }
        DataType::Int32 => c.int_contents.iter().for_each(|&v| out.put_i32_le(v)),
        DataType::Int64 => c.int64_contents.iter().for_each(|&v| out.put_i64_le(v)),
        DataType::Uint8 => {
            for &v in &c.uint_contents {
                range(v.into(), 0, u8::MAX.into())?;
                out.put_u8(v as u8);
            }
        }
        DataType::Uint16 => {
            for &v in &c.uint_contents {
                range(v.into(), 0, u16::MAX.into())?;
                out.put_u16_le(v as u16);
            }
        }
        DataType::Uint32 => c.uint_contents.iter().for_each(|&v| out.put_u32_le(v)),
        DataType::Uint64 => c.uint64_contents.iter().for_each(|&v| out.put_u64_le(v)),
        DataType::Fp32 => c.fp32_contents.iter().for_each(|&v| out.put_f32_le(v)),
        DataType::Fp64 => c.fp64_contents.iter().for_each(|&v| out.put_f64_le(v)),
        DataType::Fp16 | DataType::Bf16 | DataType::Bytes => {}
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes_follow_the_type() {
        for dt in DataType::ALL {
            assert_eq!(DataType::parse(dt.as_str()), Some(dt));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::Fp32.size(), 4);
        assert_eq!(DataType::Bf16.size(), 2);
        assert_eq!(DataType::Bool.size(), 1);
    }

    #[test]
    fn typed_contents_become_little_endian_bytes() {
        let c = InferTensorContents {
            fp32_contents: vec![1.0, -2.5],
            ..Default::default()
        };
        let b = contents_to_bytes(DataType::Fp32, &c, 2).unwrap();
        assert_eq!(
            &b[..],
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        let c = InferTensorContents {
            int_contents: vec![-1, 300],
            ..Default::default()
        };
        let b = contents_to_bytes(DataType::Int16, &c, 2).unwrap();
        assert_eq!(
            &b[..],
            [(-1i16).to_le_bytes(), 300i16.to_le_bytes()].concat()
        );
    }

    #[test]
    fn wrong_contents_are_named() {
        let c = InferTensorContents {
            fp32_contents: vec![1.0],
            ..Default::default()
        };
        let e = contents_to_bytes(DataType::Fp32, &c, 2).unwrap_err();
        assert!(e.contains("holds 1 values where the shape needs 2"), "{e}");
        let e = contents_to_bytes(DataType::Int64, &c, 1).unwrap_err();
        assert!(e.contains("int64_contents, not fp32_contents"), "{e}");
        let e = contents_to_bytes(DataType::Fp16, &c, 1).unwrap_err();
        assert!(e.contains("raw_input_contents only"), "{e}");
        let c = InferTensorContents {
            int_contents: vec![200],
            ..Default::default()
        };
        let e = contents_to_bytes(DataType::Int8, &c, 1).unwrap_err();
        assert!(e.contains("200 is out of range for INT8"), "{e}");
    }
}

//! Reading an item's payload (or answer) back into its tensors: for each
//! declared tensor, its variable dimensions (the 4-byte little-endian
//! integers that lead a variable tensor's rows) and where its rows lie,
//! numeric rows at their size and BYTES rows as their length-prefixed
//! elements. The layout is the one [`crate::oip::model`] describes.

use std::ops::Range;

use super::{DataType, TensorSpec, bytes as bytes_tensor, model::VARIABLE};

/// One tensor's part of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its variable dimensions (empty for a fixed shape).
    pub dims: Vec<u32>,
    /// Where its rows lie (after the dims).
    pub rows: Range<usize>,
}

/// Whether rows of these tensors are all of one size (no BYTES, no `-1`),
/// so a payload's length tells its row count.
pub fn fixed(tensors: &[TensorSpec]) -> bool {
    tensors
        .iter()
        .all(|t| t.datatype != DataType::Bytes && !t.is_variable())
}

/// The segments of `rows` rows of every tensor, in order, in `payload`.
///
/// # Errors
/// What does not fit: a dims prefix or an element past the end, a
/// variable dimension of 0, bytes left over.
pub fn split(tensors: &[TensorSpec], payload: &[u8], rows: usize) -> Result<Vec<Segment>, String> {
    let mut at = 0;
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let count = t.shape.iter().filter(|&&d| d == VARIABLE).count();
        let mut dims = Vec::with_capacity(count);
        for j in 0..count {
            let d = payload
                .get(at..at + 4)
                .ok_or_else(|| format!("{:?}: its dimension {j} passes the end", t.name))?;
            let d = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            if d == 0 {
                return Err(format!("{:?}: its variable dimension {j} is 0", t.name));
            }
            dims.push(d);
            at += 4;
        }
        let elements = t.elements_with(&dims).saturating_mul(rows);
        let start = at;
        at = if t.datatype == DataType::Bytes {
            bytes_tensor::elements_end(payload, at, elements)
                .map_err(|e| format!("{:?}: {e}", t.name))?
        } else {
            let end = at.saturating_add(elements.saturating_mul(t.datatype.size()));
            if end > payload.len() {
                return Err(format!(
                    "{:?}: {rows} rows of it need {} bytes, {} are left",
                    t.name,
                    end - start,
                    payload.len() - start
                ));
            }
            end
        };
        out.push(Segment {
            dims,
            rows: start..at,
        });
    }
    if at != payload.len() {
        return Err(format!(
            "{} bytes left after {rows} rows of every tensor",
            payload.len() - at
        ));
    }
    Ok(out)
}

/// Where each of `rows` rows of `t` (with variable dimensions `dims`)
/// starts in `data`, and where the last ends.
///
/// # Errors
/// Data that is not `rows` such rows.
pub fn row_offsets(
    t: &TensorSpec,
    dims: &[u32],
    data: &[u8],
    rows: usize,
) -> Result<Vec<usize>, String> {
    let per_row = t.elements_with(dims);
    if t.datatype == DataType::Bytes {
        return bytes_tensor::row_offsets(data, rows, per_row);
    }
    let size = per_row.saturating_mul(t.datatype.size());
    if size.saturating_mul(rows) != data.len() {
        return Err(format!(
            "{} bytes where {rows} rows of {size} bytes are {}",
            data.len(),
            size.saturating_mul(rows)
        ));
    }
    Ok((0..=rows).map(|r| r * size).collect())
}

/// Variable dimensions as they lead a row: 4-byte little-endian each.
pub fn dims_prefix(dims: &[u32]) -> Vec<u8> {
    dims.iter().flat_map(|d| d.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> Vec<TensorSpec> {
        let model: crate::oip::ModelSpec = toml::from_str(
            r#"
inputs = [{ name = "ids", datatype = "INT32", shape = [-1] }, { name = "text", datatype = "BYTES", shape = [2] }]
outputs = [{ name = "y", datatype = "FP32" }]
"#,
        )
        .unwrap();
        model.inputs
    }

    #[test]
    fn a_payload_splits_into_dims_and_rows() {
        let mut p = dims_prefix(&[3]);
        p.extend_from_slice(&[0; 12]);
        p.extend(bytes_tensor::encode(&["ab", ""]).unwrap());
        let s = split(&tensors(), &p, 1).unwrap();
        assert_eq!(s[0].dims, [3]);
        assert_eq!(s[0].rows, 4..16);
        assert_eq!(s[1].dims, Vec::<u32>::new());
        assert_eq!(s[1].rows, 16..26);
        assert!(fixed(&tensors()[..0]));
        assert!(!fixed(&tensors()));
    }

    #[test]
    fn bad_payloads_say_where() {
        let t = tensors();
        assert!(
            split(&t, &[1, 0], 1)
                .unwrap_err()
                .contains("dimension 0 passes the end")
        );
        assert!(split(&t, &[0; 4], 1).unwrap_err().contains("is 0"));
        let mut short = dims_prefix(&[3]);
        short.extend_from_slice(&[0; 8]);
        assert!(
            split(&t, &short, 1)
                .unwrap_err()
                .contains("need 12 bytes, 8 are left")
        );
        let mut long = dims_prefix(&[1]);
        long.extend_from_slice(&[0; 4]);
        long.extend(bytes_tensor::encode(&["a", "b"]).unwrap());
        long.push(9);
        assert!(split(&t, &long, 1).unwrap_err().contains("1 bytes left"));
        assert_eq!(row_offsets(&t[0], &[2], &[0; 16], 2).unwrap(), [0, 8, 16]);
        assert!(row_offsets(&t[0], &[2], &[0; 15], 2).is_err());
    }
}

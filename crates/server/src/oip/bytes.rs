//! BYTES tensors: each element is a 4-byte little-endian length and that
//! many bytes (Triton's raw layout). A row of a BYTES tensor is its
//! elements one after the other, so a row's bytes vary; an item's payload
//! holds its rows of every input in the declared order (numeric rows at
//! their fixed size, BYTES rows as their elements), which a backend reads
//! in order knowing the model.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of a length prefix.
pub const PREFIX: usize = 4;

/// The end of `elements` length-prefixed elements starting at `at` in
/// `data`.
///
/// # Errors
/// Which element's prefix or bytes pass the end.
pub fn elements_end(data: &[u8], at: usize, elements: usize) -> Result<usize, String> {
    let mut pos = at;
    for k in 0..elements {
        let prefix = data.get(pos..pos + PREFIX).ok_or_else(|| {
            format!(
                "element {k}: its length prefix passes the end ({} bytes)",
                data.len()
            )
        })?;
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        pos += PREFIX;
        pos = pos
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                format!(
                    "element {k}: its length {len} passes the end ({} bytes left)",
                    data.len() - pos
                )
            })?;
    }
    Ok(pos)
}

/// Where each of `rows` rows of `per_row` elements starts in `data`, and
/// where the last ends (`rows + 1` offsets).
///
/// # Errors
/// A prefix past the end, or bytes left after the last row.
pub fn row_offsets(data: &[u8], rows: usize, per_row: usize) -> Result<Vec<usize>, String> {
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut at = 0;
    for row in 0..rows {
        at = elements_end(data, at, per_row).map_err(|e| format!("row {row}, {e}"))?;
        offsets.push(at);
    }
    if at != data.len() {
        return Err(format!(
            "{} bytes left after its {rows} rows of {per_row} elements",
            data.len() - at
        ));
    }
    Ok(offsets)
}

/// Elements (typed `bytes_contents`) in the raw layout.
///
/// # Errors
/// An element longer than a length prefix holds.
pub fn encode(elements: &[impl AsRef<[u8]>]) -> Result<Bytes, String> {
    let total: usize = elements.iter().map(|e| e.as_ref().len() + PREFIX).sum();
    let mut out = BytesMut::with_capacity(total);
    for (k, e) in elements.iter().enumerate() {
        let e = e.as_ref();
        let len =
            u32::try_from(e.len()).map_err(|_| format!("element {k} is longer than 4 GiB"))?;
        out.put_u32_le(len);
        out.extend_from_slice(e);
    }
    Ok(out.freeze())
}

/// The elements of raw BYTES data (each without its prefix).
pub fn decode(data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data.get(pos..pos + PREFIX)?;
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let start = pos + PREFIX;
        let end = start.checked_add(len).filter(|&e| e <= data.len())?;
        out.push(&data[start..end]);
        pos = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_by_their_prefixes() {
        let data = encode(&["ab", "", "xyz", "\u{e9}"]).unwrap();
        assert_eq!(row_offsets(&data, 2, 2).unwrap(), [0, 10, 23]);
        assert_eq!(decode(&data).unwrap()[2], b"xyz");
        let e = row_offsets(&data, 3, 2).unwrap_err();
        assert!(
            e.contains("row 2, element 0: its length prefix passes the end"),
            "{e}"
        );
        let e = row_offsets(&data, 1, 2).unwrap_err();
        assert!(e.contains("13 bytes left after its 1 rows"), "{e}");
        let mut huge = vec![0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(b"abc");
        let e = row_offsets(&huge, 1, 1).unwrap_err();
        assert!(
            e.contains("its length 4294967295 passes the end (3 bytes left)"),
            "{e}"
        );
        assert_eq!(decode(&huge), None);
        // Not UTF-8 is fine: BYTES is bytes.
        let raw = encode(&[[0xffu8, 0xfe]]).unwrap();
        assert_eq!(row_offsets(&raw, 1, 1).unwrap(), [0, 6]);
    }
}

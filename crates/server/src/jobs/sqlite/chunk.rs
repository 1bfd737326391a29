//! A chunk of results as one blob: the answers one store call recorded
//! (or the items a cancel, expiry or failure ended), stored as one row so a
//! chunk costs one write, not one a result.
//!
//! Each entry: seq (u64), batch id (u64), code (i32), then custom_id,
//! message, payload and the attributes as JSON, each as a u32 length and
//! its bytes; little-endian throughout.

use std::collections::HashMap;

use bytes::{Buf, BufMut};

use super::{super::Outcome, Ctx, StoreError, StoreResult, sql};

/// One result in a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub seq: u64,
    pub custom_id: String,
    pub outcome: Outcome,
    pub batch_id: u64,
}

/// The blob of `entries`.
pub(super) fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 64);
    for e in entries {
        out.put_u64_le(e.seq);
        out.put_u64_le(e.batch_id);
        let (code, message, payload, attributes): (i32, &str, &[u8], String) = match &e.outcome {
            Outcome::Ok {
                payload,
                attributes,
            } => (
                0,
                "",
                payload,
                if attributes.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(attributes).unwrap_or_default()
                },
            ),
            Outcome::Err { code, message } => (*code, message, &[], String::new()),
        };
        out.put_i32_le(code);
        for field in [
            e.custom_id.as_bytes(),
            message.as_bytes(),
            payload,
            attributes.as_bytes(),
        ] {
            out.put_u32_le(u32::try_from(field.len()).unwrap_or(u32::MAX));
            out.put_slice(field);
        }
    }
    out
}

/// The entries of column `at` of a `chunks` row.
///
/// # Errors
/// The column is not a blob, or the blob is damaged: the file is.
pub(super) fn read(ctx: &Ctx, row: &rusqlite::Row<'_>, at: usize) -> StoreResult<Vec<Entry>> {
    let blob = row
        .get_ref(at)
        .and_then(|v| v.as_blob().map_err(Into::into))
        .map_err(|e| sql(ctx, &e))?;
    decode(blob).map_err(|reason| StoreError::Unavailable {
        path: ctx.path.clone(),
        reason,
    })
}

/// The entries of a blob.
///
/// # Errors
/// A blob cut short or not UTF-8 where text belongs: the file is damaged.
pub(super) fn decode(mut blob: &[u8]) -> Result<Vec<Entry>, String> {
    let short = || "a result chunk is cut short (the store file is damaged)".to_owned();
    let mut out = Vec::new();
    while blob.has_remaining() {
        if blob.remaining() < 20 {
            return Err(short());
        }
        let seq = blob.get_u64_le();
        let batch_id = blob.get_u64_le();
        let code = blob.get_i32_le();
        let mut fields: [&[u8]; 4] = [&[]; 4];
        for field in &mut fields {
            if blob.remaining() < 4 {
                return Err(short());
            }
            let len = blob.get_u32_le() as usize;
            if blob.remaining() < len {
                return Err(short());
            }
            *field = &blob[..len];
            blob.advance(len);
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| short());
        let outcome = if code == 0 {
            Outcome::Ok {
                payload: fields[2].to_vec().into(),
                attributes: if fields[3].is_empty() {
                    HashMap::new()
                } else {
                    serde_json::from_slice(fields[3]).map_err(|_| short())?
                },
            }
        } else {
            Outcome::Err {
                code,
                message: text(fields[1])?,
            }
        };
        out.push(Entry {
            seq,
            custom_id: text(fields[0])?,
            outcome,
            batch_id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_what_was_written_and_a_cut_one_is_an_error() {
        let entries = vec![
            Entry {
                seq: 7,
                custom_id: "doc-7".into(),
                outcome: Outcome::Ok {
                    payload: vec![0, 1, 2].into(),
                    attributes: HashMap::from([("k".to_owned(), "v".to_owned())]),
                },
                batch_id: 3,
            },
            Entry {
                seq: 9,
                custom_id: "é".into(),
                outcome: Outcome::Err {
                    code: 4,
                    message: "late".into(),
                },
                batch_id: 0,
            },
        ];
        let blob = encode(&entries);
        assert_eq!(decode(&blob).unwrap(), entries);
        for cut in [1, 20, blob.len() - 1] {
            assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[]).unwrap().is_empty());
    }
}

//! The JSONL a job is uploaded from: one item a line,
//! `{"custom_id": "...", "payload": "text"}` (or `"payload_b64"`), with
//! optional `attributes`, `cost` and `batch_key`. A bad line is named by
//! its number and field before anything is sent.

use std::{
    collections::{HashMap, HashSet},
    io::BufRead,
};

use base64::Engine;
use serde::Deserialize;

use batchgate::pb;

/// Longest custom_id, bytes (the server's bound too).
const MAX_CUSTOM_ID: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    custom_id: String,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    payload_b64: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    cost: Option<u64>,
    #[serde(default)]
    batch_key: String,
}

/// One line as an item; `n` is its line number (from 1).
pub fn parse_line(n: usize, text: &str) -> Result<pb::JobItem, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| format!("line {n}: {e}"))?;
    if line.custom_id.is_empty() || line.custom_id.len() > MAX_CUSTOM_ID {
        return Err(format!(
            "line {n}: custom_id must be 1 to {MAX_CUSTOM_ID} bytes"
        ));
    }
    let payload = match (line.payload, line.payload_b64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("line {n}: payload_b64: {e}"))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(format!("line {n}: payload and payload_b64: give one"));
        }
    };
    Ok(pb::JobItem {
        custom_id: line.custom_id,
        payload: payload.into(),
        attributes: line.attributes,
        cost: line.cost,
        batch_key: line.batch_key,
    })
}

/// Reads every line of `input`, handing each item to `each`; blank lines
/// are skipped. `ids`: the custom_ids seen, to find a duplicate (by line).
///
/// # Errors
/// The first bad line, by number and field, or the read error.
pub fn read_all(
    input: impl BufRead,
    ids: &mut HashSet<String>,
    mut each: impl FnMut(pb::JobItem) -> Result<(), String>,
) -> Result<usize, String> {
    let mut count = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_line(i + 1, &line)?;
        if !ids.insert(item.custom_id.clone()) {
            return Err(format!(
                "line {}: custom_id {:?} appears twice",
                i + 1,
                item.custom_id
            ));
        }
        each(item)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_say_where_they_are_wrong() {
        let item = parse_line(
            1,
            r#"{"custom_id": "a", "payload": "hi", "attributes": {"k": "v"}, "cost": 3}"#,
        )
        .unwrap();
        assert_eq!(
            (&item.custom_id[..], &item.payload[..], item.cost),
            ("a", &b"hi"[..], Some(3))
        );
        let item = parse_line(2, r#"{"custom_id": "b", "payload_b64": "AAE="}"#).unwrap();
        assert_eq!(&item.payload[..], &[0, 1]);
        for (text, says) in [
            (r#"{"payload": "x"}"#, "line 7: missing field `custom_id`"),
            (
                r#"{"custom_id": "", "payload": "x"}"#,
                "line 7: custom_id must be",
            ),
            (
                r#"{"custom_id": "a", "payload_b64": "%%"}"#,
                "line 7: payload_b64",
            ),
            (
                r#"{"custom_id": "a", "colour": 1}"#,
                "line 7: unknown field `colour`",
            ),
            (r#"{"custom_id": "a", "cost": -1}"#, "line 7: invalid value"),
            ("not json", "line 7: expected"),
        ] {
            let e = parse_line(7, text).unwrap_err();
            assert!(e.starts_with(says), "{text}: {e}");
        }
        let mut ids = HashSet::new();
        let e = read_all(
            "{\"custom_id\": \"a\"}\n\n{\"custom_id\": \"a\"}\n".as_bytes(),
            &mut ids,
            |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(e, "line 3: custom_id \"a\" appears twice");
    }
}

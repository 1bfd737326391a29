//! Calling an HTTP/JSON backend: one POST per batch.
//!
//! Request body:
//! ```json
//! {"batch_id": 7, "queue": "q", "timeout_ms": 950, "trigger": "delay", "pad_to": 8, "batch_key": "a",
//!  "items": [{"index": 0, "payload": "aGVsbG8=", "attributes": {}, "trace_id": "7.0"}]}
//! ```
//! Response body (status 200):
//! ```json
//! {"results": [{"index": 0, "payload": "aGVsbG8=", "attributes": {}},
//!              {"index": 1, "error": {"code": 3, "message": "bad item"}}]}
//! ```
//! Payloads are base64 strings, or raw JSON values when the queue sets
//! `json_payloads` (then a client payload that is not JSON fails alone with
//! INVALID_ARGUMENT before the call).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tonic::Status;

use super::call::{CallError, CallInput, item_error};
use crate::contract::ItemOutput;

#[derive(Serialize)]
struct Request<'a> {
    batch_id: u64,
    queue: &'a str,
    timeout_ms: u32,
    trigger: &'static str,
    items: Vec<RequestItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pad_to: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch_key: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestItem<'a> {
    index: usize,
    payload: Payload<'a>,
    attributes: &'a HashMap<String, String>,
    trace_id: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Base64(String),
    Json(&'a RawValue),
}

#[derive(Deserialize)]
struct Response {
    results: Vec<ResponseItem>,
}

#[derive(Deserialize)]
struct ResponseItem {
    index: u32,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    #[serde(default)]
    error: Option<ResponseError>,
}

#[derive(Deserialize)]
struct ResponseError {
    #[serde(default = "unknown_code")]
    code: i32,
    #[serde(default)]
    message: String,
}

fn unknown_code() -> i32 {
    tonic::Code::Unknown as i32
}

/// Posts the items of `input` and delivers each result.
pub(super) async fn call(
    client: &reqwest::Client,
    url: &str,
    input: &CallInput<'_>,
    (json_payloads, headers): (bool, &[(&'static str, String)]),
    deliver: &mut impl FnMut(u32, Result<ItemOutput, Status>),
) -> Result<(), CallError> {
    let batch = input.batch;
    let mut items = Vec::with_capacity(input.indexes.len());
    for &i in input.indexes {
        let item = &batch.items[i];
        let payload = if json_payloads {
            match serde_json::from_slice::<&RawValue>(&item.payload) {
                Ok(raw) => Payload::Json(raw),
                Err(e) => {
                    let index = u32::try_from(i).unwrap_or(u32::MAX);
                    deliver(
                        index,
                        Err(Status::invalid_argument(format!(
                            "payload is not JSON: {e}"
                        ))),
                    );
                    continue;
                }
            }
        } else {
            Payload::Base64(STANDARD.encode(&item.payload))
        };
        items.push(RequestItem {
            index: i,
            payload,
            attributes: &item.attributes,
            trace_id: input.trace_id(i),
        });
    }
    if items.is_empty() {
        return Ok(());
    }
    let body = Request {
        batch_id: batch.id,
        queue: &batch.queue,
        timeout_ms: input.timeout_ms(),
        trigger: batch.trigger.as_str(),
        items,
        pad_to: Some(input.pad_to()).filter(|&n| n > 0),
        batch_key: batch.key.as_deref(),
    };
    let timeout = input
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    let mut post = client.post(url).timeout(timeout);
    for (name, value) in headers {
        post = post.header(*name, value);
    }
    let response = post.json(&body).send().await.map_err(|e| {
        if e.is_timeout() {
            CallError::Deadline(Status::deadline_exceeded(e.to_string()))
        } else {
            CallError::Retry(Status::unavailable(format!("{url}: {e}")))
        }
    })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| CallError::Retry(Status::unavailable(format!("{url}: reading body: {e}"))))?;
    if !status.is_success() {
        return Err(classify(status, &bytes));
    }
    let parsed: Response = match serde_json::from_slice(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            let status = Status::internal(format!("backend response is not valid JSON: {e}"));
            for &i in input.indexes {
                deliver(u32::try_from(i).unwrap_or(u32::MAX), Err(status.clone()));
            }
            return Ok(());
        }
    };
    for result in parsed.results {
        deliver(result.index, output(result, json_payloads));
    }
    Ok(())
}

fn output(result: ResponseItem, json_payloads: bool) -> Result<ItemOutput, Status> {
    if let Some(e) = result.error {
        return Err(item_error(e.code, e.message));
    }
    let raw = result
        .payload
        .ok_or_else(|| Status::internal("backend result has neither payload nor error"))?;
    let payload = if json_payloads {
        raw.get().as_bytes().to_vec()
    } else {
        let text: String = serde_json::from_str(raw.get())
            .map_err(|_| Status::internal("backend payload is not a base64 string"))?;
        STANDARD
            .decode(text)
            .map_err(|e| Status::internal(format!("backend payload is not base64: {e}")))?
    };
    Ok(ItemOutput {
        payload: payload.into(),
        attributes: result.attributes,
    })
}

/// Sorts a non-2xx answer into the failure rules.
fn classify(status: StatusCode, body: &[u8]) -> CallError {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let message = format!("backend answered HTTP {status}: {text}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => CallError::Retry(Status::unavailable(message)),
        408 => CallError::Deadline(Status::deadline_exceeded(message)),
        400 | 413 | 422 => CallError::Rejected(Status::invalid_argument(message)),
        401 => CallError::Rejected(Status::unauthenticated(message)),
        403 => CallError::Rejected(Status::permission_denied(message)),
        404 => CallError::Rejected(Status::not_found(message)),
        500 => CallError::Rejected(Status::internal(message)),
        _ => CallError::Rejected(Status::unknown(message)),
    }
}

//! How the client subcommands print results: text for people, JSON lines
//! for programs.

use base64::Engine;
use serde_json::{Value, json};
use tonic::Code;

use batchgate::pb;

pub use batchgate::error::code_name;

/// A failed call as `CODE: message`; when tonic's message is only the
/// generic "transport error", the cause from its sources is said instead,
/// and a connection-level failure gets a hint (`with_tls`: whether the
/// client spoke TLS).
pub fn status_text(status: &tonic::Status, with_tls: bool) -> String {
    let message = status.message();
    let detail = match std::error::Error::source(status) {
        Some(source) if message.is_empty() || message == "transport error" => {
            super::explain(&super::error_chain(source), with_tls)
        }
        _ if matches!(
            status.code(),
            Code::Unknown | Code::Unavailable | Code::Internal | Code::Cancelled
        ) =>
        {
            super::explain(message, with_tls)
        }
        _ => message.to_owned(),
    };
    format!("{}: {detail}", code_name(status.code()))
}

/// A payload as text when it is UTF-8, else as `base64:<…>`.
pub fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(payload)
        ),
    }
}

/// One line about a batch: `batch 7 · size 12 · trigger delay · …`.
pub fn batch_text(batch: &pb::BatchInfo) -> String {
    format!(
        "batch {} · size {} · trigger {} · queued {:.3} ms · handler {:.3} ms",
        batch.batch_id,
        batch.batch_size,
        trigger_name(batch.trigger),
        batch.queued_us as f64 / 1000.0,
        batch.handler_us as f64 / 1000.0
    )
}

/// The lower-case trigger name.
pub fn trigger_name(trigger: i32) -> &'static str {
    match pb::Trigger::try_from(trigger) {
        Ok(pb::Trigger::Size) => "size",
        Ok(pb::Trigger::Bytes) => "bytes",
        Ok(pb::Trigger::Delay) => "delay",
        Ok(pb::Trigger::Flush) => "flush",
        Ok(pb::Trigger::Drain) => "drain",
        Ok(pb::Trigger::Target) => "target",
        _ => "unspecified",
    }
}

/// A result as JSON.
pub fn result_json(id: Option<&str>, response: &pb::SubmitResponse) -> Value {
    let mut v = json!({
        "payload": payload_text(&response.payload),
        "attributes": response.attributes,
    });
    if let Some(batch) = &response.batch {
        v["batch"] = batch_json(batch);
    }
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

/// An error as JSON.
pub fn error_json(id: Option<&str>, code: Code, message: &str) -> Value {
    let mut v = json!({ "error": { "code": code_name(code), "message": message } });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

fn batch_json(batch: &pb::BatchInfo) -> Value {
    json!({
        "id": batch.batch_id,
        "size": batch.batch_size,
        "trigger": trigger_name(batch.trigger),
        "queued_us": batch.queued_us,
        "handler_us": batch.handler_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_print_as_text_or_base64() {
        assert_eq!(payload_text(b"hello"), "hello");
        assert_eq!(payload_text(&[0xff, 0x00]), "base64:/wA=");
    }

    #[test]
    fn json_lines_carry_id_code_and_batch() {
        let v = error_json(Some("7"), Code::NotFound, "queue \"x\" not found");
        assert_eq!(v["id"], "7");
        assert_eq!(v["error"]["code"], "NOT_FOUND");
        let r = pb::SubmitResponse {
            payload: "hi".into(),
            attributes: Default::default(),
            batch: Some(pb::BatchInfo {
                batch_id: 3,
                batch_size: 2,
                trigger: pb::Trigger::Delay as i32,
                queued_us: 10,
                handler_us: 1,
            }),
        };
        let v = result_json(None, &r);
        assert_eq!(v["payload"], "hi");
        assert_eq!(v["batch"]["trigger"], "delay");
        assert_eq!(v["batch"]["size"], 2);
    }
}

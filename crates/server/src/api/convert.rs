//! Request → item and answer → response conversion, and the gRPC deadline
//! header: the only place the data plane's protobuf meets the queue's types.

use std::{sync::Arc, time::Duration};

use tonic::metadata::MetadataMap;

use tonic::Status;

use crate::{
    pb,
    queue::{Answer, BatchFacts, Item, Reply, StreamAnswer, budget::Charge},
};

/// Reads the `grpc-timeout` header a client sets with its call deadline
/// (`<1..8 digits><unit>`, unit one of `H M S m u n`).
pub fn parse_grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

/// How much earlier than the call's gRPC deadline a queued item expires.
///
/// tonic's server enforces `grpc-timeout` itself and answers CANCELLED when
/// it fires; expiring the item a little earlier (more than the 1 ms timer
/// tick) lets the client see the documented DEADLINE_EXCEEDED instead.
pub const GRPC_DEADLINE_MARGIN: Duration = Duration::from_millis(2);

/// The item's timeout: `timeout_ms` if set (0 = none), capped by the call's
/// own deadline (less [`GRPC_DEADLINE_MARGIN`]) if it has one.
pub fn item_timeout(timeout_ms: u32, call_timeout: Option<Duration>) -> Option<Duration> {
    let asked = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
    let call_timeout = call_timeout.map(|t| t.saturating_sub(GRPC_DEADLINE_MARGIN));
    match (asked, call_timeout) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// How long a caller may wait for its answer (its gRPC deadline less
/// [`GRPC_DEADLINE_MARGIN`]), if it set one.
pub fn call_deadline(metadata: &MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(metadata).map(|t| t.saturating_sub(GRPC_DEADLINE_MARGIN))
}

/// The client's request id, if it sent an `x-request-id` header.
pub fn request_id(metadata: &MetadataMap) -> Option<String> {
    let id = metadata.get("x-request-id")?.to_str().ok()?;
    (!id.is_empty() && id.len() <= 128).then(|| id.to_owned())
}

/// An item's batch key: the request's field, else the call's
/// `x-batch-key` header; `None` if neither is set.
pub fn batch_key(field: String, metadata: &MetadataMap) -> Option<Arc<str>> {
    if !field.is_empty() {
        return Some(field.into());
    }
    header_key(metadata)
}

/// The `x-batch-key` header, if set and not empty.
pub fn header_key(metadata: &MetadataMap) -> Option<Arc<str>> {
    let key = metadata.get("x-batch-key")?.to_str().ok()?;
    (!key.is_empty()).then(|| key.into())
}

/// An item's idempotency key: the request's field, else the call's
/// `x-idempotency-key` header; `None` if neither is set.
pub fn idempotency_key(field: String, metadata: &MetadataMap) -> Option<Arc<str>> {
    if !field.is_empty() {
        return Some(field.into());
    }
    let key = metadata.get("x-idempotency-key")?.to_str().ok()?;
    (!key.is_empty()).then(|| key.into())
}

/// Builds the item of a `Submit` call.
///
/// An item with an idempotency key is the key's, not the caller's: the
/// call's deadline does not become its timeout (a retry may still come
/// for its answer), so the caller waits with its own deadline instead (see
/// [`call_deadline`]).
pub fn unary_item(
    request: crate::pb::SubmitRequest,
    metadata: &MetadataMap,
    reply: Reply,
    charge: Charge,
) -> Item {
    let idempotency_key = idempotency_key(request.idempotency_key, metadata);
    let call_timeout = parse_grpc_timeout(metadata).filter(|_| idempotency_key.is_none());
    Item {
        payload: request.payload,
        attributes: request.attributes,
        priority: request.priority,
        timeout: item_timeout(request.timeout_ms, call_timeout),
        answer_within: call_timeout.map(|t| t.saturating_sub(GRPC_DEADLINE_MARGIN)),
        trace_id: request_id(metadata),
        trace: None,
        key: batch_key(request.batch_key, metadata),
        cost: request.cost,
        idempotency_key,
        reply,
        charge,
    }
}

/// The protobuf facts of a batch.
pub fn batch_info(b: BatchFacts) -> pb::BatchInfo {
    pb::BatchInfo {
        batch_id: b.id,
        batch_size: b.size,
        trigger: pb::Trigger::from(b.trigger) as i32,
        queued_us: b.queued_us,
        handler_us: b.handler_us,
    }
}

/// The response of a `Submit` call, or its status.
///
/// # Errors
/// The status the item failed with.
pub fn submit_response(answer: Answer) -> Result<pb::SubmitResponse, Status> {
    let output = answer.result?;
    Ok(pb::SubmitResponse {
        payload: output.payload,
        attributes: output.attributes,
        batch: answer.batch.map(batch_info),
    })
}

/// One answer on a `StreamSubmit` stream.
pub fn stream_response(a: StreamAnswer) -> pb::StreamResponse {
    use pb::stream_response::Outcome;
    let batch = a.answer.batch.map(batch_info);
    let outcome = match a.answer.result {
        Ok(output) => Outcome::Result(pb::SubmitResponse {
            payload: output.payload,
            attributes: output.attributes,
            batch,
        }),
        Err(status) => Outcome::Error(pb::ItemError {
            code: status.code() as i32,
            message: status.message().to_owned(),
            batch,
        }),
    };
    pb::StreamResponse {
        id: a.id,
        outcome: Some(outcome),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]
        /// Fuzz: any header text parses or is ignored, never a panic, and a
        /// well-formed one means what it says.
        #[test]
        fn fuzz_grpc_timeout(text in "[0-9]{0,10}[HMSmunx]?|\\PC{0,12}", digits in 0u64..100_000_000, unit in 0usize..6) {
            if let Ok(value) = text.parse() {
                let mut m = MetadataMap::new();
                m.insert("grpc-timeout", value);
                let _ = parse_grpc_timeout(&m);
            }
            let (u, scale) = [("H", 3_600_000_000_000u128), ("M", 60_000_000_000), ("S", 1_000_000_000), ("m", 1_000_000), ("u", 1_000), ("n", 1)][unit];
            let got = parse_grpc_timeout(&header(&format!("{digits}{u}")));
            prop_assert_eq!(got.map(|d| d.as_nanos()), Some(u128::from(digits) * scale));
        }
    }

    fn header(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", value.parse().unwrap());
        m
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(
            parse_grpc_timeout(&header("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_grpc_timeout(&header("3S")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_grpc_timeout(&header("1H")),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_grpc_timeout(&header("7u")),
            Some(Duration::from_micros(7))
        );
        for bad in ["", "m", "123456789m", "10x", "-1S"] {
            assert_eq!(parse_grpc_timeout(&header(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn earlier_of_request_timeout_and_call_deadline_wins() {
        let ms = Duration::from_millis;
        let call = |t: u64| Some(ms(t) - GRPC_DEADLINE_MARGIN);
        assert_eq!(item_timeout(0, None), None);
        assert_eq!(item_timeout(2000, None), Some(ms(2000)));
        assert_eq!(item_timeout(0, Some(ms(1000))), call(1000));
        assert_eq!(item_timeout(2000, Some(ms(1000))), call(1000));
        assert_eq!(item_timeout(500, Some(ms(1000))), Some(ms(500)));
        assert_eq!(item_timeout(0, Some(ms(1))), Some(Duration::ZERO));
    }
}

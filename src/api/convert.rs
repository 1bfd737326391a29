//! Request → item conversion, and the gRPC deadline header.

use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::queue::{Item, Reply};

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

/// The item's timeout: `timeout_ms` if set (0 = none), capped by the call's
/// own deadline if it has one.
pub fn item_timeout(timeout_ms: u32, call_timeout: Option<Duration>) -> Option<Duration> {
    let asked = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
    match (asked, call_timeout) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Builds the item of a `Submit` call.
pub fn unary_item(
    request: crate::pb::SubmitRequest,
    call_timeout: Option<Duration>,
    reply: Reply,
) -> Item {
    Item {
        payload: request.payload,
        attributes: request.attributes,
        priority: request.priority,
        timeout: item_timeout(request.timeout_ms, call_timeout),
        reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Duration::from_secs;
        assert_eq!(item_timeout(0, None), None);
        assert_eq!(item_timeout(2000, None), Some(s(2)));
        assert_eq!(item_timeout(0, Some(s(1))), Some(s(1)));
        assert_eq!(item_timeout(2000, Some(s(1))), Some(s(1)));
        assert_eq!(item_timeout(500, Some(s(1))), Some(Duration::from_millis(500)));
    }
}

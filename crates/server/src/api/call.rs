//! What every item of one v2 call shares: its deadline, request id,
//! batch key, priority (Triton's request parameters read by Triton's
//! convention) and attributes, and the item each row of it becomes.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use tonic::{Status, metadata::MetadataMap};

use super::{convert, tensors::bad};
use crate::{
    oip::pb,
    queue::{Item, Reply, budget::Charge},
};

/// The item of one payload, with the call's deadline, request id, key
/// and priority.
pub(super) fn item(payload: Bytes, call: &Call, reply: Reply, charge: Charge) -> Item {
    Item {
        payload,
        attributes: call.attributes.clone(),
        priority: call.priority,
        timeout: convert::item_timeout(0, call.timeout),
        answer_within: call
            .timeout
            .map(|t| t.saturating_sub(convert::GRPC_DEADLINE_MARGIN)),
        trace_id: call.request_id.clone(),
        trace: None,
        key: call.key.clone(),
        cost: call.cost,
        // One call is many rows; a retried ModelInfer has no key to meet.
        idempotency_key: None,
        reply,
        charge,
    }
}

/// What every item of one call shares.
pub(super) struct Call {
    pub(super) timeout: Option<std::time::Duration>,
    pub(super) request_id: Option<String>,
    pub(super) key: Option<Arc<str>>,
    pub(super) priority: u32,
    pub(super) cost: Option<u64>,
    pub(super) attributes: HashMap<String, String>,
}

impl Call {
    /// `levels`: the queue's priority levels, for Triton's convention.
    pub(super) fn new(
        metadata: &MetadataMap,
        r: &pb::ModelInferRequest,
        levels: u32,
    ) -> Result<Self, Status> {
        use pb::infer_parameter::ParameterChoice as P;
        let int = |name: &str| -> Result<Option<i64>, Status> {
            match r
                .parameters
                .get(name)
                .and_then(|p| p.parameter_choice.as_ref())
            {
                None => Ok(None),
                Some(P::Int64Param(p)) => Ok(Some(*p)),
                Some(P::Uint64Param(p)) => Ok(Some(i64::try_from(*p).unwrap_or(i64::MAX))),
                Some(_) => Err(bad(format!(
                    "parameter {name} must be an int64_param or uint64_param"
                ))),
            }
        };
        let priority = match int("priority")? {
            None | Some(0) => 0,
            Some(p) if p < 0 => {
                return Err(bad(format!("parameter priority must be ≥ 0, got {p}")));
            }
            Some(p) => triton_priority(p, levels)?,
        };
        let mut timeout = convert::parse_grpc_timeout(metadata);
        match int("timeout")? {
            None | Some(0) => {}
            Some(us) if us < 0 => {
                return Err(bad(format!(
                    "parameter timeout must be ≥ 0 microseconds, got {us}"
                )));
            }
            Some(us) => {
                let given = std::time::Duration::from_micros(us.unsigned_abs());
                timeout = Some(timeout.map_or(given, |t| t.min(given)));
            }
        }
        Ok(Self {
            timeout,
            request_id: convert::request_id(metadata),
            key: convert::header_key(metadata),
            priority,
            cost: None,
            attributes: HashMap::new(),
        })
    }
}

/// Triton's request priority `p` (1 the highest ..= `levels` the lowest)
/// as batchgate's (higher goes first, 0 the lowest).
fn triton_priority(p: i64, levels: u32) -> Result<u32, Status> {
    u32::try_from(p)
        .ok()
        .filter(|&p| p <= levels)
        .map(|p| levels - p)
        .ok_or_else(|| {
            bad(format!(
                "parameter priority {p} is past the model's levels (Triton's convention: 1 the highest ..= {levels} the lowest, 0 the default; the queue's priority_levels)"
            ))
        })
}

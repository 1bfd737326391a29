//! The server's and models' metadata, readiness, config, statistics and
//! the repository index.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{Value, json};

use super::answer::{failed, ok_json};
use crate::{api::inference::InferenceService, oip::pb};

pub(super) async fn server_metadata() -> Response {
    ok_json(json!({
        "name": "batchgate",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_configuration", "statistics", "binary_tensor_data"],
    }))
}

pub(super) async fn server_ready(State(s): State<InferenceService>) -> StatusCode {
    if s.stopping() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

pub(super) async fn model_metadata(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    metadata(&s, &m, "")
}

pub(super) async fn model_metadata_v(
    s: State<InferenceService>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    metadata(&s, &m, &v)
}

fn metadata(s: &InferenceService, m: &str, v: &str) -> Response {
    match s.metadata(m, v) {
        Ok(r) => {
            let tensors = |ts: &[pb::model_metadata_response::TensorMetadata]| {
                ts.iter()
                    .map(|t| json!({ "name": t.name, "datatype": t.datatype, "shape": t.shape }))
                    .collect::<Vec<_>>()
            };
            ok_json(json!({
                "name": r.name, "versions": r.versions, "platform": r.platform,
                "inputs": tensors(&r.inputs), "outputs": tensors(&r.outputs),
            }))
        }
        Err(e) => failed(&e),
    }
}

pub(super) async fn model_ready(s: State<InferenceService>, Path(m): Path<String>) -> StatusCode {
    ready(&s, &m, "")
}

pub(super) async fn model_ready_v(
    s: State<InferenceService>,
    Path((m, v)): Path<(String, String)>,
) -> StatusCode {
    ready(&s, &m, &v)
}

fn ready(s: &InferenceService, m: &str, v: &str) -> StatusCode {
    if s.is_ready(m, v) {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

pub(super) async fn model_config(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    config(&s, &m, "")
}

pub(super) async fn model_config_v(
    s: State<InferenceService>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    config(&s, &m, &v)
}

fn config(s: &InferenceService, m: &str, v: &str) -> Response {
    let c = match s.config(m, v) {
        Ok(r) => r.config.unwrap_or_default(),
        Err(e) => return failed(&e),
    };
    let data_type = |t: i32| {
        pb::DataType::try_from(t)
            .unwrap_or(pb::DataType::TypeInvalid)
            .as_str_name()
    };
    let mut out = json!({
        "name": c.name, "platform": c.platform, "backend": c.backend,
        "max_batch_size": c.max_batch_size,
        "input": c.input.iter().map(|t| json!({ "name": t.name, "data_type": data_type(t.data_type), "dims": t.dims })).collect::<Vec<_>>(),
        "output": c.output.iter().map(|t| json!({ "name": t.name, "data_type": data_type(t.data_type), "dims": t.dims })).collect::<Vec<_>>(),
    });
    if let Some(pb::model_config::SchedulingChoice::DynamicBatching(b)) = c.scheduling_choice {
        out["dynamic_batching"] = json!({
            "preferred_batch_size": b.preferred_batch_size,
            "max_queue_delay_microseconds": b.max_queue_delay_microseconds,
            "preserve_ordering": b.preserve_ordering,
            "priority_levels": b.priority_levels,
            "default_priority_level": b.default_priority_level,
        });
    }
    ok_json(out)
}

pub(super) async fn all_stats(s: State<InferenceService>) -> Response {
    stats(&s, "", "")
}

pub(super) async fn model_stats(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    stats(&s, &m, "")
}

pub(super) async fn model_stats_v(
    s: State<InferenceService>,
    Path((m, v)): Path<(String, String)>,
) -> Response {
    stats(&s, &m, &v)
}

fn stats(s: &InferenceService, m: &str, v: &str) -> Response {
    let r = match s.statistics(m, v) {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let d = |d: Option<pb::StatisticDuration>| {
        let d = d.unwrap_or_default();
        json!({ "count": d.count, "ns": d.ns })
    };
    let models: Vec<Value> = r
        .model_stats
        .into_iter()
        .map(|m| {
            let i = m.inference_stats.unwrap_or_default();
            json!({
                "name": m.name, "version": m.version, "last_inference": m.last_inference,
                "inference_count": m.inference_count, "execution_count": m.execution_count,
                "inference_stats": {
                    "success": d(i.success), "fail": d(i.fail), "queue": d(i.queue),
                    "compute_input": d(i.compute_input), "compute_infer": d(i.compute_infer),
                    "compute_output": d(i.compute_output),
                },
                "batch_stats": [],
            })
        })
        .collect();
    ok_json(json!({ "model_stats": models }))
}

pub(super) async fn index(State(s): State<InferenceService>, body: Bytes) -> Response {
    let ready_only = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("ready").and_then(Value::as_bool))
        .unwrap_or(false);
    let models: Vec<Value> = s
        .index(ready_only)
        .models
        .into_iter()
        .map(|m| json!({ "name": m.name, "version": m.version, "state": m.state, "reason": m.reason }))
        .collect();
    ok_json(Value::Array(models))
}

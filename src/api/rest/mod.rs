//! The Open Inference Protocol's REST side (KServe v2 HTTP/JSON, with
//! Triton's binary tensor extension and its config, statistics and index
//! paths), on `server.http_addr` when it is set. Every request becomes the
//! gRPC side's request and runs the same way: same queues, limits, errors
//! (as HTTP statuses with `{"error": "..."}`), priority (the `priority`
//! parameter) and deadline (the `timeout` parameter, microseconds).

mod json;

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, metadata::MetadataMap};

use super::inference::InferenceService;
use crate::oip::pb;

/// The header that says how long the JSON part of a body is.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// Serves the REST side on `listener` until `stop` is cancelled; bodies
/// up to `max_body` bytes.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    service: InferenceService,
    listener: TcpListener,
    max_body: usize,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = router(service, max_body).layer(DefaultBodyLimit::max(max_body));
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

/// The routes of the protocol; an inference body is at most `max_body`
/// bytes.
pub fn router(service: InferenceService, max_body: usize) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/repository/index", post(index))
        .route("/v2/models/{model}", get(model_metadata))
        .route(
            "/v2/models/{model}/versions/{version}",
            get(model_metadata_v),
        )
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready_v),
        )
        .route("/v2/models/{model}/config", get(model_config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(model_config_v),
        )
        .route("/v2/models/{model}/stats", get(model_stats))
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(model_stats_v),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_v))
        .with_state(Door { service, max_body })
}

/// What the routes share.
#[derive(Clone)]
struct Door {
    service: InferenceService,
    max_body: usize,
}

impl axum::extract::FromRef<Door> for InferenceService {
    fn from_ref(door: &Door) -> Self {
        door.service.clone()
    }
}

/// A failure as the protocol writes it.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    with_json(status, &json!({ "error": message.into() }))
}

fn with_json(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        v.to_string(),
    )
        .into_response()
}

/// A gRPC status as an HTTP one, with the protocol's `{"error": ...}`.
pub fn failed(s: &Status) -> Response {
    let code = match s.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, s.message())
}

fn ok_json(v: Value) -> Response {
    with_json(StatusCode::OK, &v)
}

async fn server_metadata() -> Response {
    ok_json(json!({
        "name": "batchgate",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_configuration", "statistics", "binary_tensor_data"],
    }))
}

async fn server_ready(State(s): State<InferenceService>) -> StatusCode {
    if s.stopping() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn model_metadata(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    metadata(&s, &m, "")
}

async fn model_metadata_v(
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

async fn model_ready(s: State<InferenceService>, Path(m): Path<String>) -> StatusCode {
    ready(&s, &m, "")
}

async fn model_ready_v(
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

async fn model_config(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    config(&s, &m, "")
}

async fn model_config_v(
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

async fn all_stats(s: State<InferenceService>) -> Response {
    stats(&s, "", "")
}

async fn model_stats(s: State<InferenceService>, Path(m): Path<String>) -> Response {
    stats(&s, &m, "")
}

async fn model_stats_v(
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

async fn index(State(s): State<InferenceService>, body: Bytes) -> Response {
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

async fn infer(s: State<Door>, Path(m): Path<String>, h: HeaderMap, body: Body) -> Response {
    run(&s, &m, "", &h, body).await
}

async fn infer_v(
    s: State<Door>,
    Path((m, v)): Path<(String, String)>,
    h: HeaderMap,
    body: Body,
) -> Response {
    run(&s, &m, &v, &h, body).await
}

/// One inference: its body charged to the memory budget before it is
/// read (its Content-Length, or the largest body when it gives none), so
/// many large bodies at once are refused instead of buffered; the charge
/// then covers the request's items, as a gRPC message's does.
async fn run(door: &Door, m: &str, v: &str, headers: &HeaderMap, body: Body) -> Response {
    let s = &door.service;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|t| t.trim().parse::<usize>().ok());
    if let Some(n) = declared.filter(|&n| n > door.max_body) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body has {n} bytes; at most {} (server.max_message_bytes)",
                door.max_body
            ),
        );
    }
    let mut charge = match s.charge(declared.unwrap_or(door.max_body)) {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let body = match axum::body::to_bytes(body, door.max_body).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body could not be read whole (at most {} bytes): {e}",
                    door.max_body
                ),
            );
        }
    };
    let header_len = match headers
        .get(HEADER_LENGTH)
        .map(|h| h.to_str().ok().and_then(|t| t.trim().parse::<usize>().ok()))
    {
        None => None,
        Some(Some(n)) => Some(n),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Inference-Header-Content-Length is not a length",
            );
        }
    };
    let request = match json::read_request(m, v, &body, header_len) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    drop(body);
    // JSON numbers become raw bytes up to 4 times their text's size (an
    // FP64 written "1,"): what is held now is charged too.
    let raw = request
        .infer
        .raw_input_contents
        .iter()
        .map(Bytes::len)
        .sum();
    if let Err(e) = s.grow(&mut charge, raw) {
        return failed(&e);
    }
    let mut metadata = MetadataMap::new();
    if let Some(us) = request.timeout_us
        && let Ok(value) = format!("{}u", us.min(99_999_999)).parse()
    {
        metadata.insert("grpc-timeout", value);
    }
    let (response, charge, _) = match s.infer(&metadata, charge, request.infer).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let (body, header_len) = json::write_response(response, &request.binary, request.all_binary);
    drop(charge);
    let mut r = Response::new(Body::from(body));
    let headers = r.headers_mut();
    match header_len {
        Some(n) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    r
}

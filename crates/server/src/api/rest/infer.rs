//! `POST /v2/models/{m}[/versions/{v}]/infer`: a JSON (or binary tensor)
//! request run as the gRPC side's ModelInfer.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use tonic::metadata::MetadataMap;

use super::{
    answer::{error, failed},
    json,
};
use crate::api::inference::InferenceService;

/// The header that says how long the JSON part of a body is.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// What the routes share.
#[derive(Clone)]
pub(super) struct Door {
    pub(super) service: InferenceService,
    pub(super) max_body: usize,
}

impl axum::extract::FromRef<Door> for InferenceService {
    fn from_ref(door: &Door) -> Self {
        door.service.clone()
    }
}

pub(super) async fn infer(
    s: State<Door>,
    Path(m): Path<String>,
    h: HeaderMap,
    body: Body,
) -> Response {
    submit(&s, &m, "", &h, body).await
}

pub(super) async fn infer_v(
    s: State<Door>,
    Path((m, v)): Path<(String, String)>,
    h: HeaderMap,
    body: Body,
) -> Response {
    submit(&s, &m, &v, &h, body).await
}

/// One inference: its body charged to the memory budget before it is
/// read (its Content-Length, or the largest body when it gives none), so
/// many large bodies at once are refused instead of buffered; the charge
/// then covers the request's items, as a gRPC message's does.
async fn submit(door: &Door, m: &str, v: &str, headers: &HeaderMap, body: Body) -> Response {
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

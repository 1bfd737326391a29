//! Answers as the protocol writes them: JSON bodies, failures as
//! `{"error": ...}` with the HTTP status of their gRPC code.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tonic::{Code, Status};

/// A failure as the protocol writes it.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    with_json(status, &json!({ "error": message.into() }))
}

pub(super) fn with_json(status: StatusCode, v: &Value) -> Response {
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

pub(super) fn ok_json(v: Value) -> Response {
    with_json(StatusCode::OK, &v)
}

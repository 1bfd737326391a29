//! What the console may change, through the control plane's token: pause,
//! resume, flush and drain a queue, a policy change (as `UpdateQueue`), a
//! job's cancel. Without a `server.control_token` the console is
//! read-only (403 saying how to allow changes); with one, a change must
//! carry `authorization: Bearer <token>` (401 otherwise), which the page
//! asks for and keeps for the tab.

use std::sync::Arc;

use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{control::BearerAuth, pb, queue::Command, registry::Registry};

/// A change's answer: its status and `{"error": ...}` or `{"ok": ...}`.
pub(super) fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Why a change may not go ahead, as the answer to send instead: 403 the
/// console is read-only (no token configured), 401 the request does not
/// carry the token (with the reason); none when it may.
pub(super) fn refused(auth: &BearerAuth, headers: &HeaderMap) -> Option<Response> {
    if !auth.is_required() {
        return Some(answer(
            StatusCode::FORBIDDEN,
            json!({ "error": "the console is read-only: set server.control_token to change queues and jobs from it (it then asks for the token)" }),
        ));
    }
    unauthorized(auth, headers)
}

/// 401 with the reason when the request lacks the token and one is
/// configured (a read of job results: open without a token configured).
pub(super) fn unauthorized(auth: &BearerAuth, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth.check(given)
        .err()
        .map(|why| answer(StatusCode::UNAUTHORIZED, json!({ "error": why })))
}

/// `POST /ui/api/queues/{name}/{action}`: pause, resume, flush or drain.
pub async fn act(
    registry: Arc<Registry>,
    auth: BearerAuth,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused(&auth, &headers) {
        return refused;
    }
    let Ok(entry) = registry.entry(&name) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no queue named {}", crate::error::quoted(&name)) }),
        );
    };
    let done = match action.as_str() {
        "pause" => entry.handle.control(Command::Pause).await.map(|()| 0),
        "resume" => entry.handle.control(Command::Resume).await.map(|()| 0),
        "flush" => entry.handle.flush().await,
        "drain" => {
            entry.handle.drain().await;
            Ok(0)
        }
        _ => {
            return answer(
                StatusCode::NOT_FOUND,
                json!({ "error": "the actions are pause, resume, flush, drain and policy" }),
            );
        }
    };
    match done {
        Ok(flushed) => answer(StatusCode::OK, json!({ "ok": action, "flushed": flushed })),
        Err(refusal) => answer(
            StatusCode::CONFLICT,
            json!({ "error": refusal.to_string() }),
        ),
    }
}

/// `POST /ui/api/queues/{name}/policy` with the fields to change as
/// `QueuePolicy` JSON (e.g. `{"max_delay_us": 2000}`): sent as
/// `UpdateQueue`, answered with the queue as the control plane describes
/// it, or the control plane's refusal as HTTP.
pub async fn policy(
    registry: Arc<Registry>,
    auth: BearerAuth,
    name: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = refused(&auth, &headers) {
        return refused;
    }
    let change: pb::QueuePolicy = match serde_json::from_slice(&body) {
        Ok(change) => change,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("not a policy change: {e}") }),
            );
        }
    };
    match crate::control::update(&registry, &name, Some(change), None).await {
        Ok(info) => answer(StatusCode::OK, json!({ "ok": "policy", "queue": info })),
        Err(status) => crate::api::http_failure(&status),
    }
}

/// The policy's fields for the form: config name, `QueuePolicy` name, how
/// the value travels, help.
pub fn fields() -> serde_json::Value {
    crate::queue::POLICY_FIELDS
        .iter()
        .map(|f| json!({ "name": f.name, "pb": f.pb, "kind": f.kind, "help": f.help }))
        .collect()
}

//! What the console may change: pause, resume and flush a queue, through
//! the control plane's token. Without a `server.control_token` the console
//! is read-only (403 saying how to allow changes); with one, a change must
//! carry `authorization: Bearer <token>` (401 otherwise), which the page
//! asks for and keeps for the tab.

use std::sync::Arc;

use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{control::BearerAuth, queue::Command, registry::Registry};

/// A change's answer: its status and `{"error": ...}` or `{"ok": ...}`.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /ui/api/queues/{name}/{action}`.
pub async fn act(
    registry: Arc<Registry>,
    auth: BearerAuth,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !auth.is_required() {
        return answer(
            StatusCode::FORBIDDEN,
            json!({ "error": "the console is read-only: set server.control_token to change queues from it (it then asks for the token)" }),
        );
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(why) = auth.check(given) {
        return answer(StatusCode::UNAUTHORIZED, json!({ "error": why }));
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
        _ => {
            return answer(
                StatusCode::NOT_FOUND,
                json!({ "error": "the actions are pause, resume and flush" }),
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

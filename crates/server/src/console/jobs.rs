//! The console's jobs: the newest with their progress, one job's counts
//! and first errors, its results as a JSON-lines download, and cancel
//! (a change: through the control token).

use std::sync::Arc;

use axum::{
    body::Body,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::actions::{answer, refused, unauthorized};
use crate::{
    api::{http_failure, job_pb, job_status, result_line},
    control::BearerAuth,
    jobs::{Filter, runner::Runner},
};

/// Jobs the page lists (the newest).
const JOBS_SHOWN: usize = 50;

/// Errors a job's view shows.
const ERRORS_SHOWN: usize = 20;

/// Results read from the store at a time for a download.
const CHUNK: usize = 1_024;

fn off() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        json!({ "error": "jobs are off on this server (set [jobs] in the config)" }),
    )
}

/// The newest jobs as the Jobs API shows them (`{"enabled": false}`
/// without jobs; 503 with the store's reason when it cannot answer).
pub async fn list(runner: Option<&Runner>) -> Response {
    let Some(runner) = runner else {
        return answer(StatusCode::OK, json!({ "enabled": false, "jobs": [] }));
    };
    let filter = Filter {
        limit: JOBS_SHOWN,
        ..Filter::default()
    };
    match runner.store().list(filter).await {
        Ok(list) => {
            let jobs: Vec<crate::pb::Job> = list.iter().map(job_pb).collect();
            answer(StatusCode::OK, json!({ "enabled": true, "jobs": jobs }))
        }
        Err(e) => http_failure(&job_status(e)),
    }
}

/// One job and its first errors.
pub async fn one(runner: Option<&Runner>, id: &str) -> Response {
    let Some(runner) = runner else {
        return off();
    };
    let job = match runner.store().get(id).await {
        Ok(job) => job,
        Err(e) => return http_failure(&job_status(e)),
    };
    let errors = match runner.store().results(id, 0, ERRORS_SHOWN, true).await {
        Ok(errors) => errors,
        Err(e) => return http_failure(&job_status(e)),
    };
    let errors: Vec<serde_json::Value> = errors
        .into_iter()
        .map(|r| result_line(&crate::api::result_pb(r)))
        .collect();
    answer(
        StatusCode::OK,
        json!({ "job": job_pb(&job), "errors": errors }),
    )
}

/// `POST /ui/api/jobs/{id}/cancel`.
pub async fn cancel(
    runner: Option<Arc<Runner>>,
    auth: BearerAuth,
    id: String,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused(&auth, &headers) {
        return refused;
    }
    let Some(runner) = runner else {
        return off();
    };
    match runner.store().cancel(&id).await {
        Ok(job) => {
            runner.poke();
            answer(
                StatusCode::OK,
                json!({ "ok": "cancel", "job": job_pb(&job) }),
            )
        }
        Err(e) => http_failure(&job_status(e)),
    }
}

/// `GET /ui/api/jobs/{id}/results`: the results so far as the JSON lines
/// `batchgate jobs results` writes, streamed a chunk at a time. Results
/// are the users' data, not telemetry: with a token configured, the
/// download needs it.
pub async fn download(
    runner: Option<Arc<Runner>>,
    auth: BearerAuth,
    id: String,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&auth, &headers) {
        return refused;
    }
    let Some(runner) = runner else {
        return off();
    };
    if let Err(e) = runner.store().get(&id).await {
        return http_failure(&job_status(e));
    }
    let file = format!("attachment; filename=\"{}.jsonl\"", id.replace('"', ""));
    // A small channel: the reading waits while the browser does not take.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut offset = 0;
        loop {
            let chunk = match runner.store().results(&id, offset, CHUNK, false).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let full = chunk.len() == CHUNK;
            let mut text = String::new();
            for r in chunk {
                offset = r.offset + 1;
                text.push_str(&result_line(&crate::api::result_pb(r)).to_string());
                text.push('\n');
            }
            if tx.send(Ok(text)).await.is_err() || !full {
                return;
            }
        }
    });
    let chunks = tokio_stream::wrappers::ReceiverStream::new(rx);
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

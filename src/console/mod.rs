//! The console: a page in the browser at `/ui/` on the metrics port that
//! shows every queue live (state, depth, rates, batch sizes, handler and
//! item times, errors) with small charts of the last five minutes.
//!
//! Every asset is in the binary (no network at view time): the page, its
//! script and style (`assets/console/`) and uPlot, the charting library,
//! vendored with its licence. The data is what the control plane's
//! `WatchStats` sends (the same [`crate::control::snapshot`]), as JSON at
//! `/ui/api/snapshot` and as server-sent events at `/ui/api/events`, one a
//! second per open page and none when no page is open. The console only
//! reads: changing a queue stays with the control plane and its token.
//! With jobs on, the page also lists the newest jobs with their progress
//! (`/ui/api/jobs`, read every two seconds while the page is open).
//! With a control token configured, the page can pause, resume and flush
//! a queue ([`actions`]); without one it only reads.

mod actions;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::Path,
    http::HeaderMap,
    http::{StatusCode, header},
    response::{
        Html, IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use tokio_stream::{StreamExt, wrappers::IntervalStream};
use tokio_util::sync::CancellationToken;

use crate::{
    control::{self, BearerAuth},
    jobs::{Filter, runner::Runner},
    registry::Registry,
};

/// Jobs the page lists (the newest).
const JOBS_SHOWN: usize = 50;

/// How often an open page gets a snapshot.
const EVERY: Duration = Duration::from_secs(1);

const INDEX: &str = include_str!("../../assets/console/index.html");
const APP: &str = include_str!("../../assets/console/app.js");
const STYLE: &str = include_str!("../../assets/console/style.css");
const UPLOT_JS: &str = include_str!("../../assets/console/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/console/vendor/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../../assets/console/vendor/uplot/LICENSE");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The console's routes (`runner`: the jobs side, when jobs are on;
/// `auth`: the control plane's token check, for changes); `stop` ends the
/// open event streams (shutdown).
pub fn router(
    registry: Arc<Registry>,
    runner: Option<Arc<Runner>>,
    auth: BearerAuth,
    stop: CancellationToken,
) -> Router {
    let for_snapshot = registry.clone();
    let for_actions = registry.clone();
    let writable = auth.is_required();
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { Html(INDEX) }))
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/uplot.js",
            get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/ui/uplot.css",
            get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS) }),
        )
        .route(
            "/ui/uplot-license.txt",
            get(|| async { asset("text/plain; charset=utf-8", UPLOT_LICENSE) }),
        )
        .route(
            "/ui/api/snapshot",
            get(move || {
                let registry = for_snapshot.clone();
                async move {
                    match snapshot(&registry).await {
                        Some(json) => asset_owned(json),
                        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .route(
            "/ui/api/queues/{name}/{action}",
            post(move |path: Path<(String, String)>, headers: HeaderMap| {
                let (registry, auth) = (for_actions.clone(), auth.clone());
                async move { actions::act(registry, auth, path, headers).await }
            }),
        )
        .route(
            "/ui/api/config",
            get(move || async move {
                asset_owned(serde_json::json!({ "writable": writable }).to_string())
            }),
        )
        .route(
            "/ui/api/jobs",
            get(move || {
                let runner = runner.clone();
                async move { jobs(runner.as_deref()).await }
            }),
        )
        .route(
            "/ui/api/events",
            get(move || {
                let (registry, stop) = (registry.clone(), stop.clone());
                async move { events(registry, stop) }
            }),
        )
}

fn asset_owned(json: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        json,
    )
        .into_response()
}

/// The newest jobs as the Jobs API shows them, as JSON (`{"enabled":
/// false}` without jobs; 503 with the store's reason when it cannot answer).
async fn jobs(runner: Option<&Runner>) -> Response {
    let Some(runner) = runner else {
        return asset_owned(r#"{"enabled":false,"jobs":[]}"#.to_owned());
    };
    let filter = Filter {
        limit: JOBS_SHOWN,
        ..Filter::default()
    };
    match runner.store().list(filter).await {
        Ok(list) => {
            let jobs: Vec<crate::pb::Job> = list.iter().map(crate::api::job_pb).collect();
            let body = serde_json::json!({ "enabled": true, "jobs": jobs });
            asset_owned(body.to_string())
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// Every queue as `WatchStats` sends it, as JSON.
async fn snapshot(registry: &Registry) -> Option<String> {
    let queues = control::snapshot(registry, "").await.ok()?;
    let snapshot = crate::pb::StatsSnapshot {
        unix_ms: control::unix_ms(),
        queues,
    };
    serde_json::to_string(&snapshot).ok()
}

/// A snapshot a second while the page is open, until shutdown.
fn events(
    registry: Arc<Registry>,
    stop: CancellationToken,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let ticks = IntervalStream::new(tokio::time::interval(EVERY));
    // Ends at the first tick after shutdown began.
    let stream = ticks
        .take_while(move |_| !stop.is_cancelled())
        .then(move |_| {
            let registry = registry.clone();
            async move { snapshot(&registry).await }
        })
        .filter_map(|json| json.map(|j| Ok(Event::default().data(j))));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

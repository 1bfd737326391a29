//! The console's routes on the admin listener: the page and its assets, the
//! JSON the page reads, the event stream of stats, and the actions
//! ([`actions`](super::actions), [`jobs`](super::jobs)).

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
    jobs::runner::Runner,
    registry::Registry,
};

/// Pages that may follow `/ui/api/events` at once.
pub const MAX_EVENT_STREAMS: usize = 32;

/// How often an open page gets a snapshot.
const EVERY: Duration = Duration::from_secs(1);

const INDEX: &str = include_str!("../../assets/console/index.html");
const APP: &str = include_str!("../../assets/console/app.js");
const QUEUE: &str = include_str!("../../assets/console/queue.js");
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
    let (for_actions, for_policy) = (registry.clone(), registry.clone());
    let writable = auth.is_required();
    let (auth_q, auth_p, auth_c, auth_d) = (auth.clone(), auth.clone(), auth.clone(), auth);
    let (runner_list, runner_one, runner_cancel, runner_download) =
        (runner.clone(), runner.clone(), runner.clone(), runner);
    let streams = Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { Html(INDEX) }))
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/ui/queue.js",
            get(|| async { asset("text/javascript; charset=utf-8", QUEUE) }),
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
            "/ui/api/queues/{name}/policy",
            post(
                move |Path(name): Path<String>, headers: HeaderMap, body: axum::body::Bytes| {
                    let (registry, auth) = (for_policy.clone(), auth_p.clone());
                    async move { super::actions::policy(registry, auth, name, headers, body).await }
                },
            ),
        )
        .route(
            "/ui/api/queues/{name}/{action}",
            post(move |path: Path<(String, String)>, headers: HeaderMap| {
                let (registry, auth) = (for_actions.clone(), auth_q.clone());
                async move { super::actions::act(registry, auth, path, headers).await }
            }),
        )
        .route(
            "/ui/api/config",
            get(move || async move {
                asset_owned(serde_json::json!({ "writable": writable }).to_string())
            }),
        )
        .route(
            "/ui/api/fields",
            get(|| async { asset_owned(super::actions::fields().to_string()) }),
        )
        .route(
            "/ui/api/jobs",
            get(move || {
                let runner = runner_list.clone();
                async move { super::jobs::list(runner.as_deref()).await }
            }),
        )
        .route(
            "/ui/api/jobs/{id}",
            get(move |Path(id): Path<String>| {
                let runner = runner_one.clone();
                async move { super::jobs::one(runner.as_deref(), &id).await }
            }),
        )
        .route(
            "/ui/api/jobs/{id}/cancel",
            post(move |Path(id): Path<String>, headers: HeaderMap| {
                let (runner, auth) = (runner_cancel.clone(), auth_c.clone());
                async move { super::jobs::cancel(runner, auth, id, headers).await }
            }),
        )
        .route(
            "/ui/api/jobs/{id}/results",
            get(move |Path(id): Path<String>, headers: HeaderMap| {
                let (runner, auth) = (runner_download.clone(), auth_d.clone());
                async move { super::jobs::download(runner, auth, id, headers).await }
            }),
        )
        .route(
            "/ui/api/events",
            get(move || {
                let (registry, stop) = (registry.clone(), stop.clone());
                let streams = streams.clone();
                async move {
                    match streams.try_acquire_owned() {
                        Ok(permit) => events(registry, stop, permit).into_response(),
                        Err(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("{MAX_EVENT_STREAMS} console pages are open already"),
                        )
                            .into_response(),
                    }
                }
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

/// Every queue as `WatchStats` sends it, as JSON.
async fn snapshot(registry: &Registry) -> Option<String> {
    let queues = control::snapshot(registry, "").await.ok()?;
    let snapshot = crate::pb::StatsSnapshot {
        unix_ms: control::unix_ms(),
        queues,
    };
    serde_json::to_string(&snapshot).ok()
}

/// A snapshot a second while the page is open, until shutdown; the page
/// holds `permit` (one of [`MAX_EVENT_STREAMS`]) until it goes.
fn events(
    registry: Arc<Registry>,
    stop: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let ticks = IntervalStream::new(tokio::time::interval(EVERY));
    // Ends at the first tick after shutdown began.
    let stream = ticks
        .take_while(move |_| !stop.is_cancelled())
        .then(move |_| {
            let registry = registry.clone();
            let _held = &permit;
            async move { snapshot(&registry).await }
        })
        .filter_map(|json| json.map(|j| Ok(Event::default().data(j))));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

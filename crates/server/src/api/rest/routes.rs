//! The REST side's routes (KServe v2 over HTTP/JSON) and serving them on
//! their listener.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{get, post},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::super::inference::InferenceService;
use super::{
    infer::{Door, infer, infer_v},
    models::*,
};

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

//! The `/metrics` HTTP endpoint.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

impl Metrics {
    /// Serves `GET /metrics` (and the routes of `more`, the console) on
    /// `listener` until `shutdown` is cancelled, folding histogram samples
    /// into buckets every second meanwhile.
    ///
    /// # Errors
    /// The listener's I/O error, if accepting fails.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
        more: Router,
    ) -> std::io::Result<()> {
        let render = self.clone();
        let app = Router::new()
            .route("/metrics", get(move || async move { render.render() }))
            .merge(more);
        let upkeep = self.handle.clone();
        let stop = shutdown.clone();
        let upkeep_task = async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                upkeep.run_upkeep();
            }
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        let (served, ()) = tokio::join!(async { server.await }, upkeep_task);
        served
    }
}

//! The shutdown signal: SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends).

/// Completes on the first SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}

/// A stop signal that is cheap to check on the hot path (one atomic load)
/// and can also be awaited. A `CancellationToken` alone takes a mutex on
/// every check.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Set once, by [`Stop::trigger`].
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Wakes the waiters.
    token: tokio_util::sync::CancellationToken,
}

impl Stop {
    /// A signal not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the signal.
    pub fn trigger(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.token.cancel();
    }

    /// Whether the signal was given.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Completes once the signal is given.
    pub fn triggered(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// The underlying token, for APIs that take one.
    pub fn token(&self) -> tokio_util::sync::CancellationToken {
        self.token.clone()
    }
}

//! Configuration hot reload: on SIGHUP, or (`--watch-config`) when the
//! file changes, the config is read and validated again; an invalid one
//! leaves everything as it is (logged, counted as
//! `batchgate_config_reloads_total{result="error"}`). A valid one is
//! applied as a difference against the file last applied:
//! - queues new in the file are created;
//! - queues gone from the file are drained (their pending items are still
//!   dispatched), not dropped; queues created at runtime through the
//!   control plane are left alone;
//! - changed policies apply from the next batch; a changed handler is
//!   swapped, batches in flight finishing on the old one;
//! - `[server]` settings (addresses, TLS, windows) need a restart: a change
//!   there is logged and otherwise ignored.
//!
//! The file is watched by polling its metadata (where the path leads, its
//! modification time and length) every second, which also catches a
//! Kubernetes ConfigMap update: the kubelet swaps a symlink, so the path
//! leads somewhere new.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

use crate::{
    config::{Config, ConfigError, QueueConfig},
    metrics::ReloadMetrics,
    registry::Registry,
};

/// Reads the configuration anew (the file, with the command line's
/// overrides), validated.
pub type Load = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// How a running server reloads its configuration.
#[derive(Clone)]
pub struct ReloadOptions {
    /// Reads the config.
    pub load: Load,
    /// The file to watch for changes, and how often to look (`None`: only
    /// SIGHUP and [`Reloader::reload`]).
    pub watch: Option<(PathBuf, Duration)>,
    /// Reload on SIGHUP.
    pub on_sighup: bool,
}

impl std::fmt::Debug for ReloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadOptions")
            .field("watch", &self.watch)
            .field("on_sighup", &self.on_sighup)
            .finish_non_exhaustive()
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Queues created.
    pub created: Vec<String>,
    /// Queues drained and removed.
    pub removed: Vec<String>,
    /// Queues whose policy or handler changed.
    pub updated: Vec<String>,
    /// Whether `[server]` changed (not applied until a restart).
    pub server_changed: bool,
}

/// Applies new configurations to a running registry.
pub struct Reloader {
    registry: Arc<Registry>,
    load: Load,
    /// The configuration last applied.
    current: tokio::sync::Mutex<Config>,
    metrics: ReloadMetrics,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for `registry`, which runs `current`.
    pub fn new(
        registry: Arc<Registry>,
        current: Config,
        load: Load,
        metrics: ReloadMetrics,
    ) -> Self {
        Self {
            registry,
            load,
            current: tokio::sync::Mutex::new(current),
            metrics,
        }
    }

    /// Reads the configuration and, if it differs from the one applied
    /// last (or cannot be read), applies the difference as
    /// [`Reloader::reload`] does; `None` if it is the same.
    pub async fn reload_if_changed(&self, path: &Path) -> Option<Result<Applied, String>> {
        if let Ok(config) = (self.load)()
            && *self.current.lock().await == config
        {
            return None;
        }
        tracing::info!(path = %path.display(), "configuration file changed");
        Some(self.reload().await)
    }

    /// Reads the configuration and applies the difference.
    ///
    /// # Errors
    /// The configuration error (nothing changed), or the first change the
    /// registry refused (the changes before it stay applied).
    pub async fn reload(&self) -> Result<Applied, String> {
        let result = match (self.load)() {
            Ok(config) => self.apply(config).await,
            Err(e) => Err(e.to_string()),
        };
        match &result {
            Ok(applied) => {
                self.metrics.ok.increment(1);
                tracing::info!(
                    created = ?applied.created,
                    removed = ?applied.removed,
                    updated = ?applied.updated,
                    "configuration reloaded"
                );
                if applied.server_changed {
                    tracing::warn!(
                        "[server] settings changed: they take effect at the next restart"
                    );
                }
            }
            Err(e) => {
                self.metrics.error.increment(1);
                tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
            }
        }
        result
    }

    async fn apply(&self, new: Config) -> Result<Applied, String> {
        let mut current = self.current.lock().await;
        let mut applied = Applied {
            server_changed: new.server != current.server,
            ..Applied::default()
        };
        for name in current.queues.keys() {
            if !new.queues.contains_key(name) {
                match self.registry.delete(name, false).await {
                    Ok(_) => applied.removed.push(name.clone()),
                    // Deleted through the control plane meanwhile.
                    Err(crate::registry::RegistryError::NotFound(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        for (name, queue) in &new.queues {
            match current.queues.get(name) {
                None => {
                    self.registry
                        .create(name, queue)
                        .map_err(|e| e.to_string())?;
                    applied.created.push(name.clone());
                }
                Some(old) if old != queue => {
                    let policy = queue.policy.clone();
                    let model = queue.v2.clone();
                    let handler = (old.handler != queue.handler).then(|| queue.handler.clone());
                    // Fixed at creation: the running count stays.
                    let keep_shards = |c: &mut QueueConfig| {
                        if c.policy.shards != policy.shards {
                            tracing::warn!(
                                queue = %name,
                                running = c.policy.shards,
                                file = policy.shards,
                                "shards is fixed when a queue is created: the running count stays until the queue is re-created or the server restarts"
                            );
                        }
                        let shards = c.policy.shards;
                        c.policy = policy;
                        c.policy.shards = shards;
                        c.v2 = model;
                    };
                    self.registry
                        .update(name, keep_shards, handler)
                        .await
                        .map_err(|e| e.to_string())?;
                    applied.updated.push(name.clone());
                }
                Some(_) => {}
            }
        }
        *current = new;
        Ok(applied)
    }
}

/// What a watched file looks like now: where its path leads, when it was
/// modified and its length (`None` if it cannot be read).
fn fingerprint(path: &Path) -> Option<(PathBuf, SystemTime, u64)> {
    let target = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&target).ok()?;
    Some((target, meta.modified().ok()?, meta.len()))
}

/// Reloads on SIGHUP and, when asked, when the file changes, until `stop`.
pub fn spawn(reloader: Arc<Reloader>, options: &ReloadOptions, stop: CancellationToken) {
    if options.on_sighup {
        spawn_sighup(reloader.clone(), stop.clone());
    }
    if let Some((path, every)) = options.watch.clone() {
        tokio::spawn(async move {
            // Nothing seen yet: the first look reads the file, so a change
            // made after the server read it and before this task ran
            // counts too (an unchanged file is no reload).
            let mut seen = None;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let now = fingerprint(&path);
                if now.is_some() && now != seen {
                    seen = now;
                    let _ = reloader.reload_if_changed(&path).await;
                }
            }
        });
    }
}

#[cfg(unix)]
fn spawn_sighup(reloader: Arc<Reloader>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: no reload on it");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("received SIGHUP: reloading the configuration");
                    let _ = reloader.reload().await;
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_reloader: Arc<Reloader>, _stop: CancellationToken) {}

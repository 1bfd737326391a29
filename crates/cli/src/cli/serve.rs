//! `batchgate serve`: config → telemetry → bind → `app::run` until a signal.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use batchgate::{
    app::{self, Listeners},
    config::{Config, LogFormat},
    shutdown, telemetry,
};

use super::EXIT_BAD_CONFIG;

/// Flags of `batchgate serve`; each overrides the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (default: the embedded config, see
    /// examples/batchgate.toml).
    #[arg(long, env = "BATCHGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// gRPC listen address (overrides server.grpc_addr).
    #[arg(long, env = "BATCHGATE_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Metrics listen address (overrides server.metrics_addr).
    #[arg(long, env = "BATCHGATE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format (overrides server.log_format).
    #[arg(long, env = "BATCHGATE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Shutdown grace, e.g. "30s" (overrides server.shutdown_grace).
    #[arg(long, env = "BATCHGATE_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// The job store file (overrides jobs.path; turns jobs on with the
    /// defaults when the config has no [jobs] table).
    #[arg(long, env = "BATCHGATE_JOBS_PATH")]
    pub jobs_path: Option<PathBuf>,
    /// Validate the configuration, print the effective configuration (as
    /// TOML, or JSON with --json), and exit.
    #[arg(long)]
    pub check_config: bool,
    /// With --check-config: print JSON instead of TOML.
    #[arg(long, requires = "check_config")]
    pub json: bool,
    /// Reload the configuration when the file changes (checked every
    /// second; a Kubernetes ConfigMap's symlink swap counts), besides on
    /// SIGHUP.
    #[arg(long, requires = "config")]
    pub watch_config: bool,
    /// With --check-config: do not check that the files the config names
    /// (TLS, token) exist here, for a config meant for another machine
    /// (e.g. the one a Helm chart renders for its pods).
    #[arg(long, requires = "check_config")]
    pub skip_file_checks: bool,
}

impl ServeArgs {
    /// The configuration these flags select, validated.
    ///
    /// # Errors
    /// The config error, naming the file or field.
    pub fn load(&self) -> Result<Config, batchgate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::embedded_default(),
        };
        let server = &mut config.server;
        if let Some(addr) = self.grpc_addr {
            server.grpc_addr = addr;
        }
        if let Some(addr) = self.metrics_addr {
            server.metrics_addr = addr;
        }
        if let Some(format) = self.log_format {
            server.log_format = format;
        }
        if let Some(grace) = self.shutdown_grace {
            server.shutdown_grace = grace;
        }
        if let Some(path) = &self.jobs_path {
            config.jobs.get_or_insert_with(Default::default).path = path.clone();
        }
        config.validate()?;
        if !self.skip_file_checks {
            config.check_files()?;
        }
        Ok(config)
    }
}

/// Runs `batchgate serve`.
pub async fn run(args: ServeArgs) -> ExitCode {
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("batchgate: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if args.check_config {
        let text = if args.json {
            serde_json::to_string_pretty(&config).map_err(|e| e.to_string())
        } else {
            config.to_toml()
        };
        return match text {
            Ok(text) => {
                out!("{}", text.trim_end());
                outln!("");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("batchgate: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let traces = telemetry::init(config.server.log_format);
    // An address that cannot be bound is a configuration error too.
    let listeners = match Listeners::bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let reload = {
        let loader = args.clone();
        batchgate::reload::ReloadOptions {
            load: std::sync::Arc::new(move || loader.load()),
            watch: args
                .watch_config
                .then(|| args.config.clone())
                .flatten()
                .map(|path| (path, Duration::from_secs(1))),
            on_sighup: true,
        }
    };
    let result = app::run_with(config, listeners, shutdown::signal(), Some(reload)).await;
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A store that cannot be opened is the configuration's to fix.
        Err(e @ app::AppError::Jobs(_)) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

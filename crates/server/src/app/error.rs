//! Why the server could not run ([`AppError`]).

use crate::{config::ConfigError, registry::RegistryError};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound or read.
    #[error("{what} {addr}: {source}")]
    Io {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// A configured queue could not be created.
    #[error(transparent)]
    Queue(#[from] RegistryError),
    /// Reflection could not be built from the descriptor sets.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The control token could not be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A TLS file could not be read.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The job store could not be opened.
    #[error(transparent)]
    Jobs(#[from] crate::jobs::StoreError),
}

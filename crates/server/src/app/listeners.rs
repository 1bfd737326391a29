//! The bound sockets of a server ([`Listeners`]): bound before it runs, so
//! callers (tests) can use port 0 and learn the real addresses.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::AppError;
use crate::config::Config;

/// The bound sockets of a server, so callers (tests) can use port 0 and
/// learn the real addresses before the server runs.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC data plane.
    pub grpc: TcpListener,
    /// The `/metrics` endpoint.
    pub metrics: TcpListener,
    /// The control plane, when it has its own address.
    pub control: Option<TcpListener>,
    /// Plaintext health for probes, when configured.
    pub health: Option<TcpListener>,
    /// The Open Inference Protocol's REST side, when configured.
    pub http: Option<TcpListener>,
    /// The console on its own port, when configured.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    ///
    /// # Errors
    /// [`AppError::Io`] naming the address that could not be bound.
    pub async fn bind(config: &Config) -> Result<Self, AppError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Io {
                    what,
                    addr: addr.to_string(),
                    source,
                })
        };
        Ok(Self {
            grpc: bind("server.grpc_addr: cannot bind", config.server.grpc_addr).await?,
            metrics: bind(
                "server.metrics_addr: cannot bind",
                config.server.metrics_addr,
            )
            .await?,
            control: match config.server.control_addr {
                Some(addr) => Some(bind("server.control_addr: cannot bind", addr).await?),
                None => None,
            },
            health: match config.server.health_addr {
                Some(addr) => Some(bind("server.health_addr: cannot bind", addr).await?),
                None => None,
            },
            http: match config.server.http_addr {
                Some(addr) => Some(bind("server.http_addr: cannot bind", addr).await?),
                None => None,
            },
            admin: match config.server.admin_addr {
                Some(addr) => Some(bind("server.admin_addr: cannot bind", addr).await?),
                None => None,
            },
        })
    }

    /// The gRPC address actually bound.
    ///
    /// # Errors
    /// The socket's I/O error.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The control address actually bound, if it has its own.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The REST address actually bound, when configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The console's own address actually bound, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The metrics address actually bound.
    ///
    /// # Errors
    /// The socket's I/O error.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }
}

//! Serving a `batchgate.v1.Backend` on 127.0.0.1 for a test: on the test's
//! runtime ([`serve`]), or on a runtime of its own that [`Killable::kill`]
//! stops at once, dropping every connection like a crashed process.

use std::net::SocketAddr;

use batchgate::pb::backend_server::{Backend, BackendServer};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Serves `backend` on a free port of 127.0.0.1 until the test ends.
pub async fn serve<B: Backend>(backend: B) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BackendServer::new(backend))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// A backend on a one-thread runtime of its own.
pub struct Killable {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Killable {
    /// Serves `backend` on a free port of 127.0.0.1 until killed or dropped.
    pub fn start<B: Backend>(backend: B) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(BackendServer::new(backend))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the backend now: its connections drop mid-call.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        self.kill();
    }
}

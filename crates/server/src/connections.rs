//! The cap on open connections of a listener (`server.max_connections`):
//! an accepted connection takes a permit for as long as it is open; one
//! more is closed as soon as it is accepted, so a flood of idle
//! connections costs a bounded amount of memory and file descriptors.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// A stream of accepted connections, at most `max` of them open at once.
pub struct Capped<S> {
    inner: S,
    permits: Arc<Semaphore>,
    /// Connections closed for the cap, for a warning now and then.
    refused: u64,
    last_warning: Option<Instant>,
}

impl<S> Capped<S> {
    /// Caps `inner` at `max` open connections.
    pub fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            refused: 0,
            last_warning: None,
        }
    }
}

impl<S, IO, E> Stream for Capped<S>
where
    S: Stream<Item = Result<IO, E>> + Unpin,
{
    type Item = Result<Guarded<IO>, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let io = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(io))) => io,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    return Poll::Ready(Some(Ok(Guarded {
                        io,
                        _permit: permit,
                    })));
                }
                Err(_) => {
                    // Dropped: the connection closes at once.
                    self.refused += 1;
                    let refused = self.refused;
                    let due = self
                        .last_warning
                        .is_none_or(|t| t.elapsed().as_secs() >= 10);
                    if due {
                        self.last_warning = Some(Instant::now());
                        tracing::warn!(
                            refused,
                            "server.max_connections reached: new connections are closed"
                        );
                    }
                }
            }
        }
    }
}

/// An accepted connection holding its permit until it closes.
pub struct Guarded<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

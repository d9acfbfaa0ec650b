//! Lingering close: the socket type the accept loop hands to hyper.
//!
//! When powgate answers before it has read a whole request (a 413 for a
//! body over the limit, a 431 for a header block over the buffer) and then
//! closes, the unread bytes still in the socket make the kernel send a
//! reset instead of a FIN. A client that writes its whole body before it
//! reads (Python's urllib and many HTTP libraries) then sees "connection
//! reset" and never the answer. Like nginx's `lingering_close`, shutting
//! down here half-closes the write side, so the answer and a FIN go out,
//! then reads and discards what the client still sends until it closes,
//! for at most [`LINGER_TIME`] and [`LINGER_BYTES`]. hyper shuts the
//! socket down only when it ends a connection on its own terms (after
//! `Connection: close`, an error answer, or graceful shutdown); a client
//! that closes first is seen at once as end of file.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Longest a closing connection is drained: nginx's `lingering_timeout`.
/// A client still sending after this is not reading the answer anyway.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(5);

/// Most bytes a closing connection is drained of: a body a few times the
/// largest powgate accepts, so that a client cannot keep it busy reading.
pub(crate) const LINGER_BYTES: usize = 4 << 20;

/// A stream whose shutdown lingers; reads and writes pass straight through.
#[derive(Debug)]
pub(crate) struct Lingering<S> {
    inner: S,
    time: Duration,
    max_bytes: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Open,
    /// The write side is shut; discarding what arrives until `until`.
    Draining {
        until: Pin<Box<Sleep>>,
        drained: usize,
    },
    Closed,
}

impl<S> Lingering<S> {
    /// Lingers for [`LINGER_TIME`] and [`LINGER_BYTES`] at most.
    pub(crate) fn new(inner: S) -> Self {
        Self::bounded(inner, LINGER_TIME, LINGER_BYTES)
    }

    pub(crate) fn bounded(inner: S, time: Duration, max_bytes: usize) -> Self {
        Self {
            inner,
            time,
            max_bytes,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lingering<S> {
    /// Reads and discards until end of file, an error, or a bound.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Draining { until, drained } = &mut self.state else {
            return Poll::Ready(());
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *drained += buf.filled().len();
                    if *drained >= self.max_bytes {
                        return Poll::Ready(());
                    }
                }
                // End of file, or the peer reset: nothing left to protect.
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return until.as_mut().poll(cx),
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let State::Open = this.state {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.state = State::Draining {
                until: Box::pin(tokio::time::sleep(this.time)),
                drained: 0,
            };
        }
        ready!(this.poll_drain(cx));
        this.state = State::Closed;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_peer_that_keeps_sending_is_drained_for_a_bounded_time() {
        let linger = Duration::from_millis(500);
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Lingering::bounded(server, linger, LINGER_BYTES);
        // The client trickles bytes forever and never closes.
        let sender = tokio::spawn(async move {
            loop {
                if client.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = tokio::time::Instant::now();
        server.shutdown().await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= linger && took < linger + Duration::from_millis(400),
            "{took:?}"
        );
        sender.abort();
    }

    #[tokio::test]
    async fn a_peer_that_keeps_sending_is_drained_for_a_bounded_size() {
        let max = 1 << 20;
        let (server, mut client) = tokio::io::duplex(64 * 1024);
        let mut server = Lingering::bounded(server, Duration::from_secs(30), max);
        let sender = tokio::spawn(async move {
            let chunk = [0u8; 64 * 1024];
            let mut sent = 0;
            while client.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            sent
        });
        server.shutdown().await.unwrap();
        drop(server);
        let sent = sender.await.unwrap();
        assert!((max..max + 256 * 1024).contains(&sent), "{sent}");
    }

    #[tokio::test]
    async fn shutdown_ends_at_once_when_the_peer_closes() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = Lingering::new(server);
        client.write_all(b"rest of a body").await.unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(1), server.shutdown())
            .await
            .expect("no linger after end of file")
            .unwrap();
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    }
}

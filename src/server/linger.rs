//! Lingering close: a connection closed while its client is still sending (an answer given
//! before the request body was read, such as `413 payload_too_large`) first shuts down its
//! sending side, then reads and discards what the client still sends, for a short while,
//! before the socket is closed.
//!
//! Closing a socket with unread data makes the kernel answer with a reset, and a reset can
//! destroy the answer in the client's receive buffer before the client reads it: the client
//! then sees a broken pipe instead of the `413`. nginx does the same (`lingering_close`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a closing connection keeps reading what its client still sends.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// How many bytes it reads (and discards) at most.
const LINGER_BYTES: usize = 1024 * 1024;

/// An I/O stream whose shutdown lingers (see the module's documentation).
pub(crate) struct Lingering<T> {
    io: T,
    closing: Closing,
}

enum Closing {
    Open,
    Draining {
        deadline: Pin<Box<Sleep>>,
        left: usize,
    },
    Closed,
}

impl<T> Lingering<T> {
    pub(crate) fn new(io: T) -> Self {
        Self {
            io,
            closing: Closing::Open,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Lingering<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                    this.closing = Closing::Draining {
                        deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                        left: LINGER_BYTES,
                    };
                }
                Closing::Draining { deadline, left } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut this.io).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            if *left == 0 {
                                this.closing = Closing::Closed;
                            }
                        }
                        // The client's end of the stream, or an error: nothing more to wait for.
                        Ok(()) | Err(_) => this.closing = Closing::Closed,
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection closed while its client is still sending does not reset the client: the
    /// client's writes go on succeeding and it reads the answer. (Without lingering, the close
    /// with unread input answers the client's next segment with a reset, and its next write
    /// fails with a broken pipe, as hyper's client reported for a `413`.)
    #[tokio::test]
    async fn a_client_still_sending_reads_the_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut io = Lingering::new(stream);
            let mut first = [0u8; 16];
            io.read_exact(&mut first).await.unwrap();
            io.write_all(b"refused").await.unwrap();
            io.shutdown().await.unwrap();
            drop(io);
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(&[b'x'; 32]).await.unwrap();
        // The server answers and closes meanwhile; the client sends on.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..64 {
            client.write_all(&[b'x'; 4096]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"refused");
        server.await.unwrap();
    }

    /// A client that keeps sending is not waited for beyond the linger time.
    #[tokio::test]
    async fn lingering_is_bounded_in_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let started = std::time::Instant::now();
        let mut io = Lingering::new(stream);
        // The client neither sends its end nor closes: shutdown returns at the deadline.
        io.shutdown().await.unwrap();
        let waited = started.elapsed();
        assert!(waited >= LINGER_TIME, "{waited:?}");
        assert!(waited < LINGER_TIME * 5, "{waited:?}");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}

//! Lingering close: when the server ends a connection, it stops sending (FIN) and then
//! reads and discards what the client still sends, until the client closes its side or
//! [`LINGER`] passes, before closing the socket.
//!
//! Why: an answer given before the request body was read (413 for a declared body over
//! `server.max_body_bytes`, 401 before an upload) ends the connection with the body's
//! rest unread. Closing a socket with unread data makes the kernel reset the connection,
//! and a client still writing its body then gets "broken pipe" instead of the answer
//! that is already on its way. nginx (`lingering_close`) and Go's `net/http` (close the
//! write side, then wait) do the same.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The longest a closing connection waits for the client to stop sending.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// A TCP stream whose shutdown lingers (see the module's documentation).
pub(super) struct Lingering {
    tcp: TcpStream,
    /// Set once the write side is shut: the end of the lingering.
    until: Option<Pin<Box<Sleep>>>,
}

impl Lingering {
    pub(super) fn new(tcp: TcpStream) -> Self {
        Self { tcp, until: None }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.until.is_none() {
            ready!(Pin::new(&mut self.tcp).poll_shutdown(cx))?;
            self.until = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.tcp).poll_read(cx, &mut buf) {
                // The client closed its side (or the connection broke): done.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Pending => {
                    let until = self.until.as_mut().expect("set above");
                    return until.as_mut().poll(cx).map(|()| Ok(()));
                }
            }
        }
    }
}

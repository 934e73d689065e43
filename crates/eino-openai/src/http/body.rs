//! Reading response bodies: whole and bounded, or as a stream of chunks with an idle limit.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eino::{Error, ErrorKind, Result};
use futures_util::Stream;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use tokio::time::{Instant, Sleep};

use super::errors::{timeout_error, transport_error};

/// The whole body, refused past `max` bytes (a misbehaving server cannot make eino hold
/// an unbounded answer).
pub(crate) async fn read_to_bytes(body: Incoming, max: usize) -> Result<Bytes> {
    match Limited::new(body, max).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::new(
            ErrorKind::Internal,
            format!("the model server's answer is over max_response_bytes ({max} bytes)"),
        )),
        Err(e) => Err(transport_error(e)),
    }
}

/// A streamed body's data chunks; an error once the server is silent for longer than
/// the idle limit, and at most one error (the stream ends after it).
pub(crate) struct BodyStream {
    body: Incoming,
    idle: Duration,
    /// One timer for the whole stream, pushed back at each chunk.
    timer: Pin<Box<Sleep>>,
    ended: bool,
}

impl BodyStream {
    pub(crate) fn new(body: Incoming, idle: Duration) -> Self {
        Self {
            body,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            ended: false,
        }
    }
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("idle", &self.idle)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        // Every field is `Unpin` (the timer is boxed).
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers carry no data; empty chunks are skipped.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let deadline = Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(transport_error(e))));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_ready() {
                        this.ended = true;
                        let e = timeout_error("sent nothing more", this.idle);
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

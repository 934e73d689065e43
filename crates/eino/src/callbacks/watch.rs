//! Watching a streamed output as its reader takes it, instead of reading a copy.
//!
//! A copy ([`Handler::on_end_with_stream_output`](super::Handler::on_end_with_stream_output))
//! puts a tee in front of the stream: every chunk is buffered until each copy has read it,
//! every read takes the tee's lock, and a handler reading its copy needs a task of its own,
//! woken at every chunk. A handler that only looks at the chunks as they pass (a duration, the
//! model's token usage, the joined answer for a trace) needs none of that: a
//! [`StreamWatcher`] is called from the reader's own polls.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::CallbackValue;
use crate::error::{Error, Result};
use crate::schema::StreamReader;

/// How a watched stream ended; see [`StreamWatcher::on_finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The reader took the stream to its end.
    Complete,
    /// The reader was dropped before the end: the caller went away (a cancelled run), or
    /// needed no more of it.
    Dropped,
}

/// Sees a component's streamed output chunk by chunk, as the stream's reader takes it; see
/// [`Handler::watch_stream_output`](super::Handler::watch_stream_output).
///
/// Its methods run inside the reader's poll, on the answer's path: keep them short and
/// never block. A watcher sees what the reader takes and nothing more (a copy, by contrast,
/// reads the source on its own and can outrun the reader).
///
/// ```
/// use eino::callbacks::{CallbackValue, StreamEnd, StreamWatcher};
/// use eino::schema::Message;
/// /// Counts the characters of a streamed answer.
/// struct Length(usize);
/// impl StreamWatcher for Length {
///     fn on_item(&mut self, item: Result<CallbackValue<'_>, &eino::Error>) {
///         if let Some(m) = item.ok().and_then(|c| c.downcast_ref::<Message>()) {
///             self.0 += m.content.chars().count();
///         }
///     }
///     fn on_finish(self: Box<Self>, end: StreamEnd) {
///         println!("{} characters ({end:?})", self.0);
///     }
/// }
/// ```
pub trait StreamWatcher: Send {
    /// One item as the reader takes it: a chunk, or an error the stream carries.
    fn on_item(&mut self, item: Result<CallbackValue<'_>, &Error>);

    /// The stream ended or its reader was dropped. Called exactly once, after the last
    /// [`on_item`](Self::on_item).
    fn on_finish(self: Box<Self>, end: StreamEnd);
}

/// `source`, with `watchers` called as its reader takes each item.
pub(crate) fn watch<T>(
    source: StreamReader<T>,
    watchers: Vec<Box<dyn StreamWatcher>>,
) -> StreamReader<T>
where
    T: Send + Sync + 'static,
{
    StreamReader::from_stream(Watched { source, watchers })
}

struct Watched<T> {
    source: StreamReader<T>,
    /// Emptied when the stream ends, so a drop after the end finishes nothing twice.
    watchers: Vec<Box<dyn StreamWatcher>>,
}

impl<T> Watched<T> {
    fn finish(&mut self, end: StreamEnd) {
        for w in std::mem::take(&mut self.watchers) {
            w.on_finish(end);
        }
    }
}

impl<T: Send + Sync + 'static> Stream for Watched<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (a reader is, a box is).
        let this = self.get_mut();
        let polled = Pin::new(&mut this.source).poll_next(cx);
        match &polled {
            Poll::Ready(Some(item)) => {
                for w in &mut this.watchers {
                    w.on_item(item.as_ref().map(|t| t as CallbackValue<'_>));
                }
            }
            Poll::Ready(None) => this.finish(StreamEnd::Complete),
            Poll::Pending => {}
        }
        polled
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        self.finish(StreamEnd::Dropped);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::schema::pipe;

    /// Records what it saw into a shared log.
    struct Log(Arc<Mutex<Vec<String>>>);

    impl StreamWatcher for Log {
        fn on_item(&mut self, item: Result<CallbackValue<'_>, &Error>) {
            let line = match item {
                Ok(v) => format!("chunk {}", v.downcast_ref::<&str>().unwrap()),
                Err(e) => format!("error {}", e.message()),
            };
            self.0.lock().unwrap().push(line);
        }

        fn on_finish(self: Box<Self>, end: StreamEnd) {
            self.0.lock().unwrap().push(format!("end {end:?}"));
        }
    }

    fn log() -> (Arc<Mutex<Vec<String>>>, Box<dyn StreamWatcher>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (lines.clone(), Box::new(Log(lines)))
    }

    #[tokio::test]
    async fn every_watcher_sees_each_item_once_then_the_end() {
        let (a, wa) = log();
        let (b, wb) = log();
        let (tx, rx) = pipe(4);
        let mut s = watch(rx, vec![wa, wb]);
        tx.send("x").await.unwrap();
        tx.send_error(Error::internal("boom")).await.unwrap();
        tx.send("y").await.unwrap();
        drop(tx);
        let mut seen = 0;
        while s.recv().await.is_some() {
            seen += 1;
        }
        assert_eq!(seen, 3);
        let want = ["chunk x", "error boom", "chunk y", "end Complete"];
        assert_eq!(*a.lock().unwrap(), want);
        assert_eq!(*b.lock().unwrap(), want);
        drop(s);
        assert_eq!(
            a.lock().unwrap().len(),
            4,
            "a drop after the end finishes nothing"
        );
    }

    #[tokio::test]
    async fn a_reader_dropped_early_finishes_its_watchers() {
        let (lines, w) = log();
        let mut s = watch(StreamReader::from_vec(vec!["a", "b", "c"]), vec![w]);
        s.recv().await.unwrap().unwrap();
        drop(s);
        assert_eq!(*lines.lock().unwrap(), ["chunk a", "end Dropped"]);
    }

    #[tokio::test]
    async fn a_watcher_sees_only_what_the_reader_took() {
        let (lines, w) = log();
        let (tx, rx) = pipe(4);
        let s = watch(rx, vec![w]);
        tx.send("unread").await.unwrap();
        drop(s);
        assert_eq!(*lines.lock().unwrap(), ["end Dropped"]);
    }
}

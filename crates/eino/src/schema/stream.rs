//! Single-consumer streams of chunks: bounded pipes, readers from values, tee copies,
//! merges, mapping and concatenation.
//!
//! A [`StreamReader`] is a `futures::Stream<Item = Result<T>>` with Eino's operations on
//! top. Dropping a reader closes it: a writer feeding it sees [`StreamWriter::send`] fail,
//! a tee copy releases its share of the buffer.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::schema::Concat;

type DynStream<T> = Pin<Box<dyn Stream<Item = Result<T>> + Send>>;

enum Inner<T> {
    /// Values known up front; no channel, no allocation per chunk.
    Array(std::vec::IntoIter<T>),
    Channel(mpsc::Receiver<Result<T>>),
    Dyn(DynStream<T>),
}

/// The reading end of a stream. One consumer; see [`StreamReader::copy`] for several.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::schema::StreamReader;
/// let s = StreamReader::from_vec(vec!["a".to_string(), "b".into(), "c".into()]);
/// let upper = s.map(|c| Ok(c.to_uppercase()));
/// assert_eq!(upper.concat().await.unwrap(), "ABC");
/// # });
/// ```
pub struct StreamReader<T> {
    inner: Inner<T>,
}

impl<T> fmt::Debug for StreamReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Array(it) => return write!(f, "StreamReader(array, {} left)", it.len()),
            Inner::Channel(_) => "channel",
            Inner::Dyn(_) => "dyn",
        };
        write!(f, "StreamReader({kind})")
    }
}

/// The writing end of a [`pipe`]. Dropping it (or calling [`close`](Self::close)) ends the stream.
pub struct StreamWriter<T> {
    tx: mpsc::Sender<Result<T>>,
}

impl<T> fmt::Debug for StreamWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamWriter")
    }
}

/// The reader was closed, so the chunk was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream reader closed")]
pub struct ReaderClosed;

/// A bounded channel-backed stream: at most `capacity` chunks wait in the buffer
/// (`capacity` 0 is treated as 1), so a fast producer waits for a slow consumer.
pub fn pipe<T: Send + 'static>(capacity: usize) -> (StreamWriter<T>, StreamReader<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        StreamWriter { tx },
        StreamReader {
            inner: Inner::Channel(rx),
        },
    )
}

impl<T: Send + 'static> StreamWriter<T> {
    /// Send a chunk, waiting while the buffer is full. Fails once the reader is closed, so a
    /// producer can stop early.
    pub async fn send(&self, chunk: T) -> Result<(), ReaderClosed> {
        self.tx.send(Ok(chunk)).await.map_err(|_| ReaderClosed)
    }

    /// Send an error; the reader receives it in order.
    pub async fn send_error(&self, error: Error) -> Result<(), ReaderClosed> {
        self.tx.send(Err(error)).await.map_err(|_| ReaderClosed)
    }

    /// Whether the reader has been closed.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// End the stream (same as dropping the writer).
    pub fn close(self) {}
}

impl<T: Send + 'static> StreamReader<T> {
    /// A stream of the given chunks ("boxing" when there is one).
    pub fn from_vec(chunks: Vec<T>) -> Self {
        Self {
            inner: Inner::Array(chunks.into_iter()),
        }
    }

    /// A stream of exactly one chunk.
    pub fn once(chunk: T) -> Self {
        Self::from_vec(vec![chunk])
    }

    /// A stream that ends at once.
    pub fn empty() -> Self {
        Self::from_vec(Vec::new())
    }

    /// Wrap any `futures::Stream` of results.
    pub fn from_stream(stream: impl Stream<Item = Result<T>> + Send + 'static) -> Self {
        Self {
            inner: Inner::Dyn(Box::pin(stream)),
        }
    }

    /// The next chunk; `None` at the end of the stream.
    pub async fn recv(&mut self) -> Option<Result<T>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        match &mut self.inner {
            Inner::Array(it) => Poll::Ready(it.next().map(Ok)),
            Inner::Channel(rx) => rx.poll_recv(cx),
            Inner::Dyn(s) => s.as_mut().poll_next(cx),
        }
    }

    /// Close the reader (same as dropping it): a writer's next `send` fails.
    pub fn close(self) {}

    /// Map each chunk; an error from `f` is passed on as a stream error.
    pub fn map<U: Send + 'static>(
        self,
        mut f: impl FnMut(T) -> Result<U> + Send + 'static,
    ) -> StreamReader<U> {
        match self.inner {
            // Keep the cheap array form: map eagerly. On an error, the chunks mapped before it
            // are still delivered, then the error, as the lazy path would.
            Inner::Array(it) => {
                let mut out = Vec::with_capacity(it.len());
                for t in it {
                    match f(t) {
                        Ok(u) => out.push(u),
                        Err(e) => {
                            let items = out.into_iter().map(Ok).chain([Err(e)]);
                            return StreamReader::from_stream(futures_util::stream::iter(items));
                        }
                    }
                }
                StreamReader::from_vec(out)
            }
            _ => StreamReader::from_stream(self.map_ok_inner(move |t| Some(f(t)))),
        }
    }

    /// Map each chunk, dropping those for which `f` returns `None`.
    pub fn filter_map<U: Send + 'static>(
        self,
        f: impl FnMut(T) -> Option<Result<U>> + Send + 'static,
    ) -> StreamReader<U> {
        StreamReader::from_stream(self.map_ok_inner(f))
    }

    fn map_ok_inner<U: Send + 'static>(
        self,
        mut f: impl FnMut(T) -> Option<Result<U>> + Send + 'static,
    ) -> impl Stream<Item = Result<U>> + Send + 'static {
        StreamExt::filter_map(self, move |item| {
            let out = match item {
                Ok(t) => f(t),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(out)
        })
    }

    /// Read every chunk into a vector; stops at the first error.
    pub async fn collect_vec(mut self) -> Result<Vec<T>> {
        if let Inner::Array(it) = self.inner {
            return Ok(it.collect());
        }
        let mut out = Vec::new();
        while let Some(item) = self.recv().await {
            out.push(item?);
        }
        Ok(out)
    }

    /// Read the whole stream and join the chunks with `T`'s [`Concat`] rule.
    ///
    /// Errors: an empty stream (`stream reader is empty, concat fail`), a stream error
    /// (`failed to read from stream`), or the concat rule's own error. Source-ended markers
    /// from [`merge_named`](Self::merge_named) are skipped.
    pub async fn concat(self) -> Result<T>
    where
        T: Concat,
    {
        self.concat_with(T::concat).await
    }

    /// Like [`concat`](Self::concat) with an explicit rule.
    pub async fn concat_with(mut self, rule: fn(Vec<T>) -> Result<T>) -> Result<T> {
        let mut chunks = Vec::new();
        while let Some(item) = self.recv().await {
            match item {
                Ok(c) => chunks.push(c),
                Err(e) if e.kind() == ErrorKind::SourceEnded => {}
                Err(e) => {
                    return Err(Error::new(
                        e.kind(),
                        format!("failed to read from stream. error: {e}"),
                    ))
                }
            }
        }
        match chunks.len() {
            0 => Err(Error::concat("stream reader is empty, concat fail")),
            1 => Ok(chunks.pop().expect("len is 1")),
            _ => rule(chunks).map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("concat stream reader fail: {}", e.message()),
                )
            }),
        }
    }

    /// Interleave several streams into one, in arrival order. Sources are polled round-robin
    /// starting from the first declared, so no source starves and ties follow declaration
    /// order.
    pub fn merge(readers: Vec<StreamReader<T>>) -> StreamReader<T> {
        if readers.iter().all(|r| matches!(r.inner, Inner::Array(_))) {
            let mut all = Vec::new();
            for r in readers {
                if let Inner::Array(it) = r.inner {
                    all.extend(it);
                }
            }
            return StreamReader::from_vec(all);
        }
        let sources = readers.into_iter().map(|r| (None, Some(r))).collect();
        StreamReader::from_stream(Merge { sources, next: 0 })
    }

    /// Like [`merge`](Self::merge), but each time a named source ends the merged stream yields
    /// an error of kind [`ErrorKind::SourceEnded`] whose message is the source's name
    /// (see [`source_ended_name`]); the stream ends after the last source.
    pub fn merge_named(readers: Vec<(String, StreamReader<T>)>) -> StreamReader<T> {
        let sources = readers
            .into_iter()
            .map(|(name, r)| (Some(name), Some(r)))
            .collect();
        StreamReader::from_stream(Merge { sources, next: 0 })
    }
}

/// The source name carried by a [`ErrorKind::SourceEnded`] marker, if `e` is one.
pub fn source_ended_name(e: &Error) -> Option<&str> {
    (e.kind() == ErrorKind::SourceEnded).then(|| e.message())
}

impl<T: Clone + Send + 'static> StreamReader<T> {
    /// Split into `n` independent readers that each see every chunk (a tee). Chunks are
    /// buffered until every live copy has read them; the source is closed when all copies are.
    /// Array-backed streams are copied cheaply.
    pub fn copy(self, n: usize) -> Vec<StreamReader<T>> {
        match (n, self.inner) {
            (0, _) => Vec::new(),
            (1, inner) => vec![StreamReader { inner }],
            (_, Inner::Array(it)) => {
                let items: Vec<T> = it.collect();
                (0..n)
                    .map(|_| StreamReader::from_vec(items.clone()))
                    .collect()
            }
            (_, inner) => {
                let shared = Arc::new(Mutex::new(Tee {
                    source: Some(StreamReader { inner }),
                    buffer: VecDeque::new(),
                    base: 0,
                    cursors: vec![Some(0); n],
                    waiting: vec![None; n],
                    ended: false,
                }));
                (0..n)
                    .map(|id| {
                        StreamReader::from_stream(TeeChild {
                            shared: shared.clone(),
                            id,
                        })
                    })
                    .collect()
            }
        }
    }
}

/// A stream from any iterator (collected up front; use [`StreamReader::from_stream`] for lazy
/// sources).
impl<T: Send + 'static> FromIterator<T> for StreamReader<T> {
    fn from_iter<It: IntoIterator<Item = T>>(iter: It) -> Self {
        Self::from_vec(iter.into_iter().collect())
    }
}

// No field is pinned structurally (boxed streams are pinned on the heap), so moving a reader
// is always fine whatever `T` is.
impl<T> Unpin for StreamReader<T> {}
impl<T> Unpin for Merge<T> {}

impl<T: Send + 'static> Stream for StreamReader<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::Array(it) => it.size_hint(),
            _ => (0, None),
        }
    }
}

struct Merge<T> {
    sources: Vec<(Option<String>, Option<StreamReader<T>>)>,
    next: usize,
}

impl<T: Send + 'static> Stream for Merge<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let n = this.sources.len();
        let mut live = 0;
        for step in 0..n {
            let i = (this.next + step) % n;
            let (name, slot) = &mut this.sources[i];
            let Some(reader) = slot else { continue };
            live += 1;
            match reader.poll_recv(cx) {
                Poll::Ready(Some(item)) => {
                    this.next = (i + 1) % n;
                    return Poll::Ready(Some(item));
                }
                Poll::Ready(None) => {
                    *slot = None;
                    if let Some(name) = name.take() {
                        this.next = (i + 1) % n;
                        return Poll::Ready(Some(Err(Error::new(ErrorKind::SourceEnded, name))));
                    }
                    live -= 1;
                }
                Poll::Pending => {}
            }
        }
        if live == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

struct Tee<T> {
    source: Option<StreamReader<T>>,
    buffer: VecDeque<Result<T>>,
    /// Absolute position of `buffer[0]`.
    base: usize,
    /// Next absolute position each copy reads; `None` once the copy is dropped.
    cursors: Vec<Option<usize>>,
    waiting: Vec<Option<Waker>>,
    ended: bool,
}

impl<T> Tee<T> {
    fn wake_others(&mut self, me: usize) {
        for (i, w) in self.waiting.iter_mut().enumerate() {
            if i != me {
                if let Some(w) = w.take() {
                    w.wake();
                }
            }
        }
    }

    /// Drop chunks every live copy has read.
    fn trim(&mut self) {
        let min = self.cursors.iter().flatten().min().copied();
        match min {
            Some(min) => {
                while self.base < min && !self.buffer.is_empty() {
                    self.buffer.pop_front();
                    self.base += 1;
                }
            }
            None => {
                self.buffer.clear();
                self.source = None;
            }
        }
    }
}

struct TeeChild<T> {
    shared: Arc<Mutex<Tee<T>>>,
    id: usize,
}

impl<T: Clone + Send + 'static> Stream for TeeChild<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let id = self.id;
        // A poisoned lock means another copy panicked mid-update; the buffer is still
        // structurally valid (every mutation is a single push/pop), so keep going.
        let mut tee = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pos) = tee.cursors[id] else {
            return Poll::Ready(None);
        };
        if pos < tee.base + tee.buffer.len() {
            let item = match &tee.buffer[pos - tee.base] {
                Ok(t) => Ok(t.clone()),
                Err(e) => Err(e.clone()),
            };
            tee.cursors[id] = Some(pos + 1);
            tee.trim();
            return Poll::Ready(Some(item));
        }
        if tee.ended {
            return Poll::Ready(None);
        }
        let polled = match tee.source.as_mut() {
            Some(src) => src.poll_recv(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(Some(item)) => {
                let out = match &item {
                    Ok(t) => Ok(t.clone()),
                    Err(e) => Err(e.clone()),
                };
                tee.buffer.push_back(item);
                tee.cursors[id] = Some(pos + 1);
                tee.trim();
                tee.wake_others(id);
                Poll::Ready(Some(out))
            }
            Poll::Ready(None) => {
                tee.ended = true;
                tee.source = None;
                tee.wake_others(id);
                Poll::Ready(None)
            }
            Poll::Pending => {
                tee.waiting[id] = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for TeeChild<T> {
    fn drop(&mut self) {
        let mut tee = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        tee.cursors[self.id] = None;
        tee.waiting[self.id] = None;
        tee.trim();
        // Another copy may be parked waiting for this one to poll the source.
        tee.wake_others(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn pipe_send_recv_and_close() {
        rt().block_on(async {
            let (w, mut r) = pipe::<i32>(2);
            tokio::spawn(async move {
                for i in 0..5 {
                    w.send(i).await.unwrap();
                }
            });
            let mut got = Vec::new();
            while let Some(x) = r.recv().await {
                got.push(x.unwrap());
            }
            assert_eq!(got, vec![0, 1, 2, 3, 4]);
        });
    }

    #[test]
    fn send_fails_after_reader_closed() {
        rt().block_on(async {
            let (w, r) = pipe::<i32>(1);
            r.close();
            assert_eq!(w.send(1).await, Err(ReaderClosed));
            assert!(w.is_closed());
        });
    }

    #[test]
    fn copies_are_independent_and_close_the_source() {
        rt().block_on(async {
            let (w, r) = pipe::<i32>(1);
            let mut copies = r.copy(3);
            let c2 = copies.pop().unwrap();
            drop(c2);
            let producer = tokio::spawn(async move {
                for i in 0..4 {
                    if w.send(i).await.is_err() {
                        return i;
                    }
                }
                99
            });
            let b = copies.pop().unwrap();
            let a = copies.pop().unwrap();
            let (va, vb) = tokio::join!(a.collect_vec(), b.collect_vec());
            assert_eq!(va.unwrap(), vec![0, 1, 2, 3]);
            assert_eq!(vb.unwrap(), vec![0, 1, 2, 3]);
            assert_eq!(producer.await.unwrap(), 99);

            // Closing every copy closes the source.
            let (w, r) = pipe::<i32>(1);
            drop(r.copy(2));
            assert_eq!(w.send(1).await, Err(ReaderClosed));
        });
    }

    #[test]
    fn merge_named_reports_each_source() {
        rt().block_on(async {
            let (w1, r1) = pipe::<i32>(4);
            let (w2, r2) = pipe::<i32>(4);
            w1.send(2).await.unwrap();
            w1.send(3).await.unwrap();
            w2.send(11).await.unwrap();
            w2.send(21).await.unwrap();
            drop((w1, w2));
            let mut m = StreamReader::merge_named(vec![("s1".into(), r1), ("s2".into(), r2)]);
            let mut values = Vec::new();
            let mut ended = Vec::new();
            while let Some(item) = m.recv().await {
                match item {
                    Ok(v) => values.push(v),
                    Err(e) => ended.push(source_ended_name(&e).unwrap().to_string()),
                }
            }
            values.sort();
            ended.sort();
            assert_eq!(values, vec![2, 3, 11, 21]);
            assert_eq!(ended, vec!["s1", "s2"]);
        });
    }

    #[test]
    fn map_error_on_array_keeps_earlier_chunks() {
        rt().block_on(async {
            let s = StreamReader::from_vec(vec![1, 2, 3]);
            let mut m = s.map(|x| {
                if x == 3 {
                    Err(Error::internal("bad"))
                } else {
                    Ok(x * 10)
                }
            });
            assert_eq!(m.recv().await.unwrap().unwrap(), 10);
            assert_eq!(m.recv().await.unwrap().unwrap(), 20);
            assert!(m.recv().await.unwrap().is_err());
            assert!(m.recv().await.is_none());
        });
    }

    #[test]
    fn concat_errors() {
        rt().block_on(async {
            let e = StreamReader::<String>::empty().concat().await.unwrap_err();
            assert!(e
                .to_string()
                .contains("stream reader is empty, concat fail"));
            let s = StreamReader::from_stream(futures_util::stream::iter(vec![
                Ok("a".to_string()),
                Err(Error::internal("boom")),
            ]));
            let e = s.concat().await.unwrap_err();
            assert!(e.to_string().contains("failed to read from stream"));
        });
    }
}

//! The ingestion pipeline: loaded documents → split → embed in batches → index, as an eino
//! chain (so every step fires callbacks), with progress events and content hashes.
//!
//! Re-ingesting an unchanged source does nothing (its `content_hash` matches the stored
//! chunks'); a changed source's new chunks replace its old ones in one index step, and
//! only after they are embedded, so a failing embedder never loses the old version.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eino::component::{Embedder, TransformOptions, Transformer};
use eino::compose::{lambda, Chain, Compiled, Context, Runnable};
use eino::schema::Document;
use eino::Result;
use futures_util::{stream, StreamExt};
use serde_json::Value;

use crate::chunks::ChunkStore;
use crate::load::keys;
use crate::retrieve::{embed_contents, embed_texts};

/// Counters of one ingestion, sent after every step; totals grow as documents are split.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Sources (files, URLs) finished: indexed, unchanged or failed. The pages of one
    /// PDF are one source.
    pub documents_done: usize,
    /// Sources in this ingestion.
    pub documents_total: usize,
    /// Chunks embedded and indexed.
    pub chunks_done: usize,
    /// Chunks produced by the splitter so far.
    pub chunks_total: usize,
    /// Source bytes of the finished documents.
    pub bytes_done: u64,
    /// Source bytes of all documents.
    pub bytes_total: u64,
}

/// What happened to one source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// First time seen: `chunks` chunks indexed.
    Added {
        /// Chunks indexed.
        chunks: usize,
    },
    /// Content changed: `removed` old chunks replaced by `chunks` new ones.
    Replaced {
        /// Chunks indexed.
        chunks: usize,
        /// Old chunks removed.
        removed: usize,
    },
    /// Same content hash as what is stored: nothing done.
    Unchanged,
    /// This source failed; the others went on.
    Failed {
        /// The error's message.
        error: String,
    },
}

/// The result of [`Ingestor::ingest`]: one outcome per source, in input order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct IngestReport {
    /// `(source, outcome)` pairs.
    pub outcomes: Vec<(String, Outcome)>,
    /// The final counters.
    pub progress: Progress,
}

impl IngestReport {
    /// Sources that failed.
    pub fn failed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
            .count()
    }
}

/// One source on its way through the chain.
#[derive(Clone)]
struct SourceWork {
    /// The documents of one source (several for a PDF read page by page).
    docs: Vec<Document>,
    source: String,
    hash: Option<String>,
    chunks: Vec<Document>,
    vectors: Vec<Vec<f32>>,
    /// Set when a step fails this source (the later steps skip it), or once it is indexed.
    outcome: Option<Outcome>,
}

impl SourceWork {
    fn fail(&mut self, error: &eino::Error) {
        tracing::warn!(source = %self.source, %error, "ingestion failed for one source");
        self.chunks.clear();
        self.vectors.clear();
        self.outcome = Some(Outcome::Failed {
            error: error.to_string(),
        });
    }

    fn pending(&self) -> bool {
        self.outcome.is_none()
    }
}

/// Sources going through the chain together: their chunks share embedding batches and
/// one write to the store (a keyword index's commit costs milliseconds per call, and one
/// call per small file made the pipeline 20× slower than the store itself).
#[derive(Clone)]
struct Window {
    sources: Vec<SourceWork>,
    tracker: Arc<Tracker>,
}
eino::graph_value!(Window);

/// What the chain's steps read: the components and the settings that can change
/// between ingestions.
struct Steps {
    splitter: Arc<dyn Transformer>,
    embedder: Arc<dyn Embedder>,
    chunks: Arc<dyn ChunkStore>,
    collection: String,
    batch: usize,
    /// Embedding calls in flight at once.
    concurrency: AtomicUsize,
    /// Chunks one source may be split into (checked before anything is embedded).
    max_chunks: AtomicUsize,
    /// Asked, once a source is split, whether its chunks may be indexed.
    admission: Mutex<Option<Admission>>,
}

/// Decides, once a source is split and before any of it is embedded, whether its `chunks`
/// may be indexed: an error fails that source (its stored chunks stay as they were). A
/// service uses it for quotas that span sources, such as chunks per tenant.
pub type Admission = Arc<dyn Fn(&str, usize) -> Result<()> + Send + Sync>;

struct Tracker {
    progress: Mutex<Progress>,
    sink: ProgressSink,
}

impl Tracker {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let snapshot = {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut p);
            p.clone()
        };
        (self.sink)(&snapshot);
    }
}

/// Splits, embeds and indexes documents into one collection of a [`ChunkStore`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use eino_rag::ingest::{Ingestor, Outcome};
/// use eino_rag::load::{parse, Format};
/// use eino_rag::{RecursiveSplitter, VectorIndex};
/// # use eino::component::{Embedder, EmbedOptions};
/// # struct Len;
/// # impl Embedder for Len {
/// #     fn embed<'a>(&'a self, t: &'a [String], _: &'a EmbedOptions)
/// #         -> futures_util::future::BoxFuture<'a, eino::Result<Vec<Vec<f32>>>> {
/// #         Box::pin(async move { Ok(t.iter().map(|s| vec![s.len() as f32, 1.0]).collect()) })
/// #     }
/// # }
/// let index = VectorIndex::in_memory();
/// let ingestor = Ingestor::new(
///     Arc::new(RecursiveSplitter::new(200)),
///     Arc::new(Len), // any Embedder, e.g. eino_local::MiniLmEmbedder
///     index.clone(),
///     "kb",
/// ).unwrap();
/// let docs = parse(Format::Text, b"Some text.", "a.txt").unwrap();
/// let first = ingestor.ingest(docs.clone(), |_| {}).await;
/// assert_eq!(first.outcomes[0].1, Outcome::Added { chunks: 1 });
/// let again = ingestor.ingest(docs, |_| {}).await;
/// assert_eq!(again.outcomes[0].1, Outcome::Unchanged);
/// # });
/// ```
pub struct Ingestor {
    chain: Compiled<Window, Window>,
    steps: Arc<Steps>,
    window_bytes: usize,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("collection", &self.steps.collection)
            .field("batch", &self.steps.batch)
            .field("window_bytes", &self.window_bytes)
            .finish_non_exhaustive()
    }
}

/// Sources in one window at most, however small they are.
const MAX_WINDOW_SOURCES: usize = 1024;

impl Ingestor {
    /// An ingestor into `collection` of `chunks` (a [`VectorIndex`](crate::VectorIndex),
    /// a [`LocalChunks`](crate::LocalChunks) with its keyword index, or any other
    /// [`ChunkStore`]), embedding 32 chunks per call, two calls at once, and writing
    /// sources to the store in windows of about 256 KiB of text.
    pub fn new(
        splitter: Arc<dyn Transformer>,
        embedder: Arc<dyn Embedder>,
        chunks: impl ChunkStore + 'static,
        collection: impl Into<String>,
    ) -> Result<Self> {
        Self::with_batch_size(splitter, embedder, chunks, collection, 32)
    }

    /// As [`Ingestor::new`], embedding `batch` chunks per embedder call.
    pub fn with_batch_size(
        splitter: Arc<dyn Transformer>,
        embedder: Arc<dyn Embedder>,
        chunks: impl ChunkStore + 'static,
        collection: impl Into<String>,
        batch: usize,
    ) -> Result<Self> {
        let steps = Arc::new(Steps {
            splitter,
            embedder,
            chunks: Arc::new(chunks),
            collection: collection.into(),
            batch: batch.max(1),
            concurrency: AtomicUsize::new(2),
            max_chunks: AtomicUsize::new(usize::MAX),
            admission: Mutex::new(None),
        });
        Ok(Self {
            chain: Self::chain(&steps)?,
            steps,
            window_bytes: 256 * 1024,
        })
    }

    /// Ask `admit` about every source once it is split (see [`Admission`]), after the
    /// per-source limit; `None` admits everything. Applies to the ingestions that start
    /// after the call.
    pub fn set_admission(&self, admit: Option<Admission>) {
        *self
            .steps
            .admission
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = admit;
    }

    /// As [`Ingestor::set_admission`], by value.
    pub fn with_admission(self, admit: Admission) -> Self {
        self.set_admission(Some(admit));
        self
    }

    /// Embedding calls in flight at once (default 2, at least 1): with a local model that
    /// runs each call on one thread (as eino-local's MiniLM does on small machines),
    /// this is how many cores the model uses; with a remote one, how many requests wait at
    /// once.
    pub fn with_embed_concurrency(self, calls: usize) -> Self {
        self.steps
            .concurrency
            .store(calls.max(1), Ordering::Relaxed);
        self
    }

    /// Text bytes of the sources split, embedded and written to the store together
    /// (default 256 KiB; a larger source goes alone). Larger windows share more of the
    /// store's per-write cost; smaller ones report progress sooner and hold less memory.
    pub fn with_window_bytes(mut self, bytes: usize) -> Self {
        self.window_bytes = bytes.max(1);
        self
    }

    /// The chain: split, embed, then replace the window's sources in the store.
    fn chain(steps: &Arc<Steps>) -> Result<Compiled<Window, Window>> {
        let s = steps.clone();
        let split = lambda(move |w: Window| split(s.clone(), w));
        let s = steps.clone();
        let embed = lambda(move |w: Window| embed(s.clone(), w));
        let s = steps.clone();
        let store = lambda(move |w: Window| store(s.clone(), w));
        Chain::<Window, Window>::new()
            .then_keyed("split", split)
            .then_keyed("embed", embed)
            .then_keyed("index", store)
            .compile()
    }

    /// Fail a source that splits into more than `max` chunks, before any of it is embedded
    /// or indexed (its outcome is [`Outcome::Failed`]; the stored chunks stay as they
    /// were). Applies to the ingestions that start after the call.
    pub fn set_max_chunks_per_source(&self, max: usize) {
        self.steps.max_chunks.store(max, Ordering::Relaxed);
    }

    /// As [`Ingestor::set_max_chunks_per_source`], by value.
    pub fn with_max_chunks_per_source(self, max: usize) -> Self {
        self.set_max_chunks_per_source(max);
        self
    }

    /// The collection this ingestor writes.
    pub fn collection(&self) -> &str {
        &self.steps.collection
    }

    /// Ingest `docs` (from the loaders: their `source` and `content_hash` metadata are
    /// used; a document without `source` uses its id). Never fails as a whole: each
    /// source's outcome is in the report, and `on_progress` sees every step.
    pub async fn ingest(
        &self,
        docs: Vec<Document>,
        on_progress: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> IngestReport {
        self.ingest_with(docs, Arc::new(on_progress), &Context::new())
            .await
    }

    /// As [`Ingestor::ingest`] with a shared progress sink and a run context (callbacks:
    /// the chain runs once per window of sources).
    pub async fn ingest_with(
        &self,
        docs: Vec<Document>,
        on_progress: ProgressSink,
        ctx: &Context,
    ) -> IngestReport {
        let groups = group_by_source(docs);
        let tracker = Arc::new(Tracker {
            progress: Mutex::new(Progress {
                documents_total: groups.len(),
                bytes_total: groups.iter().map(|g| g.bytes).sum(),
                ..Progress::default()
            }),
            sink: on_progress,
        });
        tracker.update(|_| {});
        let mut outcomes: Vec<(String, Option<Outcome>)> = Vec::with_capacity(groups.len());
        // Indexes into `outcomes` of the window's sources, and their file bytes.
        let mut window: Vec<(usize, u64, SourceWork)> = Vec::new();
        let mut window_bytes = 0;
        let count = groups.len();
        for (n, group) in groups.into_iter().enumerate() {
            let i = outcomes.len();
            outcomes.push((group.source.clone(), None));
            if self.is_current(&group.source, group.hash.as_deref()).await {
                outcomes[i].1 = Some(Outcome::Unchanged);
                tracker.update(|p| {
                    p.documents_done += 1;
                    p.bytes_done += group.bytes;
                });
            } else {
                window_bytes += group.docs.iter().map(|d| d.content.len()).sum::<usize>();
                window.push((
                    i,
                    group.bytes,
                    SourceWork {
                        docs: group.docs,
                        source: group.source,
                        hash: group.hash,
                        chunks: Vec::new(),
                        vectors: Vec::new(),
                        outcome: None,
                    },
                ));
            }
            let last = n + 1 == count;
            let full = window_bytes >= self.window_bytes || window.len() >= MAX_WINDOW_SOURCES;
            if !window.is_empty() && (full || last) {
                window_bytes = 0;
                let batch = std::mem::take(&mut window);
                self.run_window(batch, &tracker, ctx, &mut outcomes).await;
            }
        }
        let progress = tracker
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let outcomes = outcomes
            .into_iter()
            .map(|(source, o)| (source, o.unwrap_or(Outcome::Unchanged)))
            .collect();
        IngestReport { outcomes, progress }
    }

    /// Run one window through the chain and record its sources' outcomes.
    async fn run_window(
        &self,
        batch: Vec<(usize, u64, SourceWork)>,
        tracker: &Arc<Tracker>,
        ctx: &Context,
        outcomes: &mut [(String, Option<Outcome>)],
    ) {
        let (places, sources): (Vec<(usize, u64)>, Vec<SourceWork>) =
            batch.into_iter().map(|(i, b, s)| ((i, b), s)).unzip();
        let window = Window {
            sources,
            tracker: tracker.clone(),
        };
        let done: Vec<Outcome> = match self.chain.invoke(window, ctx).await {
            Ok(w) => w
                .sources
                .into_iter()
                .map(|s| s.outcome.unwrap_or(Outcome::Unchanged))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "ingestion failed for a window of sources");
                let failed = Outcome::Failed {
                    error: e.to_string(),
                };
                vec![failed; places.len()]
            }
        };
        for ((i, bytes), outcome) in places.into_iter().zip(done) {
            outcomes[i].1 = Some(outcome);
            tracker.update(|p| {
                p.documents_done += 1;
                p.bytes_done += bytes;
            });
        }
    }

    /// Whether `source` is stored with this `hash`. A store that cannot answer counts as
    /// "changed": the source is then ingested again rather than skipped.
    async fn is_current(&self, source: &str, hash: Option<&str>) -> bool {
        let Some(hash) = hash else { return false };
        let steps = &self.steps;
        match steps.chunks.source_hash(&steps.collection, source).await {
            Ok(stored) => stored.as_deref() == Some(hash),
            Err(e) => {
                tracing::warn!(%source, error = %e, "cannot read the stored content hash");
                false
            }
        }
    }

    /// Remove every chunk of `source`; returns how many were removed.
    pub async fn remove_source(&self, source: &str) -> Result<usize> {
        let steps = &self.steps;
        steps
            .chunks
            .replace_source(&steps.collection, source, Vec::new())
            .await
    }
}

/// The split step: each pending source into chunks, within the per-source limit.
async fn split(steps: Arc<Steps>, mut w: Window) -> Result<Window> {
    let max = steps.max_chunks.load(Ordering::Relaxed);
    let admission = steps
        .admission
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for s in w.sources.iter_mut().filter(|s| s.pending()) {
        let docs = std::mem::take(&mut s.docs);
        match steps
            .splitter
            .transform(docs, &TransformOptions::default())
            .await
        {
            Ok(chunks) if chunks.len() > max => s.fail(&eino::Error::invalid_input(format!(
                "{}: split into {} chunks, more than the {max} allowed",
                s.source,
                chunks.len()
            ))),
            Ok(chunks) => {
                let n = chunks.len();
                let admitted = admission.as_ref().map_or(Ok(()), |a| a(&s.source, n));
                match admitted {
                    Ok(()) => {
                        s.chunks = chunks;
                        w.tracker.update(|p| p.chunks_total += n);
                    }
                    Err(e) => s.fail(&e),
                }
            }
            Err(e) => s.fail(&e),
        }
    }
    Ok(w)
}

/// The embed step: the window's chunks, longest first so each batch pads little, in
/// batches of `steps.batch`, `steps.concurrency` calls at once. A failed batch fails no
/// one yet: its sources are embedded again alone, so one bad text fails only its source.
async fn embed(steps: Arc<Steps>, mut w: Window) -> Result<Window> {
    let mut order: Vec<(usize, usize)> = Vec::new();
    for (i, s) in w.sources.iter_mut().enumerate() {
        if s.pending() {
            s.vectors = vec![Vec::new(); s.chunks.len()];
            order.extend((0..s.chunks.len()).map(|j| (i, j)));
        }
    }
    order.sort_by_key(|&(i, j)| std::cmp::Reverse(w.sources[i].chunks[j].content.len()));
    let batches: Vec<&[(usize, usize)]> = order.chunks(steps.batch).collect();
    let concurrency = steps.concurrency.load(Ordering::Relaxed);
    let texts: Vec<Vec<String>> = batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|&(i, j)| w.sources[i].chunks[j].content.clone())
                .collect()
        })
        .collect();
    let results: Vec<Result<Vec<Vec<f32>>>> = stream::iter(texts.into_iter().map(|texts| {
        let embedder = steps.embedder.clone();
        async move { embed_texts(embedder.as_ref(), &texts).await }
    }))
    .buffered(concurrency)
    .collect()
    .await;
    let mut retry = std::collections::BTreeSet::new();
    for (b, r) in batches.iter().zip(results) {
        match r {
            Ok(vectors) => {
                for (&(i, j), v) in b.iter().zip(vectors) {
                    w.sources[i].vectors[j] = v;
                }
            }
            Err(_) => retry.extend(b.iter().map(|&(i, _)| i)),
        }
    }
    for i in retry {
        let s = &mut w.sources[i];
        let mut vectors = Vec::with_capacity(s.chunks.len());
        for part in s.chunks.chunks(steps.batch) {
            match embed_contents(steps.embedder.as_ref(), part).await {
                Ok(v) => vectors.extend(v),
                Err(e) => {
                    s.fail(&e);
                    break;
                }
            }
        }
        if s.pending() {
            s.vectors = vectors;
        }
    }
    Ok(w)
}

/// The index step: every pending source's chunks replace its old ones, in one write.
async fn store(steps: Arc<Steps>, mut w: Window) -> Result<Window> {
    let live: Vec<usize> = (0..w.sources.len())
        .filter(|&i| w.sources[i].pending())
        .collect();
    if live.is_empty() {
        return Ok(w);
    }
    let mut groups = Vec::with_capacity(live.len());
    for &i in &live {
        let s = &mut w.sources[i];
        let mut items = Vec::with_capacity(s.chunks.len());
        for (mut chunk, v) in std::mem::take(&mut s.chunks)
            .into_iter()
            .zip(std::mem::take(&mut s.vectors))
        {
            chunk
                .metadata
                .insert(keys::SOURCE.into(), s.source.clone().into());
            if let Some(h) = &s.hash {
                chunk
                    .metadata
                    .insert(keys::CONTENT_HASH.into(), h.clone().into());
            }
            items.push((chunk, v));
        }
        groups.push((s.source.clone(), items));
    }
    let counts: Vec<usize> = groups.iter().map(|(_, items)| items.len()).collect();
    match steps
        .chunks
        .replace_sources(&steps.collection, groups)
        .await
    {
        Ok(removed) => {
            let removed = removed.into_iter().chain(std::iter::repeat(0));
            for ((&i, chunks), removed) in live.iter().zip(counts).zip(removed) {
                w.sources[i].outcome = Some(if removed == 0 {
                    Outcome::Added { chunks }
                } else {
                    Outcome::Replaced { chunks, removed }
                });
                w.tracker.update(|p| p.chunks_done += chunks);
            }
        }
        Err(e) => live.iter().for_each(|&i| w.sources[i].fail(&e)),
    }
    Ok(w)
}

/// The documents of one source, ingested (and replaced) together.
struct SourceGroup {
    source: String,
    hash: Option<String>,
    bytes: u64,
    docs: Vec<Document>,
}

/// Group documents by `source` (the id when missing), in order of first appearance: a
/// PDF read page by page gives several documents of one file, and they must replace
/// that file's old chunks together rather than each page deleting the one before.
fn group_by_source(docs: Vec<Document>) -> Vec<SourceGroup> {
    let mut groups: Vec<SourceGroup> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for doc in docs {
        let source = doc
            .metadata
            .get(keys::SOURCE)
            .and_then(Value::as_str)
            .map_or_else(|| doc.id.clone(), str::to_string);
        // `bytes` is the raw file's size, the same on every page of one file.
        let file_bytes = doc.metadata.get(keys::BYTES).and_then(Value::as_u64);
        let i = *at.entry(source.clone()).or_insert_with(|| {
            groups.push(SourceGroup {
                source,
                hash: doc
                    .metadata
                    .get(keys::CONTENT_HASH)
                    .and_then(Value::as_str)
                    .map(str::to_string),
                bytes: file_bytes.unwrap_or(0),
                docs: Vec::new(),
            });
            groups.len() - 1
        });
        if file_bytes.is_none() {
            groups[i].bytes += doc.content.len() as u64;
        }
        groups[i].docs.push(doc);
    }
    groups
}

/// A shared progress callback.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

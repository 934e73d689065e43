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
use serde_json::Value;

use crate::chunks::ChunkStore;
use crate::load::keys;

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

/// One document on its way through the chain.
#[derive(Clone)]
struct Work {
    /// The documents of one source (several for a PDF read page by page).
    docs: Vec<Document>,
    source: String,
    hash: Option<String>,
    chunks: Vec<Document>,
    vectors: Vec<Vec<f32>>,
    /// Set by the index step: chunks written, old chunks removed.
    indexed: usize,
    removed: usize,
    tracker: Arc<Tracker>,
}
eino::graph_value!(Work);

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
    chain: Compiled<Work, Work>,
    chunks: Arc<dyn ChunkStore>,
    collection: String,
    /// Chunks one source may be split into (checked before anything is embedded).
    max_chunks: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("collection", &self.collection)
            .finish_non_exhaustive()
    }
}

impl Ingestor {
    /// An ingestor into `collection` of `chunks` (a [`VectorIndex`](crate::VectorIndex),
    /// a [`LocalChunks`](crate::LocalChunks) with its keyword index, or any other
    /// [`ChunkStore`]), embedding 32 chunks per call.
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
        let collection = collection.into();
        let chunks: Arc<dyn ChunkStore> = Arc::new(chunks);
        let max_chunks = Arc::new(AtomicUsize::new(usize::MAX));
        Ok(Self {
            chain: Self::chain(
                splitter,
                embedder,
                chunks.clone(),
                &collection,
                batch.max(1),
                max_chunks.clone(),
            )?,
            chunks,
            collection,
            max_chunks,
        })
    }

    /// The chain: split, embed, then replace the source's chunks in the store.
    fn chain(
        splitter: Arc<dyn Transformer>,
        embedder: Arc<dyn Embedder>,
        chunks: Arc<dyn ChunkStore>,
        collection: &str,
        batch: usize,
        max_chunks: Arc<AtomicUsize>,
    ) -> Result<Compiled<Work, Work>> {
        let split = lambda(move |mut w: Work| {
            let (splitter, max) = (splitter.clone(), max_chunks.load(Ordering::Relaxed));
            async move {
                let docs = std::mem::take(&mut w.docs);
                w.chunks = splitter
                    .transform(docs, &TransformOptions::default())
                    .await?;
                let n = w.chunks.len();
                if n > max {
                    return Err(eino::Error::invalid_input(format!(
                        "{}: split into {n} chunks, more than the {max} allowed",
                        w.source
                    )));
                }
                w.tracker.update(|p| p.chunks_total += n);
                Ok(w)
            }
        });
        let embed = lambda(move |mut w: Work| {
            let embedder = embedder.clone();
            async move {
                for part in w.chunks.chunks(batch) {
                    let vectors = crate::retrieve::embed_contents(embedder.as_ref(), part).await?;
                    w.vectors.extend(vectors);
                }
                Ok(w)
            }
        });
        let col = collection.to_string();
        let store = lambda(move |mut w: Work| {
            let (chunks, collection) = (chunks.clone(), col.clone());
            async move {
                let mut items = Vec::with_capacity(w.chunks.len());
                for (mut chunk, v) in std::mem::take(&mut w.chunks)
                    .into_iter()
                    .zip(std::mem::take(&mut w.vectors))
                {
                    chunk
                        .metadata
                        .insert(keys::SOURCE.into(), w.source.clone().into());
                    if let Some(h) = &w.hash {
                        chunk
                            .metadata
                            .insert(keys::CONTENT_HASH.into(), h.clone().into());
                    }
                    items.push((chunk, v));
                }
                w.indexed = items.len();
                w.removed = chunks.replace_source(&collection, &w.source, items).await?;
                let n = w.indexed;
                w.tracker.update(|p| p.chunks_done += n);
                Ok(w)
            }
        });
        Chain::<Work, Work>::new()
            .then_keyed("split", split)
            .then_keyed("embed", embed)
            .then_keyed("index", store)
            .compile()
    }

    /// Fail a source that splits into more than `max` chunks, before any of it is embedded
    /// or indexed (its outcome is [`Outcome::Failed`]; the stored chunks stay as they
    /// were). Applies to the ingestions that start after the call.
    pub fn set_max_chunks_per_source(&self, max: usize) {
        self.max_chunks.store(max, Ordering::Relaxed);
    }

    /// As [`Ingestor::set_max_chunks_per_source`], by value.
    pub fn with_max_chunks_per_source(self, max: usize) -> Self {
        self.set_max_chunks_per_source(max);
        self
    }

    /// The collection this ingestor writes.
    pub fn collection(&self) -> &str {
        &self.collection
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

    /// As [`Ingestor::ingest`] with a shared progress sink and a run context (callbacks).
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
        let mut outcomes = Vec::with_capacity(groups.len());
        for SourceGroup {
            source,
            hash,
            bytes,
            docs,
        } in groups
        {
            let outcome = if self.is_current(&source, hash.as_deref()).await {
                Outcome::Unchanged
            } else {
                let work = Work {
                    docs,
                    source: source.clone(),
                    hash,
                    chunks: Vec::new(),
                    vectors: Vec::new(),
                    indexed: 0,
                    removed: 0,
                    tracker: tracker.clone(),
                };
                match self.chain.invoke(work, ctx).await {
                    Ok(w) if w.removed == 0 => Outcome::Added { chunks: w.indexed },
                    Ok(w) => Outcome::Replaced {
                        chunks: w.indexed,
                        removed: w.removed,
                    },
                    Err(e) => {
                        tracing::warn!(%source, error = %e, "ingestion failed for one source");
                        Outcome::Failed {
                            error: e.to_string(),
                        }
                    }
                }
            };
            tracker.update(|p| {
                p.documents_done += 1;
                p.bytes_done += bytes;
            });
            outcomes.push((source, outcome));
        }
        let progress = tracker
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        IngestReport { outcomes, progress }
    }

    /// Whether `source` is stored with this `hash`. A store that cannot answer counts as
    /// "changed": the source is then ingested again rather than skipped.
    async fn is_current(&self, source: &str, hash: Option<&str>) -> bool {
        let Some(hash) = hash else { return false };
        match self.chunks.source_hash(&self.collection, source).await {
            Ok(stored) => stored.as_deref() == Some(hash),
            Err(e) => {
                tracing::warn!(%source, error = %e, "cannot read the stored content hash");
                false
            }
        }
    }

    /// Remove every chunk of `source`; returns how many were removed.
    pub async fn remove_source(&self, source: &str) -> Result<usize> {
        self.chunks
            .replace_source(&self.collection, source, Vec::new())
            .await
    }
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

//! Where a knowledge base's chunks live: the [`ChunkStore`] an [`Ingestor`] writes and a
//! search reads, so the same pipeline serves the in-process indexes ([`LocalChunks`], or a
//! bare [`VectorIndex`]) and a database every replica of a service shares (the server's
//! PostgreSQL store, with pgvector).
//!
//! Chunks are grouped by `source` (the file or URL they came from): an ingestion replaces
//! a source's chunks as a whole, and the `content_hash` stored with them tells whether a
//! source changed since it was indexed.
//!
//! [`Ingestor`]: crate::ingest::Ingestor

use std::sync::Arc;

use eino::schema::Document;
use eino::Result;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

pub use crate::index::SourceChunks;
use crate::load::keys;
use crate::VectorIndex;

/// A vector search: the `k` nearest chunks, optionally above a score and matching a
/// metadata filter.
#[derive(Debug, Clone, Copy)]
pub struct ChunkQuery<'a> {
    /// The query's vector.
    pub vector: &'a [f32],
    /// Chunks wanted at most.
    pub k: usize,
    /// Least cosine similarity of a hit.
    pub min_score: Option<f64>,
    /// A metadata filter (see [`matches`](crate::index::matches)): a value for equality,
    /// `{"$in": [..]}`, `{"$ne": v}`.
    pub filter: Option<&'a Value>,
}

impl<'a> ChunkQuery<'a> {
    /// The `k` chunks nearest to `vector`.
    pub fn new(vector: &'a [f32], k: usize) -> Self {
        Self {
            vector,
            k,
            min_score: None,
            filter: None,
        }
    }

    /// Only hits scoring at least `min` (none: no floor).
    pub fn with_min_score(mut self, min: Option<f64>) -> Self {
        self.min_score = min;
        self
    }

    /// Only chunks whose metadata matches `filter`.
    pub fn with_filter(mut self, filter: Option<&'a Value>) -> Self {
        self.filter = filter;
        self
    }
}

/// The one trait of a vector store: chunks with their vectors (and, in stores that have
/// one, a keyword index) in named collections. The ingestion pipeline writes it (one
/// source at a time), [`ChunkIndexer`](crate::ChunkIndexer) and
/// [`ChunkRetriever`](crate::ChunkRetriever) make it an eino `Indexer` and `Retriever`,
/// and the server keeps knowledge bases in it.
pub trait ChunkStore: Send + Sync {
    /// The `content_hash` stored with `source`'s chunks, if it has any.
    fn source_hash<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>>;

    /// Replace `source`'s chunks with `chunks` (each with its vector; their metadata
    /// already names the source) so that a reader sees all old or all new ones. An empty
    /// `chunks` removes the source. Returns how many old chunks were removed.
    fn replace_source<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>>;

    /// [`replace_source`](Self::replace_source) for several `(source, chunks)` pairs: the
    /// ingestion pipeline writes a window of sources at once. Returns how many old chunks
    /// each source lost, in order. The default replaces them one after the other (each
    /// still all old or all new); a store whose write has a fixed cost (a keyword index's
    /// commit, a snapshot on disk) writes them together.
    fn replace_sources<'a>(
        &'a self,
        collection: &'a str,
        sources: Vec<SourceChunks>,
    ) -> BoxFuture<'a, Result<Vec<usize>>> {
        Box::pin(async move {
            let mut removed = Vec::with_capacity(sources.len());
            for (source, chunks) in sources {
                removed.push(self.replace_source(collection, &source, chunks).await?);
            }
            Ok(removed)
        })
    }

    /// Remove a whole collection; false if it held nothing.
    fn drop_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Whether `collection` holds no chunk (a search can skip embedding the query).
    fn is_empty<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// The `query.k` chunks most similar to `query.vector` (cosine; the score is the
    /// similarity), best first, scoring at least `query.min_score` and matching
    /// `query.filter` (see [`matches`](crate::index::matches)) when given.
    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>>;

    /// Add `chunks` (each with its vector) to `collection`, replacing chunks with the same
    /// id: what an eino [`Indexer`](eino::component::Indexer) does (see
    /// [`ChunkIndexer`](crate::ChunkIndexer)).
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>>;

    /// The `k` best keyword matches for `query`, best first; `None` when this store keeps
    /// no keyword index.
    fn keyword_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Document>>>> {
        let _ = (collection, query, k);
        Box::pin(async { Ok(None) })
    }
}

impl<T: ChunkStore + ?Sized> ChunkStore for Arc<T> {
    fn source_hash<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        (**self).source_hash(collection, source)
    }
    fn replace_source<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        (**self).replace_source(collection, source, chunks)
    }
    fn replace_sources<'a>(
        &'a self,
        collection: &'a str,
        sources: Vec<SourceChunks>,
    ) -> BoxFuture<'a, Result<Vec<usize>>> {
        (**self).replace_sources(collection, sources)
    }
    fn drop_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        (**self).drop_collection(collection)
    }
    fn is_empty<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        (**self).is_empty(collection)
    }
    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        (**self).search(collection, query)
    }
    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        (**self).upsert(collection, chunks)
    }
    fn keyword_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Document>>>> {
        (**self).keyword_search(collection, query, k)
    }
}

/// The metadata filter of one source's chunks.
pub fn source_filter(source: &str) -> Value {
    json!({ keys::SOURCE: source })
}

/// A [`VectorIndex`] alone: chunks and vectors, no keyword side.
impl ChunkStore for VectorIndex {
    fn source_hash<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let stored = self.find_where(collection, &source_filter(source), 1);
            Ok(stored
                .first()
                .and_then(|d| d.metadata.get(keys::CONTENT_HASH))
                .and_then(Value::as_str)
                .map(str::to_string))
        })
    }

    fn replace_source<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move { self.replace_where(collection, &source_filter(source), chunks) })
    }

    fn replace_sources<'a>(
        &'a self,
        collection: &'a str,
        sources: Vec<SourceChunks>,
    ) -> BoxFuture<'a, Result<Vec<usize>>> {
        Box::pin(async move { VectorIndex::replace_sources(self, collection, sources) })
    }

    fn drop_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { VectorIndex::drop_collection(self, collection) })
    }

    fn is_empty<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(VectorIndex::is_empty(self, collection)) })
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            VectorIndex::search(
                self,
                collection,
                query.vector,
                query.k,
                query.filter,
                query.min_score,
            )
        })
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { VectorIndex::upsert(self, collection, chunks) })
    }
}

/// The in-process chunk store: a [`VectorIndex`] and, with the `bm25` feature, a BM25
/// index of the same chunks beside it.
///
/// On a replacement the keyword side is written first: if it fails, the vector side
/// (whose hashes decide what is current) keeps the old version, and the next ingestion
/// retries both.
#[derive(Clone)]
pub struct LocalChunks {
    vectors: VectorIndex,
    #[cfg(feature = "bm25")]
    keywords: Option<crate::Bm25Index>,
}

impl std::fmt::Debug for LocalChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChunks").finish_non_exhaustive()
    }
}

impl LocalChunks {
    /// Chunks in `vectors` only.
    pub fn new(vectors: VectorIndex) -> Self {
        Self {
            vectors,
            #[cfg(feature = "bm25")]
            keywords: None,
        }
    }

    /// Also keep every chunk in `keywords`, and answer keyword searches from it.
    #[cfg(feature = "bm25")]
    pub fn with_keywords(mut self, keywords: crate::Bm25Index) -> Self {
        self.keywords = Some(keywords);
        self
    }

    /// The vector side.
    pub fn vectors(&self) -> &VectorIndex {
        &self.vectors
    }
}

impl ChunkStore for LocalChunks {
    fn source_hash<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        self.vectors.source_hash(collection, source)
    }

    fn replace_source<'a>(
        &'a self,
        collection: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            #[cfg(feature = "bm25")]
            if let Some(k) = &self.keywords {
                let docs = chunks.iter().map(|(d, _)| d.clone()).collect();
                k.replace_where(collection, &source_filter(source), docs)?;
            }
            self.vectors
                .replace_source(collection, source, chunks)
                .await
        })
    }

    fn replace_sources<'a>(
        &'a self,
        collection: &'a str,
        sources: Vec<SourceChunks>,
    ) -> BoxFuture<'a, Result<Vec<usize>>> {
        Box::pin(async move {
            #[cfg(feature = "bm25")]
            if let Some(k) = &self.keywords {
                let groups = sources
                    .iter()
                    .map(|(source, chunks)| {
                        let docs = chunks.iter().map(|(d, _)| d.clone()).collect();
                        (source_filter(source), docs)
                    })
                    .collect();
                k.replace_many(collection, groups)?;
            }
            VectorIndex::replace_sources(&self.vectors, collection, sources)
        })
    }

    fn drop_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            #[cfg(feature = "bm25")]
            if let Some(k) = &self.keywords {
                k.drop_collection(collection)?;
            }
            VectorIndex::drop_collection(&self.vectors, collection)
        })
    }

    fn is_empty<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(VectorIndex::is_empty(&self.vectors, collection)) })
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        ChunkStore::search(&self.vectors, collection, query)
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            #[cfg(feature = "bm25")]
            if let Some(k) = &self.keywords {
                let docs = chunks.iter().map(|(d, _)| d.clone()).collect();
                k.upsert(collection, docs)?;
            }
            VectorIndex::upsert(&self.vectors, collection, chunks)
        })
    }

    fn keyword_search<'a>(
        &'a self,
        collection: &'a str,
        query: &'a str,
        k: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Document>>>> {
        Box::pin(async move {
            #[cfg(feature = "bm25")]
            if let Some(index) = self.keywords.clone() {
                // tantivy's search is blocking work; keep it off the async threads.
                let (col, query) = (collection.to_string(), query.to_string());
                let found =
                    tokio::task::spawn_blocking(move || index.search(&col, &query, k, None, None))
                        .await
                        .map_err(|e| {
                            eino::Error::internal(format!("keyword search task: {e}"))
                        })??;
                return Ok(Some(found));
            }
            let _ = (collection, query, k);
            Ok(None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkRetriever;
    use eino::component::{Embedder, RetrieveOptions, Retriever};

    fn chunk(id: &str, source: &str, hash: &str) -> Document {
        let mut d = Document::new(id, format!("text of {id}"));
        d.metadata.insert(keys::SOURCE.into(), source.into());
        d.metadata.insert(keys::CONTENT_HASH.into(), hash.into());
        d
    }

    #[tokio::test]
    async fn a_source_is_replaced_as_a_whole_and_its_hash_read_back() {
        let store = LocalChunks::new(VectorIndex::in_memory());
        assert!(store.is_empty("kb").await.unwrap());
        assert_eq!(store.source_hash("kb", "a.txt").await.unwrap(), None);
        let first = vec![
            (chunk("a1", "a.txt", "h1"), vec![1.0, 0.0]),
            (chunk("a2", "a.txt", "h1"), vec![0.0, 1.0]),
        ];
        assert_eq!(store.replace_source("kb", "a.txt", first).await.unwrap(), 0);
        let other = vec![(chunk("b1", "b.txt", "h9"), vec![1.0, 1.0])];
        store.replace_source("kb", "b.txt", other).await.unwrap();
        assert_eq!(
            store.source_hash("kb", "a.txt").await.unwrap().as_deref(),
            Some("h1")
        );
        let second = vec![(chunk("a3", "a.txt", "h2"), vec![1.0, 0.1])];
        assert_eq!(
            store.replace_source("kb", "a.txt", second).await.unwrap(),
            2
        );
        assert_eq!(
            store.source_hash("kb", "a.txt").await.unwrap().as_deref(),
            Some("h2")
        );
        let hits = store
            .search("kb", ChunkQuery::new(&[1.0, 0.0], 5))
            .await
            .unwrap();
        let ids: Vec<_> = hits.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a3", "b1"], "the old chunks of a.txt are gone");
        let strict = store
            .search(
                "kb",
                ChunkQuery::new(&[1.0, 0.0], 5).with_min_score(Some(0.9)),
            )
            .await
            .unwrap();
        assert_eq!(strict.len(), 1, "min_score is a cosine floor");
        assert_eq!(
            store
                .replace_source("kb", "a.txt", Vec::new())
                .await
                .unwrap(),
            1
        );
        assert!(store.drop_collection("kb").await.unwrap());
        assert!(store.is_empty("kb").await.unwrap());
    }

    /// A stand-in embedder: "x" points along the first axis, anything else the second.
    struct Axis;
    impl Embedder for Axis {
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
            _: &'a eino::component::EmbedOptions,
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
            Box::pin(async move {
                Ok(texts
                    .iter()
                    .map(|t| {
                        if t == "x" {
                            vec![1.0, 0.0]
                        } else {
                            vec![0.0, 1.0]
                        }
                    })
                    .collect())
            })
        }
    }

    #[tokio::test]
    async fn a_chunk_store_answers_as_a_retriever() {
        let store = LocalChunks::new(VectorIndex::in_memory());
        let items = vec![
            (chunk("a", "s", "h"), vec![1.0, 0.0]),
            (chunk("b", "s", "h"), vec![0.0, 1.0]),
        ];
        store.replace_source("kb", "s", items).await.unwrap();
        let r = ChunkRetriever::new(store, Arc::new(Axis), "kb").with_top_k(1);
        let hits = r.retrieve("x", &RetrieveOptions::default()).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "a");
        let o = RetrieveOptions {
            top_k: Some(5),
            score_threshold: Some(0.5),
            ..RetrieveOptions::default()
        };
        let hits = r.retrieve("y", &o).await.unwrap();
        let ids: Vec<_> = hits.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["b"], "the threshold drops the orthogonal chunk");
        let other = RetrieveOptions {
            index: Some("empty".into()),
            ..RetrieveOptions::default()
        };
        assert!(r.retrieve("x", &other).await.unwrap().is_empty());
        // The options' metadata filter reaches the store.
        let filtered = |filter| RetrieveOptions {
            top_k: Some(5),
            filter: Some(filter),
            ..RetrieveOptions::default()
        };
        let hits = r
            .retrieve("x", &filtered(json!({"source": "s"})))
            .await
            .unwrap();
        assert_eq!(hits.len(), 2);
        let none = r
            .retrieve("x", &filtered(json!({"source": "t"})))
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_chunk_store_answers_as_an_indexer() {
        use eino::component::{IndexOptions, Indexer};
        let store = LocalChunks::new(VectorIndex::in_memory());
        let ix = crate::ChunkIndexer::new(store.clone(), Arc::new(Axis), "kb");
        let ids = ix
            .store(
                vec![Document::new("d1", "x"), Document::new("d2", "y")],
                &IndexOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(ids, ["d1", "d2"]);
        // Upserts: the same id again replaces, it does not add.
        ix.store(vec![Document::new("d1", "y")], &IndexOptions::default())
            .await
            .unwrap();
        let hits = store
            .search("kb", ChunkQuery::new(&[0.0, 1.0], 5))
            .await
            .unwrap();
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|d| d.content == "y"), "{hits:?}");
    }

    #[cfg(feature = "bm25")]
    #[tokio::test]
    async fn the_keyword_side_follows_every_replacement() {
        let store =
            LocalChunks::new(VectorIndex::in_memory()).with_keywords(crate::Bm25Index::in_memory());
        let bare = LocalChunks::new(VectorIndex::in_memory());
        assert_eq!(bare.keyword_search("kb", "text", 3).await.unwrap(), None);
        let items = vec![(chunk("a1", "a.txt", "h1"), vec![1.0, 0.0])];
        store.replace_source("kb", "a.txt", items).await.unwrap();
        let found = store
            .keyword_search("kb", "text", 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1);
        store
            .replace_source("kb", "a.txt", Vec::new())
            .await
            .unwrap();
        let found = store
            .keyword_search("kb", "text", 3)
            .await
            .unwrap()
            .unwrap();
        assert!(found.is_empty(), "removing a source removes its keywords");
    }

    #[cfg(feature = "bm25")]
    #[tokio::test]
    async fn several_sources_are_replaced_in_one_write_on_both_sides() {
        let keywords = crate::Bm25Index::in_memory();
        let store = LocalChunks::new(VectorIndex::in_memory()).with_keywords(keywords.clone());
        let first = vec![
            (
                "a.txt".to_string(),
                vec![(chunk("a1", "a.txt", "h1"), vec![1.0, 0.0])],
            ),
            (
                "b.txt".to_string(),
                vec![
                    (chunk("b1", "b.txt", "h1"), vec![0.0, 1.0]),
                    (chunk("b2", "b.txt", "h1"), vec![1.0, 1.0]),
                ],
            ),
        ];
        assert_eq!(store.replace_sources("kb", first).await.unwrap(), [0, 0]);
        assert_eq!(keywords.len("kb"), 3);
        // b.txt shrinks to one chunk, c.txt is new, a.txt is left alone.
        let second = vec![
            (
                "b.txt".to_string(),
                vec![(chunk("b3", "b.txt", "h2"), vec![0.0, 1.0])],
            ),
            (
                "c.txt".to_string(),
                vec![(chunk("c1", "c.txt", "h1"), vec![1.0, 0.5])],
            ),
        ];
        assert_eq!(store.replace_sources("kb", second).await.unwrap(), [2, 0]);
        let mut ids: Vec<String> = keywords
            .find_where("kb", &json!({}), 10)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["a1", "b3", "c1"]);
        assert_eq!(store.vectors().len("kb"), 3);
        assert_eq!(
            store.source_hash("kb", "b.txt").await.unwrap().as_deref(),
            Some("h2")
        );
    }
}

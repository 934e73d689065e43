//! Any [`ChunkStore`] as eino components: a [`ChunkIndexer`] that embeds and upserts, a
//! [`ChunkRetriever`] that embeds the query and searches, and the "lost in the middle"
//! reorder.

use std::sync::Arc;

use eino::component::{EmbedOptions, Embedder, IndexOptions, Indexer, RetrieveOptions, Retriever};
use eino::schema::Document;
use eino::{Error, Result};
use futures_util::future::BoxFuture;

use crate::chunks::{ChunkQuery, ChunkStore};

/// Any [`ChunkStore`] as an eino [`Indexer`]: embeds documents in batches and upserts
/// them into a collection (`IndexOptions::index` overrides it).
#[derive(Clone)]
pub struct ChunkIndexer {
    chunks: Arc<dyn ChunkStore>,
    embedder: Arc<dyn Embedder>,
    collection: String,
    batch: usize,
}

impl std::fmt::Debug for ChunkIndexer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkIndexer")
            .field("collection", &self.collection)
            .finish_non_exhaustive()
    }
}

impl ChunkIndexer {
    /// Store into `collection` of `chunks`, embedding with `embedder`.
    pub fn new(
        chunks: impl ChunkStore + 'static,
        embedder: Arc<dyn Embedder>,
        collection: impl Into<String>,
    ) -> Self {
        Self {
            chunks: Arc::new(chunks),
            embedder,
            collection: collection.into(),
            batch: 32,
        }
    }
}

/// Embed the contents of `docs` in one embedder call, checking that every document got a
/// vector (the one place the batching callers trust the embedder's answer).
pub(crate) async fn embed_contents(
    embedder: &dyn Embedder,
    docs: &[Document],
) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<String> = docs.iter().map(|d| d.content.clone()).collect();
    embed_texts(embedder, &texts).await
}

/// One embedder call, checked to return a vector per text.
pub(crate) async fn embed_texts(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<Vec<Vec<f32>>> {
    let vectors = embedder.embed(texts, &EmbedOptions::default()).await?;
    if vectors.len() != texts.len() {
        return Err(Error::internal(format!(
            "embedder returned {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    Ok(vectors)
}

/// The vector of one query (an error if the embedder returns none).
pub async fn embed_query(embedder: &dyn Embedder, query: &str) -> Result<Vec<f32>> {
    embedder
        .embed(&[query.to_string()], &EmbedOptions::default())
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("embedder returned no vector"))
}

impl Indexer for ChunkIndexer {
    fn store<'a>(
        &'a self,
        docs: Vec<Document>,
        o: &'a IndexOptions,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let collection = o.index.as_deref().unwrap_or(&self.collection);
            let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
            if let Some(d) = docs.iter().find(|d| d.id.is_empty()) {
                return Err(Error::invalid_input(format!(
                    "a document without an id cannot be indexed (content starts {:?})",
                    d.content.chars().take(40).collect::<String>()
                )));
            }
            let mut rest = docs;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(self.batch));
                let batch = std::mem::replace(&mut rest, tail);
                let vecs = embed_contents(self.embedder.as_ref(), &batch).await?;
                self.chunks
                    .upsert(collection, batch.into_iter().zip(vecs).collect())
                    .await?;
            }
            Ok(ids)
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "ChunkStore".into()
    }
}

/// Any [`ChunkStore`] as an eino [`Retriever`]: embeds the query and searches one
/// collection (`RetrieveOptions::index` overrides it), with top-k (default 4), score
/// threshold and metadata filter from the options.
#[derive(Clone)]
pub struct ChunkRetriever {
    chunks: Arc<dyn ChunkStore>,
    embedder: Arc<dyn Embedder>,
    collection: String,
    top_k: usize,
}

impl std::fmt::Debug for ChunkRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRetriever")
            .field("collection", &self.collection)
            .field("top_k", &self.top_k)
            .finish_non_exhaustive()
    }
}

impl ChunkRetriever {
    /// Search `collection` of `chunks`, embedding queries with `embedder`.
    pub fn new(
        chunks: impl ChunkStore + 'static,
        embedder: Arc<dyn Embedder>,
        collection: impl Into<String>,
    ) -> Self {
        Self {
            chunks: Arc::new(chunks),
            embedder,
            collection: collection.into(),
            top_k: 4,
        }
    }

    /// Default number of results.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }
}

impl Retriever for ChunkRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        o: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let q = embed_query(self.embedder.as_ref(), query).await?;
            let collection = o.index.as_deref().unwrap_or(&self.collection);
            let k = o.top_k.unwrap_or(self.top_k);
            let search = ChunkQuery::new(&q, k)
                .with_min_score(o.score_threshold)
                .with_filter(o.filter.as_ref());
            self.chunks.search(collection, search).await
        })
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "ChunkStore".into()
    }
}

/// "Lost in the middle": models read the start and end of a context best, so put the best
/// documents at both ends and the weakest in the middle (input best first).
pub fn reorder_for_context(docs: Vec<Document>) -> Vec<Document> {
    let mut front = Vec::with_capacity(docs.len());
    let mut back = Vec::with_capacity(docs.len() / 2 + 1);
    for (i, d) in docs.into_iter().enumerate() {
        if i % 2 == 0 {
            front.push(d);
        } else {
            back.push(d);
        }
    }
    back.reverse();
    front.extend(back);
    front
}

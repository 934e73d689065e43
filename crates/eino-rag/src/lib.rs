//! RAG building blocks for eino (first part): loaders, splitters, vector and BM25 indexes, hybrid retrieval
//! and the ingestion pipeline.
//!
//! - [`RecursiveSplitter`], [`MarkdownHeaderSplitter`], [`HtmlHeaderSplitter`]: chunking on
//!   `text-splitter`, sizes in characters or any measure (e.g. tokens), deterministic chunk ids from the parent id;
//!   [`SemanticSplitter`] cuts where consecutive sentence embeddings differ most.
//! - [`VectorIndex`]: named collections, exact cosine search over a contiguous buffer or
//!   approximate search through an HNSW graph ([`HnswConfig`]) for large collections,
//!   metadata filters, upsert/delete by id, persisted to a directory.
//! - [`ChunkStore`]: the one trait of a vector store (the in-process [`VectorIndex`] and
//!   [`LocalChunks`], PostgreSQL's in `eino-postgres`, or yours); [`ChunkIndexer`] and
//!   [`ChunkRetriever`] make any of them an eino `Indexer` and `Retriever`, the
//!   [`ingest::Ingestor`] writes it, and the server keeps knowledge bases in it.
//!
//! - [`HybridRetriever`]: any vector and keyword retrievers, queried concurrently, fused by
//!   RRF or weighted scores, still answering when one side fails.
//!
//! - [`load`]: file, directory and URL (SSRF-safe) loaders with text, Markdown, HTML DOCX and PDF parsers; every
//!   document records its source and a content hash.
//!
//! - [`ingest::Ingestor`]: load → split → embed in batches → index as an eino chain, with
//!   progress events; unchanged sources are skipped by content hash, changed ones replaced.
//!   It writes a [`ChunkStore`]: the in-process indexes ([`LocalChunks`]) or a shared
//!   database (the server's PostgreSQL store implements it with pgvector);
//!   [`ChunkRetriever`] makes any chunk store an eino `Retriever`.
//!
//! - [`Bm25Index`] (feature `bm25`, on by default): the keyword side, tantivy BM25 with
//!   stemming, the same collections, filters and persistence; [`Bm25Indexer`] and
//!   [`Bm25Retriever`] make it an eino `Indexer` and `Retriever`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use eino::schema::Document;
//! use eino_rag::VectorIndex;
//! let index = VectorIndex::in_memory();
//! let doc = |id: &str| Document { id: id.into(), content: id.into(), ..Document::default() };
//! index.upsert("kb", vec![(doc("a"), vec![1.0, 0.0]), (doc("b"), vec![0.0, 1.0])]).unwrap();
//! let hits = index.search("kb", &[0.9, 0.1], 1, None, None).unwrap();
//! assert_eq!(hits[0].id, "a");
//! # });
//! ```
#![warn(missing_docs)]

#[cfg(feature = "bm25")]
pub mod bm25;
pub mod chunks;
pub mod hybrid;
pub mod index;
pub mod ingest;
pub mod load;
mod retrieve;
pub mod splitter;

#[cfg(feature = "bm25")]
pub use bm25::{Bm25Index, Bm25Indexer, Bm25Retriever};
pub use chunks::{ChunkQuery, ChunkStore, LocalChunks};
pub use hybrid::{fuse, Fusion, HybridReport, HybridRetriever};
pub use index::{HnswConfig, VectorIndex};
pub use retrieve::{embed_query, reorder_for_context, ChunkIndexer, ChunkRetriever};
pub use splitter::{
    HtmlHeaderSplitter, MarkdownHeaderSplitter, RecursiveSplitter, SemanticSplitter, Size,
};

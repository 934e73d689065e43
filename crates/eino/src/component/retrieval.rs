//! Retrievers, embedders, indexers, loaders and document transformers.

use std::borrow::Cow;

use futures_util::future::BoxFuture;

use super::Extensions;
use crate::error::Result;
use crate::schema::Document;

/// Options of one retrieval.
#[derive(Debug, Clone, Default)]
pub struct RetrieveOptions {
    /// Index or collection to search.
    pub index: Option<String>,
    /// Sub-index (partition, namespace).
    pub sub_index: Option<String>,
    /// How many documents to return at most.
    pub top_k: Option<usize>,
    /// Drop documents scoring below this.
    pub score_threshold: Option<f64>,
    /// Metadata filter (JSON; each implementation documents its dialect).
    pub filter: Option<serde_json::Value>,
    /// Implementation-specific options.
    pub extensions: Extensions,
}

/// Finds documents relevant to a query.
pub trait Retriever: Send + Sync {
    /// Retrieve documents, best first.
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        options: &'a RetrieveOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Retriever")
    }
}

/// Options of one embedding call.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// Model id (overrides the configured one).
    pub model: Option<String>,
    /// Implementation-specific options.
    pub extensions: Extensions,
}

/// Turns texts into dense vectors.
pub trait Embedder: Send + Sync {
    /// One vector per text, in order.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        options: &'a EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Embedding")
    }
}

/// Options of one indexing call.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// Index or collection to write.
    pub index: Option<String>,
    /// Sub-indexes to write.
    pub sub_indexes: Vec<String>,
    /// Implementation-specific options.
    pub extensions: Extensions,
}

/// Stores documents (embedding them if needed) so a retriever can find them.
pub trait Indexer: Send + Sync {
    /// Store documents; returns their ids in order.
    fn store<'a>(
        &'a self,
        documents: Vec<Document>,
        options: &'a IndexOptions,
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Indexer")
    }
}

/// Where a loader reads from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// A path or URL.
    pub uri: String,
}

impl Source {
    /// A source at `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Self { uri: uri.into() }
    }
}

/// Options of one load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Implementation-specific options (parser settings …).
    pub extensions: Extensions,
}

/// Reads documents from a source.
pub trait Loader: Send + Sync {
    /// Load the documents of `source`.
    fn load<'a>(
        &'a self,
        source: &'a Source,
        options: &'a LoadOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Loader")
    }
}

/// Options of one transformation.
#[derive(Debug, Clone, Default)]
pub struct TransformOptions {
    /// Implementation-specific options.
    pub extensions: Extensions,
}

/// Rewrites documents: splitters, filters, enrichers.
pub trait Transformer: Send + Sync {
    /// Transform the documents.
    fn transform<'a>(
        &'a self,
        documents: Vec<Document>,
        options: &'a TransformOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("DocumentTransformer")
    }
}

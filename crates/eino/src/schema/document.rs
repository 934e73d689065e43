//! Documents: what loaders produce, splitters cut, embedders embed and retrievers return.

use serde::{Deserialize, Serialize};

use super::Map;

/// A piece of text with an id, metadata and, once scored or embedded, a score and a vector.
///
/// ```
/// use eino::schema::Document;
/// let d = Document::new("doc-1", "Rust is a systems language.").with_meta("source", "notes.md");
/// assert_eq!(d.metadata["source"], "notes.md");
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Document {
    /// Stable identifier (unique within an index).
    pub id: String,
    /// The text.
    pub content: String,
    /// Free-form metadata (source, title, page, parent id, header path …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map,
    /// Relevance score set by a retriever (higher is better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Dense embedding, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

impl Document {
    /// A document with an id and content.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// Set one metadata field.
    pub fn with_meta(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Set the score.
    pub fn with_score(mut self, score: f64) -> Self {
        self.score = Some(score);
        self
    }
}

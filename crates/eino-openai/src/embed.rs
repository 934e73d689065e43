//! The embedder.

use std::borrow::Cow;
use std::sync::Arc;

use eino::component::{EmbedOptions, Embedder};
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::config::OpenAiConfig;
use crate::http::Http;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmbeddingItem {
    index: Option<usize>,
    embedding: Vec<f32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

/// Embeddings on any OpenAI-compatible server (`POST /embeddings`), in batches.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    http: Arc<Http>,
}

impl OpenAiEmbedder {
    /// An embedder with this configuration (its `model` is the embedding model).
    pub fn new(cfg: OpenAiConfig) -> Result<Self> {
        Ok(Self {
            http: Arc::new(Http::new(cfg)?),
        })
    }

    async fn batch(&self, model: &str, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let body = json!({"model": model, "input": texts, "encoding_format": "float"});
        let resp: EmbeddingResponse = self.http.post_json("embeddings", &body).await?;
        if resp.data.len() != texts.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "embeddings server returned {} vectors for {} texts",
                    resp.data.len(),
                    texts.len()
                ),
            ));
        }
        let mut items = resp.data;
        // Servers may answer out of order; `index` says where each belongs.
        items.sort_by_key(|i| i.index.unwrap_or(usize::MAX));
        Ok(items.into_iter().map(|i| i.embedding).collect())
    }
}

impl Embedder for OpenAiEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        o: &'a EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let model = o.model.as_deref().unwrap_or(&self.http.cfg.model);
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(self.http.cfg.embed_batch_size.max(1)) {
                out.extend(self.batch(model, chunk).await?);
            }
            Ok(out)
        })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("OpenAI")
    }
}

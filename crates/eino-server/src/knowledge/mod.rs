//! Knowledge bases: per-tenant collections of chunks in a [`ChunkStore`] (the in-process
//! vector and BM25 indexes, or PostgreSQL with pgvector when every replica must see the
//! same chunks), ingestion jobs with progress, and hybrid search.
//!
//! A job's status lives in the replica running it (a watch, for streaming) and in the
//! store (written as it changes, at most twice a second): any replica answers a poll, and
//! one that is not running the job streams it by reading the store.

mod ingest;
mod jobs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eino::component::Embedder;
use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::ingest::Ingestor;
use eino_rag::{embed_query, fuse, ChunkQuery, ChunkStore, Fusion, MarkdownHeaderSplitter};
use tokio::sync::Semaphore;

pub use crate::store::JobStatus;
use crate::store::Store;
pub use ingest::IngestLimits;
pub(crate) use jobs::spawn_job_sweep;
use jobs::Job;
pub use jobs::JOB_RETENTION;

/// The knowledge-base service.
#[derive(Clone)]
pub struct Knowledge {
    store: Arc<dyn Store>,
    chunks: Arc<dyn ChunkStore>,
    embedder: Option<Arc<dyn Embedder>>,
    /// The jobs running in this replica.
    jobs: Arc<Mutex<HashMap<String, Job>>>,
    limits: Arc<IngestLimits>,
    /// One permit per job parsing and embedding: a queue, not N parsers at once.
    slots: Arc<Semaphore>,
}

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Its file name (the document's source inside the knowledge base).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The index collection of a tenant's knowledge base. The tenant is hex-encoded: tenants
/// may contain `.`, which the index refuses, and mapping it to `-` would give tenants
/// `a.b` and `a-b` one collection. Hex has no `_` and kb names contain neither `.` nor
/// `__`, so the name is unambiguous.
fn collection(tenant: &str, kb: &str) -> String {
    let hex: String = tenant.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}__{kb}")
}

impl Knowledge {
    /// Knowledge bases whose chunks are in `chunks`, embedded with `embedder` (none:
    /// knowledge bases are off), their records and jobs in `store`.
    pub fn new(
        store: Arc<dyn Store>,
        chunks: Arc<dyn ChunkStore>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        Self::with_limits(store, chunks, embedder, IngestLimits::default())
    }

    /// As [`Knowledge::new`], with ingestion limits.
    pub fn with_limits(
        store: Arc<dyn Store>,
        chunks: Arc<dyn ChunkStore>,
        embedder: Option<Arc<dyn Embedder>>,
        limits: IngestLimits,
    ) -> Self {
        Self {
            store,
            chunks,
            embedder,
            jobs: Arc::default(),
            slots: Arc::new(Semaphore::new(limits.jobs_at_once.max(1))),
            limits: Arc::new(limits),
        }
    }

    fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        self.embedder.clone().ok_or_else(|| {
            Error::invalid_input("no embedder is configured, so knowledge bases are off")
        })
    }

    fn ingestor(&self, tenant: &str, kb: &str) -> Result<Ingestor> {
        Ingestor::new(
            Arc::new(MarkdownHeaderSplitter::new(800).with_overlap(100)),
            self.embedder()?,
            self.chunks.clone(),
            collection(tenant, kb),
        )
    }

    /// Remove a document's chunks; returns how many there were.
    pub async fn remove_document(&self, tenant: &str, kb: &str, source: &str) -> Result<usize> {
        self.chunks
            .replace_source(&collection(tenant, kb), source, Vec::new())
            .await
    }

    /// Drop a knowledge base's chunks, after stopping this replica's jobs writing into it
    /// (call it once the knowledge base's record is deleted, so no new job starts).
    pub async fn drop_kb(&self, tenant: &str, kb: &str) -> Result<()> {
        self.stop_jobs(tenant, kb).await;
        self.chunks
            .drop_collection(&collection(tenant, kb))
            .await
            .map(drop)
    }

    /// The best `k` chunks for `query` over `kbs` (`*`: all of the tenant's), best first.
    ///
    /// With a keyword index, each knowledge base is searched both ways and the lists are
    /// fused by reciprocal rank (the score is then the fused one, not a cosine).
    /// `min_score` is the least cosine similarity of a vector hit; a knowledge base with
    /// no vector hit above it contributes nothing, so "nothing relevant" still means an
    /// empty answer. In one that passes, keyword hits (exact terms: names, codes) join the
    /// ranking whatever their similarity. A failing keyword side is logged and the vector
    /// hits are served alone.
    pub async fn search(
        &self,
        tenant: &str,
        kbs: &[String],
        query: &str,
        k: usize,
        min_score: f64,
    ) -> Result<Vec<Document>> {
        let names: Vec<String> = if kbs.iter().any(|k| k == "*") {
            self.store
                .list_kbs(tenant)
                .await?
                .into_iter()
                .map(|k| k.name)
                .collect()
        } else {
            kbs.to_vec()
        };
        let mut cols: Vec<(String, String)> = Vec::with_capacity(names.len());
        for n in names {
            let c = collection(tenant, &n);
            if !self.chunks.is_empty(&c).await? {
                cols.push((c, n));
            }
        }
        if cols.is_empty() || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v = embed_query(self.embedder()?.as_ref(), query).await?;
        let mut hits = Vec::new();
        for (c, name) in cols {
            let nearest = ChunkQuery::new(&v, k * 2).with_min_score(Some(min_score));
            let vector = self.chunks.search(&c, nearest).await?;
            // The vector side is the relevance gate (applications route on "anything
            // found"); keyword hits only join a knowledge base that passed it.
            let keyword = if vector.is_empty() {
                None
            } else {
                self.keyword_hits(&c, query, k * 2).await
            };
            let found = match keyword {
                Some(keyword) => fuse(Fusion::Rrf(60.0), vector, keyword),
                None => vector,
            };
            for mut d in found.into_iter().take(k) {
                d.metadata
                    .insert("knowledge_base".into(), name.clone().into());
                hits.push(d);
            }
        }
        hits.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        hits.truncate(k);
        Ok(hits)
    }

    /// The keyword side of a search; `None` without a keyword index or when it fails.
    async fn keyword_hits(&self, col: &str, query: &str, k: usize) -> Option<Vec<Document>> {
        match self.chunks.keyword_search(col, query, k).await {
            Ok(hits) => hits,
            Err(e) => {
                tracing::warn!(error = %e, "keyword search failed; vector hits only");
                None
            }
        }
    }
}

/// Retrieved chunks as numbered, cited passages.
pub(crate) fn context_block(docs: &[Document]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        let source = d
            .metadata
            .get("source")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        out.push_str(&format!("[{}] ({source})\n{}\n\n", i + 1, d.content.trim()));
    }
    out
}

/// What a search tool answers (the agents' `knowledge_search`, MCP's `search_knowledge`):
/// the passages, or a sentence saying there are none.
pub(crate) fn passages_text(docs: &[Document]) -> String {
    if docs.is_empty() {
        "No matching passages.".into()
    } else {
        context_block(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::collection;

    #[test]
    fn collections_of_different_tenants_never_meet() {
        assert_ne!(collection("a.b", "k"), collection("a-b", "k"));
        assert_ne!(collection("a", "b__c"), collection("a__b", "c"));
        let index = eino_rag::VectorIndex::in_memory();
        let name = collection("acme.eu", "docs-1");
        index
            .upsert(
                &name,
                vec![(eino::schema::Document::new("x", "x"), vec![1.0])],
            )
            .unwrap();
        assert_eq!(index.len(&name), 1, "a name the index accepts");
    }
}

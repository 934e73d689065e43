//! Knowledge bases: per-tenant collections of the in-process indexes (vectors, and BM25
//! keywords beside them), ingestion jobs with progress, and hybrid search.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eino::component::{EmbedOptions, Embedder};
use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::keys;
use eino_rag::{fuse, Bm25Index, Fusion, MarkdownHeaderSplitter, VectorIndex};
use serde::Serialize;
use tokio::sync::watch;

use crate::store::{now_ms, KbDocument, Store};

/// An ingestion job's state, as polled or streamed by clients.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// The knowledge base.
    pub kb: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Counters.
    pub progress: Progress,
    /// Per file, when done.
    pub outcomes: Vec<(String, Outcome)>,
}

struct Job {
    tenant: String,
    status: watch::Receiver<JobStatus>,
}

/// The knowledge-base service.
#[derive(Clone)]
pub struct Knowledge {
    store: Arc<dyn Store>,
    index: VectorIndex,
    keywords: Option<Bm25Index>,
    embedder: Option<Arc<dyn Embedder>>,
    jobs: Arc<Mutex<HashMap<String, Job>>>,
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
    /// Knowledge bases in `index`, embedded with `embedder` (none: knowledge bases are off).
    pub fn new(
        store: Arc<dyn Store>,
        index: VectorIndex,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        Self {
            store,
            index,
            keywords: None,
            embedder,
            jobs: Arc::default(),
        }
    }

    /// Also index every chunk in `keywords` (BM25) and search both sides, fused.
    pub fn with_keyword_index(mut self, keywords: Bm25Index) -> Self {
        self.keywords = Some(keywords);
        self
    }

    fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        self.embedder.clone().ok_or_else(|| {
            Error::invalid_input("no embedder is configured, so knowledge bases are off")
        })
    }

    fn ingestor(&self, tenant: &str, kb: &str) -> Result<Ingestor> {
        let ingestor = Ingestor::new(
            Arc::new(MarkdownHeaderSplitter::new(800).with_overlap(100)),
            self.embedder()?,
            self.index.clone(),
            collection(tenant, kb),
        )?;
        match &self.keywords {
            Some(k) => ingestor.with_keyword_index(k.clone()),
            None => Ok(ingestor),
        }
    }

    /// Start ingesting `files` into `kb`; returns the job id at once. Parse errors are
    /// per-file outcomes, never a failed request.
    pub fn start_ingest(&self, tenant: &str, kb: &str, files: Vec<Upload>) -> Result<String> {
        let ingestor = self.ingestor(tenant, kb)?;
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = watch::channel(JobStatus {
            id: id.clone(),
            kb: kb.to_string(),
            state: "running".into(),
            progress: Progress::default(),
            outcomes: Vec::new(),
        });
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            Job {
                tenant: tenant.to_string(),
                status: rx,
            },
        );
        let (store, tenant, kb) = (self.store.clone(), tenant.to_string(), kb.to_string());
        tokio::spawn(async move {
            let tx = Arc::new(tx);
            let mut docs = Vec::new();
            let mut failed = Vec::new();
            for f in files {
                let ext = std::path::Path::new(&f.name)
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_string();
                match eino_rag::load::parse_file_bytes(&f.bytes, &ext, &f.name) {
                    Ok(d) => docs.extend(d),
                    Err(e) => failed.push((
                        f.name,
                        Outcome::Failed {
                            error: e.to_string(),
                        },
                    )),
                }
            }
            let sizes: HashMap<String, (String, u64)> = docs
                .iter()
                .map(|d| {
                    let get = |k: &str| d.metadata.get(k).cloned().unwrap_or_default();
                    (
                        d.id.clone(),
                        (
                            get(keys::CONTENT_HASH).as_str().unwrap_or("").to_string(),
                            get(keys::BYTES).as_u64().unwrap_or(0),
                        ),
                    )
                })
                .collect();
            let sink = tx.clone();
            let report = ingestor
                .ingest(docs, move |p| {
                    sink.send_modify(|s| s.progress = p.clone());
                })
                .await;
            for (source, outcome) in &report.outcomes {
                let chunks = match outcome {
                    Outcome::Added { chunks } | Outcome::Replaced { chunks, .. } => *chunks as u64,
                    _ => continue,
                };
                let (hash, bytes) = sizes.get(source).cloned().unwrap_or_default();
                let doc = KbDocument {
                    source: source.clone(),
                    content_hash: hash,
                    chunks,
                    bytes,
                    updated_at: now_ms(),
                };
                if let Err(e) = store.put_document(&tenant, &kb, &doc).await {
                    tracing::error!(error = %e, %source, "cannot record an ingested document");
                }
            }
            let mut outcomes = report.outcomes;
            outcomes.extend(failed);
            let all_failed = !outcomes.is_empty()
                && outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, Outcome::Failed { .. }));
            tx.send_modify(|s| {
                s.progress = report.progress.clone();
                s.outcomes = outcomes;
                s.state = if all_failed { "failed" } else { "done" }.into();
            });
        });
        Ok(id)
    }

    /// A job's status watch, if it belongs to `tenant`.
    pub fn job(&self, tenant: &str, id: &str) -> Option<watch::Receiver<JobStatus>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(id)
            .filter(|j| j.tenant == tenant)
            .map(|j| j.status.clone())
    }

    /// Remove a document's chunks.
    pub fn remove_document(&self, tenant: &str, kb: &str, source: &str) -> Result<usize> {
        let (col, filter) = (
            collection(tenant, kb),
            serde_json::json!({ keys::SOURCE: source }),
        );
        if let Some(k) = &self.keywords {
            k.delete_where(&col, &filter)?;
        }
        self.index.delete_where(&col, &filter)
    }

    /// Drop a knowledge base's chunks.
    pub fn drop_kb(&self, tenant: &str, kb: &str) -> Result<()> {
        let col = collection(tenant, kb);
        if let Some(k) = &self.keywords {
            k.drop_collection(&col)?;
        }
        self.index.drop_collection(&col).map(|_| ())
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
        let cols: Vec<(String, String)> = names
            .into_iter()
            .map(|n| (collection(tenant, &n), n))
            .filter(|(c, _)| !self.index.is_empty(c))
            .collect();
        if cols.is_empty() || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v = self
            .embedder()?
            .embed(&[query.to_string()], &EmbedOptions::default())
            .await?
            .pop()
            .ok_or_else(|| Error::internal("embedder returned no vector"))?;
        let mut hits = Vec::new();
        for (c, name) in cols {
            let vector = self.index.search(&c, &v, k * 2, None, Some(min_score))?;
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
        let index = self.keywords.clone()?;
        let (col, query) = (col.to_string(), query.to_string());
        let found = tokio::task::spawn_blocking(move || index.search(&col, &query, k, None, None))
            .await
            .map_err(|e| Error::internal(format!("keyword search task: {e}")));
        match found {
            Ok(Ok(hits)) => Some(hits),
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(error = %e, "keyword search failed; vector hits only");
                None
            }
        }
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

//! Knowledge bases: per-tenant collections of the in-process index, ingestion jobs with
//! progress, and search.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use eino::component::{EmbedOptions, Embedder};
use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::keys;
use eino_rag::{MarkdownHeaderSplitter, VectorIndex};
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
            embedder,
            jobs: Arc::default(),
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
            self.index.clone(),
            collection(tenant, kb),
        )
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
        self.index.delete_where(
            &collection(tenant, kb),
            &serde_json::json!({ keys::SOURCE: source }),
        )
    }

    /// Drop a knowledge base's chunks.
    pub fn drop_kb(&self, tenant: &str, kb: &str) -> Result<()> {
        self.index
            .drop_collection(&collection(tenant, kb))
            .map(|_| ())
    }

    /// The best `k` chunks for `query` over `kbs` (`*`: all of the tenant's), best first.
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
            for mut d in self.index.search(&c, &v, k, None, Some(min_score))? {
                d.metadata
                    .insert("knowledge_base".into(), name.clone().into());
                hits.push(d);
            }
        }
        hits.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
        hits.truncate(k);
        Ok(hits)
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

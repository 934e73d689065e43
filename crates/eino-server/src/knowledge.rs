//! Knowledge bases: per-tenant collections of chunks in a [`ChunkStore`] (the in-process
//! vector and BM25 indexes, or PostgreSQL with pgvector when every replica must see the
//! same chunks), ingestion jobs with progress, and hybrid search.
//!
//! A job's status lives in the replica running it (a watch, for streaming) and in the
//! store (written as it changes, at most twice a second): any replica answers a poll, and
//! one that is not running the job streams it by reading the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eino::component::Embedder;
use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::keys;
use eino_rag::{embed_query, fuse, ChunkStore, Fusion, MarkdownHeaderSplitter};
use futures_util::Stream;
use tokio::sync::watch;

pub use crate::store::JobStatus;
use crate::store::{now_ms, KbDocument, Store};

/// How often a job's status is written to the store while it runs, and how often a
/// replica streaming another one's job reads it.
const JOB_SYNC: Duration = Duration::from_millis(500);

/// A running job's status is written at least this often, changed or not, so a reader
/// can tell a slow job from one whose replica stopped.
const JOB_HEARTBEAT: Duration = Duration::from_secs(5);

/// A stored job still `running` but not written for this long lost its replica.
const JOB_STALE: Duration = Duration::from_secs(30);

/// Finished jobs are kept this long in the store, then swept.
pub const JOB_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

struct Job {
    tenant: String,
    status: watch::Receiver<JobStatus>,
}

/// The knowledge-base service.
#[derive(Clone)]
pub struct Knowledge {
    store: Arc<dyn Store>,
    chunks: Arc<dyn ChunkStore>,
    embedder: Option<Arc<dyn Embedder>>,
    /// The jobs running in this replica.
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
    /// Knowledge bases whose chunks are in `chunks`, embedded with `embedder` (none:
    /// knowledge bases are off), their records and jobs in `store`.
    pub fn new(
        store: Arc<dyn Store>,
        chunks: Arc<dyn ChunkStore>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Self {
        Self {
            store,
            chunks,
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
            self.chunks.clone(),
            collection(tenant, kb),
        )
    }

    /// Start ingesting `files` into `kb`; returns the job id once the job is recorded.
    /// Parse errors are per-file outcomes, never a failed request.
    pub async fn start_ingest(&self, tenant: &str, kb: &str, files: Vec<Upload>) -> Result<String> {
        let ingestor = self.ingestor(tenant, kb)?;
        let id = uuid::Uuid::new_v4().to_string();
        let first = JobStatus {
            id: id.clone(),
            kb: kb.to_string(),
            state: "running".into(),
            progress: Progress::default(),
            outcomes: Vec::new(),
            error: None,
            updated_at: now_ms(),
        };
        self.store.put_job(tenant, &first).await?;
        let (tx, rx) = watch::channel(first);
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            Job {
                tenant: tenant.to_string(),
                status: rx.clone(),
            },
        );
        tokio::spawn(self.clone().sync_job(tenant.to_string(), rx));
        let (store, tenant, kb) = (self.store.clone(), tenant.to_string(), kb.to_string());
        tokio::spawn(async move {
            let report = ingest_files(&ingestor, files, &tx).await;
            for (source, outcome, hash, bytes) in &report {
                let chunks = match outcome {
                    Outcome::Added { chunks } | Outcome::Replaced { chunks, .. } => *chunks as u64,
                    _ => continue,
                };
                let doc = KbDocument {
                    source: source.clone(),
                    content_hash: hash.clone(),
                    chunks,
                    bytes: *bytes,
                    updated_at: now_ms(),
                };
                if let Err(e) = store.put_document(&tenant, &kb, &doc).await {
                    tracing::error!(error = %e, %source, "cannot record an ingested document");
                }
            }
            let outcomes: Vec<(String, Outcome)> =
                report.into_iter().map(|(s, o, _, _)| (s, o)).collect();
            let all_failed = !outcomes.is_empty()
                && outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, Outcome::Failed { .. }));
            tx.send_modify(|s| {
                s.outcomes = outcomes;
                s.state = if all_failed { "failed" } else { "done" }.into();
            });
        });
        Ok(id)
    }

    /// Write a running job's status to the store as it changes (at most every
    /// [`JOB_SYNC`]) until it ends; then this replica forgets it and the store answers.
    async fn sync_job(self, tenant: String, mut rx: watch::Receiver<JobStatus>) {
        loop {
            let ended = match tokio::time::timeout(JOB_HEARTBEAT, rx.changed()).await {
                Ok(changed) => changed.is_err(),
                Err(_) => false, // no change: a heartbeat
            };
            let status = live(&rx.borrow_and_update());
            let done = ended || status.state != "running";
            // A failed write is retried with the next change; the final one a few times,
            // since after it this replica no longer holds the status.
            let mut tries = if done { 5 } else { 1 };
            while tries > 0 {
                match self.store.put_job(&tenant, &status).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(job = %status.id, error = %e, "cannot record a job's status");
                        tries -= 1;
                        if tries > 0 {
                            tokio::time::sleep(JOB_SYNC).await;
                        }
                    }
                }
            }
            if done {
                if tries > 0 {
                    self.jobs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&status.id);
                }
                return;
            }
            tokio::time::sleep(JOB_SYNC).await;
        }
    }

    fn local_job(&self, tenant: &str, id: &str) -> Option<watch::Receiver<JobStatus>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(id)
            .filter(|j| j.tenant == tenant)
            .map(|j| j.status.clone())
    }

    /// A job's status, if it belongs to `tenant`: from this replica while it runs here,
    /// else from the store.
    pub async fn job(&self, tenant: &str, id: &str) -> Result<Option<JobStatus>> {
        if let Some(rx) = self.local_job(tenant, id) {
            return Ok(Some(live(&rx.borrow())));
        }
        Ok(self.store.job(tenant, id).await?.map(settle))
    }

    /// A job's statuses as they change, the final one last; `None` if there is no such job
    /// of `tenant`.
    pub async fn job_updates(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<impl Stream<Item = JobStatus> + Send + 'static>> {
        let source = match self.local_job(tenant, id) {
            Some(rx) => Updates::Local(rx),
            None => match self.store.job(tenant, id).await?.map(settle) {
                Some(first) => Updates::Stored {
                    store: self.store.clone(),
                    tenant: tenant.to_string(),
                    last: first,
                },
                None => return Ok(None),
            },
        };
        Ok(Some(futures_util::stream::unfold(
            (source, true, false),
            |(source, first, ended)| async move {
                if ended {
                    return None;
                }
                let (status, source) = source.next(first).await?;
                let done = status.state != "running";
                Some((status, (source, false, done)))
            },
        )))
    }

    /// Remove a document's chunks; returns how many there were.
    pub async fn remove_document(&self, tenant: &str, kb: &str, source: &str) -> Result<usize> {
        self.chunks
            .replace_source(&collection(tenant, kb), source, Vec::new())
            .await
    }

    /// Drop a knowledge base's chunks.
    pub async fn drop_kb(&self, tenant: &str, kb: &str) -> Result<()> {
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
            let vector = self.chunks.search(&c, &v, k * 2, Some(min_score)).await?;
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

/// Remove the store's jobs older than [`JOB_RETENTION`], hourly, until `shutdown`.
pub(crate) fn spawn_job_sweep(
    store: Arc<dyn Store>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let cutoff = now_ms() - i64::try_from(JOB_RETENTION.as_millis()).unwrap_or(i64::MAX);
            match store.expire_jobs(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "removed old ingestion jobs"),
                Err(e) => tracing::warn!(error = %e, "cannot remove old ingestion jobs"),
            }
        }
    });
}

/// A status of a job running in this replica: current as of now.
fn live(s: &JobStatus) -> JobStatus {
    JobStatus {
        updated_at: now_ms(),
        ..s.clone()
    }
}

/// A stored job as readers see it: one left `running` without a heartbeat for
/// [`JOB_STALE`] failed, because the replica running it stopped.
fn settle(mut s: JobStatus) -> JobStatus {
    let quiet = now_ms().saturating_sub(s.updated_at);
    if s.state == "running" && quiet > i64::try_from(JOB_STALE.as_millis()).unwrap_or(i64::MAX) {
        s.state = "failed".into();
        s.error = Some(format!(
            "the replica running this job stopped {} s ago; upload the files again \
             (files already ingested are skipped as unchanged)",
            quiet / 1000
        ));
    }
    s
}

/// Where a job's updates come from: this replica's watch, or the store.
enum Updates {
    Local(watch::Receiver<JobStatus>),
    Stored {
        store: Arc<dyn Store>,
        tenant: String,
        last: JobStatus,
    },
}

impl Updates {
    /// The current status (`first`) or the next different one; `None` when there is none
    /// to come (the job vanished).
    async fn next(self, first: bool) -> Option<(JobStatus, Self)> {
        match self {
            Updates::Local(mut rx) => {
                if !first && rx.changed().await.is_err() {
                    // The job task is gone; its last value is final.
                    let s = rx.borrow().clone();
                    return (s.state != "running").then_some((s, Updates::Local(rx)));
                }
                let s = live(&rx.borrow_and_update());
                Some((s, Updates::Local(rx)))
            }
            Updates::Stored {
                store,
                tenant,
                last,
            } => {
                if first {
                    let s = last.clone();
                    return Some((
                        s,
                        Updates::Stored {
                            store,
                            tenant,
                            last,
                        },
                    ));
                }
                loop {
                    tokio::time::sleep(JOB_SYNC).await;
                    match store.job(&tenant, &last.id).await.map(|s| s.map(settle)) {
                        Ok(Some(s)) if s.state != last.state || s.progress != last.progress => {
                            return Some((
                                s.clone(),
                                Updates::Stored {
                                    store,
                                    tenant,
                                    last: s,
                                },
                            ))
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => return None,
                        // A store hiccup: the stream waits for it rather than ending early.
                        Err(e) => tracing::warn!(job = %last.id, error = %e, "cannot read a job"),
                    }
                }
            }
        }
    }
}

/// Parse and ingest `files`, sending progress to `tx`; returns per source its outcome,
/// content hash and size (parse failures included).
async fn ingest_files(
    ingestor: &Ingestor,
    files: Vec<Upload>,
    tx: &watch::Sender<JobStatus>,
) -> Vec<(String, Outcome, String, u64)> {
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
                String::new(),
                f.bytes.len() as u64,
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
    tx.send_modify(|s| s.progress = report.progress.clone());
    let mut out: Vec<_> = report
        .outcomes
        .into_iter()
        .map(|(source, outcome)| {
            let (hash, bytes) = sizes.get(&source).cloned().unwrap_or_default();
            (source, outcome, hash, bytes)
        })
        .collect();
    out.extend(failed);
    out
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

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
use eino_rag::load::{keys, ParseOptions};
use eino_rag::{embed_query, fuse, ChunkStore, Fusion, MarkdownHeaderSplitter};
use futures_util::Stream;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

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
    kb: String,
    status: watch::Receiver<JobStatus>,
    /// Fired to stop the job (its knowledge base is being deleted).
    cancel: CancellationToken,
    /// Fired by the job's task when it has stopped writing.
    stopped: CancellationToken,
}

/// What one ingestion may take: per document and per tenant.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Parser limits (inflated bytes, parse time).
    pub parse: ParseOptions,
    /// Chunks one document may be split into.
    pub max_chunks_per_document: usize,
    /// Chunks a tenant's knowledge bases may hold together (0: no limit).
    pub max_chunks_per_tenant: u64,
    /// Bytes of documents a tenant's knowledge bases may hold together (0: no limit).
    pub max_bytes_per_tenant: u64,
    /// Jobs parsing and embedding at once in this replica.
    pub jobs_at_once: usize,
}

impl IngestLimits {
    /// From the `limits:` section.
    pub fn from_config(l: &crate::config::LimitsConfig) -> Self {
        Self {
            parse: ParseOptions::default()
                .with_max_inflated_bytes(l.max_document_inflated_bytes)
                .with_max_parse_time(Duration::from_secs(l.max_parse_secs)),
            max_chunks_per_document: l.max_chunks_per_document,
            max_chunks_per_tenant: l.max_chunks_per_tenant,
            max_bytes_per_tenant: l.max_bytes_per_tenant,
            jobs_at_once: l.ingest_jobs_at_once,
        }
    }
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self::from_config(&crate::config::LimitsConfig::default())
    }
}

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

    /// Start ingesting `files` into `kb`; returns the job id once the job is recorded.
    /// Parse errors and limits are per-file outcomes, never a failed request.
    ///
    /// Files are ingested one at a time, each as one unit with its document record: the
    /// record is written before the chunks (so a searchable chunk always belongs to a
    /// listed, deletable document, whatever crashes when) and settled after them.
    pub async fn start_ingest(&self, tenant: &str, kb: &str, files: Vec<Upload>) -> Result<String> {
        let ingestor = self.ingestor(tenant, kb)?;
        let id = uuid::Uuid::new_v4().to_string();
        let first = JobStatus {
            id: id.clone(),
            kb: kb.to_string(),
            state: "running".into(),
            progress: Progress {
                documents_total: files.len(),
                bytes_total: files.iter().map(|f| f.bytes.len() as u64).sum(),
                ..Progress::default()
            },
            outcomes: Vec::new(),
            error: None,
            updated_at: now_ms(),
        };
        self.store.put_job(tenant, &first).await?;
        let (tx, rx) = watch::channel(first);
        let (cancel, stopped) = (CancellationToken::new(), CancellationToken::new());
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            Job {
                tenant: tenant.to_string(),
                kb: kb.to_string(),
                status: rx.clone(),
                cancel: cancel.clone(),
                stopped: stopped.clone(),
            },
        );
        tokio::spawn(self.clone().sync_job(tenant.to_string(), rx));
        let run = IngestRun {
            knowledge: self.clone(),
            ingestor,
            tenant: tenant.to_string(),
            kb: kb.to_string(),
            tx,
            cancel,
        };
        tokio::spawn(async move {
            let _stopped = stopped.drop_guard();
            run.run(files).await;
        });
        Ok(id)
    }

    /// Stop this replica's jobs writing into `kb` and wait (up to a minute) until they
    /// have stopped.
    async fn stop_jobs(&self, tenant: &str, kb: &str) {
        let stopping: Vec<CancellationToken> = {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.values()
                .filter(|j| j.tenant == tenant && j.kb == kb)
                .map(|j| {
                    j.cancel.cancel();
                    j.stopped.clone()
                })
                .collect()
        };
        for stopped in stopping {
            if tokio::time::timeout(Duration::from_secs(60), stopped.cancelled())
                .await
                .is_err()
            {
                tracing::warn!(%kb, "an ingestion job did not stop within a minute");
            }
        }
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

/// One ingestion job's work.
struct IngestRun {
    knowledge: Knowledge,
    ingestor: Ingestor,
    tenant: String,
    kb: String,
    tx: watch::Sender<JobStatus>,
    cancel: CancellationToken,
}

/// A tenant's documents: how many chunks and bytes its knowledge bases hold.
#[derive(Default)]
struct Usage {
    chunks: u64,
    bytes: u64,
}

impl IngestRun {
    async fn run(self, files: Vec<Upload>) {
        let k = &self.knowledge;
        // Wait for a slot (or for the job to be stopped while it waits).
        let slot = tokio::select! {
            s = k.slots.clone().acquire_owned() => s.ok(),
            _ = self.cancel.cancelled() => None,
        };
        let setup = async {
            let usage = self.usage().await?;
            let records: HashMap<String, KbDocument> = k
                .store
                .list_documents(&self.tenant, &self.kb)
                .await?
                .into_iter()
                .map(|d| (d.source.clone(), d))
                .collect();
            Ok::<_, Error>((usage, records))
        };
        let (mut usage, mut records) = match (slot.is_some(), setup.await) {
            (true, Ok(v)) => v,
            (false, _) => {
                return self.end(Vec::new(), Some("stopped: the knowledge base was deleted"))
            }
            (true, Err(e)) => {
                tracing::warn!(error = %e, "cannot start an ingestion job");
                return self.end(
                    Vec::new(),
                    Some("the store could not be read; upload again"),
                );
            }
        };
        let mut outcomes = Vec::new();
        let mut base = self.tx.borrow().progress.clone();
        for f in files {
            if self.cancel.is_cancelled() {
                break;
            }
            let (name, bytes) = (f.name.clone(), f.bytes.len() as u64);
            let one = self.file(f, &mut usage, &mut records, &base);
            let outcome = tokio::select! {
                o = one => o,
                _ = self.cancel.cancelled() => break,
            };
            base = self.tx.borrow().progress.clone();
            base.documents_done += 1;
            base.bytes_done += bytes;
            base.chunks_total = base.chunks_total.max(base.chunks_done);
            self.tx.send_modify(|s| s.progress = base.clone());
            outcomes.push((name, outcome));
        }
        drop(slot);
        let stopped = self.cancel.is_cancelled();
        self.end(
            outcomes,
            stopped.then_some("stopped: the knowledge base was deleted"),
        );
    }

    /// The job's final status.
    fn end(&self, outcomes: Vec<(String, Outcome)>, error: Option<&str>) {
        let all_failed = !outcomes.is_empty()
            && outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Failed { .. }));
        self.tx.send_modify(|s| {
            s.outcomes = outcomes;
            s.error = error.map(str::to_string);
            s.state = if all_failed || error.is_some() {
                "failed"
            } else {
                "done"
            }
            .into();
        });
    }

    /// Chunks and bytes the tenant's knowledge bases hold now.
    async fn usage(&self) -> Result<Usage> {
        let store = &self.knowledge.store;
        let mut u = Usage::default();
        for kb in store.list_kbs(&self.tenant).await? {
            for d in store.list_documents(&self.tenant, &kb.name).await? {
                u.chunks += d.chunks;
                u.bytes += d.bytes;
            }
        }
        Ok(u)
    }

    /// Parse and ingest one file; its outcome.
    async fn file(
        &self,
        f: Upload,
        usage: &mut Usage,
        records: &mut HashMap<String, KbDocument>,
        base: &Progress,
    ) -> Outcome {
        let k = &self.knowledge;
        let limits = &k.limits;
        let failed = |error: String| Outcome::Failed { error };
        let old = records.get(&f.name).cloned();
        let (old_chunks, old_bytes) = old.as_ref().map_or((0, 0), |d| (d.chunks, d.bytes));
        let size = f.bytes.len() as u64;
        if limits.max_bytes_per_tenant > 0
            && usage.bytes.saturating_sub(old_bytes) + size > limits.max_bytes_per_tenant
        {
            return failed(format!(
                "{}: the tenant's knowledge bases would hold more than {} bytes \
                 (limits.max_bytes_per_tenant)",
                f.name, limits.max_bytes_per_tenant
            ));
        }
        let hash = eino_rag::load::content_hash(&f.bytes);
        let docs = match parse(f, limits.parse.clone()).await {
            Ok(d) => d,
            Err(e) => return failed(e.to_string()),
        };
        let source = docs
            .first()
            .and_then(|d| d.metadata.get(keys::SOURCE))
            .and_then(|v| v.as_str())
            .map_or_else(|| hash.clone(), str::to_string);
        let col = collection(&self.tenant, &self.kb);
        let stored = k.chunks.source_hash(&col, &source).await.ok().flatten();
        let recorded = old.as_ref().is_some_and(|d| d.content_hash == hash);
        if recorded && stored.as_deref() == Some(hash.as_str()) {
            return Outcome::Unchanged;
        }
        if stored.as_deref() == Some(hash.as_str()) {
            // Chunks without their record (a crash of an older version between the two):
            // index them again so record and chunks agree.
            if let Err(e) = k.chunks.replace_source(&col, &source, Vec::new()).await {
                return failed(e.to_string());
            }
        }
        // The chunk limit of this file: per document, and what the tenant has left.
        let mut max = limits.max_chunks_per_document;
        let mut which = "limits.max_chunks_per_document";
        if limits.max_chunks_per_tenant > 0 {
            let left = (limits.max_chunks_per_tenant + old_chunks).saturating_sub(usage.chunks);
            if left < max as u64 {
                max = left as usize;
                which = "the tenant's limits.max_chunks_per_tenant";
            }
        }
        self.ingestor.set_max_chunks_per_source(max);
        // The record first, so chunks never exist without one.
        let pending = KbDocument {
            source: source.clone(),
            content_hash: hash.clone(),
            chunks: 0,
            bytes: size,
            updated_at: now_ms(),
        };
        if let Err(e) = k.store.put_document(&self.tenant, &self.kb, &pending).await {
            return failed(format!("{source}: cannot record the document: {e}"));
        }
        let sink = self.tx.clone();
        let at = base.clone();
        let progress: eino_rag::ingest::ProgressSink = Arc::new(move |p: &Progress| {
            sink.send_modify(|s| {
                s.progress.chunks_done = at.chunks_done + p.chunks_done;
                s.progress.chunks_total = at.chunks_total + p.chunks_total;
            });
        });
        let report = self
            .ingestor
            .ingest_with(docs, progress, &eino::compose::Context::new())
            .await;
        let outcome = report
            .outcomes
            .into_iter()
            .next()
            .map_or(Outcome::Unchanged, |(_, o)| o);
        let chunks = match &outcome {
            Outcome::Added { chunks } | Outcome::Replaced { chunks, .. } => *chunks as u64,
            Outcome::Failed { error } => {
                // The chunk store kept what it had: so does the record.
                self.restore(&source, old.as_ref()).await;
                let error = if error.contains("chunks, more than the") {
                    format!("{error} ({which})")
                } else {
                    error.clone()
                };
                return Outcome::Failed { error };
            }
            Outcome::Unchanged => {
                // Another job indexed the same content meanwhile.
                self.restore(&source, old.as_ref()).await;
                return outcome;
            }
        };
        let done = KbDocument {
            chunks,
            updated_at: now_ms(),
            ..pending
        };
        if let Err(e) = k.store.put_document(&self.tenant, &self.kb, &done).await {
            // The knowledge base went away meanwhile (another replica deleted it): take
            // the chunks back out rather than leave them without a record.
            tracing::warn!(error = %e, %source, "cannot record an ingested document");
            let _ = k.chunks.replace_source(&col, &source, Vec::new()).await;
            return Outcome::Failed {
                error: format!("{source}: cannot record the document: {e}"),
            };
        }
        usage.chunks = usage.chunks.saturating_sub(old_chunks) + chunks;
        usage.bytes = usage.bytes.saturating_sub(old_bytes) + size;
        records.insert(source, done);
        outcome
    }

    /// Put back the record a failed file had before (or none).
    async fn restore(&self, source: &str, old: Option<&KbDocument>) {
        let store = &self.knowledge.store;
        let r = match old {
            Some(d) => store.put_document(&self.tenant, &self.kb, d).await,
            None => store
                .delete_document(&self.tenant, &self.kb, source)
                .await
                .map(drop),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, %source, "cannot restore a document record");
        }
    }
}

/// Parse an upload off the async threads, within the parser limits.
async fn parse(f: Upload, options: eino_rag::load::ParseOptions) -> Result<Vec<Document>> {
    tokio::task::spawn_blocking(move || {
        let ext = std::path::Path::new(&f.name)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_string();
        eino_rag::load::parse_file_bytes_with(&f.bytes, &ext, &f.name, &options)
    })
    .await
    .map_err(|e| Error::internal(format!("parse task failed: {e}")))?
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

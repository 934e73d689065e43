//! Ingestion: uploads become chunks, one file at a time, each file one unit with its
//! document record, within the parser's, the document's and the tenant's limits, at most
//! `jobs_at_once` jobs parsing and embedding at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::{keys, ParseOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::jobs::Job;
use super::{collection, Knowledge, Upload};
use crate::store::{now_ms, JobStatus, KbDocument};

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
            count_finished(s);
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
        let name = f.name.clone();
        let docs = match parse(f, limits.parse.clone()).await {
            Ok(d) => d,
            Err(e) => return failed(e.to_string()),
        };
        // The parser records the source and the bytes' hash on every document.
        let meta = |key: &str| {
            docs.first()
                .and_then(|d| d.metadata.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let source = meta(keys::SOURCE).unwrap_or(name);
        let hash = meta(keys::CONTENT_HASH).unwrap_or_default();
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

impl Knowledge {
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
            let _running = crate::metrics::InFlight::new("eino_ingest_jobs_running");
            run.run(files).await;
        });
        Ok(id)
    }
}

/// `eino_ingest_jobs_total{state}` and `eino_ingest_documents_total{outcome}` for a job
/// that ended in this replica.
fn count_finished(status: &JobStatus) {
    metrics::counter!("eino_ingest_jobs_total", "state" => status.state.clone()).increment(1);
    for (_, outcome) in &status.outcomes {
        let outcome = match outcome {
            Outcome::Added { .. } => "added",
            Outcome::Replaced { .. } => "replaced",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed { .. } => "failed",
        };
        metrics::counter!("eino_ingest_documents_total", "outcome" => outcome).increment(1);
    }
    let chunks = status.progress.chunks_done;
    metrics::counter!("eino_ingest_chunks_total").increment(chunks as u64);
}

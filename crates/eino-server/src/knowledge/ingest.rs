//! Ingestion: uploads become chunks, in windows of files that share embedding batches and
//! store writes, each file one unit with its document record, within the parser's, the
//! document's and the tenant's limits, at most `jobs_at_once` jobs parsing and embedding
//! at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// The chunk limits its ingestor checks as each file is split.
    budget: Arc<Mutex<Budget>>,
    tenant: String,
    kb: String,
    tx: watch::Sender<JobStatus>,
    cancel: CancellationToken,
}

/// Files ingested together at most, and their upload bytes (a larger file goes alone):
/// their chunks share embedding batches and one write to the chunk store, where one file
/// at a time made many small files cost a keyword-index commit and an index write each.
const WINDOW_FILES: usize = 64;
const WINDOW_BYTES: usize = 1 << 20;

/// The next files to ingest together; never one name twice (a file uploaded twice in one
/// job is ingested twice, in order, the second replacing the first).
fn next_window(files: &mut std::iter::Peekable<std::vec::IntoIter<Upload>>) -> Vec<Upload> {
    let mut window: Vec<Upload> = Vec::new();
    let mut bytes = 0;
    while let Some(f) = files.next_if(|f| {
        window.is_empty()
            || (window.len() < WINDOW_FILES
                && bytes + f.bytes.len() <= WINDOW_BYTES
                && !window.iter().any(|w| w.name == f.name))
    }) {
        bytes += f.bytes.len();
        window.push(f);
    }
    window
}

/// A file whose pending record is written, on its way through the ingestor.
struct Pending {
    source: String,
    record: KbDocument,
    /// Its record before this job.
    old: Option<KbDocument>,
}

impl Pending {
    fn old_chunks(&self) -> u64 {
        self.old.as_ref().map_or(0, |d| d.chunks)
    }
}

/// The chunk limits, per document and per tenant, as the ingestor asks about each split
/// file (see [`eino_rag::ingest::Admission`]).
#[derive(Default)]
struct Budget {
    per_document: usize,
    /// 0: no limit.
    per_tenant: u64,
    /// Chunks the tenant holds, counting the files admitted in this window.
    used: u64,
    /// Chunks each file of this window held before it.
    old: HashMap<String, u64>,
}

impl Budget {
    fn admit(&mut self, source: &str, chunks: usize) -> Result<()> {
        if chunks > self.per_document {
            return Err(Error::invalid_input(format!(
                "{source}: split into {chunks} chunks, more than the {} allowed \
                 (limits.max_chunks_per_document)",
                self.per_document
            )));
        }
        if self.per_tenant > 0 {
            let old = self.old.get(source).copied().unwrap_or(0);
            let after = self.used.saturating_sub(old) + chunks as u64;
            if after > self.per_tenant {
                let left = (self.per_tenant + old).saturating_sub(self.used);
                return Err(Error::invalid_input(format!(
                    "{source}: split into {chunks} chunks, more than the {left} left \
                     (the tenant's limits.max_chunks_per_tenant)"
                )));
            }
            self.used = after;
            self.old.insert(source.to_string(), chunks as u64);
        }
        Ok(())
    }
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
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() && !self.cancel.is_cancelled() {
            let window = next_window(&mut files);
            let one = self.window(window, &mut usage, &mut records);
            let done = tokio::select! {
                o = one => o,
                _ = self.cancel.cancelled() => break,
            };
            for (name, bytes, outcome) in done {
                self.tx.send_modify(|s| {
                    s.progress.documents_done += 1;
                    s.progress.bytes_done += bytes;
                });
                outcomes.push((name, outcome));
            }
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

    /// Ingest a window of files together (their chunks share embedding batches and one
    /// write to the chunk store); each file's name, bytes and outcome, in order.
    async fn window(
        &self,
        files: Vec<Upload>,
        usage: &mut Usage,
        records: &mut HashMap<String, KbDocument>,
    ) -> Vec<(String, u64, Outcome)> {
        let mut done: Vec<(String, u64, Option<Outcome>)> = Vec::with_capacity(files.len());
        let mut pending: Vec<(usize, Pending)> = Vec::new();
        let mut docs = Vec::new();
        for f in files {
            let (name, size) = (f.name.clone(), f.bytes.len() as u64);
            match self.prepare(f, usage, records).await {
                Ok((p, d)) => {
                    pending.push((done.len(), p));
                    docs.extend(d);
                    done.push((name, size, None));
                }
                Err(outcome) => done.push((name, size, Some(outcome))),
            }
        }
        if !pending.is_empty() {
            // The chunk limits, per document and for the tenant, are checked as each file is
            // split: the tenant's count starts from what it holds now.
            {
                let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
                b.used = usage.chunks;
                b.old = pending
                    .iter()
                    .map(|(_, p)| (p.source.clone(), p.old_chunks()))
                    .collect();
            }
            let sink = self.tx.clone();
            let at = self.tx.borrow().progress.clone();
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
            let mut by_source: HashMap<String, Outcome> = report.outcomes.into_iter().collect();
            for (i, p) in pending {
                let outcome = by_source.remove(&p.source).unwrap_or(Outcome::Unchanged);
                done[i].2 = Some(self.settle(p, outcome, usage, records).await);
            }
        }
        done.into_iter()
            .map(|(name, bytes, o)| (name, bytes, o.unwrap_or(Outcome::Unchanged)))
            .collect()
    }

    /// Check and parse one file and write its pending record; its documents to ingest, or
    /// its outcome when there is nothing to ingest (unchanged, over a limit, unreadable).
    /// Its bytes count against the tenant from here on; [`IngestRun::settle`] gives them
    /// back if it fails.
    async fn prepare(
        &self,
        f: Upload,
        usage: &mut Usage,
        records: &HashMap<String, KbDocument>,
    ) -> std::result::Result<(Pending, Vec<Document>), Outcome> {
        let k = &self.knowledge;
        let limits = &k.limits;
        let failed = |error: String| Outcome::Failed { error };
        let old = records.get(&f.name).cloned();
        let old_bytes = old.as_ref().map_or(0, |d| d.bytes);
        let size = f.bytes.len() as u64;
        if limits.max_bytes_per_tenant > 0
            && usage.bytes.saturating_sub(old_bytes) + size > limits.max_bytes_per_tenant
        {
            return Err(failed(format!(
                "{}: the tenant's knowledge bases would hold more than {} bytes \
                 (limits.max_bytes_per_tenant)",
                f.name, limits.max_bytes_per_tenant
            )));
        }
        let name = f.name.clone();
        let docs = parse(f, limits.parse.clone())
            .await
            .map_err(|e| failed(e.to_string()))?;
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
            return Err(Outcome::Unchanged);
        }
        if stored.as_deref() == Some(hash.as_str()) {
            // Chunks without their record (a crash of an older version between the two):
            // index them again so record and chunks agree.
            if let Err(e) = k.chunks.replace_source(&col, &source, Vec::new()).await {
                return Err(failed(e.to_string()));
            }
        }
        // The record first, so chunks never exist without one.
        let record = KbDocument {
            source: source.clone(),
            content_hash: hash,
            chunks: 0,
            bytes: size,
            updated_at: now_ms(),
        };
        if let Err(e) = k.store.put_document(&self.tenant, &self.kb, &record).await {
            return Err(failed(format!("{source}: cannot record the document: {e}")));
        }
        usage.bytes = usage.bytes.saturating_sub(old_bytes) + size;
        Ok((
            Pending {
                source,
                record,
                old,
            },
            docs,
        ))
    }

    /// Settle one file's record after the ingestor's `outcome`: the final record on
    /// success, the old one back otherwise; the outcome to report.
    async fn settle(
        &self,
        p: Pending,
        outcome: Outcome,
        usage: &mut Usage,
        records: &mut HashMap<String, KbDocument>,
    ) -> Outcome {
        let Pending {
            source,
            record,
            old,
        } = p;
        let (old_chunks, old_bytes) = old.as_ref().map_or((0, 0), |d| (d.chunks, d.bytes));
        let chunks = match &outcome {
            Outcome::Added { chunks } | Outcome::Replaced { chunks, .. } => *chunks as u64,
            Outcome::Failed { .. } | Outcome::Unchanged => {
                // The chunk store kept what it had (or another job indexed the same content
                // meanwhile): so does the record.
                usage.bytes = usage.bytes.saturating_sub(record.bytes) + old_bytes;
                self.restore(&source, old.as_ref()).await;
                return outcome;
            }
        };
        let k = &self.knowledge;
        let done = KbDocument {
            chunks,
            updated_at: now_ms(),
            ..record
        };
        if let Err(e) = k.store.put_document(&self.tenant, &self.kb, &done).await {
            // The knowledge base went away meanwhile (another replica deleted it): take
            // the chunks back out rather than leave them without a record.
            tracing::warn!(error = %e, %source, "cannot record an ingested document");
            let col = collection(&self.tenant, &self.kb);
            let _ = k.chunks.replace_source(&col, &source, Vec::new()).await;
            usage.bytes = usage.bytes.saturating_sub(done.bytes) + old_bytes;
            return Outcome::Failed {
                error: format!("{source}: cannot record the document: {e}"),
            };
        }
        usage.chunks = usage.chunks.saturating_sub(old_chunks) + chunks;
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
    /// Files are ingested in windows (up to 64 files or 1 MiB at once, sharing embedding
    /// batches and store writes), each file one unit with its document record: the
    /// record is written before the chunks (so a searchable chunk always belongs to a
    /// listed, deletable document, whatever crashes when) and settled after them.
    pub async fn start_ingest(&self, tenant: &str, kb: &str, files: Vec<Upload>) -> Result<String> {
        let budget = Arc::new(Mutex::new(Budget {
            per_document: self.limits.max_chunks_per_document,
            per_tenant: self.limits.max_chunks_per_tenant,
            ..Budget::default()
        }));
        let admit = budget.clone();
        let ingestor =
            self.ingestor(tenant, kb)?
                .with_admission(Arc::new(move |source: &str, chunks| {
                    let mut b = admit.lock().unwrap_or_else(|e| e.into_inner());
                    b.admit(source, chunks)
                }));
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
            budget,
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

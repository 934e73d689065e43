//! Ingestion jobs: the status of a job running in this replica (a watch, for streaming)
//! and in the store (written as it changes, at most twice a second), so any replica
//! answers a poll and one that is not running the job streams it from the store; jobs of
//! a knowledge base being deleted are stopped.

use std::sync::Arc;
use std::time::Duration;

use eino::Result;
use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Knowledge;
use crate::store::{now_ms, JobStatus, Store};

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

pub(super) struct Job {
    pub(super) tenant: String,
    pub(super) kb: String,
    pub(super) status: watch::Receiver<JobStatus>,
    /// Fired to stop the job (its knowledge base is being deleted).
    pub(super) cancel: CancellationToken,
    /// Fired by the job's task when it has stopped writing.
    pub(super) stopped: CancellationToken,
}

impl Knowledge {
    /// Stop this replica's jobs writing into `kb` and wait (up to a minute) until they
    /// have stopped.
    pub(super) async fn stop_jobs(&self, tenant: &str, kb: &str) {
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
    pub(super) async fn sync_job(self, tenant: String, mut rx: watch::Receiver<JobStatus>) {
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

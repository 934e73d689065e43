//! One run of an application or model: its id, its trace recorder, and saving the trace
//! (status, timings, tokens) when it ends.
//!
//! Traces are written off the request path by [`RunWriter`]: one task gathers them for up
//! to `telemetry.runs_flush_ms` (100 ms) and writes the batch in transactions of 32, giving
//! the core back between them, so a request never waits for the database, the database
//! sees a few commits instead of one per request (at one request at a time, a commit per
//! request cost a quarter of the proxied request's latency), and no request waits behind
//! a whole batch's milliseconds of CPU either. A full batch (512 gathered before the
//! linger ended: the load is high, or the writer is behind) goes in one transaction
//! instead: a commit costs more than its rows (tens of WAL frames), and at such loads
//! requests wait in their queues more than behind the writer (at 64 connections this cut
//! the writer's CPU by 30 %, docs/benchmarks.md). Readers of `/api/v1/runs` flush first,
//! so a client reads its own runs. Under overload (more than the queue holds) traces are
//! dropped and counted in `eino_runs_dropped_total`, never the answers.
//!
//! With `telemetry.record_runs_sample` below 1, a successful run outside the sample is
//! not traced at all (no callbacks, no row); a failed, interrupted or cancelled one is
//! still recorded, without its nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eino::compose::Context;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::{now_ms, RunRecord, RunRow, Store};
use crate::trace::{NodeTrace, RunTracer};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// A run in progress. [`RunGuard::finish`] or [`RunGuard::fail`] records it; a guard
/// dropped without either (the client went away mid-stream) is recorded as `cancelled`
/// and cancels the run: its context's token fires, so the graph, the model call (a local
/// model's generation, an upstream response) and the callback handlers' stream copies
/// stop instead of running to the end for nobody.
pub struct RunGuard {
    cancel: CancellationToken,
    id: String,
    tenant: String,
    app: String,
    session_id: Option<String>,
    started_at: i64,
    clock: Instant,
    tracer: RunTracer,
    writer: RunWriter,
    /// Traced (callbacks and a row whatever the outcome).
    sampled: bool,
    done: bool,
}

/// A finished run as the writer gets it: its nodes still typed, serialized once there.
type Finished = RunRecord<Vec<NodeTrace>>;

enum Msg {
    Run(String, Finished),
    Flush(oneshot::Sender<()>),
}

/// The background writer of run traces. Cheap to clone.
#[derive(Clone)]
pub struct RunWriter {
    tx: mpsc::Sender<Msg>,
    /// Ends the writer's gathering sleep early (a flush, or a batch's worth queued).
    wake: Arc<Notify>,
    enabled: bool,
    /// Share of successful runs kept.
    sample: f64,
}

/// Traces queued at most; beyond, new ones are dropped (and counted).
const QUEUE: usize = 16_384;
/// Traces gathered per write at most.
const BATCH: usize = 512;
/// Traces per transaction: a write is done in slices of this many, the writer giving the
/// core back between them (unless the batch is full: [`slice_for`]).
const SLICE: usize = 32;

/// Traces per transaction for a batch of `gathered`: a full batch in one (its commits
/// would cost more than its rows), otherwise [`SLICE`].
fn slice_for(gathered: usize) -> usize {
    if gathered >= BATCH {
        BATCH
    } else {
        SLICE
    }
}

impl RunWriter {
    /// A writer that keeps nothing (`telemetry.record_runs: false`).
    pub fn disabled() -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(1);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let Msg::Flush(done) = m {
                    let _ = done.send(());
                }
            }
        });
        Self {
            tx,
            wake: Arc::new(Notify::new()),
            enabled: false,
            sample: 0.0,
        }
    }

    /// Start the writer task on the current runtime. `sample` is the share (0–1) of
    /// successful runs kept, `max_trace_bytes` the largest trace stored (see
    /// [`clip_nodes`](crate::trace::clip_nodes)), `linger` how long traces are gathered
    /// before a write (a flush or a full batch writes at once). Traces are serialized and
    /// clipped here, off the request path.
    pub fn spawn(
        store: Arc<dyn Store>,
        sample: f64,
        max_trace_bytes: usize,
        linger: Duration,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let wake = Arc::new(Notify::new());
        let woken = wake.clone();
        tokio::spawn(async move {
            let mut msgs = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut msgs, BATCH).await > 0 {
                let deadline = tokio::time::Instant::now() + linger;
                let mut flushing = msgs.iter().any(|m| matches!(m, Msg::Flush(_)));
                if msgs.len() < BATCH && !flushing && !linger.is_zero() {
                    // Gather by sleeping, not by receiving: a receive per trace would wake
                    // this task (often on the other worker thread) once per request. A
                    // flush or a full queue cuts the sleep short.
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = woken.notified() => {}
                    }
                }
                // A flush stops the gathering; the flag is kept as messages come, not
                // found again by scanning the whole batch for every one.
                while msgs.len() < BATCH && !flushing {
                    match rx.try_recv() {
                        Ok(m) => {
                            flushing = matches!(m, Msg::Flush(_));
                            msgs.push(m);
                        }
                        Err(_) => break,
                    }
                }
                let slice = slice_for(msgs.len());
                let mut queued = msgs.drain(..);
                let mut flushes = Vec::new();
                loop {
                    let rows = take(&mut queued, &mut flushes, slice, max_trace_bytes);
                    if rows.is_empty() {
                        break;
                    }
                    let n = rows.len();
                    if let Err(e) = store.put_runs(rows).await {
                        tracing::error!(error = %e, runs = n, "cannot save run traces");
                    }
                    // This is background work: give the core back between slices, so a
                    // request waiting for it runs now rather than after the whole batch
                    // (on a busy small machine the batch is milliseconds of CPU, and
                    // requests at one connection saw it in their p99).
                    std::thread::yield_now();
                }
                drop(queued);
                for f in flushes {
                    let _ = f.send(());
                }
            }
        });
        Self {
            tx,
            wake,
            enabled: true,
            sample,
        }
    }

    /// Whether the run `id` is in the sample: its low 32 bits, read as a fraction, below
    /// the share. (A UUIDv7 from `now_v7` keeps its time and a per-millisecond counter in
    /// the high bits; only the low 32 are random.)
    fn samples(&self, id: &uuid::Uuid) -> bool {
        if !self.enabled {
            return false;
        }
        if self.sample >= 1.0 {
            return true;
        }
        let random = id.as_u128() as u32;
        (f64::from(random) / f64::from(u32::MAX)) < self.sample
    }

    /// Queue a trace; never waits.
    fn record(&self, tenant: String, run: Finished) {
        if !self.enabled {
            return;
        }
        if self.tx.try_send(Msg::Run(tenant, run)).is_err() {
            metrics::counter!("eino_runs_dropped_total").increment(1);
        }
        if self.tx.max_capacity() - self.tx.capacity() >= BATCH {
            self.wake.notify_one();
        }
    }

    /// Wait until every trace queued before this call is in the store.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            self.wake.notify_one();
            let _ = rx.await;
        }
    }
}

/// The next slice (up to `slice` rows, serialized here) of the queued messages; the
/// flushes met on the way go to `flushes`.
fn take(
    queued: &mut impl Iterator<Item = Msg>,
    flushes: &mut Vec<oneshot::Sender<()>>,
    slice: usize,
    max_bytes: usize,
) -> Vec<RunRow> {
    let mut rows = Vec::with_capacity(slice);
    for msg in queued.by_ref() {
        match msg {
            Msg::Run(tenant, run) => rows.extend(row(&tenant, run, max_bytes)),
            Msg::Flush(done) => flushes.push(done),
        }
        if rows.len() == slice {
            break;
        }
    }
    rows
}

/// `run` as a stored row, its nodes' inputs and outputs dropped if it is larger than
/// `max_bytes`; `None` (logged) if it cannot be serialized.
fn row(tenant: &str, mut run: Finished, max_bytes: usize) -> Option<RunRow> {
    let serialized = RunRow::new(tenant, &run).and_then(|row| {
        if row.body.len() <= max_bytes {
            return Ok(row);
        }
        crate::trace::clip_nodes(&mut run.nodes, row.body.len(), max_bytes);
        RunRow::new(tenant, &run)
    });
    serialized
        .inspect_err(|e| tracing::error!(error = %e, run = %run.id, "cannot serialize a run trace"))
        .ok()
}

impl RunGuard {
    /// Start recording a run of `app` for `caller`.
    pub fn start(
        writer: &RunWriter,
        caller: &Caller,
        app: &str,
        session_id: Option<String>,
    ) -> Self {
        // Time-ordered: the store's primary-key index grows at its end instead of at a
        // random page per run, which cut the trace writer's page reads and writes.
        let id = uuid::Uuid::now_v7();
        let cancel = CancellationToken::new();
        Self {
            tracer: RunTracer::new().with_cancel(cancel.clone()),
            cancel,
            sampled: writer.samples(&id),
            id: id.to_string(),
            tenant: caller.tenant.clone(),
            app: app.to_string(),
            session_id,
            started_at: now_ms(),
            clock: Instant::now(),
            writer: writer.clone(),
            done: false,
        }
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A context that records this run's callbacks (a bare one when the run is not traced).
    /// It carries the run's cancellation (fired when the guard is dropped unfinished).
    pub fn context(&self) -> Context {
        let ctx = Context::new().with_cancel(self.cancel.clone());
        if self.sampled {
            ctx.with_callbacks(Arc::new(self.tracer.clone()))
        } else {
            ctx
        }
    }

    /// Record the outcome once: the guard's fields move into the record (the guard is
    /// done with them).
    async fn save(&mut self, status: &'static str, error: Option<String>) {
        self.done = true;
        let trace = self.tracer.finish().await;
        metrics::counter!("eino_runs_total", "app" => self.app.clone(), "status" => status)
            .increment(1);
        let record = RunRecord {
            id: std::mem::take(&mut self.id),
            app: std::mem::take(&mut self.app),
            session_id: self.session_id.take(),
            status: status.to_string(),
            started_at: self.started_at,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            prompt_tokens: trace.prompt_tokens,
            completion_tokens: trace.completion_tokens,
            nodes: trace.nodes,
            error,
        };
        if self.sampled || status != "ok" {
            self.writer.record(std::mem::take(&mut self.tenant), record);
        }
    }

    /// Record the result and turn an error into an API error.
    pub async fn finish<T>(mut self, result: eino::Result<T>) -> Result<T, ApiError> {
        match result {
            Ok(v) => {
                self.save("ok", None).await;
                Ok(v)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Record a failure; returns its API error.
    pub async fn fail(mut self, e: eino::Error) -> ApiError {
        let status = if e.kind() == eino::ErrorKind::Interrupted {
            "interrupted"
        } else {
            "error"
        };
        self.save(status, Some(e.to_string())).await;
        ApiError::from(e)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.cancel.cancel();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = RunGuard {
            cancel: self.cancel.clone(),
            id: std::mem::take(&mut self.id),
            tenant: std::mem::take(&mut self.tenant),
            app: std::mem::take(&mut self.app),
            session_id: self.session_id.take(),
            started_at: self.started_at,
            clock: self.clock,
            tracer: self.tracer.clone(),
            writer: self.writer.clone(),
            sampled: self.sampled,
            done: true,
        };
        rt.spawn(async move {
            rest.save("cancelled", Some("the client disconnected".into()))
                .await
        });
    }
}

/// Remove the run traces older than `telemetry.runs_ttl_secs` and those beyond the newest
/// `telemetry.runs_max`; returns how many went.
pub async fn sweep(store: &dyn Store, cfg: &crate::config::TelemetryConfig) -> eino::Result<u64> {
    let ttl_ms = i64::try_from(cfg.runs_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let before = if cfg.runs_ttl_secs == 0 {
        i64::MIN
    } else {
        now_ms().saturating_sub(ttl_ms)
    };
    store.expire_runs(before, cfg.runs_max).await
}

/// [`sweep`] at start and hourly after, until `shutdown` (nothing when neither a TTL nor
/// a cap is set).
pub(crate) fn spawn_sweep(
    store: Arc<dyn Store>,
    cfg: &crate::config::TelemetryConfig,
    shutdown: CancellationToken,
) {
    if cfg.runs_ttl_secs == 0 && cfg.runs_max == 0 {
        return;
    }
    let cfg = cfg.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            match sweep(store.as_ref(), &cfg).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "removed old run traces"),
                Err(e) => tracing::warn!(error = %e, "cannot remove old run traces"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn finished(id: &str, text: &str) -> Finished {
        RunRecord {
            id: id.into(),
            app: "a".into(),
            session_id: None,
            status: "ok".into(),
            started_at: 1,
            duration_ms: 1,
            prompt_tokens: 0,
            completion_tokens: 0,
            nodes: crate::trace::test_nodes(text),
            error: None,
        }
    }

    #[tokio::test]
    async fn the_sample_share_holds_for_time_ordered_ids() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        for share in [0.1, 0.5, 0.9] {
            let writer = RunWriter::spawn(store.clone(), share, 1 << 20, Duration::ZERO);
            // Ids made within the same millisecond share their time bits: the decision
            // must come from the random ones.
            let kept = (0..10_000)
                .filter(|_| writer.samples(&uuid::Uuid::now_v7()))
                .count();
            let got = kept as f64 / 10_000.0;
            assert!((got - share).abs() < 0.05, "share {share}: kept {got}");
        }
    }

    #[tokio::test]
    async fn a_batch_worth_queued_is_written_without_waiting_for_the_linger() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let writer = RunWriter::spawn(store.clone(), 1.0, 1 << 20, Duration::from_secs(3600));
        for i in 0..BATCH {
            writer.record("t".into(), finished(&format!("r{i}"), "x"));
        }
        let written = async {
            while store.list_runs("t", 1).await.unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), written)
            .await
            .expect("a full batch waited for the hour-long linger");
    }

    #[tokio::test]
    async fn a_flush_writes_at_once_whatever_the_linger() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let writer = RunWriter::spawn(store.clone(), 1.0, 1 << 20, Duration::from_secs(3600));
        writer.record("t".into(), finished("r1", "hello"));
        tokio::time::timeout(Duration::from_secs(10), writer.flush())
            .await
            .expect("the flush did not wait for the hour-long linger");
        let run = store.run("t", "r1").await.unwrap().unwrap();
        assert_eq!(run.nodes[0]["input"], "hello");
    }

    #[tokio::test]
    async fn a_flush_waits_for_every_slice_queued_before_it() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let writer = RunWriter::spawn(store.clone(), 1.0, 1 << 20, Duration::from_secs(3600));
        let n = 3 * SLICE + 5;
        for i in 0..n {
            writer.record("t".into(), finished(&format!("r{i}"), "x"));
        }
        writer.flush().await;
        let runs = store.list_runs("t", 1000).await.unwrap();
        assert_eq!(
            runs.len(),
            n,
            "every slice is written before the flush returns"
        );
    }

    #[test]
    fn a_full_batch_is_one_transaction_and_a_smaller_one_goes_in_slices() {
        let sizes = |n: usize| {
            let mut queued = (0..n).map(|i| Msg::Run("t".into(), finished(&format!("r{i}"), "x")));
            let mut flushes = Vec::new();
            let slice = slice_for(n);
            std::iter::from_fn(|| {
                let rows = take(&mut queued, &mut flushes, slice, 1 << 20);
                (!rows.is_empty()).then_some(rows.len())
            })
            .collect::<Vec<_>>()
        };
        assert_eq!(sizes(BATCH), [BATCH]);
        assert_eq!(sizes(3 * SLICE + 5), [SLICE, SLICE, SLICE, 5]);
    }

    #[tokio::test]
    async fn a_trace_past_the_limit_keeps_its_nodes_without_inputs_and_outputs() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let writer = RunWriter::spawn(store.clone(), 1.0, 1000, Duration::ZERO);
        writer.record("t".into(), finished("big", &"x".repeat(5000)));
        writer.flush().await;
        let run = store.run("t", "big").await.unwrap().unwrap();
        assert_eq!(run.nodes[0]["name"], "model");
        let input = run.nodes[0]["input"].as_str().unwrap();
        assert!(input.starts_with("<clipped"), "{input}");
    }
}

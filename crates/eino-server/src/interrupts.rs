//! Interrupted runs: a tool that needs approval stops the run; its checkpoint (under the
//! run id) is in the checkpoint store, and a record naming the waiting calls is in the
//! [`Store`], owned by the tenant.
//!
//! - `GET /api/v1/runs/interrupted`: the tenant's waiting runs.
//! - `GET /api/v1/runs/interrupted/{id}`: one.
//! - `POST /api/v1/runs/{id}/resume` with `{"decisions": {"<call id>": {"approved": true}}}`
//!   (`stream: true` for SSE): the run goes on from its checkpoint; a completed run's answer
//!   is stored in its session with the turn's user message, in one transaction.
//! - `DELETE /api/v1/runs/interrupted/{id}`: give up (record and checkpoint removed).
//!
//! A resume first claims the record (removes it atomically), so of two concurrent resumes
//! one runs and the other gets 409. If the resumed run fails (not interrupts), the record
//! is put back: its checkpoint is still there, so it can be resumed again.
//!
//! Runs nobody decides on expire after `limits.interrupted_run_ttl_secs` (a week by
//! default): [`expire`] drops them with their checkpoints, and the server runs it in the
//! background.

use std::sync::Arc;

use eino::compose::{CheckpointStore, InterruptInfo};
use eino::schema::Message;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::runs::RunGuard;
use crate::store::{now_ms, InterruptedRun, PendingCall, Store};

/// The approval requests in an interrupt, subgraphs included, in call order.
pub fn pending_calls(info: &InterruptInfo) -> Vec<PendingCall> {
    let mut out = Vec::new();
    collect(info, &mut Vec::new(), &mut out);
    out
}

fn collect(info: &InterruptInfo, path: &mut Vec<String>, out: &mut Vec<PendingCall>) {
    for (node, state) in &info.rerun_info {
        if let Some(points) = state.get("adk_interrupt_points").and_then(Value::as_array) {
            agent_calls(points, path, node, out);
            continue;
        }
        // A tools node reports its calls' interrupts by call id, in call order.
        let (Some(order), Some(by_call)) = (
            state.get("rerun").and_then(Value::as_array),
            state.get("rerun_info").and_then(Value::as_object),
        ) else {
            continue;
        };
        for id in order.iter().filter_map(Value::as_str) {
            let Some(req) = by_call.get(id).and_then(|v| v.get("approval")) else {
                continue;
            };
            let mut p = path.clone();
            p.push(node.clone());
            out.push(PendingCall {
                call_id: id.to_string(),
                tool: req["tool"].as_str().unwrap_or_default().to_string(),
                arguments: req["arguments"].clone(),
                path: p,
            });
        }
    }
    for (node, sub) in &info.subgraphs {
        path.push(node.clone());
        collect(sub, path, out);
        path.pop();
    }
}

/// The approval requests among a multi-agent node's interrupt points (root causes whose
/// info asks for approval), keyed by their tool call id (the node accepts either that or
/// the point id as the key of a decision).
fn agent_calls(points: &[Value], path: &[String], node: &str, out: &mut Vec<PendingCall>) {
    for p in points.iter().filter(|p| p["is_root_cause"] == true) {
        let Some(req) = p["info"].get("approval") else {
            continue;
        };
        let call_id = p["address"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|seg| seg["sub_id"].as_str())
            .or_else(|| p["id"].as_str())
            .unwrap_or_default();
        let mut at = path.to_vec();
        at.push(node.to_string());
        out.push(PendingCall {
            call_id: call_id.to_string(),
            tool: req["tool"].as_str().unwrap_or_default().to_string(),
            arguments: req["arguments"].clone(),
            path: at,
        });
    }
}

/// The JSON of a waiting run.
pub fn wire(run: &InterruptedRun) -> Value {
    json!({
        "status": "interrupted", "run_id": run.id, "app": run.app,
        "session_id": run.session_id, "created_at": run.created_at,
        "pending": run.pending.iter().map(|p| json!({
            "call_id": p.call_id, "tool": p.tool, "arguments": p.arguments,
        })).collect::<Vec<_>>(),
    })
}

/// What a run that stopped is recorded with.
pub(crate) struct Stopped<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) app: &'a str,
    pub(crate) session_id: Option<String>,
    pub(crate) user_message: Option<Message>,
}

/// [`Stopped`] owning its parts, to keep across an await in another task.
pub(crate) struct StoppedOwned {
    pub(crate) app: String,
    pub(crate) session_id: Option<String>,
    pub(crate) user_message: Option<Message>,
}

impl StoppedOwned {
    /// Borrowed again, for run `run_id`.
    pub(crate) fn borrowed<'a>(&'a self, run_id: &'a str) -> Stopped<'a> {
        Stopped {
            run_id,
            app: &self.app,
            session_id: self.session_id.clone(),
            user_message: self.user_message.clone(),
        }
    }
}

/// Record an interrupted run; the error if `e` is not an interrupt with approval requests.
pub(crate) async fn record(
    store: &dyn Store,
    tenant: &str,
    stopped: Stopped<'_>,
    e: &eino::Error,
) -> ApiResult<InterruptedRun> {
    let info = e
        .interrupt_info()
        .ok_or_else(|| ApiError::internal("an interrupt without its info"))?;
    let run = InterruptedRun {
        id: stopped.run_id.to_string(),
        app: stopped.app.to_string(),
        session_id: stopped.session_id,
        user_message: stopped.user_message,
        created_at: now_ms(),
        pending: pending_calls(info),
    };
    store.put_interrupted(tenant, &run).await?;
    metrics::counter!("eino_runs_interrupted_total", "app" => run.app.clone()).increment(1);
    Ok(run)
}

/// A run stopped for approval: record it, then close its trace as interrupted. The error
/// is the recording's (the trace is closed either way).
pub(crate) async fn stop(
    store: &dyn Store,
    tenant: &str,
    stopped: Stopped<'_>,
    e: eino::Error,
    run: RunGuard,
) -> ApiResult<InterruptedRun> {
    let saved = record(store, tenant, stopped, &e).await;
    let _ = run.fail(e).await;
    saved
}

/// Drop the runs that have waited since before `now_ms - ttl`, with their checkpoints;
/// returns how many. A checkpoint that cannot be removed is logged and left behind
/// (nothing reaches it without its record).
pub async fn expire(
    store: &dyn Store,
    checkpoints: &dyn CheckpointStore,
    now_ms: i64,
    ttl: std::time::Duration,
) -> eino::Result<usize> {
    let cutoff = now_ms.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let ids = store.expire_interrupted(cutoff).await?;
    for id in &ids {
        if let Err(e) = checkpoints.delete(id).await {
            tracing::warn!(run = %id, error = %e, "cannot remove the checkpoint of an expired run");
        }
    }
    if !ids.is_empty() {
        metrics::counter!("eino_runs_expired_total").increment(ids.len() as u64);
        tracing::info!(
            runs = ids.len(),
            "expired runs that waited too long for a decision"
        );
    }
    Ok(ids.len())
}

/// Run [`expire`] every tenth of the TTL (at most every 10 minutes) until shutdown.
pub(crate) fn spawn_expiry(
    store: Arc<dyn Store>,
    checkpoints: Arc<dyn CheckpointStore>,
    ttl_secs: u64,
    shutdown: CancellationToken,
) {
    let ttl = std::time::Duration::from_secs(ttl_secs);
    if ttl.is_zero() {
        return;
    }
    let every = (ttl / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(600),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(e) = expire(store.as_ref(), checkpoints.as_ref(), now_ms(), ttl).await {
                tracing::warn!(error = %e, "cannot expire waiting runs");
            }
        }
    });
}

//! Interrupted runs: a tool that needs approval stops the run; its checkpoint (under the
//! run id) is in the checkpoint store, and a record naming the waiting calls is in the
//! [`Store`](crate::store::Store), owned by the tenant.
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

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eino::compose::{CheckpointRun, InterruptInfo};
use eino::schema::{Message, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::AppInput;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, Query};
use crate::native::{limit, sources_json, ListQuery};
use crate::openai::message_wire;
use crate::runs::RunGuard;
use crate::state::AppState;
use crate::store::{now_ms, InterruptedRun, PendingCall};
use crate::tools::Decision;

/// The approval requests in an interrupt, subgraphs included, in call order.
pub fn pending_calls(info: &InterruptInfo) -> Vec<PendingCall> {
    let mut out = Vec::new();
    collect(info, &mut Vec::new(), &mut out);
    out
}

fn collect(info: &InterruptInfo, path: &mut Vec<String>, out: &mut Vec<PendingCall>) {
    for (node, state) in &info.rerun_info {
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

/// The answer to a request whose run stopped: 202 with the waiting run, or, when the
/// client asked for a stream, an SSE stream of one `interrupted` event with the same data.
pub(crate) fn respond(run: &InterruptedRun, stream: bool) -> Response {
    let body = wire(run);
    if stream {
        let event = axum::response::sse::Event::default()
            .event("interrupted")
            .data(body.to_string());
        let events = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(event)]);
        return Sse::new(events).into_response();
    }
    (axum::http::StatusCode::ACCEPTED, Json(body)).into_response()
}

/// What a run that stopped is recorded with.
pub(crate) struct Stopped<'a> {
    pub(crate) run_id: &'a str,
    pub(crate) app: &'a str,
    pub(crate) session_id: Option<String>,
    pub(crate) user_message: Option<Message>,
}

/// Record an interrupted run; the error if `e` is not an interrupt with approval requests.
pub(crate) async fn record(
    state: &AppState,
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
    state.store.put_interrupted(tenant, &run).await?;
    metrics::counter!("eino_runs_interrupted_total", "app" => run.app.clone()).increment(1);
    Ok(run)
}

/// A run stopped for approval: record it, then close its trace as interrupted. The error
/// is the recording's (the trace is closed either way).
pub(crate) async fn stop(
    state: &AppState,
    tenant: &str,
    stopped: Stopped<'_>,
    e: eino::Error,
    run: RunGuard,
) -> ApiResult<InterruptedRun> {
    let saved = record(state, tenant, stopped, &e).await;
    let _ = run.fail(e).await;
    saved
}

/// Drop the runs that have waited since before `now_ms - ttl`, with their checkpoints;
/// returns how many. A checkpoint that cannot be removed is logged and left behind
/// (nothing reaches it without its record).
pub async fn expire(
    state: &AppState,
    now_ms: i64,
    ttl: std::time::Duration,
) -> eino::Result<usize> {
    let cutoff = now_ms.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let ids = state.store.expire_interrupted(cutoff).await?;
    for id in &ids {
        if let Err(e) = state.checkpoints.delete(id).await {
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
pub(crate) fn spawn_expiry(state: AppState) {
    let ttl = std::time::Duration::from_secs(state.config.limits.interrupted_run_ttl_secs);
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
                _ = state.shutdown.cancelled() => return,
            }
            if let Err(e) = expire(&state, now_ms(), ttl).await {
                tracing::warn!(error = %e, "cannot expire waiting runs");
            }
        }
    });
}

/// `GET /api/v1/runs/interrupted`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let runs = state
        .store
        .list_interrupted(&caller.tenant, limit(&q))
        .await?;
    Ok(Json(
        json!({ "data": runs.iter().map(wire).collect::<Vec<_>>() }),
    ))
}

async fn require(state: &AppState, tenant: &str, id: &str) -> ApiResult<InterruptedRun> {
    state
        .store
        .interrupted(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} is not waiting for a decision")))
}

/// `GET /api/v1/runs/interrupted/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(wire(&require(&state, &caller.tenant, &id).await?)))
}

/// `DELETE /api/v1/runs/interrupted/{id}`: drop the run and its checkpoint.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if state
        .store
        .take_interrupted(&caller.tenant, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "run {id} is not waiting for a decision"
        )));
    }
    state.checkpoints.delete(&id).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// `POST /api/v1/runs/{id}/resume` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// A decision for every waiting call, by call id.
    decisions: BTreeMap<String, Decision>,
    /// Stream the answer as server-sent events (the native chat's events).
    #[serde(default)]
    stream: bool,
}

/// The checkpoint options that hand each tools node its calls' decisions.
fn resume_options(
    run: &InterruptedRun,
    decisions: &BTreeMap<String, Decision>,
) -> ApiResult<CheckpointRun> {
    let mut by_node: BTreeMap<&[String], serde_json::Map<String, Value>> = BTreeMap::new();
    for p in &run.pending {
        let d = decisions.get(&p.call_id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "decisions.{}: missing (tool {}); every waiting call needs a decision",
                p.call_id, p.tool
            ))
        })?;
        by_node
            .entry(&p.path)
            .or_default()
            .insert(p.call_id.clone(), json!(d));
    }
    if let Some(extra) = decisions
        .keys()
        .find(|k| !run.pending.iter().any(|p| &p.call_id == *k))
    {
        return Err(ApiError::bad_request(format!(
            "decisions.{extra}: no such waiting call"
        )));
    }
    let mut opts = CheckpointRun::new(run.id.clone());
    for (path, data) in by_node {
        opts = opts
            .resume_with(path.iter().cloned(), Value::Object(data))
            .map_err(ApiError::from)?;
    }
    Ok(opts)
}

/// `POST /api/v1/runs/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResumeBody>,
) -> ApiResult<Response> {
    let tenant = caller.tenant.clone();
    let waiting = require(&state, &tenant, &id).await?;
    let checkpoint = resume_options(&waiting, &body.decisions)?;
    let app = state.apps.get(&waiting.app).cloned().ok_or_else(|| {
        ApiError::conflict(format!(
            "run {id} belongs to application {}, which is no longer configured",
            waiting.app
        ))
    })?;
    let Some(claimed) = state.store.take_interrupted(&tenant, &id).await? else {
        return Err(ApiError::conflict(format!(
            "run {id} is being resumed by another request"
        )));
    };
    let run = RunGuard::start(&state, &caller, &claimed.app, claimed.session_id.clone());
    let run_id = run.id().to_string();
    let (ctx, sink) = app.run_context(run.context(), &tenant, checkpoint);
    let input = AppInput {
        tenant: tenant.clone(),
        messages: Vec::new(), // ignored: the run goes on from its checkpoint
    };
    let after = AfterResume {
        state: state.clone(),
        tenant: tenant.clone(),
        waiting: claimed,
        run_id: run_id.clone(),
    };
    if !body.stream {
        return match app.invoke(input, &ctx).await {
            Ok(answer) => {
                run.finish(Ok(())).await?;
                let answer = after.completed(answer).await?;
                Ok(Json(json!({
                    "status": "completed", "run_id": run_id, "resumed": id,
                    "session_id": after.waiting.session_id,
                    "message": message_wire(&answer), "sources": sources_json(&sink.take()),
                }))
                .into_response())
            }
            Err(e) => after.stopped(run, e, false).await,
        };
    }
    let stream = match app.stream(input, &ctx).await {
        Ok(s) => s,
        Err(e) => return after.stopped(run, e, true).await,
    };
    let done = move |answer: Message| async move {
        let answer = after.completed(answer).await?;
        Ok(json!({
            "status": "completed", "run_id": after.run_id, "resumed": after.waiting.id,
            "session_id": after.waiting.session_id, "message": message_wire(&answer),
        }))
    };
    let events = crate::sse::native_events(stream, run, sources_json(&sink.take()), done);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What happens after a resumed run ends.
struct AfterResume {
    state: AppState,
    tenant: String,
    waiting: InterruptedRun,
    run_id: String,
}

impl AfterResume {
    /// Store the turn (user message and answer together) in the run's session.
    async fn completed(&self, answer: Message) -> ApiResult<Message> {
        if let (Some(session), Some(user)) = (&self.waiting.session_id, &self.waiting.user_message)
        {
            let mut stored = answer.clone();
            stored.role = Role::Assistant;
            self.state
                .store
                .append_turn(&self.tenant, session, &[user.clone(), stored])
                .await?;
        }
        Ok(answer)
    }

    /// The resumed run stopped again (a new record with its new requests: the response
    /// says so) or failed (the old record back, so it can be resumed again: the error).
    async fn stopped(self, run: RunGuard, e: eino::Error, stream: bool) -> ApiResult<Response> {
        if e.kind() != eino::ErrorKind::Interrupted {
            let err = run.fail(e).await;
            self.state
                .store
                .put_interrupted(&self.tenant, &self.waiting)
                .await?;
            return Err(err);
        }
        let stopped = Stopped {
            run_id: &self.waiting.id,
            app: &self.waiting.app,
            session_id: self.waiting.session_id.clone(),
            user_message: self.waiting.user_message.clone(),
        };
        let again = stop(&self.state, &self.tenant, stopped, e, run).await?;
        Ok(respond(&again, stream))
    }
}

//! `/api/v1/runs`: run traces, and runs waiting for a person's decision (tool approvals):
//! list, show, give up, resume (JSON or SSE).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eino::compose::CheckpointRun;
use eino::schema::{Message, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::extract::{ApiJson, Path, Query};
use crate::api::wire::{limit, message_wire, sources_json, ListQuery};
use crate::app::AppInput;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::interrupts::{stop, wire, Stopped};
use crate::runs::RunGuard;
use crate::state::AppState;
use crate::store::InterruptedRun;
use crate::tools::Decision;

/// `GET /api/v1/runs`.
pub async fn list_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    state.runs.flush().await;
    let mut runs = state.store.list_runs(&caller.tenant, limit(&q)).await?;
    for r in &mut runs {
        r.nodes = Value::Null; // the list stays small; GET /runs/{id} has the nodes
    }
    Ok(Json(json!({ "data": runs })))
}

/// `GET /api/v1/runs/{id}`: the whole trace.
pub async fn get_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    state.runs.flush().await;
    let run = state
        .store
        .run(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} does not exist")))?;
    Ok(Json(json!(run)))
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
    let run = RunGuard::start(
        &state.runs,
        &caller,
        &claimed.app,
        claimed.session_id.clone(),
    );
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
    let events = crate::api::sse::native_events(stream, run, sources_json(&sink.take()), done);
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
        let again = stop(self.state.store.as_ref(), &self.tenant, stopped, e, run).await?;
        Ok(respond(&again, stream))
    }
}

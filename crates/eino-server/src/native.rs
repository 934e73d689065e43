//! The native API under `/api/v1`: chat with sessions, sessions, knowledge bases with
//! ingestion jobs, runs, applications.

use std::convert::Infallible;

use axum::extract::{Multipart, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eino::component::ChatOptions;
use eino::compose::CallOption;
use eino::schema::{Document, Message, Role};
use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::config::valid_name;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, Query};
use crate::knowledge::Upload;
use crate::openai::{message_wire, resolve};
use crate::runs::RunGuard;
use crate::state::AppState;

/// `POST /api/v1/chat` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChatBody {
    /// Application id (default: the first configured one).
    #[serde(default)]
    app: Option<String>,
    /// Continue this session; a new one is created when absent.
    #[serde(default)]
    session_id: Option<String>,
    /// The user's message.
    message: String,
    /// Stream as server-sent events.
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

pub(crate) fn sources_json(docs: &[Document]) -> Value {
    Value::Array(
        docs.iter()
            .map(|d| {
                json!({
                    "id": d.id, "score": d.score, "content": d.content,
                    "source": d.metadata.get("source"),
                    "knowledge_base": d.metadata.get("knowledge_base"),
                })
            })
            .collect(),
    )
}

/// `POST /api/v1/chat`.
pub async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<Response> {
    if body.message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    let max = state.config.limits.max_input_chars;
    if body.message.chars().count() > max {
        return Err(ApiError::too_large(format!(
            "the message is longer than {max} characters (limits.max_input_chars)"
        ))
        .with_code("request_too_large"));
    }
    let app_id = match &body.app {
        Some(a) => a.clone(),
        None => state
            .apps
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| ApiError::bad_request("no application is configured"))?,
    };
    let app = state
        .apps
        .get(&app_id)
        .ok_or_else(|| ApiError::not_found(format!("application {app_id:?} does not exist")))?;
    let session = match &body.session_id {
        Some(id) => {
            let s = state
                .store
                .session(&caller.tenant, id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("session {id} does not exist")))?;
            if s.app != app_id {
                return Err(ApiError::bad_request(format!(
                    "session {id} belongs to application {}",
                    s.app
                )));
            }
            s
        }
        None => state.store.create_session(&caller.tenant, &app_id).await?,
    };
    let history = state
        .store
        .messages(
            &caller.tenant,
            &session.id,
            app.config.history_messages as u32,
        )
        .await?;
    let user = Message::user(body.message.clone());
    let mut messages = history;
    messages.push(user.clone());
    let target = resolve(&state, &app_id, Vec::new())?;
    let run = RunGuard::start(&state, &caller, &app_id, Some(session.id.clone()));
    let run_id = run.id().to_string();
    let options = ChatOptions {
        temperature: body.temperature,
        max_tokens: body.max_tokens,
        ..ChatOptions::default()
    };
    let ctx = run.context().with_option(CallOption::chat_model(options));
    let (store, tenant, session_id) = (
        state.store.clone(),
        caller.tenant.clone(),
        session.id.clone(),
    );
    let save_turn = move |answer: Message| async move {
        let mut stored = answer.clone();
        stored.role = Role::Assistant;
        store
            .append_turn(&tenant, &session_id, &[user, stored])
            .await?;
        Ok::<_, ApiError>(answer)
    };
    let stopped = |e: eino::Error, run: RunGuard| {
        let (state, tenant) = (state.clone(), caller.tenant.clone());
        let stopped = crate::interrupts::Stopped {
            run_id: &run_id,
            app: &app_id,
            session_id: Some(session.id.clone()),
            user_message: Some(Message::user(body.message.clone())),
        };
        async move {
            let saved = crate::interrupts::stop(&state, &tenant, stopped, e, run).await?;
            Ok(crate::interrupts::respond(&saved, body.stream))
        }
    };
    if !body.stream {
        let result = target.invoke(&caller.tenant, messages, ctx, &run_id).await;
        let result = match result {
            Err(e) if e.kind() == eino::ErrorKind::Interrupted => return stopped(e, run).await,
            other => other,
        };
        let (answer, sources) = run.finish(result).await?;
        let answer = save_turn(answer).await?;
        return Ok(Json(json!({
            "session_id": session.id, "run_id": run_id,
            "message": message_wire(&answer), "sources": sources_json(&sources),
        }))
        .into_response());
    }
    let (stream, sources) = match target.stream(&caller.tenant, messages, ctx, &run_id).await {
        Ok(s) => s,
        Err(e) if e.kind() == eino::ErrorKind::Interrupted => return stopped(e, run).await,
        Err(e) => return Err(run.fail(e).await),
    };
    let session_id = session.id.clone();
    let done = move |answer: Message| async move {
        let answer = save_turn(answer).await?;
        Ok(json!({ "session_id": session_id, "run_id": run_id, "message": message_wire(&answer) }))
    };
    let events = crate::sse::native_events(stream, run, sources_json(&sources), done);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `?limit=` of list endpoints.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListQuery {
    /// Items at most (1-500, default 50).
    #[serde(default)]
    limit: Option<u32>,
}

pub(crate) fn limit(q: &ListQuery) -> u32 {
    q.limit.unwrap_or(50).clamp(1, 500)
}

/// `GET /api/v1/sessions`.
pub async fn list_sessions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let sessions = state.store.list_sessions(&caller.tenant, limit(&q)).await?;
    Ok(Json(json!({ "data": sessions })))
}

/// `GET /api/v1/sessions/{id}`: the session and its messages.
pub async fn get_session(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = state
        .store
        .session(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id} does not exist")))?;
    let messages = state.store.messages(&caller.tenant, &id, 10_000).await?;
    Ok(Json(json!({ "session": s, "messages": messages })))
}

/// `DELETE /api/v1/sessions/{id}`.
pub async fn delete_session(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_session(&caller.tenant, &id).await? {
        return Err(ApiError::not_found(format!("session {id} does not exist")));
    }
    Ok(Json(json!({ "deleted": true })))
}

/// `POST /api/v1/knowledge-bases` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct KbBody {
    /// 1-64 letters, digits, `-` or `_`.
    name: String,
}

fn check_kb_name(name: &str) -> ApiResult<()> {
    if valid_name(name) && !name.contains('.') && !name.contains("__") {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "knowledge base names are 1-64 letters, digits, '-' or '_' (no '__')",
        ))
    }
}

async fn require_kb(state: &AppState, tenant: &str, name: &str) -> ApiResult<()> {
    let exists = state
        .store
        .list_kbs(tenant)
        .await?
        .iter()
        .any(|k| k.name == name);
    if exists {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "knowledge base {name:?} does not exist"
        )))
    }
}

/// `POST /api/v1/knowledge-bases`.
pub async fn create_kb(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<KbBody>,
) -> ApiResult<Response> {
    check_kb_name(&body.name)?;
    if !state.store.create_kb(&caller.tenant, &body.name).await? {
        return Err(ApiError::conflict(format!(
            "knowledge base {:?} exists",
            body.name
        )));
    }
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "name": body.name })),
    )
        .into_response())
}

/// `GET /api/v1/knowledge-bases`.
pub async fn list_kbs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "data": state.store.list_kbs(&caller.tenant).await? }),
    ))
}

/// `DELETE /api/v1/knowledge-bases/{name}`: the knowledge base, its records and chunks.
pub async fn delete_kb(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_kb(&caller.tenant, &name).await? {
        return Err(ApiError::not_found(format!(
            "knowledge base {name:?} does not exist"
        )));
    }
    state.knowledge.drop_kb(&caller.tenant, &name).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// `POST /api/v1/knowledge-bases/{name}/documents` (multipart, one or more `file` parts):
/// starts an ingestion job, answers 202 with its id.
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let mut form = form.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data upload: {}",
            e.body_text()
        ))
    })?;
    require_kb(&state, &caller.tenant, &name).await?;
    let mut files = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart body: {e}")))?
    {
        let Some(file_name) = field.file_name().map(str::to_string) else {
            continue;
        };
        let file_name = std::path::Path::new(&file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("a file part needs a file name"))?
            .to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("upload too large (server.max_upload_bytes)")
            } else {
                ApiError::bad_request(format!("cannot read {file_name}: {e}"))
            }
        })?;
        files.push(Upload {
            name: file_name,
            bytes: bytes.to_vec(),
        });
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no file parts in the upload (use -F file=@path)",
        ));
    }
    let job = state
        .knowledge
        .start_ingest(&caller.tenant, &name, files)
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({ "job_id": job })),
    )
        .into_response())
}

/// `GET /api/v1/knowledge-bases/{name}/documents`.
pub async fn list_documents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_kb(&state, &caller.tenant, &name).await?;
    Ok(Json(
        json!({ "data": state.store.list_documents(&caller.tenant, &name).await? }),
    ))
}

/// `DELETE /api/v1/knowledge-bases/{name}/documents/{source}`.
pub async fn delete_document(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, source)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if !state
        .store
        .delete_document(&caller.tenant, &name, &source)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "document {source:?} is not in {name:?}"
        )));
    }
    let chunks = state
        .knowledge
        .remove_document(&caller.tenant, &name, &source)
        .await?;
    Ok(Json(json!({ "deleted": true, "chunks": chunks })))
}

/// `POST /api/v1/knowledge-bases/{name}/search` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchBody {
    query: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    min_score: Option<f64>,
}

/// `POST /api/v1/knowledge-bases/{name}/search`.
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<Value>> {
    require_kb(&state, &caller.tenant, &name).await?;
    let k = body.top_k.unwrap_or(5).clamp(1, 100);
    let hits = state
        .knowledge
        .search(
            &caller.tenant,
            &[name],
            &body.query,
            k,
            body.min_score.unwrap_or(f64::MIN),
        )
        .await?;
    Ok(Json(json!({ "data": sources_json(&hits) })))
}

/// `GET /api/v1/jobs/{id}`: an ingestion job's status (from any replica).
pub async fn job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let status = state
        .knowledge
        .job(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    Ok(Json(json!(status)))
}

/// `GET /api/v1/jobs/{id}/events`: progress as server-sent events until the job ends.
pub async fn job_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let updates = state
        .knowledge
        .job_updates(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    let stream = updates.map(|s| {
        let name = if s.state == "running" {
            "progress"
        } else {
            "done"
        };
        Ok(Event::default().event(name).data(json!(s).to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

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

/// `GET /api/v1/applications`.
pub async fn list_apps(State(state): State<AppState>) -> Json<Value> {
    let apps: Vec<Value> = state
        .apps
        .values()
        .map(|a| {
            json!({ "id": a.id, "model": a.config.model, "fallbacks": a.config.fallbacks,
                    "knowledge_bases": a.config.knowledge_bases, "agent": a.config.agent,
                    "tools": a.config.tools, "interruptible": a.interruptible() })
        })
        .collect();
    Json(json!({ "data": apps }))
}

/// `GET /api/v1/applications/{id}/graph`: topology as JSON plus a Mermaid chart.
pub async fn app_graph(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = state
        .apps
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("application {id:?} does not exist")))?;
    let t = app.topology();
    Ok(Json(json!({ "topology": t, "mermaid": t.to_mermaid() })))
}

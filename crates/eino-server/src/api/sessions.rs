//! `POST /api/v1/chat` (a turn in a session, JSON or SSE) and `/api/v1/sessions`.

use axum::extract::State;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eino::component::ChatOptions;
use eino::compose::CallOption;
use eino::schema::{Message, Role};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::extract::{ApiJson, Path, Query};
use crate::api::wire::{limit, message_wire, sources_json, ListQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
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
    let target = state.resolve(&app_id, Vec::new())?;
    let run = RunGuard::start(&state.runs, &caller, &app_id, Some(session.id.clone()));
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
            let saved =
                crate::interrupts::stop(state.store.as_ref(), &tenant, stopped, e, run).await?;
            Ok(crate::api::runs::respond(&saved, body.stream))
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
    // The end of a streamed turn: the turn stored, then `event: done`.
    let (session_id, done_run_id) = (session.id.clone(), run_id.clone());
    let done = move |answer: Message| async move {
        let answer = save_turn(answer).await?;
        Ok(
            json!({ "session_id": session_id, "run_id": done_run_id, "message": message_wire(&answer) }),
        )
    };
    if app.config.agent.is_multi_agent() {
        return Ok(agent_stream(AgentTurn {
            state: state.clone(),
            target,
            tenant: caller.tenant.clone(),
            messages,
            ctx,
            run,
            run_id,
            stopped: crate::interrupts::StoppedOwned {
                app: app_id.clone(),
                session_id: Some(session.id.clone()),
                user_message: Some(Message::user(body.message.clone())),
            },
            done: Box::new(move |answer| Box::pin(done(answer))),
        }));
    }
    let (stream, sources) = match target.stream(&caller.tenant, messages, ctx, &run_id).await {
        Ok(s) => s,
        Err(e) if e.kind() == eino::ErrorKind::Interrupted => return stopped(e, run).await,
        Err(e) => return Err(run.fail(e).await),
    };
    let events = crate::api::sse::native_events(stream, run, sources_json(&sources), done);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What ends a streamed turn (store it, then say `done`), shared by both streaming paths.
type Done =
    Box<dyn FnOnce(Message) -> futures_util::future::BoxFuture<'static, ApiResult<Value>> + Send>;

/// A multi-agent turn to stream.
struct AgentTurn {
    state: AppState,
    target: crate::dispatch::Target,
    tenant: String,
    messages: Vec<Message>,
    ctx: eino::compose::Context,
    run: RunGuard,
    run_id: String,
    stopped: crate::interrupts::StoppedOwned,
    done: Done,
}

/// Stream a multi-agent turn: `event: agent` for each step while the agents work (the
/// run goes on in a task), then the answer's events, or `interrupted`, or `error`.
fn agent_stream(turn: AgentTurn) -> Response {
    use crate::api::sse::{error_event, native_events, with_agent_events};
    use axum::response::sse::Event;
    use futures_util::StreamExt;
    let (tap, events) = eino::adk::EventTap::channel();
    let AgentTurn {
        state,
        target,
        tenant,
        messages,
        ctx,
        run,
        run_id,
        stopped,
        done,
    } = turn;
    let ctx = ctx.with_option(CallOption::lambda(tap));
    let (t, id) = (tenant.clone(), run_id.clone());
    let answer = tokio::spawn(async move { target.stream(&t, messages, ctx, &id).await });
    let rest = async move {
        let one = |e: Event| futures_util::stream::iter([Ok(e)]).boxed();
        match answer.await {
            Ok(Ok((stream, sources))) => {
                native_events(stream, run, sources_json(&sources), done).boxed()
            }
            Ok(Err(e)) if e.kind() == eino::ErrorKind::Interrupted => {
                let stopped = stopped.borrowed(&run_id);
                match crate::interrupts::stop(state.store.as_ref(), &tenant, stopped, e, run).await
                {
                    Ok(saved) => one(Event::default()
                        .event("interrupted")
                        .data(crate::interrupts::wire(&saved).to_string())),
                    Err(err) => one(error_event(&err).event("error")),
                }
            }
            Ok(Err(e)) => one(error_event(&run.fail(e).await).event("error")),
            Err(join) => one(error_event(&ApiError::internal(format!(
                "the agent run failed: {join}"
            )))
            .event("error")),
        }
    };
    Sse::new(with_agent_events(events, Box::pin(rest)))
        .keep_alive(KeepAlive::default())
        .into_response()
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

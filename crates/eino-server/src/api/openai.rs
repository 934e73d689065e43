//! The OpenAI-compatible API: `POST /v1/chat/completions` (JSON or SSE ending in
//! `data: [DONE]`), `POST /v1/embeddings`, `GET /v1/models`. Applications and raw models are
//! both model ids; tools and `tool_choice` pass through to raw models.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use eino::component::{ChatOptions, EmbedOptions};
use eino::compose::CallOption;
use eino::schema::{Message, Part, Role, ToolCall, ToolChoice, ToolInfo};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::extract::RawJson;
use crate::api::wire::{CompletionWire, SseHead};
use crate::auth::Caller;
use crate::cache::ResponseCache;
use crate::dispatch::Target;
use crate::error::{ApiError, ApiResult};
use crate::runs::RunGuard;
use crate::state::AppState;

/// A chat message as clients send it.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WireMessage {
    /// `system` (or `developer`), `user`, `assistant` or `tool`.
    role: String,
    /// A string, an array of `{"type": "text", "text": …}` parts, or null.
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    /// An assistant message's tool calls (OpenAI's shape).
    #[serde(default)]
    #[schemars(with = "Option<Vec<Value>>")]
    tool_calls: Option<Vec<ToolCall>>,
    /// A tool message's call id.
    #[serde(default)]
    tool_call_id: Option<String>,
}

/// A tool the model may call (raw models only).
#[derive(Debug, Deserialize, JsonSchema)]
struct WireTool {
    /// `function` (the only kind).
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: WireFunction,
}

/// A function tool.
#[derive(Debug, Deserialize, JsonSchema)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Its arguments' JSON schema.
    #[serde(default)]
    parameters: Option<Value>,
}

/// Streaming options.
#[derive(Debug, Deserialize, Default, JsonSchema)]
struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    include_usage: bool,
}

/// `POST /v1/chat/completions` body; unknown fields are ignored.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChatRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    n: Option<u32>,
}

fn text_of(content: &Value) -> Result<(String, Vec<Part>), ApiError> {
    match content {
        Value::Null => Ok((String::new(), Vec::new())),
        Value::String(s) => Ok((s.clone(), Vec::new())),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "content part type {other:?} is not supported by this server"
                        )))
                    }
                    None => return Err(ApiError::bad_request("content part without a type")),
                }
            }
            Ok((text, Vec::new()))
        }
        _ => Err(ApiError::bad_request(
            "message content must be a string, an array of parts or null",
        )),
    }
}

/// Characters of text in a JSON value: its strings, nested ones included.
fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(fields) => fields.values().map(text_chars).sum(),
        _ => 0,
    }
}

/// Refuse a request past `limits.max_messages`, `max_tools` or `max_input_chars` (413)
/// before anything is built from it.
fn check_size(limits: &crate::config::LimitsConfig, r: &ChatRequest) -> ApiResult<()> {
    let too_large = |what: String| Err(ApiError::too_large(what).with_code("request_too_large"));
    if r.messages.len() > limits.max_messages {
        return too_large(format!(
            "{} messages, more than {} (limits.max_messages)",
            r.messages.len(),
            limits.max_messages
        ));
    }
    let tools = r.tools.as_ref().map_or(0, Vec::len);
    if tools > limits.max_tools {
        return too_large(format!(
            "{tools} tools, more than {} (limits.max_tools)",
            limits.max_tools
        ));
    }
    let mut chars = 0;
    for m in &r.messages {
        chars += m.content.as_ref().map_or(0, text_chars);
        for c in m.tool_calls.iter().flatten() {
            chars += c.function.arguments.chars().count();
        }
        if chars > limits.max_input_chars {
            return too_large(format!(
                "the messages hold more than {} characters (limits.max_input_chars)",
                limits.max_input_chars
            ));
        }
    }
    Ok(())
}

/// Client messages to eino messages.
pub fn to_messages(wire: Vec<WireMessage>) -> ApiResult<Vec<Message>> {
    if wire.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty"));
    }
    wire.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "messages[{i}].role: unknown role {other:?}"
                    )))
                }
            };
            let (content, parts) =
                text_of(m.content.as_ref().unwrap_or(&Value::Null)).map_err(|e| {
                    ApiError::bad_request(format!("messages[{i}].content: {}", e.message))
                })?;
            let mut msg = Message::new(role, content);
            msg.parts = parts;
            msg.name = m.name;
            msg.tool_calls = m.tool_calls.unwrap_or_default();
            msg.tool_call_id = m.tool_call_id;
            if role == Role::Tool && msg.tool_call_id.is_none() {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}]: a tool message needs tool_call_id"
                )));
            }
            Ok(msg)
        })
        .collect()
}

fn options_of(r: &ChatRequest) -> ApiResult<ChatOptions> {
    let mut o = ChatOptions {
        temperature: r.temperature,
        top_p: r.top_p,
        max_tokens: r.max_completion_tokens.or(r.max_tokens),
        seed: r.seed,
        ..ChatOptions::default()
    };
    if let Some(t) = r.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::bad_request("temperature must be between 0 and 2"));
        }
    }
    if let Some(p) = r.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(ApiError::bad_request("top_p must be between 0 and 1"));
        }
    }
    if r.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported"));
    }
    o.stop = match &r.stop {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::bad_request("stop must be strings"))
                })
                .collect::<ApiResult<_>>()?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "stop must be a string or an array of strings",
            ))
        }
    };
    o.tool_choice = match &r.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Allowed,
            "none" => ToolChoice::Forbidden,
            "required" => ToolChoice::Forced,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown tool_choice {other:?}"
                )))
            }
        }),
        Some(v) => Some(ToolChoice::Named(
            v.pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("tool_choice object needs function.name"))?
                .to_string(),
        )),
    };
    Ok(o)
}

fn tools_of(r: &mut ChatRequest) -> ApiResult<Vec<ToolInfo>> {
    r.tools
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            if t.kind.as_deref().is_some_and(|k| k != "function") {
                return Err(ApiError::bad_request("only function tools are supported"));
            }
            Ok(ToolInfo::new(
                t.function.name,
                t.function.description.unwrap_or_default(),
                t.function
                    .parameters
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            ))
        })
        .collect()
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawJson(mut req, raw): RawJson<ChatRequest>,
) -> ApiResult<Response> {
    check_size(&state.config.limits, &req)?;
    let tools = tools_of(&mut req)?;
    let options = options_of(&req)?;
    let messages = to_messages(std::mem::take(&mut req.messages))?;
    let target = state.resolve(&req.model, tools)?;
    // Identical non-streaming requests to raw models may be answered from the cache.
    let cache = match (&state.cache, &target, req.stream) {
        (Some(c), Target::Model(_), false) => {
            let key = ResponseCache::key("chat", &caller.tenant, &raw);
            if let Some(hit) = c.get(&key).await {
                return Ok(cached(&hit, "chatcmpl"));
            }
            Some((c, key))
        }
        _ => None,
    };
    let run = RunGuard::start(&state.runs, &caller, &req.model, None);
    let run_id = run.id().to_string();
    let ctx = run.context().with_option(CallOption::chat_model(options));
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now_ms() / 1000;
    let model = req.model.clone();
    if !req.stream {
        let result = target.invoke(&caller.tenant, messages, ctx, &run_id).await;
        let result = match result {
            Err(e) if e.kind() == eino::ErrorKind::Interrupted => {
                return Err(interrupted(&state, &caller, &req.model, &run_id, e, run).await)
            }
            other => other,
        };
        let (msg, _) = run.finish(result).await?;
        let body = CompletionWire::new(&id, created, &model, &msg);
        if let Some((c, key)) = cache {
            c.insert(key, body.to_value()).await;
        }
        let mut resp = Json(body).into_response();
        if let Ok(v) = HeaderValue::from_str(&run_id) {
            resp.headers_mut().insert("x-eino-run-id", v);
        }
        return Ok(resp);
    }
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let (stream, _) = match target.stream(&caller.tenant, messages, ctx, &run_id).await {
        Ok(s) => s,
        Err(e) if e.kind() == eino::ErrorKind::Interrupted => {
            return Err(interrupted(&state, &caller, &req.model, &run_id, e, run).await)
        }
        Err(e) => return Err(run.fail(e).await),
    };
    let head = SseHead { id, created, model };
    Ok(Sse::new(crate::api::sse::openai_events(
        stream,
        run,
        head,
        include_usage,
    ))
    .keep_alive(KeepAlive::default())
    .into_response())
}

/// An application run stopped for approval: recorded (no session: the OpenAI API has
/// none), and a 409 naming the run and where to resume it.
async fn interrupted(
    state: &AppState,
    caller: &Caller,
    app: &str,
    run_id: &str,
    e: eino::Error,
    run: RunGuard,
) -> ApiError {
    let stopped = crate::interrupts::Stopped {
        run_id,
        app,
        session_id: None,
        user_message: None,
    };
    match crate::interrupts::stop(state.store.as_ref(), &caller.tenant, stopped, e, run).await {
        Ok(r) => {
            let tools: Vec<&str> = r.pending.iter().map(|p| p.tool.as_str()).collect();
            ApiError::conflict(format!(
                "run {run_id} waits for approval of {tools:?}: decide with \
                 POST /api/v1/runs/{run_id}/resume"
            ))
            .with_code("interrupted")
        }
        Err(e) => e,
    }
}

/// A cached body with a fresh id and time, marked `x-eino-cache: hit`.
fn cached(hit: &Value, prefix: &str) -> Response {
    let mut body = hit.clone();
    if body.get("id").is_some() {
        body["id"] = json!(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        body["created"] = json!(crate::store::now_ms() / 1000);
    }
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert("x-eino-cache", HeaderValue::from_static("hit"));
    resp
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawJson(req, raw): RawJson<EmbeddingsRequest>,
) -> ApiResult<Response> {
    let key = ResponseCache::key("embeddings", &caller.tenant, &raw);
    if let Some(c) = &state.cache {
        if let Some(hit) = c.get(&key).await {
            return Ok(cached(&hit, "emb"));
        }
    }
    let Some(embedder) = state.registry.embedders.get(&req.model) else {
        return Err(
            ApiError::not_found(format!("embedding model {:?} does not exist", req.model))
                .with_code("model_not_found"),
        );
    };
    let texts: Vec<String> = match req.input {
        Value::String(s) => vec![s],
        Value::Array(a) if !a.is_empty() => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request(
                    "input must be a string or an array of strings",
                )),
            })
            .collect::<ApiResult<_>>()?,
        _ => {
            return Err(ApiError::bad_request(
                "input must be a non-empty string or array of strings",
            ))
        }
    };
    if texts.len() > 2048 {
        return Err(ApiError::bad_request("at most 2048 inputs per request"));
    }
    let vectors = embedder.embed(&texts, &EmbedOptions::default()).await?;
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({ "object": "embedding", "index": i, "embedding": v }))
        .collect();
    let body = json!({
        "object": "list", "data": data, "model": req.model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    });
    if let Some(c) = &state.cache {
        c.insert(key, body.clone()).await;
    }
    Ok(Json(body).into_response())
}

/// `POST /v1/embeddings` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EmbeddingsRequest {
    /// An embedder id.
    model: String,
    /// A string or an array of strings.
    input: Value,
}

/// `GET /v1/models`.
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = state.started_unix;
    let apps = state.apps.keys().map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "eino-application" }));
    let models =
        state.registry.models.keys().map(
            |id| json!({ "id": id, "object": "model", "created": created, "owned_by": "eino" }),
        );
    let embedders = state.registry.embedders.keys().map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "eino-embedding" }));
    Json(
        json!({ "object": "list", "data": apps.chain(models).chain(embedders).collect::<Vec<_>>() }),
    )
}

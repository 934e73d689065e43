//! The chat-completions wire format: requests we build strictly, responses we read
//! leniently (every field optional, unknown fields and values ignored).

use eino::component::ChatOptions;
use eino::schema::{
    FunctionCall, Map, Media, Message, Part, ResponseMeta, Role, TokenUsage, ToolCall, ToolChoice,
    ToolInfo,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{OpenAiConfig, ResponseFormat};

fn part_json(p: &Part) -> Value {
    match p {
        Part::Text { text } => json!({"type": "text", "text": text}),
        Part::Image(m) => match &m.detail {
            Some(d) => {
                json!({"type": "image_url", "image_url": {"url": media_url(m), "detail": d}})
            }
            None => json!({"type": "image_url", "image_url": {"url": media_url(m)}}),
        },
        Part::Audio(m) => {
            json!({"type": "input_audio", "input_audio": {"data": m.base64.clone().unwrap_or_default(), "format": m.mime_type.as_deref().and_then(|t| t.strip_prefix("audio/")).unwrap_or("wav")}})
        }
        Part::Video(m) | Part::File(m) => {
            json!({"type": "file", "file": {"file_data": media_url(m)}})
        }
    }
}

fn media_url(m: &Media) -> String {
    match (&m.url, &m.base64) {
        (Some(u), _) => u.clone(),
        (None, Some(d)) => format!(
            "data:{};base64,{d}",
            m.mime_type.as_deref().unwrap_or("application/octet-stream")
        ),
        (None, None) => String::new(),
    }
}

pub(crate) fn message_json(m: &Message) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("role".into(), json!(m.role.as_str()));
    let content = if m.parts.is_empty() {
        json!(m.content)
    } else {
        let mut parts: Vec<Value> = Vec::new();
        if !m.content.is_empty() {
            parts.push(json!({"type": "text", "text": m.content}));
        }
        parts.extend(m.parts.iter().map(part_json));
        Value::Array(parts)
    };
    match m.role {
        Role::Assistant if !m.tool_calls.is_empty() => {
            // Several servers reject an empty string next to tool calls; null is universal.
            o.insert(
                "content".into(),
                if m.content.is_empty() {
                    Value::Null
                } else {
                    content
                },
            );
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.function.name,
                            // Empty arguments break the next request on strict servers.
                            "arguments": if c.function.arguments.trim().is_empty() { "{}" } else { c.function.arguments.as_str() },
                        }
                    })
                })
                .collect();
            o.insert("tool_calls".into(), Value::Array(calls));
        }
        _ => {
            o.insert("content".into(), content);
        }
    }
    if let Some(id) = &m.tool_call_id {
        o.insert("tool_call_id".into(), json!(id));
    }
    if let (Some(n), false) = (&m.name, m.role == Role::Tool) {
        o.insert("name".into(), json!(n));
    }
    Value::Object(o)
}

fn tool_json(t: &ToolInfo) -> Value {
    json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}})
}

fn tool_choice_json(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Forbidden => json!("none"),
        ToolChoice::Allowed => json!("auto"),
        ToolChoice::Forced => json!("required"),
        ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
    }
}

fn response_format_json(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}})
        }
    }
}

/// The request body for one chat call.
pub(crate) fn chat_request(
    cfg: &OpenAiConfig,
    bound_tools: &[ToolInfo],
    msgs: &[Message],
    o: &ChatOptions,
    stream: bool,
) -> Value {
    let mut body = serde_json::Map::new();
    body.insert(
        "model".into(),
        json!(o.model.as_deref().unwrap_or(&cfg.model)),
    );
    body.insert(
        "messages".into(),
        Value::Array(msgs.iter().map(message_json).collect()),
    );
    let put = |b: &mut serde_json::Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            b.insert(k.into(), v);
        }
    };
    put(
        &mut body,
        "temperature",
        o.temperature.or(cfg.temperature).map(|t| json!(t)),
    );
    put(&mut body, "top_p", o.top_p.or(cfg.top_p).map(|t| json!(t)));
    put(
        &mut body,
        "max_tokens",
        o.max_tokens.or(cfg.max_tokens).map(|t| json!(t)),
    );
    put(
        &mut body,
        "stop",
        o.stop.clone().or(cfg.stop.clone()).map(|s| json!(s)),
    );
    put(&mut body, "seed", o.seed.or(cfg.seed).map(|s| json!(s)));
    let tools = o.tools.as_deref().unwrap_or(bound_tools);
    if !tools.is_empty() {
        body.insert(
            "tools".into(),
            Value::Array(tools.iter().map(tool_json).collect()),
        );
    }
    put(
        &mut body,
        "tool_choice",
        o.tool_choice.as_ref().map(tool_choice_json),
    );
    let format = o
        .extensions
        .get::<ResponseFormat>()
        .or(cfg.response_format.as_ref());
    put(
        &mut body,
        "response_format",
        format.map(response_format_json),
    );
    if stream {
        body.insert("stream".into(), json!(true));
        // Usage arrives in a last chunk with no choices.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireFunction {
    pub(crate) name: Option<String>,
    pub(crate) arguments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireToolCall {
    pub(crate) index: Option<usize>,
    pub(crate) id: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) function: WireFunction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireMessage {
    pub(crate) role: Option<String>,
    pub(crate) content: Option<Value>,
    pub(crate) reasoning_content: Option<String>,
    /// Some servers (OpenRouter, vLLM reasoning parsers) use `reasoning`.
    pub(crate) reasoning: Option<String>,
    pub(crate) tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireChoice {
    pub(crate) index: Option<usize>,
    pub(crate) message: Option<WireMessage>,
    pub(crate) delta: Option<WireMessage>,
    pub(crate) finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireUsage {
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) completion_tokens: Option<u64>,
    pub(crate) total_tokens: Option<u64>,
    pub(crate) prompt_tokens_details: Option<Value>,
    pub(crate) completion_tokens_details: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireResponse {
    pub(crate) id: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) choices: Vec<WireChoice>,
    pub(crate) usage: Option<WireUsage>,
    pub(crate) error: Option<Value>,
}

fn content_text(v: Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s,
        // Content as parts: join the text parts.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

pub(crate) fn usage(u: &WireUsage) -> TokenUsage {
    let detail = |v: &Option<Value>, k: &str| {
        v.as_ref()
            .and_then(|d| d.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    TokenUsage {
        prompt_tokens: u.prompt_tokens.unwrap_or(0),
        cached_tokens: detail(&u.prompt_tokens_details, "cached_tokens"),
        completion_tokens: u.completion_tokens.unwrap_or(0),
        reasoning_tokens: detail(&u.completion_tokens_details, "reasoning_tokens"),
        total_tokens: u
            .total_tokens
            .unwrap_or(u.prompt_tokens.unwrap_or(0) + u.completion_tokens.unwrap_or(0)),
    }
}

/// A message (or stream delta) from the wire; `stream` keeps tool-call indexes for
/// [`Concat`](eino::schema::Concat) to merge deltas.
pub(crate) fn to_message(
    m: WireMessage,
    finish: Option<String>,
    usage_: Option<&WireUsage>,
    stream: bool,
) -> Message {
    let tool_calls = m
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(pos, c)| ToolCall {
            index: if stream { c.index.or(Some(pos)) } else { None },
            id: c.id.unwrap_or_default(),
            kind: c.kind.unwrap_or_else(|| {
                if stream {
                    String::new()
                } else {
                    "function".into()
                }
            }),
            function: FunctionCall {
                name: c.function.name.unwrap_or_default(),
                arguments: c.function.arguments.unwrap_or_default(),
            },
            extra: Map::new(),
        })
        .collect();
    let reasoning = m
        .reasoning_content
        .or(m.reasoning)
        .filter(|r| !r.is_empty());
    let finish = finish.filter(|f| !f.is_empty());
    let meta = (finish.is_some() || usage_.is_some()).then(|| ResponseMeta {
        finish_reason: finish,
        usage: usage_.map(usage),
    });
    let role = match m.role.as_deref() {
        Some("system") => Role::System,
        Some("user") => Role::User,
        Some("tool") => Role::Tool,
        // Assistant, missing, or a value we do not know.
        _ => Role::Assistant,
    };
    Message {
        role,
        content: content_text(m.content),
        tool_calls,
        reasoning,
        meta,
        ..Message::default()
    }
}

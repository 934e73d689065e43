//! Responses and stream chunks, read leniently: every field optional, unknown fields and
//! values ignored.

use eino::schema::{FunctionCall, Map, Message, ResponseMeta, Role, TokenUsage, ToolCall};
use serde::Deserialize;
use serde_json::Value;

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

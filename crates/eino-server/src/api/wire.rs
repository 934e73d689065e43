//! What both APIs put on the wire: a message, its finish reason and usage, tool calls, a
//! streamed chunk's fixed fields, retrieved sources, and the `?limit=` of list endpoints.

use axum::response::sse::Event;
use eino::schema::{Document, Message, ToolCall};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

pub(crate) fn finish_reason(m: &Message) -> String {
    if !m.tool_calls.is_empty() {
        return "tool_calls".into();
    }
    match m.meta.as_ref().and_then(|x| x.finish_reason.as_deref()) {
        Some("length") | Some("max_tokens") => "length".into(),
        Some("tool_calls") | Some("tool_use") => "tool_calls".into(),
        Some("content_filter") => "content_filter".into(),
        _ => "stop".into(),
    }
}

pub(crate) fn usage_json(m: &Message) -> Value {
    let u = m.meta.as_ref().and_then(|x| x.usage).unwrap_or_default();
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

pub(crate) fn tool_calls_json(calls: &[ToolCall], with_index: bool) -> Value {
    Value::Array(
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({
                    "id": c.id,
                    "type": if c.kind.is_empty() { "function" } else { c.kind.as_str() },
                    "function": { "name": c.function.name, "arguments": c.function.arguments },
                });
                if with_index {
                    v["index"] = json!(c.index.unwrap_or(i));
                }
                v
            })
            .collect(),
    )
}

/// The `choices[0].message` object of a completion.
pub(crate) fn message_wire(msg: &Message) -> Value {
    let mut message = json!({ "role": "assistant", "content": msg.content });
    if !msg.tool_calls.is_empty() {
        message["tool_calls"] = tool_calls_json(&msg.tool_calls, false);
    }
    if let Some(r) = &msg.reasoning {
        message["reasoning_content"] = json!(r);
    }
    message
}

/// The fixed fields of every chunk of one streamed completion.
pub(crate) struct SseHead {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) model: String,
}

impl SseHead {
    /// One `chat.completion.chunk` event.
    pub(crate) fn chunk(
        &self,
        delta: Option<Value>,
        finish: Option<&str>,
        usage: Option<Value>,
    ) -> Event {
        let choices = match delta {
            Some(d) => {
                json!([{ "index": 0, "delta": d, "finish_reason": finish, "logprobs": null }])
            }
            None => json!([]),
        };
        let mut v = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        Event::default().data(v.to_string())
    }
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

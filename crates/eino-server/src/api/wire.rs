//! What both APIs put on the wire: a message, its finish reason and usage, tool calls, a
//! streamed chunk's fixed fields, retrieved sources, and the `?limit=` of list endpoints.

use axum::response::sse::Event;
use eino::schema::{Document, Message, ToolCall};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(crate) fn finish_reason(m: &Message) -> &'static str {
    if !m.tool_calls.is_empty() {
        return "tool_calls";
    }
    match m.meta.as_ref().and_then(|x| x.finish_reason.as_deref()) {
        Some("length") | Some("max_tokens") => "length",
        Some("tool_calls") | Some("tool_use") => "tool_calls",
        Some("content_filter") => "content_filter",
        _ => "stop",
    }
}

/// A completion's `usage`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct UsageWire {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl UsageWire {
    /// The usage `m` reports (zeros when it reports none).
    pub(crate) fn of(m: &Message) -> Self {
        let u = m.meta.as_ref().and_then(|x| x.usage).unwrap_or_default();
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

/// A tool call as both APIs write it; `index` only in streamed deltas.
#[derive(Debug, Serialize)]
pub(crate) struct ToolCallWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    function: FunctionWire<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionWire<'a> {
    name: &'a str,
    arguments: &'a str,
}

fn tool_calls_wire(calls: &[ToolCall], with_index: bool) -> Vec<ToolCallWire<'_>> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ToolCallWire {
            index: with_index.then(|| c.index.unwrap_or(i)),
            id: &c.id,
            kind: if c.kind.is_empty() {
                "function"
            } else {
                &c.kind
            },
            function: FunctionWire {
                name: &c.function.name,
                arguments: &c.function.arguments,
            },
        })
        .collect()
}

/// The `choices[0].message` object of a completion (typed: the answers are written
/// straight from it, without a `serde_json::Value` in between).
#[derive(Debug, Serialize)]
pub(crate) struct MessageWire<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

impl<'a> MessageWire<'a> {
    /// `msg` as the assistant's message.
    pub(crate) fn of(msg: &'a Message) -> Self {
        Self {
            role: "assistant",
            content: &msg.content,
            tool_calls: tool_calls_wire(&msg.tool_calls, false),
            reasoning_content: msg.reasoning.as_deref(),
        }
    }
}

/// [`MessageWire`] as a JSON value, for bodies built with `json!`.
pub(crate) fn message_wire(msg: &Message) -> Value {
    json_value(&MessageWire::of(msg))
}

/// `v` as a JSON value. The wire types here have only string keys and plain values, so
/// serializing them cannot fail; `null` stands in if one ever did.
fn json_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// What one streamed chunk adds to the answer (`delta`): only the fields it has.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallWire<'a>>,
}

impl<'a> Delta<'a> {
    /// The first chunk's: the assistant's role, no content yet.
    pub(crate) fn role() -> Self {
        Self {
            role: Some("assistant"),
            content: Some(""),
            ..Self::default()
        }
    }

    /// The delta of chunk `m`; `None` when it carries nothing to show (a usage-only
    /// chunk, say).
    pub(crate) fn of(m: &'a Message) -> Option<Self> {
        let d = Self {
            role: None,
            content: (!m.content.is_empty()).then_some(m.content.as_str()),
            reasoning_content: m.reasoning.as_deref().filter(|r| !r.is_empty()),
            tool_calls: tool_calls_wire(&m.tool_calls, true),
        };
        let empty = d.content.is_none() && d.reasoning_content.is_none() && d.tool_calls.is_empty();
        (!empty).then_some(d)
    }
}

/// The fixed fields of every chunk of one streamed completion.
pub(crate) struct SseHead {
    pub(crate) id: String,
    pub(crate) created: i64,
    pub(crate) model: String,
}

/// One `chat.completion.chunk`.
#[derive(Serialize)]
struct ChunkWire<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: &'a [ChoiceWire<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire>,
}

#[derive(Serialize)]
struct ChoiceWire<'a> {
    index: u32,
    delta: &'a Delta<'a>,
    finish_reason: Option<&'a str>,
    logprobs: Option<()>,
}

/// An SSE event whose data is `v` as JSON, written straight into the event.
pub(crate) fn json_event(event: Event, v: &impl Serialize) -> Event {
    match event.json_data(v) {
        Ok(e) => e,
        // Unreachable with the wire types above (see `json_value`).
        Err(e) => Event::default().comment(format!("unserializable event: {e}")),
    }
}

impl SseHead {
    /// One `chat.completion.chunk` event: a choice with `delta` and `finish` (none without
    /// a delta), and `usage` if given.
    pub(crate) fn chunk(
        &self,
        delta: Option<&Delta<'_>>,
        finish: Option<&str>,
        usage: Option<UsageWire>,
    ) -> Event {
        self.with_chunk(delta, finish, usage, |c| json_event(Event::default(), c))
    }

    /// `f` of the chunk [`SseHead::chunk`] sends.
    fn with_chunk<R>(
        &self,
        delta: Option<&Delta<'_>>,
        finish: Option<&str>,
        usage: Option<UsageWire>,
        f: impl FnOnce(&ChunkWire<'_>) -> R,
    ) -> R {
        let choice = delta.map(|delta| ChoiceWire {
            index: 0,
            delta,
            finish_reason: finish,
            logprobs: None,
        });
        f(&ChunkWire {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: choice.as_slice(),
            usage,
        })
    }
}

/// A whole `chat.completion`.
#[derive(Serialize)]
pub(crate) struct CompletionWire<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [CompletionChoiceWire<'a>; 1],
    usage: UsageWire,
}

#[derive(Serialize)]
struct CompletionChoiceWire<'a> {
    index: u32,
    message: MessageWire<'a>,
    finish_reason: &'static str,
    logprobs: Option<()>,
}

impl<'a> CompletionWire<'a> {
    /// The completion `id` of `model` at `created` (Unix seconds) answering `msg`.
    pub(crate) fn new(id: &'a str, created: i64, model: &'a str, msg: &'a Message) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [CompletionChoiceWire {
                index: 0,
                message: MessageWire::of(msg),
                finish_reason: finish_reason(msg),
                logprobs: None,
            }],
            usage: UsageWire::of(msg),
        }
    }

    /// As a JSON value (what the response cache keeps).
    pub(crate) fn to_value(&self) -> Value {
        json_value(self)
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

#[cfg(test)]
mod tests {
    use eino::schema::{ResponseMeta, TokenUsage};

    use super::*;

    fn head() -> SseHead {
        SseHead {
            id: "chatcmpl-1".into(),
            created: 7,
            model: "m".into(),
        }
    }

    fn chunk(delta: Option<&Delta<'_>>, finish: Option<&str>, usage: Option<UsageWire>) -> String {
        head().with_chunk(delta, finish, usage, |c| serde_json::to_string(c).unwrap())
    }

    fn answer() -> Message {
        let mut m = Message::assistant(
            "Hi \"there\"\n",
            vec![ToolCall::function("c1", "search", r#"{"q":"x"}"#)],
        );
        m.meta = Some(ResponseMeta {
            finish_reason: Some("stop".into()),
            usage: Some(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 4,
                ..TokenUsage::default()
            }),
        });
        m
    }

    /// The exact bytes of every kind of streamed chunk, as OpenAI's clients read them.
    #[test]
    fn streamed_chunks_have_the_openai_shape() {
        let pre = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":"#;
        assert_eq!(
            chunk(Some(&Delta::role()), None, None),
            format!(
                r#"{pre}[{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":null,"logprobs":null}}]}}"#
            )
        );
        let m = answer();
        assert_eq!(
            chunk(Delta::of(&m).as_ref(), None, None),
            format!(
                r#"{pre}[{{"index":0,"delta":{{"content":"Hi \"there\"\n","tool_calls":[{{"index":0,"id":"c1","type":"function","function":{{"name":"search","arguments":"{{\"q\":\"x\"}}"}}}}]}},"finish_reason":null,"logprobs":null}}]}}"#
            )
        );
        assert_eq!(
            chunk(Some(&Delta::default()), Some(finish_reason(&m)), None),
            format!(
                r#"{pre}[{{"index":0,"delta":{{}},"finish_reason":"tool_calls","logprobs":null}}]}}"#
            )
        );
        assert_eq!(
            chunk(None, None, Some(UsageWire::of(&m))),
            format!(
                r#"{pre}[],"usage":{{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}}"#
            )
        );
    }

    #[test]
    fn a_chunk_with_nothing_to_show_has_no_delta() {
        let mut usage_only = Message::assistant("", vec![]);
        usage_only.meta = answer().meta;
        assert!(Delta::of(&usage_only).is_none());
        let mut thinking = Message::assistant("", vec![]);
        thinking.reasoning = Some("hmm".into());
        assert_eq!(
            serde_json::to_string(&Delta::of(&thinking).unwrap()).unwrap(),
            r#"{"reasoning_content":"hmm"}"#
        );
    }

    #[test]
    fn a_completion_has_the_openai_shape() {
        let m = answer();
        let body = CompletionWire::new("chatcmpl-2", 9, "m", &m);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"id":"chatcmpl-2","object":"chat.completion","created":9,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\"\n","tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":"{\"q\":\"x\"}"}}]},"finish_reason":"tool_calls","logprobs":null}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
        );
        assert_eq!(body.to_value()["usage"]["total_tokens"], 7);
    }
}

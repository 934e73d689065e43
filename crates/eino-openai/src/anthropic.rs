//! Anthropic's Messages API (Claude): chat with streaming events, tool use (including empty
//! or partial tool-argument deltas), thinking content and usage.
//!
//! It shares this crate's HTTP client, error classification and retries with the OpenAI
//! wire format.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{
    FunctionCall, Map, Message, Part, ResponseMeta, Role, StreamReader, TokenUsage, ToolCall,
    ToolChoice, ToolInfo,
};
use eino::{Error, ErrorKind, Result};
use eventsource_stream::Eventsource;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{ApiKeyHeader, OpenAiConfig};
use crate::http::{status_error, BodyStream, Http};
use crate::stream::stream_error;

/// Extended thinking for one call: put it in `ChatOptions::extensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thinking {
    /// Tokens the model may spend thinking (≥ 1024).
    pub budget_tokens: u32,
}

/// Where and how to reach the Messages API, and the request defaults.
#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// API base (default `https://api.anthropic.com`).
    pub base_url: String,
    /// API key (`x-api-key`).
    pub api_key: Option<String>,
    /// `anthropic-version` header (default `2023-06-01`).
    pub version: String,
    /// Model name.
    pub model: String,
    /// Output token limit; the API requires one (default 4096).
    pub max_tokens: u32,
    /// Default extended thinking.
    pub thinking: Option<Thinking>,
    /// Extra headers (e.g. `anthropic-beta`).
    pub headers: Vec<(String, String)>,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Whole-request limit for non-streaming calls (default 300 s).
    pub timeout: Duration,
    /// Longest silence between stream events (default 60 s).
    pub stream_idle_timeout: Duration,
    /// Retries for transient failures (default 2).
    pub max_retries: u32,
    /// First backoff delay (default 500 ms).
    pub retry_base_delay: Duration,
}

impl AnthropicConfig {
    /// Defaults for the given model.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            api_key: None,
            version: "2023-06-01".into(),
            model: model.into(),
            max_tokens: 4096,
            thinking: None,
            headers: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            stream_idle_timeout: Duration::from_secs(60),
            max_retries: 2,
            retry_base_delay: Duration::from_millis(500),
        }
    }

    /// Set the base URL.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// Set (or clear) the API key.
    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Set the first backoff delay.
    pub fn with_retry_base_delay(mut self, d: Duration) -> Self {
        self.retry_base_delay = d;
        self
    }

    fn http_config(&self) -> OpenAiConfig {
        let mut c =
            OpenAiConfig::new(self.model.clone()).with_base_url(format!("{}/v1", self.base_url));
        c.api_key = self.api_key.clone();
        c.api_key_header = ApiKeyHeader::Named("x-api-key".into());
        c.headers = self.headers.clone();
        c.headers
            .push(("anthropic-version".into(), self.version.clone()));
        c.connect_timeout = self.connect_timeout;
        c.timeout = self.timeout;
        c.stream_idle_timeout = self.stream_idle_timeout;
        c.max_retries = self.max_retries;
        c.retry_base_delay = self.retry_base_delay;
        c
    }
}

/// A Claude chat model. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AnthropicChatModel {
    cfg: Arc<AnthropicConfig>,
    http: Arc<Http>,
    tools: Arc<Vec<ToolInfo>>,
}

impl AnthropicChatModel {
    /// A model with this configuration.
    pub fn new(cfg: AnthropicConfig) -> Result<Self> {
        let http = Http::new(cfg.http_config())?;
        Ok(Self {
            cfg: Arc::new(cfg),
            http: Arc::new(http),
            tools: Arc::new(Vec::new()),
        })
    }

    fn request(&self, msgs: &[Message], o: &ChatOptions, stream: bool) -> Value {
        let mut body = serde_json::Map::new();
        body.insert(
            "model".into(),
            json!(o.model.as_deref().unwrap_or(&self.cfg.model)),
        );
        body.insert(
            "max_tokens".into(),
            json!(o.max_tokens.unwrap_or(self.cfg.max_tokens)),
        );
        let system: Vec<&str> = msgs
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        if !system.is_empty() {
            body.insert("system".into(), json!(system.join("\n\n")));
        }
        body.insert("messages".into(), Value::Array(messages_json(msgs)));
        if let Some(t) = o.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = o.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(s) = &o.stop {
            body.insert("stop_sequences".into(), json!(s));
        }
        let tools = o.tools.as_deref().unwrap_or(&self.tools);
        if !tools.is_empty() {
            let ts: Vec<Value> = tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            body.insert("tools".into(), Value::Array(ts));
        }
        if let Some(c) = &o.tool_choice {
            body.insert(
                "tool_choice".into(),
                match c {
                    ToolChoice::Forbidden => json!({"type": "none"}),
                    ToolChoice::Allowed => json!({"type": "auto"}),
                    ToolChoice::Forced => json!({"type": "any"}),
                    ToolChoice::Named(n) => json!({"type": "tool", "name": n}),
                },
            );
        }
        if let Some(t) = o
            .extensions
            .get::<Thinking>()
            .copied()
            .or(self.cfg.thinking)
        {
            body.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": t.budget_tokens}),
            );
        }
        if stream {
            body.insert("stream".into(), json!(true));
        }
        Value::Object(body)
    }
}

/// Arguments as a JSON object: empty or broken arguments (a known Claude failure) become
/// `{}` so the next request is not rejected.
fn input_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

fn block_of_part(p: &Part) -> Option<Value> {
    match p {
        Part::Text { text } => Some(json!({"type": "text", "text": text})),
        Part::Image(m) => Some(match (&m.url, &m.base64) {
            (Some(u), _) => json!({"type": "image", "source": {"type": "url", "url": u}}),
            (None, Some(d)) => json!({"type": "image", "source": {"type": "base64", "media_type": m.mime_type.as_deref().unwrap_or("image/png"), "data": d}}),
            (None, None) => return None,
        }),
        Part::File(m) => m.base64.as_ref().map(|d| {
            json!({"type": "document", "source": {"type": "base64", "media_type": m.mime_type.as_deref().unwrap_or("application/pdf"), "data": d}})
        }),
        Part::Audio(_) | Part::Video(_) => None,
    }
}

/// Messages as Anthropic wants them: system messages go to `system`; tool answers become
/// `tool_result` blocks of a user turn; consecutive turns of one role are merged.
fn messages_json(msgs: &[Message]) -> Vec<Value> {
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in msgs {
        let (role, blocks): (&'static str, Vec<Value>) = match m.role {
            Role::System => continue,
            Role::Tool => (
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}),
                ],
            ),
            Role::User | Role::Assistant => {
                let mut b = Vec::new();
                if !m.content.is_empty() {
                    b.push(json!({"type": "text", "text": m.content}));
                }
                b.extend(m.parts.iter().filter_map(block_of_part));
                for c in &m.tool_calls {
                    b.push(json!({"type": "tool_use", "id": c.id, "name": c.function.name, "input": input_object(&c.function.arguments)}));
                }
                let role = if m.role == Role::User {
                    "user"
                } else {
                    "assistant"
                };
                (role, b)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => out.push((role, blocks)),
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

fn usage(input: u64, u: &WireUsage) -> TokenUsage {
    let output = u.output_tokens.unwrap_or(0);
    TokenUsage {
        prompt_tokens: input,
        cached_tokens: u.cache_read_input_tokens.unwrap_or(0),
        completion_tokens: output,
        reasoning_tokens: 0,
        total_tokens: input + output,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireResponse {
    content: Vec<Value>,
    stop_reason: Option<String>,
    usage: WireUsage,
}

fn response_message(r: WireResponse) -> Message {
    let mut m = Message::assistant("", vec![]);
    let mut reasoning = String::new();
    for block in &r.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => m.content.push_str(block["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => m.tool_calls.push(ToolCall {
                index: None,
                id: block["id"].as_str().unwrap_or("").into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: block["name"].as_str().unwrap_or("").into(),
                    arguments: block
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
                extra: Map::new(),
            }),
            // Unknown block types (citations, server tools …) are skipped.
            _ => {}
        }
    }
    m.reasoning = (!reasoning.is_empty()).then_some(reasoning);
    m.meta = Some(ResponseMeta {
        finish_reason: r.stop_reason.filter(|s| !s.is_empty()),
        usage: Some(usage(r.usage.input_tokens.unwrap_or(0), &r.usage)),
    });
    m
}

/// Stream state: which content blocks are tool uses (and their call ordinal), the prompt
/// tokens from `message_start`, and whether `message_stop` arrived.
#[derive(Default)]
struct StreamState {
    tool_of_block: Vec<(u64, usize)>,
    tools: usize,
    input_tokens: u64,
    finished: bool,
}

fn chunk(f: impl FnOnce(&mut Message)) -> Message {
    let mut m = Message::assistant("", vec![]);
    f(&mut m);
    m
}

fn tool_delta(index: usize, id: &str, name: &str, args: &str) -> ToolCall {
    ToolCall {
        index: Some(index),
        id: id.into(),
        kind: if id.is_empty() {
            String::new()
        } else {
            "function".into()
        },
        function: FunctionCall {
            name: name.into(),
            arguments: args.into(),
        },
        extra: Map::new(),
    }
}

/// One stream event to zero or one chunk.
fn event_chunk(st: &mut StreamState, data: &str) -> Result<Option<Message>> {
    let v: Value = serde_json::from_str(data).map_err(|e| {
        let head: String = data.chars().take(200).collect();
        Error::new(
            ErrorKind::Internal,
            format!("model server sent a malformed stream event: {head}"),
        )
        .with_source(e)
    })?;
    let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
    Ok(match v.get("type").and_then(Value::as_str) {
        Some("message_start") => {
            let u: WireUsage =
                serde_json::from_value(v["message"]["usage"].clone()).unwrap_or_default();
            st.input_tokens = u.input_tokens.unwrap_or(0);
            None
        }
        Some("content_block_start") => {
            let b = &v["content_block"];
            match b.get("type").and_then(Value::as_str) {
                Some("tool_use") => {
                    let ordinal = st.tools;
                    st.tools += 1;
                    st.tool_of_block.push((index, ordinal));
                    let id = b["id"].as_str().unwrap_or("");
                    let name = b["name"].as_str().unwrap_or("");
                    Some(chunk(|m| {
                        m.tool_calls.push(tool_delta(ordinal, id, name, ""))
                    }))
                }
                Some("text") => b["text"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .map(|t| chunk(|m| m.content.push_str(t))),
                _ => None,
            }
        }
        Some("content_block_delta") => {
            let d = &v["delta"];
            match d.get("type").and_then(Value::as_str) {
                Some("text_delta") => Some(chunk(|m| {
                    m.content.push_str(d["text"].as_str().unwrap_or(""))
                })),
                Some("thinking_delta") => Some(chunk(|m| {
                    m.reasoning = d["thinking"].as_str().map(str::to_string)
                })),
                Some("input_json_delta") => {
                    let ordinal = st
                        .tool_of_block
                        .iter()
                        .find(|(b, _)| *b == index)
                        .map(|(_, o)| *o)
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::Internal,
                                "tool argument delta for an unknown block",
                            )
                        })?;
                    // Empty partial JSON is legal: nothing to add.
                    let part = d["partial_json"].as_str().unwrap_or("");
                    (!part.is_empty())
                        .then(|| chunk(|m| m.tool_calls.push(tool_delta(ordinal, "", "", part))))
                }
                _ => None,
            }
        }
        Some("message_delta") => {
            let u: WireUsage = serde_json::from_value(v["usage"].clone()).unwrap_or_default();
            let stop = v["delta"]["stop_reason"].as_str().map(str::to_string);
            let input = st.input_tokens;
            Some(chunk(|m| {
                m.meta = Some(ResponseMeta {
                    finish_reason: stop.filter(|s| !s.is_empty()),
                    usage: Some(usage(input, &u)),
                })
            }))
        }
        Some("message_stop") => {
            st.finished = true;
            None
        }
        Some("error") => {
            let body = json!({"error": v["error"]}).to_string();
            let status = match v["error"]["type"].as_str() {
                Some("overloaded_error") => 529,
                Some("rate_limit_error") => 429,
                Some("invalid_request_error") => 400,
                _ => 500,
            };
            return Err(status_error(status, &Default::default(), &body));
        }
        // ping, content_block_stop, unknown events.
        _ => None,
    })
}

fn message_stream(body: BodyStream) -> StreamReader<Message> {
    let events = Box::pin(body.eventsource());
    let s = futures_util::stream::unfold(
        (events, StreamState::default(), false),
        |(mut events, mut st, done)| async move {
            if done {
                return None;
            }
            loop {
                match events.next().await {
                    None if st.finished => return None,
                    None => {
                        let e = Error::new(
                            ErrorKind::Transient,
                            "model stream ended before message_stop (connection cut)",
                        );
                        return Some((Err(e), (events, st, true)));
                    }
                    Some(Err(e)) => {
                        let e = stream_error(e);
                        return Some((Err(e), (events, st, true)));
                    }
                    Some(Ok(ev)) => match event_chunk(&mut st, &ev.data) {
                        Ok(Some(m)) => return Some((Ok(m), (events, st, false))),
                        Ok(None) if st.finished => return None,
                        Ok(None) => continue,
                        Err(e) => return Some((Err(e), (events, st, true))),
                    },
                }
            }
        },
    );
    StreamReader::from_stream(s)
}

impl ChatModel for AnthropicChatModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let body = self.request(msgs, o, false);
            let r: WireResponse = self.http.post_json("messages", &body).await?;
            Ok(response_message(r))
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move {
            let body = self.request(msgs, o, true);
            let body = self.http.post_stream("messages", &body).await?;
            Ok(message_stream(body))
        })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Self {
            cfg: self.cfg.clone(),
            http: self.http.clone(),
            tools: Arc::new(tools),
        }))
    }

    fn model_name(&self) -> Option<&str> {
        Some(&self.cfg.model)
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Claude")
    }
}

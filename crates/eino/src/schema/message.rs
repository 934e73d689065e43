//! Chat messages: the universal currency between templates, models, tools and agents.

use serde::{Deserialize, Serialize};

/// A JSON object, used for template variables, `extra` fields and fan-in maps.
///
/// Keys are sorted (serde_json's default `BTreeMap`), so iteration never depends on hash order.
pub type Map = serde_json::Map<String, serde_json::Value>;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The end user.
    #[default]
    User,
    /// The model.
    Assistant,
    /// A tool's result, answering a tool call.
    Tool,
}

impl Role {
    /// The wire name (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A multimodal content part (OpenAI's content-part model: text, image, audio, video, file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image by URL or inline base64 data.
    Image(Media),
    /// An audio clip.
    Audio(Media),
    /// A video clip.
    Video(Media),
    /// Any other file (PDF, …).
    File(Media),
}

/// Where a media part's bytes are: a URL or inline base64, with a MIME type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Media {
    /// A URL (http(s) or `data:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Inline base64 data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// MIME type, e.g. `image/png`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Image detail hint (`high`, `low`, `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The function a tool call invokes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Tool name.
    #[serde(default)]
    pub name: String,
    /// Arguments as a JSON string (streamed in pieces by most providers).
    #[serde(default)]
    pub arguments: String,
}

/// A model's request to call a tool.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCall {
    /// Position of this call among the message's calls; streamed deltas with the same index
    /// belong to one call (see [`Concat`](crate::schema::Concat) for `Message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Provider-assigned id, echoed back in the tool message.
    #[serde(default)]
    pub id: String,
    /// Call type; `function` for all current providers.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The function and its arguments.
    #[serde(default)]
    pub function: FunctionCall,
    /// Provider-specific fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map,
}

impl ToolCall {
    /// A complete function call.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            index: None,
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
            extra: Map::new(),
        }
    }

    /// Set the stream index.
    pub fn with_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
}

/// Token counts reported by a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Prompt tokens served from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Generated tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Prompt + completion.
    #[serde(default)]
    pub total_tokens: u64,
}

/// Metadata about a model response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseMeta {
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …); providers' values kept as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Token usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
}

/// One chat message.
///
/// ```
/// use eino::schema::{Message, Role, ToolCall};
/// let q = Message::user("What's the weather in Paris?");
/// assert_eq!(q.role, Role::User);
/// let call = Message::assistant("", vec![ToolCall::function("c1", "get_weather", r#"{"city":"Paris"}"#)]);
/// let answer = Message::tool("sunny", "c1").with_name("get_weather");
/// assert_eq!(answer.tool_call_id.as_deref(), Some("c1"));
/// # let _ = call;
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: Role,
    /// Text content.
    #[serde(default)]
    pub content: String,
    /// Multimodal parts (user input or assistant output), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Tool calls requested by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For tool messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Author name; for tool messages, the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Reasoning ("thinking") text, kept apart from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Finish reason and token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ResponseMeta>,
    /// Provider- or application-specific fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map,
}

impl Message {
    /// A message with a role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            ..Self::default()
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message, possibly with tool calls.
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool(content: impl Into<String>, tool_call_id: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new(Role::Tool, content)
        }
    }

    /// Set the author (or tool) name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Append a multimodal part.
    pub fn with_part(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }

    /// Token usage, if the provider reported it.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.meta.as_ref().and_then(|m| m.usage)
    }
}

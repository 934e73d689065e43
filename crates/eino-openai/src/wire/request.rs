//! The request body we send, built strictly and serialized straight from our own types.
//!
//! Every field borrows from the messages and options: no `serde_json::Value` tree in between.
//! Building one (a map per message, a `String` per key) was about fifteen allocations per
//! proxied request, spent only to be serialized and dropped.

use std::borrow::Cow;

use eino::component::ChatOptions;
use eino::schema::{Media, Message, Part, Role, ToolCall, ToolChoice, ToolInfo};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::config::{OpenAiConfig, ResponseFormat};

/// The body of one chat-completions call.
#[derive(Serialize)]
pub(crate) struct ChatRequest<'a> {
    model: &'a str,
    #[serde(serialize_with = "messages")]
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "tools")]
    tools: &'a [ToolInfo],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// Streams only: usage arrives in a last chunk with no choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

impl<'a> ChatRequest<'a> {
    /// The call's options over the client's defaults; `bound_tools` unless the options name
    /// tools of their own.
    pub(crate) fn new(
        cfg: &'a OpenAiConfig,
        bound_tools: &'a [ToolInfo],
        msgs: &'a [Message],
        o: &'a ChatOptions,
        stream: bool,
    ) -> Self {
        let format = o
            .extensions
            .get::<ResponseFormat>()
            .or(cfg.response_format.as_ref());
        Self {
            model: o.model.as_deref().unwrap_or(&cfg.model),
            messages: msgs,
            temperature: o.temperature.or(cfg.temperature),
            top_p: o.top_p.or(cfg.top_p),
            max_tokens: o.max_tokens.or(cfg.max_tokens),
            stop: o.stop.as_deref().or(cfg.stop.as_deref()),
            seed: o.seed.or(cfg.seed),
            tools: o.tools.as_deref().unwrap_or(bound_tools),
            tool_choice: o.tool_choice.as_ref().map(WireToolChoice::from),
            response_format: format.map(WireResponseFormat::from),
            stream,
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

fn messages<S: Serializer>(msgs: &&[Message], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(msgs.iter().map(WireMessage))
}

fn tools<S: Serializer>(tools: &&[ToolInfo], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(tools.iter().map(|t| Typed {
        kind: "function",
        function: WireTool {
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
        },
    }))
}

/// `{"type": "function", "function": ...}`, the shape of a tool and of a tool call.
#[derive(Serialize)]
struct Typed<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: T,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(c: &'a ToolCall) -> Self {
        let arguments = c.function.arguments.as_str();
        Self {
            id: &c.id,
            kind: "function",
            function: WireFunction {
                name: &c.function.name,
                // Empty arguments break the next request on strict servers.
                arguments: if arguments.trim().is_empty() {
                    "{}"
                } else {
                    arguments
                },
            },
        }
    }
}

/// One message: `content` is a string, or a list of parts when the message has any.
struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let calls = m.role == Role::Assistant && !m.tool_calls.is_empty();
        let mut o = s.serialize_map(None)?;
        o.serialize_entry("role", m.role.as_str())?;
        if calls && m.content.is_empty() {
            // Several servers reject an empty string next to tool calls; null is universal.
            o.serialize_entry("content", &())?;
        } else if m.parts.is_empty() {
            o.serialize_entry("content", &m.content)?;
        } else {
            let text = (!m.content.is_empty()).then(|| WirePart::Text { text: &m.content });
            let parts: Vec<WirePart<'_>> = text
                .into_iter()
                .chain(m.parts.iter().map(WirePart::from))
                .collect();
            o.serialize_entry("content", &parts)?;
        }
        if calls {
            let calls: Vec<WireToolCall<'_>> =
                m.tool_calls.iter().map(WireToolCall::from).collect();
            o.serialize_entry("tool_calls", &calls)?;
        }
        if let Some(id) = &m.tool_call_id {
            o.serialize_entry("tool_call_id", id)?;
        }
        if let (Some(n), false) = (&m.name, m.role == Role::Tool) {
            o.serialize_entry("name", n)?;
        }
        o.end()
    }
}

/// A content part in OpenAI's content-part model.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
    InputAudio { input_audio: InputAudio<'a> },
    File { file: FileData<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct InputAudio<'a> {
    data: &'a str,
    format: &'a str,
}

#[derive(Serialize)]
struct FileData<'a> {
    file_data: Cow<'a, str>,
}

impl<'a> From<&'a Part> for WirePart<'a> {
    fn from(p: &'a Part) -> Self {
        match p {
            Part::Text { text } => WirePart::Text { text },
            Part::Image(m) => WirePart::ImageUrl {
                image_url: ImageUrl {
                    url: media_url(m),
                    detail: m.detail.as_deref(),
                },
            },
            Part::Audio(m) => WirePart::InputAudio {
                input_audio: InputAudio {
                    data: m.base64.as_deref().unwrap_or_default(),
                    format: m
                        .mime_type
                        .as_deref()
                        .and_then(|t| t.strip_prefix("audio/"))
                        .unwrap_or("wav"),
                },
            },
            Part::Video(m) | Part::File(m) => WirePart::File {
                file: FileData {
                    file_data: media_url(m),
                },
            },
        }
    }
}

/// The media's URL, or its inline data as a `data:` URL.
fn media_url(m: &Media) -> Cow<'_, str> {
    match (&m.url, &m.base64) {
        (Some(u), _) => Cow::Borrowed(u),
        (None, Some(d)) => Cow::Owned(format!(
            "data:{};base64,{d}",
            m.mime_type.as_deref().unwrap_or("application/octet-stream")
        )),
        (None, None) => Cow::Borrowed(""),
    }
}

/// `"none"`, `"auto"`, `"required"`, or a named function.
#[derive(Serialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(&'static str),
    Named(Typed<Name<'a>>),
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

impl<'a> From<&'a ToolChoice> for WireToolChoice<'a> {
    fn from(c: &'a ToolChoice) -> Self {
        match c {
            ToolChoice::Forbidden => WireToolChoice::Mode("none"),
            ToolChoice::Allowed => WireToolChoice::Mode("auto"),
            ToolChoice::Forced => WireToolChoice::Mode("required"),
            ToolChoice::Named(name) => WireToolChoice::Named(Typed {
                kind: "function",
                function: Name { name },
            }),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: JsonSchema<'a> },
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

impl<'a> From<&'a ResponseFormat> for WireResponseFormat<'a> {
    fn from(f: &'a ResponseFormat) -> Self {
        match f {
            ResponseFormat::JsonObject => WireResponseFormat::JsonObject,
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => WireResponseFormat::JsonSchema {
                json_schema: JsonSchema {
                    name,
                    schema,
                    strict: *strict,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use eino::schema::FunctionCall;
    use serde_json::json;

    use super::*;

    fn body(msgs: &[Message], o: &ChatOptions, stream: bool) -> Value {
        let cfg = OpenAiConfig::new("gpt-test");
        serde_json::to_value(ChatRequest::new(&cfg, &[], msgs, o, stream)).unwrap()
    }

    #[test]
    fn a_plain_call_has_only_model_and_messages() {
        let cfg = OpenAiConfig::new("gpt-test");
        let msgs = [Message::system("Be brief."), Message::user("Hi")];
        let o = ChatOptions::default();
        let text = serde_json::to_string(&ChatRequest::new(&cfg, &[], &msgs, &o, false)).unwrap();
        assert_eq!(
            text,
            r#"{"model":"gpt-test","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#
        );
    }

    #[test]
    fn a_stream_asks_for_usage_and_options_win_over_defaults() {
        let mut cfg = OpenAiConfig::new("gpt-test");
        cfg.temperature = Some(0.9);
        cfg.max_tokens = Some(10);
        let o = ChatOptions {
            temperature: Some(0.2),
            stop: Some(vec!["END".into()]),
            seed: Some(7),
            tool_choice: Some(ToolChoice::Named("weather".into())),
            ..ChatOptions::default()
        };
        let msgs = [Message::user("Hi")];
        let v = serde_json::to_value(ChatRequest::new(&cfg, &[], &msgs, &o, true)).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "gpt-test",
                "messages": [{"role": "user", "content": "Hi"}],
                "temperature": 0.2f32,
                "max_tokens": 10,
                "stop": ["END"],
                "seed": 7,
                "tool_choice": {"type": "function", "function": {"name": "weather"}},
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        // Written as set, not widened from f32.
        let text = serde_json::to_string(&ChatRequest::new(&cfg, &[], &msgs, &o, true)).unwrap();
        assert!(text.contains(r#""temperature":0.2,"#), "{text}");
    }

    #[test]
    fn tool_calls_parts_and_names_follow_the_wire_rules() {
        let call = Message::assistant(
            "",
            vec![ToolCall {
                id: "c1".into(),
                function: FunctionCall {
                    name: "weather".into(),
                    arguments: "  ".into(),
                },
                ..ToolCall::default()
            }],
        );
        let mut tool = Message::tool("sunny", "c1");
        tool.name = Some("weather".into());
        let mut user = Message::user("look");
        user.name = Some("ann".into());
        user.parts.push(Part::Image(Media {
            base64: Some("AAAA".into()),
            mime_type: Some("image/png".into()),
            detail: Some("low".into()),
            ..Media::default()
        }));
        user.parts.push(Part::Audio(Media {
            base64: Some("UklG".into()),
            mime_type: Some("audio/mp3".into()),
            ..Media::default()
        }));
        let v = body(&[user, call, tool], &ChatOptions::default(), false);
        assert_eq!(
            v["messages"],
            json!([
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "mp3"}},
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
                ]},
                // A tool message's name is not sent (strict servers reject it).
                {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            ])
        );
    }

    #[test]
    fn tools_and_response_formats_have_their_wire_shapes() {
        let cfg = OpenAiConfig::new("gpt-test");
        let tools = [ToolInfo::new(
            "weather",
            "Weather in a city",
            json!({"type": "object"}),
        )];
        let mut o = ChatOptions::default();
        o.extensions.insert(ResponseFormat::JsonSchema {
            name: "out".into(),
            schema: json!({"type": "object"}),
            strict: true,
        });
        let msgs = [Message::user("Hi")];
        let v = serde_json::to_value(ChatRequest::new(&cfg, &tools, &msgs, &o, false)).unwrap();
        assert_eq!(
            v["tools"],
            json!([{"type": "function", "function": {"name": "weather", "description": "Weather in a city", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            v["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
        );
        o.extensions.insert(ResponseFormat::JsonObject);
        o.tool_choice = Some(ToolChoice::Forced);
        let v = serde_json::to_value(ChatRequest::new(&cfg, &tools, &msgs, &o, false)).unwrap();
        assert_eq!(v["response_format"], json!({"type": "json_object"}));
        assert_eq!(v["tool_choice"], "required");
    }
}

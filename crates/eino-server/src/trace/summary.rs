//! What a run's trace keeps of a node's input and output: summaries of the types the
//! service's graphs carry, kept typed until the trace writer turns them into JSON.
//!
//! Typed rather than `serde_json::Value` trees: a message's summary is its role and text,
//! one allocation on the request path where a `Value` object took five (a map node, two
//! keys, two strings), and the writer serializes fields instead of walking maps. Fields
//! are declared in alphabetical order, so the stored JSON reads as the `Value` maps' did
//! (inside a tool call, keys follow `ToolCall`'s own fields: the same object, reordered).

use eino::callbacks::CallbackValue;
use eino::component::ChatCallbackInput;
use eino::schema::{Document, Message, Role, ToolCall};
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

use crate::app::AppInput;

/// Longest text kept per input/output in a trace.
const MAX_TEXT: usize = 2000;

/// Messages kept per input in a trace: the last ones (the newest turn and its context);
/// the number left out comes first.
const MAX_MESSAGES: usize = 50;

fn clip(s: &str) -> String {
    // Counting characters is only needed when the bytes could be too many.
    if s.len() <= MAX_TEXT || s.chars().count() <= MAX_TEXT {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_TEXT).collect();
    t.push('…');
    t
}

/// A node's input or output in a trace.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(untagged)]
pub(crate) enum Payload {
    /// A value of a type the service does not summarize (JSON `null`).
    #[default]
    Null,
    /// Text, or a note standing in for the value.
    Text(String),
    /// One message.
    Message(MessageSummary),
    /// A conversation.
    Messages(MessagesSummary),
    /// A chat model's call: the conversation and the options that shape the answer.
    ChatInput(ChatInputSummary),
    /// Retrieved documents.
    Documents(Vec<DocumentSummary>),
}

impl Payload {
    /// `m`'s summary.
    pub(crate) fn message(m: &Message) -> Self {
        Self::Message(MessageSummary::of(m))
    }
}

/// A message: its role, its text (clipped) and its tool calls.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MessageSummary {
    content: String,
    role: Role,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
}

impl MessageSummary {
    fn of(m: &Message) -> Self {
        Self {
            content: clip(&m.content),
            role: m.role,
            tool_calls: m.tool_calls.clone(),
        }
    }
}

/// The last [`MAX_MESSAGES`] of a conversation, after an `{"omitted_messages": n}` entry
/// when some were left out.
#[derive(Debug, Clone)]
pub(crate) struct MessagesSummary {
    omitted: usize,
    messages: Vec<MessageSummary>,
}

impl MessagesSummary {
    fn of(ms: &[Message]) -> Self {
        let omitted = ms.len().saturating_sub(MAX_MESSAGES);
        Self {
            omitted,
            messages: ms[omitted..].iter().map(MessageSummary::of).collect(),
        }
    }
}

impl Serialize for MessagesSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Omitted {
            omitted_messages: usize,
        }
        let mut seq = s.serialize_seq(Some(self.messages.len() + usize::from(self.omitted > 0)))?;
        if self.omitted > 0 {
            seq.serialize_element(&Omitted {
                omitted_messages: self.omitted,
            })?;
        }
        for m in &self.messages {
            seq.serialize_element(m)?;
        }
        seq.end()
    }
}

/// A chat model's input.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatInputSummary {
    max_tokens: Option<u32>,
    messages: MessagesSummary,
    model: Option<String>,
    temperature: Option<f32>,
}

/// A retrieved document: its id, score and text (clipped).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DocumentSummary {
    content: String,
    id: String,
    score: Option<f64>,
}

/// The summary of a callback value of the types the service's graphs carry.
pub(crate) fn summarize(v: CallbackValue<'_>) -> Payload {
    if let Some(m) = v.downcast_ref::<Message>() {
        Payload::message(m)
    } else if let Some(ms) = v.downcast_ref::<Vec<Message>>() {
        Payload::Messages(MessagesSummary::of(ms))
    } else if let Some(c) = v.downcast_ref::<ChatCallbackInput>() {
        Payload::ChatInput(ChatInputSummary {
            max_tokens: c.options.max_tokens,
            messages: MessagesSummary::of(&c.messages),
            model: c.options.model.clone(),
            temperature: c.options.temperature,
        })
    } else if let Some(i) = v.downcast_ref::<AppInput>() {
        Payload::Messages(MessagesSummary::of(&i.messages))
    } else if let Some(d) = v.downcast_ref::<Vec<Document>>() {
        Payload::Documents(
            d.iter()
                .map(|d| DocumentSummary {
                    content: clip(&d.content),
                    id: d.id.clone(),
                    score: d.score,
                })
                .collect(),
        )
    } else if let Some(s) = v.downcast_ref::<String>() {
        Payload::Text(clip(s))
    } else {
        Payload::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(p: &Payload) -> String {
        serde_json::to_string(p).unwrap()
    }

    #[test]
    fn summaries_read_as_the_json_objects_of_earlier_traces() {
        let m = Message::user("hi");
        assert_eq!(json(&summarize(&m)), r#"{"content":"hi","role":"user"}"#);
        let input = ChatCallbackInput {
            messages: vec![m.clone()],
            options: eino::component::ChatOptions {
                model: Some("up".into()),
                ..Default::default()
            },
        };
        assert_eq!(
            json(&summarize(&input)),
            r#"{"max_tokens":null,"messages":[{"content":"hi","role":"user"}],"model":"up","temperature":null}"#
        );
        let call = Message::assistant("", vec![ToolCall::function("c1", "add", "{}")]);
        let v: serde_json::Value = serde_json::from_str(&json(&Payload::message(&call))).unwrap();
        assert_eq!(v["tool_calls"][0]["function"]["name"], "add");
        assert_eq!(json(&summarize(&7_u8)), "null");
    }

    #[test]
    fn long_conversations_keep_their_last_messages_and_long_texts_are_clipped() {
        let ms: Vec<Message> = (0..MAX_MESSAGES + 3)
            .map(|i| Message::user(i.to_string()))
            .collect();
        let v: serde_json::Value = serde_json::from_str(&json(&summarize(&ms))).unwrap();
        assert_eq!(v[0], serde_json::json!({ "omitted_messages": 3 }));
        assert_eq!(v[1]["content"], "3");
        assert_eq!(v.as_array().unwrap().len(), MAX_MESSAGES + 1);

        let long = "é".repeat(MAX_TEXT + 1);
        let Payload::Text(t) = summarize(&long) else {
            panic!("a string is summarized as text");
        };
        assert_eq!(t.chars().count(), MAX_TEXT + 1, "the text and an ellipsis");
        assert!(t.ends_with('…'));
        let short = "é".repeat(MAX_TEXT);
        assert_eq!(
            clip(&short),
            short,
            "2000 characters are kept, whatever their bytes"
        );
    }
}

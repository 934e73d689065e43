//! Prompt templates: messages with `{var}` (f-string) or Jinja2 placeholders, and a
//! placeholder that splices chat history.
//!
//! ```
//! use eino::prompt::{ChatTemplate, FormatType, MessageTemplate, PromptTemplate};
//! use eino::schema::{Map, Message, Role};
//! let tpl = PromptTemplate::new(FormatType::FString, vec![
//!     MessageTemplate::system("You are a {role}."),
//!     MessageTemplate::placeholder("history", true),
//!     MessageTemplate::user("{question}"),
//! ]);
//! let mut vars = Map::new();
//! vars.insert("role".into(), "helpful assistant".into());
//! vars.insert("question".into(), "What is Rust?".into());
//! let msgs = tpl.format(&vars).unwrap();
//! assert_eq!(msgs[0].content, "You are a helpful assistant.");
//! assert_eq!(msgs[1], Message::user("What is Rust?"));
//! ```

mod fstring;

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::schema::{Map, Message, Role};

pub use fstring::format_fstring;

/// Turns variables into messages.
pub trait ChatTemplate: Send + Sync {
    /// Render the messages.
    fn format(&self, vars: &Map) -> Result<Vec<Message>>;

    /// Implementation name for callbacks.
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("Default")
    }
}

/// How message text is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatType {
    /// Python-style `{var}`; `{{` and `}}` are literal braces; a missing variable is an error.
    #[default]
    FString,
    /// Jinja2 (minijinja), sandboxed: no file system, `include`/`extends`/`import` fail;
    /// an undefined variable is an error.
    Jinja2,
}

/// One element of a [`PromptTemplate`].
#[derive(Debug, Clone, PartialEq)]
pub enum MessageTemplate {
    /// A message whose content is a template.
    Message {
        /// Role of the produced message.
        role: Role,
        /// Content template.
        content: String,
    },
    /// Splice the list of messages in variable `key` (e.g. chat history).
    Placeholder {
        /// Variable holding a JSON array of messages.
        key: String,
        /// When true a missing variable yields no messages instead of an error.
        optional: bool,
    },
}

impl MessageTemplate {
    /// A system message template.
    pub fn system(content: impl Into<String>) -> Self {
        Self::Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message template.
    pub fn user(content: impl Into<String>) -> Self {
        Self::Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message template.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }

    /// A history placeholder.
    pub fn placeholder(key: impl Into<String>, optional: bool) -> Self {
        Self::Placeholder {
            key: key.into(),
            optional,
        }
    }
}

/// A chat template made of message templates, rendered in order (Eino's `FromMessages`).
#[derive(Debug)]
pub struct PromptTemplate {
    format: FormatType,
    items: Vec<MessageTemplate>,
    jinja: Option<minijinja::Environment<'static>>,
}

impl PromptTemplate {
    /// A template rendering `items` with `format`.
    pub fn new(format: FormatType, items: Vec<MessageTemplate>) -> Self {
        let jinja = (format == FormatType::Jinja2).then(|| {
            let mut env = minijinja::Environment::new();
            env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
            env
        });
        Self {
            format,
            items,
            jinja,
        }
    }

    fn render(&self, template: &str, vars: &Map) -> Result<String> {
        match (&self.format, &self.jinja) {
            (FormatType::Jinja2, Some(env)) => {
                env.render_str(
                    template,
                    minijinja::Value::from(minijinja::value::Serde(vars)),
                )
                .map_err(|e| Error::invalid_input(format!("failed to render jinja2 template: {e}")))
            }
            _ => format_fstring(template, vars),
        }
    }
}

impl ChatTemplate for PromptTemplate {
    fn format(&self, vars: &Map) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(self.items.len());
        for item in &self.items {
            match item {
                MessageTemplate::Message { role, content } => {
                    out.push(Message::new(*role, self.render(content, vars)?));
                }
                MessageTemplate::Placeholder { key, optional } => match vars.get(key) {
                    None | Some(Value::Null) if *optional => {}
                    None | Some(Value::Null) => {
                        return Err(Error::invalid_input(format!(
                            "message placeholder '{key}' is required but missing"
                        )))
                    }
                    Some(v) => {
                        let msgs: Vec<Message> =
                            serde_json::from_value(v.clone()).map_err(|e| {
                                Error::invalid_input(format!(
                                    "message placeholder '{key}' must hold a list of messages: {e}"
                                ))
                            })?;
                        out.extend(msgs);
                    }
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn jinja_renders_and_is_strict() {
        let t = PromptTemplate::new(
            FormatType::Jinja2,
            vec![MessageTemplate::user("{{q1}}_{{q2}}")],
        );
        let m = t
            .format(&vars(json!({"q1": "query", "q2": "query"})))
            .unwrap();
        assert_eq!(m, vec![Message::user("query_query")]);
        assert!(t.format(&vars(json!({"q1": "x"}))).is_err());
    }

    #[test]
    fn jinja_has_no_file_system() {
        let t = PromptTemplate::new(
            FormatType::Jinja2,
            vec![MessageTemplate::user("{% include '/etc/passwd' %}")],
        );
        assert!(t.format(&Map::new()).is_err());
    }

    #[test]
    fn placeholder_required_optional_and_wrong_type() {
        let req = PromptTemplate::new(
            FormatType::FString,
            vec![MessageTemplate::placeholder("history", false)],
        );
        assert!(req.format(&Map::new()).is_err());
        let opt = PromptTemplate::new(
            FormatType::FString,
            vec![MessageTemplate::placeholder("history", true)],
        );
        assert!(opt.format(&Map::new()).unwrap().is_empty());
        let err = opt.format(&vars(json!({"history": 3}))).unwrap_err();
        assert!(err.message().contains("list of messages"));
        let ok = opt
            .format(&vars(
                json!({"history": [{"role": "user", "content": "hi"}]}),
            ))
            .unwrap();
        assert_eq!(ok, vec![Message::user("hi")]);
    }
}

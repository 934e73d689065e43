//! [`Summarization`]: once the conversation passes a token budget, the older messages are
//! replaced by a summary the model writes (leading system messages and the most recent
//! messages stay as they are; a tool answer is never separated from its call).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::adk::{AgentMiddleware, AgentRun};
use crate::component::{ChatModel, ChatOptions};
use crate::error::Result;
use crate::schema::{Message, Role};

/// A rough token count of a message: characters / 4, plus 4 for the framing. Good enough
/// for budgets; supply an exact counter with [`Summarization::with_counter`].
pub fn estimate_tokens(m: &Message) -> usize {
    let calls: usize = m
        .tool_calls
        .iter()
        .map(|c| c.function.name.len() + c.function.arguments.len())
        .sum();
    (m.content.len() + calls) / 4 + 4
}

/// Summarises older messages over a token budget.
///
/// [`Summarization`]: once the conversation passes a token budget, the older messages are
/// replaced by a summary the model writes (leading system messages and the most recent
/// messages stay as they are; a tool answer is never separated from its call).
#[derive(Clone)]
pub struct Summarization {
    model: Arc<dyn ChatModel>,
    /// Summarise when the conversation is over this many tokens (default 8 000).
    pub max_tokens: usize,
    /// Keep about this many tokens of the most recent messages (default 2 000).
    pub keep_recent_tokens: usize,
    count: fn(&Message) -> usize,
    /// The summariser's instruction.
    pub prompt: String,
}

impl std::fmt::Debug for Summarization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summarization")
            .field("max_tokens", &self.max_tokens)
            .field("keep_recent_tokens", &self.keep_recent_tokens)
            .finish_non_exhaustive()
    }
}

/// The first message of the kept part after summarising.
pub(crate) const SUMMARY_PREFIX: &str = "Summary of the conversation so far:\n";

impl Summarization {
    /// Summarise with `model`, with the default budgets.
    pub fn new(model: Arc<dyn ChatModel>) -> Self {
        Self {
            model,
            max_tokens: 8_000,
            keep_recent_tokens: 2_000,
            count: estimate_tokens,
            prompt: "Summarise the conversation below for the assistant who continues it: \
                     the user's goals, decisions, facts learned (with tool results that \
                     matter) and what is still open. Be concise."
                .into(),
        }
    }

    /// Set the budgets.
    pub fn with_budget(mut self, max_tokens: usize, keep_recent_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self.keep_recent_tokens = keep_recent_tokens;
        self
    }

    /// Count tokens with `f`.
    pub fn with_counter(mut self, f: fn(&Message) -> usize) -> Self {
        self.count = f;
        self
    }

    /// Where the recent part starts: as many messages from the end as fit the budget,
    /// moved back so it does not start with tool answers.
    fn split(&self, messages: &[Message], head: usize) -> usize {
        let mut start = messages.len();
        let mut used = 0;
        while start > head {
            let c = (self.count)(&messages[start - 1]);
            if used + c > self.keep_recent_tokens {
                break;
            }
            used += c;
            start -= 1;
        }
        while start > head && start < messages.len() && messages[start].role == Role::Tool {
            start -= 1;
        }
        start
    }
}

fn transcript(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|m| {
            let mut line = format!("{}: {}", m.role.as_str(), m.content);
            for c in &m.tool_calls {
                line.push_str(&format!(
                    "\n  (calls {} with {})",
                    c.function.name, c.function.arguments
                ));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl AgentMiddleware for Summarization {
    fn before_model<'a>(
        &'a self,
        messages: Vec<Message>,
        _: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        Box::pin(async move {
            let total: usize = messages.iter().map(self.count).sum();
            if total <= self.max_tokens {
                return Ok(messages);
            }
            let head = messages
                .iter()
                .take_while(|m| m.role == Role::System)
                .count();
            let start = self.split(&messages, head);
            if start <= head {
                return Ok(messages);
            }
            let prompt = [
                Message::system(self.prompt.clone()),
                Message::user(transcript(&messages[head..start])),
            ];
            let summary = self
                .model
                .generate(&prompt, &ChatOptions::default())
                .await?;
            let mut out = messages[..head].to_vec();
            out.push(Message::user(format!(
                "{SUMMARY_PREFIX}{}",
                summary.content
            )));
            out.extend_from_slice(&messages[start..]);
            Ok(out)
        })
    }
}

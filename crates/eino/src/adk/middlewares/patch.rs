//! [`PatchToolCalls`]: an assistant message whose tool calls have no answers (the run was
//! cancelled or the history was edited) makes providers reject the conversation; this
//! middleware adds an answer saying so for each dangling call, before each model call.

use futures_util::future::BoxFuture;

use crate::adk::{AgentMiddleware, AgentRun};
use crate::error::Result;
use crate::schema::{Message, Role};

/// Answers dangling tool calls.
///
/// [`PatchToolCalls`]: an assistant message whose tool calls have no answers (the run was
/// cancelled or the history was edited) makes providers reject the conversation; this
/// middleware adds an answer saying so for each dangling call, before each model call.
#[derive(Debug, Clone, Default)]
pub struct PatchToolCalls {
    /// The answer given to a dangling call (default: it was not answered).
    pub answer: Option<String>,
}

impl PatchToolCalls {
    /// With the default answer.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The history with an answer after every tool call that has none.
pub(crate) fn patch(messages: Vec<Message>, answer: &str) -> Vec<Message> {
    let mut out = Vec::with_capacity(messages.len());
    let mut iter = messages.into_iter().peekable();
    while let Some(m) = iter.next() {
        let calls = m.tool_calls.clone();
        out.push(m);
        if calls.is_empty() {
            continue;
        }
        let mut answered = Vec::new();
        while let Some(next) = iter.next_if(|n| n.role == Role::Tool) {
            answered.extend(next.tool_call_id.clone());
            out.push(next);
        }
        for c in calls.iter().filter(|c| !answered.contains(&c.id)) {
            out.push(Message::tool(answer, c.id.clone()).with_name(c.function.name.clone()));
        }
    }
    out
}

impl AgentMiddleware for PatchToolCalls {
    fn before_model<'a>(
        &'a self,
        messages: Vec<Message>,
        _: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        let answer = self
            .answer
            .as_deref()
            .unwrap_or("This tool call was not answered (the run was interrupted or cancelled).");
        let out = patch(messages, answer);
        Box::pin(async move { Ok(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ToolCall;

    #[test]
    fn answers_only_the_dangling_calls_right_after_their_message() {
        let call = |id: &str| ToolCall::function(id, "t", "{}");
        let history = vec![
            Message::user("q"),
            Message::assistant("", vec![call("a"), call("b")]),
            Message::tool("answer a", "a"),
            Message::user("again"),
            Message::assistant("", vec![call("c")]),
        ];
        let out = patch(history, "none");
        let shape: Vec<(Role, Option<&str>, &str)> = out
            .iter()
            .map(|m| (m.role, m.tool_call_id.as_deref(), m.content.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                (Role::User, None, "q"),
                (Role::Assistant, None, ""),
                (Role::Tool, Some("a"), "answer a"),
                (Role::Tool, Some("b"), "none"),
                (Role::User, None, "again"),
                (Role::Assistant, None, ""),
                (Role::Tool, Some("c"), "none"),
            ]
        );
        // Nothing to do twice.
        assert_eq!(patch(out.clone(), "none"), out);
    }
}

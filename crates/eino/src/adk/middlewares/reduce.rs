//! [`ToolResultReduction`]: tool results are often the bulk of an agent's context (a web
//! page, a file, a query result). Before each model call this middleware cuts any result
//! longer than `max_chars` (keeping its head and saying how much was cut) and replaces the
//! results older than the last `keep_last` with a short note (Eino's `reduction` clear
//! strategy).

use futures_util::future::BoxFuture;

use crate::adk::{AgentMiddleware, AgentRun};
use crate::error::Result;
use crate::schema::{Message, Role};

/// Cuts long and clears old tool results.
///
/// [`ToolResultReduction`]: tool results are often the bulk of an agent's context (a web
/// page, a file, a query result). Before each model call this middleware cuts any result
/// longer than `max_chars` (keeping its head and saying how much was cut) and replaces the
/// results older than the last `keep_last` with a short note (Eino's `reduction` clear
/// strategy).
#[derive(Debug, Clone)]
pub struct ToolResultReduction {
    /// Longest tool result kept whole, in characters (default 20 000).
    pub max_chars: usize,
    /// Keep this many most recent tool results; older ones are cleared (default: all
    /// kept).
    pub keep_last: Option<usize>,
}

impl Default for ToolResultReduction {
    fn default() -> Self {
        Self {
            max_chars: 20_000,
            keep_last: None,
        }
    }
}

const CLEARED: &str = "[tool result cleared to save context]";

pub(crate) fn reduce(mut messages: Vec<Message>, r: &ToolResultReduction) -> Vec<Message> {
    let tool_positions: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Tool)
        .map(|(i, _)| i)
        .collect();
    let clear_before = r
        .keep_last
        .map(|k| tool_positions.len().saturating_sub(k))
        .unwrap_or(0);
    for (n, &i) in tool_positions.iter().enumerate() {
        let m = &mut messages[i];
        if n < clear_before {
            m.content = CLEARED.to_string();
            continue;
        }
        let chars = m.content.chars().count();
        if chars > r.max_chars {
            let head: String = m.content.chars().take(r.max_chars).collect();
            m.content = format!("{head}\n[… {} more characters cut]", chars - r.max_chars);
        }
    }
    messages
}

impl AgentMiddleware for ToolResultReduction {
    fn before_model<'a>(
        &'a self,
        messages: Vec<Message>,
        _: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        let out = reduce(messages, self);
        Box::pin(async move { Ok(out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_results_and_clears_old_ones() {
        let history = vec![
            Message::user("q"),
            Message::tool("old result", "1"),
            Message::tool("é".repeat(30), "2"),
            Message::tool("short", "3"),
        ];
        let r = ToolResultReduction {
            max_chars: 10,
            keep_last: Some(2),
        };
        let out = reduce(history, &r);
        assert_eq!(out[0].content, "q");
        assert_eq!(out[1].content, CLEARED);
        assert_eq!(
            out[2].content,
            format!("{}\n[… 20 more characters cut]", "é".repeat(10))
        );
        assert_eq!(out[3].content, "short");
    }
}

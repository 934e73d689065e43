//! [`ToolSearch`]: an agent with many tools pays for every definition on every model call,
//! and models choose worse among many. This middleware hides a set of tools behind a
//! `tool_search` tool; the tools a search finds are offered from the next turn on (for the
//! rest of the run). Like Eino's `dynamictool/toolsearch`.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::adk::run::tool_args;
use crate::adk::{AgentMiddleware, AgentRun};
use crate::component::{Tool, ToolOptions};
use crate::error::Result;
use crate::schema::ToolInfo;

/// The search tool's name.
pub const TOOL_SEARCH: &str = "tool_search";
/// The session key holding the names of the tools found so far.
const FOUND_KEY: &str = "eino.tool_search.found";

/// Hidden tools and the search that reveals them.
///
/// [`ToolSearch`]: an agent with many tools pays for every definition on every model call,
/// and models choose worse among many. This middleware hides a set of tools behind a
/// `tool_search` tool; the tools a search finds are offered from the next turn on (for the
/// rest of the run). Like Eino's `dynamictool/toolsearch`.
#[derive(Clone)]
pub struct ToolSearch {
    tools: Vec<Arc<dyn Tool>>,
    infos: Arc<Vec<ToolInfo>>,
    hidden: Arc<HashSet<String>>,
    /// Most tools one search reveals (default 5).
    pub max_results: usize,
}

impl std::fmt::Debug for ToolSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSearch")
            .field("hidden", &self.hidden)
            .field("max_results", &self.max_results)
            .finish()
    }
}

impl ToolSearch {
    /// Hide `tools` until searched for.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        let infos: Vec<ToolInfo> = tools.iter().map(|t| t.info()).collect();
        let hidden = infos.iter().map(|i| i.name.clone()).collect();
        Self {
            tools,
            infos: Arc::new(infos),
            hidden: Arc::new(hidden),
            max_results: 5,
        }
    }
}

fn found(run: &AgentRun) -> Vec<String> {
    run.session_get(FOUND_KEY).unwrap_or_default()
}

/// The hidden tools that best match `query` (query words found in name or description).
fn matches<'a>(infos: &'a [ToolInfo], query: &str, max: usize) -> Vec<&'a ToolInfo> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 2)
        .map(str::to_lowercase)
        .collect();
    let mut scored: Vec<(usize, &ToolInfo)> = infos
        .iter()
        .map(|i| {
            let text = format!("{} {}", i.name.replace('_', " "), i.description).to_lowercase();
            (
                words.iter().filter(|w| text.contains(w.as_str())).count(),
                i,
            )
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    // Best first; ties keep the configured order.
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    scored.into_iter().take(max).map(|(_, i)| i).collect()
}

#[derive(Deserialize, JsonSchema)]
struct Query {
    /// What the tool you need should do, in a few words.
    query: String,
}

struct SearchTool {
    infos: Arc<Vec<ToolInfo>>,
    max_results: usize,
}

impl Tool for SearchTool {
    fn info(&self) -> ToolInfo {
        ToolInfo::of::<Query>(
            TOOL_SEARCH,
            "Find tools for a task; the tools found can be called from your next step on.",
        )
    }
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let q: Query = tool_args(TOOL_SEARCH, arguments)?;
            let run = AgentRun::of_tool(options, TOOL_SEARCH)?;
            let hits = matches(&self.infos, &q.query, self.max_results);
            if hits.is_empty() {
                return Ok(format!("No tool matches '{}'.", q.query));
            }
            let mut names = found(run);
            for h in &hits {
                if !names.contains(&h.name) {
                    names.push(h.name.clone());
                }
            }
            run.session_set(FOUND_KEY, names)?;
            Ok(hits
                .iter()
                .map(|i| format!("{}: {}", i.name, i.description))
                .collect::<Vec<_>>()
                .join("\n"))
        })
    }
}

impl AgentMiddleware for ToolSearch {
    fn instruction(&self) -> Option<String> {
        Some(format!(
            "More tools exist than you see. When you need one, call `{TOOL_SEARCH}` with what \
             it should do."
        ))
    }

    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let mut tools = self.tools.clone();
        tools.push(Arc::new(SearchTool {
            infos: self.infos.clone(),
            max_results: self.max_results,
        }));
        tools
    }

    fn offered_tools(&self, mut tools: Vec<ToolInfo>, run: &AgentRun) -> Vec<ToolInfo> {
        let found = found(run);
        tools.retain(|t| !self.hidden.contains(&t.name) || found.contains(&t.name));
        tools
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_words_found() {
        let infos = vec![
            ToolInfo::new("send_email", "Send an email", serde_json::json!({})),
            ToolInfo::new(
                "read_email",
                "Read email from the inbox",
                serde_json::json!({}),
            ),
            ToolInfo::new("weather", "Weather forecast", serde_json::json!({})),
        ];
        let names = |q: &str| -> Vec<String> {
            matches(&infos, q, 5)
                .iter()
                .map(|i| i.name.clone())
                .collect()
        };
        assert_eq!(names("read my inbox email"), ["read_email", "send_email"]);
        assert_eq!(names("forecast"), ["weather"]);
        assert!(names("x").is_empty());
    }
}

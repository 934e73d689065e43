//! `tools:`: webhooks, knowledge searches and MCP servers' tools that `react` applications
//! may call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ConfigError;

/// One entry of the `tools:` section: what runs it (exactly one of `http`,
/// `knowledge_search` and `mcp`), a description (not for `mcp`: its tools describe
/// themselves) and whether a person must approve each call.
///
/// An `mcp` entry stands for the tools of one MCP server (all of them, or those in
/// `allow`); an application names the entry for all of them or `entry/tool` for one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// When and why the model should call it.
    #[serde(default)]
    pub description: String,
    /// JSON Schema (an object schema) of the arguments; required for `http` tools.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Each call waits for a person's decision (the run is interrupted and resumable).
    #[serde(default)]
    pub approval: bool,
    /// Call a webhook.
    #[serde(default)]
    pub http: Option<HttpToolConfig>,
    /// Search knowledge bases.
    #[serde(default)]
    pub knowledge_search: Option<KnowledgeSearchConfig>,
    /// The tools of an MCP server (stdio command or Streamable HTTP URL).
    #[serde(default)]
    pub mcp: Option<eino_mcp::McpSettings>,
    /// Only these tools of the `mcp` server (empty: all it lists).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A webhook tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpToolConfig {
    /// `http://` or `https://` URL the arguments are POSTed to (as JSON).
    pub url: String,
    /// Fixed request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose values are read from environment variables at start (header → variable).
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    /// Deadline of one call (default 30 s).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// A knowledge-search tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeSearchConfig {
    /// Knowledge bases searched (`*` for all of the caller's).
    #[serde(default = "all_kbs")]
    pub knowledge_bases: Vec<String>,
    /// Chunks returned.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn all_kbs() -> Vec<String> {
    vec!["*".into()]
}
fn default_top_k() -> usize {
    4
}

impl ToolConfig {
    /// Check the entry `tools.<name>`; the error names the key.
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let key = format!("tools.{name}");
        if let Some(m) = &self.mcp {
            if self.http.is_some() || self.knowledge_search.is_some() {
                return Err(ConfigError::new(
                    key,
                    "give exactly one of `http`, `knowledge_search` and `mcp`",
                ));
            }
            if self.parameters.is_some() {
                return Err(ConfigError::new(
                    format!("{key}.parameters"),
                    "an mcp server's tools bring their own schemas; remove `parameters`",
                ));
            }
            return m
                .validate()
                .map_err(|(field, why)| ConfigError::new(format!("{key}.mcp.{field}"), why));
        }
        if !self.allow.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.allow"),
                "`allow` lists tools of an `mcp` server",
            ));
        }
        if self.description.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{key}.description"),
                "describe when the model should call the tool",
            ));
        }
        if let Some(p) = &self.parameters {
            if p.get("type").and_then(Value::as_str) != Some("object") {
                return Err(ConfigError::new(
                    format!("{key}.parameters"),
                    "must be a JSON Schema with \"type\": \"object\"",
                ));
            }
        }
        match (&self.http, &self.knowledge_search) {
            (Some(h), None) => {
                if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                    return Err(ConfigError::new(
                        format!("{key}.http.url"),
                        "must be an http:// or https:// URL",
                    ));
                }
                if self.parameters.is_none() {
                    return Err(ConfigError::new(
                        format!("{key}.parameters"),
                        "an http tool needs the JSON Schema of its arguments",
                    ));
                }
                if h.timeout_secs == Some(0) {
                    return Err(ConfigError::new(
                        format!("{key}.http.timeout_secs"),
                        "must be > 0",
                    ));
                }
                Ok(())
            }
            (None, Some(k)) => {
                if k.top_k == 0 || k.top_k > 50 {
                    return Err(ConfigError::new(
                        format!("{key}.knowledge_search.top_k"),
                        "must be 1-50",
                    ));
                }
                if self.parameters.is_some() {
                    return Err(ConfigError::new(
                        format!("{key}.parameters"),
                        "a knowledge_search tool takes {\"query\": string}; remove `parameters`",
                    ));
                }
                Ok(())
            }
            _ => Err(ConfigError::new(
                key,
                "give exactly one of `http`, `knowledge_search` and `mcp`",
            )),
        }
    }
}

//! `tools:`: webhooks and knowledge searches that `react` applications may call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ConfigError;

/// One tool of the `tools:` section: a description, what runs it (exactly one of `http`
/// and `knowledge_search`) and whether a person must approve each call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// When and why the model should call it.
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
                "give exactly one of `http` and `knowledge_search`",
            )),
        }
    }
}

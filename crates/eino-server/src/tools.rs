//! Tools configured for applications (`tools:` in the configuration, named by an
//! application's `tools:` list):
//!
//! - `http`: a webhook. The model's JSON arguments are POSTed to the URL; the response body
//!   is what the model reads. Secrets for headers come from environment variables.
//! - `knowledge_search`: a search of the caller's knowledge bases (agentic RAG).
//! - `mcp`: the tools of an MCP server (`eino_mcp`), started with the service.
//!
//! Any tool can require `approval`: its call then interrupts the run, which is saved as a
//! checkpoint and listed by `GET /api/v1/runs/interrupted` until someone approves or
//! denies it (`POST /api/v1/runs/{id}/resume`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eino::component::{Tool, ToolOptions};
use eino::schema::ToolInfo;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{HttpToolConfig, KnowledgeSearchConfig, ToolConfig};
use crate::knowledge::Knowledge;

/// Longest tool answer handed to the model; longer webhook bodies are cut (and say so).
const MAX_ANSWER_BYTES: usize = 32 * 1024;

/// The caller's tenant, put into every tool call's options by the server, so tools that
/// read per-tenant data (knowledge search) see only the caller's.
#[derive(Debug, Clone)]
pub struct CallerTenant(pub String);

/// Build every configured tool entry: one tool for `http` and `knowledge_search` entries,
/// the (allowed) tools of its server for an `mcp` entry. Secrets are read from the
/// environment and MCP servers are started now, so a missing variable or a server that
/// cannot start stops the start naming the entry.
pub async fn build_all(
    configs: &BTreeMap<String, ToolConfig>,
    knowledge: &Knowledge,
) -> Result<BTreeMap<String, Vec<Arc<dyn Tool>>>> {
    let mut out = BTreeMap::new();
    for (name, c) in configs {
        let tools: Vec<Arc<dyn Tool>> = match (&c.http, &c.knowledge_search, &c.mcp) {
            (Some(h), _, _) => vec![Arc::new(HttpTool::new(name, c, h)?)],
            (None, Some(k), _) => vec![Arc::new(KnowledgeSearchTool {
                info: ToolInfo::new(
                    name.clone(),
                    c.description.clone(),
                    json!({
                        "type": "object",
                        "properties": { "query": { "type": "string", "description": "What to look up" } },
                        "required": ["query"],
                    }),
                ),
                knowledge: knowledge.clone(),
                config: k.clone(),
            })],
            (None, None, Some(m)) => mcp_tools(name, m, &c.allow).await?,
            (None, None, None) => {
                return Err(Error::invalid_input(format!(
                    "tools.{name}: give exactly one of `http`, `knowledge_search` and `mcp`"
                )))
            }
        };
        let tools = tools
            .into_iter()
            .map(|tool| {
                if c.approval {
                    Arc::new(ApprovalGate { inner: tool }) as Arc<dyn Tool>
                } else {
                    tool
                }
            })
            .collect();
        out.insert(name.clone(), tools);
    }
    Ok(out)
}

/// Start the MCP server of entry `name` and list its tools (those in `allow`, if any).
async fn mcp_tools(
    name: &str,
    settings: &eino_mcp::McpSettings,
    allow: &[String],
) -> Result<Vec<Arc<dyn Tool>>> {
    let key = format!("tools.{name}.mcp");
    let transport = settings
        .to_transport(|field, var| crate::registry::secret_var(&format!("{key}.{field}"), var))?;
    let at_start = |e: eino_mcp::McpError| {
        let kind = e.kind();
        Error::new(kind, format!("{key}: {e}")).with_source(e)
    };
    let client = eino_mcp::McpClient::connect(name, transport, settings.options())
        .await
        .map_err(at_start)?;
    let listed = client.tools().await.map_err(at_start)?;
    if let Some(missing) = allow
        .iter()
        .find(|a| !listed.iter().any(|t| &t.info().name == *a))
    {
        return Err(Error::invalid_input(format!(
            "tools.{name}.allow: the server has no tool {missing:?} (it has {:?})",
            listed.iter().map(|t| t.info().name).collect::<Vec<_>>()
        )));
    }
    tracing::info!(entry = %name, tools = listed.len(), "MCP server ready");
    Ok(listed
        .into_iter()
        .filter(|t| allow.is_empty() || allow.contains(&t.info().name))
        .map(|t| Arc::new(t) as Arc<dyn Tool>)
        .collect())
}

/// The tools an application's `tools:` list names: `entry` (all of the entry's) or
/// `entry/tool` (one tool of an mcp entry). Two tools of the same name are refused: the
/// model could not tell them apart.
pub fn pick(
    app: &str,
    names: &[String],
    built: &BTreeMap<String, Vec<Arc<dyn Tool>>>,
) -> Result<Vec<Arc<dyn Tool>>> {
    let mut out: Vec<Arc<dyn Tool>> = Vec::new();
    for n in names {
        let (entry, one) = match n.split_once('/') {
            Some((e, t)) => (e, Some(t)),
            None => (n.as_str(), None),
        };
        let tools = built.get(entry).map(Vec::as_slice).unwrap_or_default();
        let chosen: Vec<_> = tools
            .iter()
            .filter(|t| one.is_none_or(|o| t.info().name == o))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(Error::invalid_input(format!(
                "applications.{app}.tools: {n:?} names no tool the server lists"
            )));
        }
        for t in chosen {
            let name = t.info().name;
            if out.iter().any(|o| o.info().name == name) {
                return Err(Error::invalid_input(format!(
                    "applications.{app}.tools: two tools are called {name:?}"
                )));
            }
            out.push(t);
        }
    }
    Ok(out)
}

/// A webhook: POST the arguments, answer with the response body.
struct HttpTool {
    info: ToolInfo,
    url: String,
    headers: reqwest::header::HeaderMap,
    client: reqwest::Client,
}

impl HttpTool {
    fn new(name: &str, c: &ToolConfig, h: &HttpToolConfig) -> Result<Self> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let bad = |what: String| Error::invalid_input(format!("tools.{name}.http: {what}"));
        let mut headers = HeaderMap::new();
        let secrets = h.secret_headers.iter().map(|(k, var)| {
            let key = format!("tools.{name}.http.secret_headers.{k}");
            crate::registry::secret_var(&key, var).map(|v| (k, v))
        });
        let fixed = h.headers.iter().map(|(k, v)| Ok((k, v.clone())));
        for pair in fixed.chain(secrets) {
            let (k, v) = pair?;
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| bad(format!("header {k:?}: {e}")))?;
            let mut value =
                HeaderValue::from_str(&v).map_err(|e| bad(format!("header {k:?}: {e}")))?;
            value.set_sensitive(h.secret_headers.contains_key(k));
            headers.insert(name, value);
        }
        // Redirects are not followed: a hop could lead into the internal network (the
        // configured URL is the operator's choice, where a redirect is the webhook's) and
        // would carry the secret headers to another origin.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(h.timeout_secs.unwrap_or(30)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| {
                Error::internal(format!("tools.{name}: HTTP client: {e}")).with_source(e)
            })?;
        Ok(Self {
            info: ToolInfo::new(
                name,
                c.description.clone(),
                c.parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"})),
            ),
            url: h.url.clone(),
            headers,
            client,
        })
    }
}

/// The body as text, reading at most `max` bytes and one more (so [`cap`] says it was
/// cut): a webhook answering without end cannot fill the memory.
async fn read_capped(mut resp: reqwest::Response, max: usize) -> reqwest::Result<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = (max + 1).saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() > max {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Cut `text` to at most `max` bytes on a character boundary, saying so.
fn cap(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str("\n[answer cut]");
    text
}

impl Tool for HttpTool {
    fn info(&self) -> ToolInfo {
        self.info.clone()
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "HttpTool".into()
    }

    fn call<'a>(&'a self, arguments: &'a str, _: &'a ToolOptions) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let name = &self.info.name;
            let resp = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(arguments.to_string())
                .send()
                .await
                .map_err(|e| {
                    let kind = if e.is_timeout() {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Transient
                    };
                    Error::new(kind, format!("tool {name}: request failed: {e}")).with_source(e)
                })?;
            let status = resp.status();
            if status.is_redirection() {
                let to = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?");
                return Err(Error::invalid_input(format!(
                    "tool {name}: the webhook answered HTTP {status} to {:?}; redirects are not \
                     followed (configure the final URL)",
                    cap(to.to_string(), 200)
                )));
            }
            let body = read_capped(resp, MAX_ANSWER_BYTES).await.map_err(|e| {
                Error::new(
                    ErrorKind::Transient,
                    format!("tool {name}: reading the answer: {e}"),
                )
                .with_source(e)
            })?;
            if !status.is_success() {
                let kind = if status.is_server_error() || status.as_u16() == 429 {
                    ErrorKind::Transient
                } else {
                    ErrorKind::InvalidInput
                };
                return Err(Error::new(
                    kind,
                    format!("tool {name}: HTTP {status}: {}", cap(body, 512)),
                ));
            }
            Ok(cap(body, MAX_ANSWER_BYTES))
        })
    }
}

/// Search the caller's knowledge bases.
struct KnowledgeSearchTool {
    info: ToolInfo,
    knowledge: Knowledge,
    config: KnowledgeSearchConfig,
}

#[derive(Deserialize)]
struct Query {
    query: String,
}

impl Tool for KnowledgeSearchTool {
    fn info(&self) -> ToolInfo {
        self.info.clone()
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "KnowledgeSearchTool".into()
    }

    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let q: Query = serde_json::from_str(arguments).map_err(|e| {
                Error::invalid_input(format!("expected {{\"query\": string}}: {e}")).with_source(e)
            })?;
            let tenant = options
                .extensions
                .get::<CallerTenant>()
                .ok_or_else(|| Error::internal("knowledge search without a caller tenant"))?;
            let docs = self
                .knowledge
                .search(
                    &tenant.0,
                    &self.config.knowledge_bases,
                    &q.query,
                    self.config.top_k,
                    0.0,
                )
                .await?;
            Ok(crate::knowledge::passages_text(&docs))
        })
    }
}

/// A person's answer to an approval request (`POST /api/v1/runs/{id}/resume`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Run the call (true) or not.
    pub approved: bool,
    /// Why not, told to the model.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Interrupts before every call of `inner` until a [`Decision`] for it arrives.
struct ApprovalGate {
    inner: Arc<dyn Tool>,
}

impl Tool for ApprovalGate {
    fn info(&self) -> ToolInfo {
        self.inner.info()
    }

    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        self.inner.type_name()
    }

    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match options.resume_data::<Decision>() {
                Some(Decision { approved: true, .. }) => self.inner.call(arguments, options).await,
                Some(Decision { reason, .. }) => Ok(format!(
                    "The user did not approve this call{}. Do not call it again; tell the user.",
                    reason.map(|r| format!(" ({r})")).unwrap_or_default()
                )),
                None => {
                    let args: Value =
                        serde_json::from_str(arguments).unwrap_or(Value::String(arguments.into()));
                    Err(Error::interrupt(json!({
                        "approval": { "tool": self.inner.info().name, "arguments": args }
                    })))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> ToolConfig {
        ToolConfig {
            description: "d".into(),
            parameters: Some(json!({"type": "object"})),
            approval: false,
            http: Some(HttpToolConfig {
                url: url.into(),
                headers: BTreeMap::new(),
                secret_headers: BTreeMap::new(),
                timeout_secs: None,
            }),
            knowledge_search: None,
            mcp: None,
            allow: Vec::new(),
        }
    }

    #[test]
    fn validation_names_the_key() {
        let err = |c: ToolConfig| c.validate("t").unwrap_err().to_string();
        assert!(err(http("ftp://x")).contains("tools.t.http.url"));
        let mut c = http("http://x");
        c.parameters = None;
        assert!(err(c).contains("tools.t.parameters"));
        let mut c = http("http://x");
        c.parameters = Some(json!({"type": "string"}));
        assert!(err(c).contains("tools.t.parameters"));
        let mut c = http("http://x");
        c.knowledge_search = Some(KnowledgeSearchConfig {
            knowledge_bases: vec!["*".into()],
            top_k: 4,
        });
        assert!(err(c).contains("exactly one"));
        let mut c = http("http://x");
        c.description = " ".into();
        assert!(err(c).contains("tools.t.description"));
        http("https://x").validate("t").unwrap();
    }

    #[test]
    fn long_answers_are_cut_on_a_char_boundary() {
        assert_eq!(cap("short".into(), 10), "short");
        let cut = cap("ééééé".into(), 5);
        assert_eq!(cut, "éé\n[answer cut]");
    }
}

//! `/mcp`: the service over the Model Context Protocol (Streamable HTTP, stateless, so any
//! replica answers), behind the same authentication and tenancy as the rest of the API.
//!
//! - Tools: `ask_<app>` for each application (a message in; the answer, its sources and
//!   the run id out) and `search_knowledge` (the caller's knowledge bases).
//! - Resources: the caller's knowledge bases (`eino://knowledge-bases/<name>`), read as the
//!   list of their documents.
//!
//! [`serve_stdio`] offers the same over a process's stdin and stdout (`eino mcp`), for
//! desktop MCP clients, as one tenant.

use std::sync::Arc;

use eino::schema::Message;
use eino_mcp::rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, Tool,
};
use eino_mcp::rmcp::service::RequestContext;
use eino_mcp::rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use eino_mcp::rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use eino_mcp::rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::api::wire::sources_json;
use crate::auth::Caller;
use crate::runs::RunGuard;
use crate::state::AppState;

/// Resource URIs of knowledge bases start with this.
const KB_URI: &str = "eino://knowledge-bases/";

/// The `/mcp` service (a tower service for the router).
pub(crate) fn service(state: AppState) -> StreamableHttpService<Endpoint, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(state.config.server.max_body_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    // With authentication the caller is known whatever the Host; without it the server is
    // on loopback and the SDK's Host check (localhost names only) stops DNS rebinding.
    if state.config.auth_enabled() {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || {
            Ok(Endpoint {
                state: state.clone(),
                tenant: None,
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// Serve the MCP endpoint's tools and resources over this process's stdin and stdout, as
/// `tenant`, until the client closes them. Nothing else may write to stdout meanwhile.
pub async fn serve_stdio(state: AppState, tenant: &str) -> eino::Result<()> {
    use eino_mcp::rmcp::ServiceExt;
    let endpoint = Endpoint {
        state,
        tenant: Some(Caller {
            tenant: tenant.to_string(),
            principal: "stdio".into(),
        }),
    };
    let running = endpoint
        .serve(eino_mcp::rmcp::transport::stdio())
        .await
        .map_err(|e| eino::Error::invalid_input(format!("MCP over stdio: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| eino::Error::internal(format!("MCP over stdio: {e}")))?;
    Ok(())
}

/// One MCP request's handler: the service's state, and over stdio the one caller.
#[derive(Clone)]
pub(crate) struct Endpoint {
    state: AppState,
    /// Over HTTP the caller comes with each request; over stdio it is fixed.
    tenant: Option<Caller>,
}

impl Endpoint {
    /// The caller: the fixed one, or the one the authentication middleware put on the HTTP
    /// request.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        if let Some(c) = &self.tenant {
            return Ok(c.clone());
        }
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>().cloned())
            .ok_or_else(|| ErrorData::internal_error("the request was not authenticated", None))
    }
}

/// A failure of the service (the store, a search) as a JSON-RPC internal error.
fn internal(e: eino::Error) -> ErrorData {
    ErrorData::internal_error(e.message().to_string(), None)
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

fn text_arg(args: &JsonObject, name: &str) -> Result<String, ErrorData> {
    match args.get(name).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(ErrorData::invalid_params(
            format!("`{name}` must be a non-empty string"),
            None,
        )),
    }
}

impl Endpoint {
    fn tools(&self) -> Vec<Tool> {
        let mut tools: Vec<Tool> = self
            .state
            .apps
            .keys()
            .map(|id| {
                Tool::new(
                    format!("ask_{id}"),
                    format!(
                        "Ask the eino application `{id}` (it answers from its knowledge bases \
                         and tools). Returns the answer, its sources and the run id."
                    ),
                    schema(json!({
                        "type": "object",
                        "properties": { "message": { "type": "string", "description": "The question or request" } },
                        "required": ["message"],
                    })),
                )
            })
            .collect();
        tools.push(Tool::new(
            "search_knowledge",
            "Search the caller's knowledge bases (hybrid: vectors and keywords); returns the \
             best passages with their sources.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "What to look up" },
                    "knowledge_bases": { "type": "array", "items": { "type": "string" },
                                         "description": "Names to search (default: all)" },
                    "top_k": { "type": "integer", "minimum": 1, "maximum": 50 },
                },
                "required": ["query"],
            })),
        ));
        tools
    }

    async fn ask(
        &self,
        caller: &Caller,
        app: &str,
        message: String,
    ) -> Result<CallToolResult, ErrorData> {
        let max = self.state.config.limits.max_input_chars;
        if message.chars().count() > max {
            return Err(ErrorData::invalid_params(
                format!("the message is longer than {max} characters (limits.max_input_chars)"),
                None,
            ));
        }
        let target = self
            .state
            .resolve(app, Vec::new())
            .map_err(|e| ErrorData::invalid_params(e.message, None))?;
        let run = RunGuard::start(&self.state.runs, caller, app, None);
        let run_id = run.id().to_string();
        let result = target
            .invoke(
                &caller.tenant,
                vec![Message::user(message)],
                run.context(),
                &run_id,
            )
            .await;
        if let Err(e) = &result {
            if e.kind() == eino::ErrorKind::Interrupted {
                let _ = run.finish(result).await;
                return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "application {app} stopped for a person's approval of a tool call; \
                     decide with the native API (run {run_id})"
                ))]));
            }
        }
        match run.finish(result).await {
            Ok((answer, sources)) => {
                let mut text = answer.content.clone();
                for (i, d) in sources.iter().enumerate() {
                    let source = d
                        .metadata
                        .get("source")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    text.push_str(&format!(
                        "{}[{}] {source}",
                        if i == 0 { "\n\nSources:\n" } else { "\n" },
                        i + 1
                    ));
                }
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                result.structured_content = Some(json!({
                    "answer": answer.content, "sources": sources_json(&sources), "run_id": run_id,
                }));
                Ok(result)
            }
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(e.message)])),
        }
    }

    async fn search(
        &self,
        caller: &Caller,
        args: &JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let query = text_arg(args, "query")?;
        let kbs: Vec<String> = match args.get("knowledge_bases") {
            None | Some(Value::Null) => vec!["*".into()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                return Err(ErrorData::invalid_params(
                    "`knowledge_bases` must be a list of names",
                    None,
                ))
            }
        };
        let top_k = match args.get("top_k") {
            None | Some(Value::Null) => 4,
            Some(v) => match v.as_u64() {
                Some(k @ 1..=50) => k as usize,
                _ => return Err(ErrorData::invalid_params("`top_k` must be 1-50", None)),
            },
        };
        let docs = self
            .state
            .knowledge
            .search(&caller.tenant, &kbs, &query, top_k, 0.0)
            .await
            .map_err(internal)?;
        let text = crate::knowledge::passages_text(&docs);
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!({ "passages": sources_json(&docs) }));
        Ok(result)
    }
}

impl ServerHandler for Endpoint {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("eino", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "eino applications as tools (ask_<application>), knowledge-base search \
                 (search_knowledge), and knowledge bases as resources.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.caller(&context)?;
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "search_knowledge" => self.search(&caller, &args).await?,
            name => match name
                .strip_prefix("ask_")
                .filter(|a| self.state.apps.contains_key(*a))
            {
                Some(app) => self.ask(&caller, app, text_arg(&args, "message")?).await?,
                None => return Err(ErrorData::invalid_params(format!("no tool {name}"), None)),
            },
        };
        Ok(CallToolResponse::Complete(result))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context)?;
        let kbs = self
            .state
            .store
            .list_kbs(&caller.tenant)
            .await
            .map_err(internal)?;
        Ok(ListResourcesResult::with_all_items(
            kbs.into_iter()
                .map(|kb| {
                    Resource::new(format!("{KB_URI}{}", kb.name), kb.name.clone())
                        .with_description(format!(
                            "Knowledge base {} ({} documents)",
                            kb.name, kb.documents
                        ))
                        .with_mime_type("text/plain")
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&context)?;
        let not_found =
            || ErrorData::resource_not_found(format!("no resource {}", request.uri), None);
        let name = request.uri.strip_prefix(KB_URI).ok_or_else(not_found)?;
        let kbs = self
            .state
            .store
            .list_kbs(&caller.tenant)
            .await
            .map_err(internal)?;
        if !kbs.iter().any(|k| k.name == name) {
            return Err(not_found());
        }
        let docs = self
            .state
            .store
            .list_documents(&caller.tenant, name)
            .await
            .map_err(internal)?;
        let mut text = format!("Knowledge base {name}: {} documents\n", docs.len());
        for d in docs {
            text.push_str(&format!(
                "{}\t{} chunks\t{} bytes\n",
                d.source, d.chunks, d.bytes
            ));
        }
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(
            vec![ResourceContents::text(text, request.uri.clone())],
        )))
    }
}

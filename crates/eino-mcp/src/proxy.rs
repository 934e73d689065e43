//! Another MCP server's tools and resources served over this process's stdin and stdout
//! (feature `server`): a bridge for clients that speak stdio only (desktop apps) to a
//! server reached over Streamable HTTP (`eino mcp --url`).

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorCode, Implementation, InitializeResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use crate::{McpClient, McpError};

/// Forwards every tool and resource request to `client`'s server.
#[derive(Debug, Clone)]
pub struct McpProxy {
    client: McpClient,
}

impl McpProxy {
    /// A proxy of `client`'s server.
    pub fn new(client: McpClient) -> Self {
        Self { client }
    }
}

/// The upstream's JSON-RPC errors pass through as they are; anything else is an internal
/// error that names the upstream.
fn upstream_error(e: McpError) -> ErrorData {
    match e {
        McpError::Rpc { code, message, .. } => ErrorData::new(ErrorCode(code), message, None),
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

impl ServerHandler for McpProxy {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new(
            self.client.name().to_string(),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.client
            .list_tools()
            .await
            .map(ListToolsResult::with_all_items)
            .map_err(upstream_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.client
            .call_tool(&request.name, request.arguments)
            .await
            .map(CallToolResponse::Complete)
            .map_err(upstream_error)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.client
            .resources()
            .await
            .map(ListResourcesResult::with_all_items)
            .map_err(upstream_error)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.client
            .read_resource_raw(&request.uri)
            .await
            .map(ReadResourceResponse::Complete)
            .map_err(upstream_error)
    }
}

/// Serve `client`'s server over stdin and stdout until the stdio client closes them.
pub async fn serve_proxy_stdio(client: McpClient) -> Result<(), McpError> {
    let name = client.name().to_string();
    let failed = |message: String| McpError::Connect {
        server: name.clone(),
        message,
    };
    let running = McpProxy::new(client)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| failed(format!("serving over stdio: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| failed(format!("serving over stdio: {e}")))?;
    Ok(())
}

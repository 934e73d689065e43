//! [`McpClient`]: one server, its session kept alive and renewed when it ends.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, JsonObject, ReadResourceRequestParams,
    ReadResourceResult, Resource, ResourceContents,
};
use rmcp::{Peer, RoleClient};
use tokio::sync::Mutex;

use crate::transport::{connect, Session};
use crate::{McpError, McpTool, McpTransport};

/// Deadlines of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct McpOptions {
    /// Starting a session: spawning or reaching the server and the MCP handshake
    /// (default 30 s; `npx` may download the server first).
    pub connect_timeout: Duration,
    /// One request (`tools/call`, `tools/list` …); past it the request is cancelled on the
    /// server and fails with [`McpError::Timeout`] (default 60 s).
    pub call_timeout: Duration,
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// A connection to one MCP server, shared (cheaply cloned) by the tools it lists.
///
/// If the session ends (a stdio server exits, an HTTP session expires), the request that
/// saw it fails with [`McpError::Closed`] (retryable: a tool call is not repeated behind the
/// caller's back) and the next request starts a new session. A request dropped before it
/// completes (its run was cancelled, or it timed out) is cancelled on the server with
/// `notifications/cancelled`.
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    transport: McpTransport,
    options: McpOptions,
    /// The live session and its generation (a failed request ends only the session it ran
    /// on, not a newer one another request already started).
    session: Mutex<Option<(u64, Session)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("name", &self.inner.name)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

impl McpClient {
    /// Start a session with the server at `transport`; `name` labels it in errors and logs.
    pub async fn connect(
        name: impl Into<String>,
        transport: McpTransport,
        options: McpOptions,
    ) -> Result<Self, McpError> {
        let name = name.into();
        let session = connect(&name, &transport, options.connect_timeout).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                transport,
                options,
                session: Mutex::new(Some((0, session))),
                generation: std::sync::atomic::AtomicU64::new(1),
            }),
        })
    }

    /// The server's label.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The client's deadlines.
    pub fn options(&self) -> &McpOptions {
        &self.inner.options
    }

    /// The peer of a live session, starting a new session when the last one ended.
    async fn peer(&self) -> Result<(u64, Peer<RoleClient>), McpError> {
        let mut slot = self.inner.session.lock().await;
        if let Some((generation, s)) = slot.as_ref() {
            if !s.is_closed() && !s.peer().is_transport_closed() {
                return Ok((*generation, s.peer().clone()));
            }
            tracing::warn!(mcp_server = %self.inner.name, "the MCP session ended; starting a new one");
        }
        *slot = None;
        let session = connect(
            &self.inner.name,
            &self.inner.transport,
            self.inner.options.connect_timeout,
        )
        .await?;
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let peer = session.peer().clone();
        *slot = Some((generation, session));
        Ok((generation, peer))
    }

    /// Run one request on a live session, within the call deadline; a closed connection
    /// ends that session.
    async fn request<T, F>(
        &self,
        method: &'static str,
        call: impl FnOnce(Peer<RoleClient>) -> F,
    ) -> Result<T, McpError>
    where
        F: std::future::Future<Output = Result<T, rmcp::ServiceError>>,
    {
        let (generation, peer) = self.peer().await?;
        let after = self.inner.options.call_timeout;
        let outcome = match tokio::time::timeout(after, call(peer)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => McpError::from_service(&self.inner.name, method, e),
            // Dropping the request future sent notifications/cancelled to the server.
            Err(_) => McpError::Timeout {
                server: self.inner.name.clone(),
                method,
                after,
            },
        };
        if matches!(outcome, McpError::Closed { .. }) {
            let mut slot = self.inner.session.lock().await;
            if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
                *slot = None;
            }
        }
        Err(outcome)
    }

    /// The server's tools as they are (every page of `tools/list`).
    pub async fn list_tools(&self) -> Result<Vec<rmcp::model::Tool>, McpError> {
        self.request(
            "tools/list",
            |peer| async move { peer.list_all_tools().await },
        )
        .await
    }

    /// The server's tools as eino [`Tool`](eino::component::Tool)s. A tool whose input
    /// schema is not an object schema is refused with [`McpError::Protocol`] naming it.
    pub async fn tools(&self) -> Result<Vec<McpTool>, McpError> {
        self.list_tools()
            .await?
            .into_iter()
            .map(|t| McpTool::new(self.clone(), t))
            .collect()
    }

    /// Call tool `name` with `arguments`: the raw result (use [`McpTool`] for text and
    /// typed failures).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, McpError> {
        let mut params = CallToolRequestParams::new(name.to_string());
        params.arguments = arguments;
        self.request(
            "tools/call",
            |peer| async move { peer.call_tool(params).await },
        )
        .await
    }

    /// The server's resources (every page of `resources/list`).
    pub async fn resources(&self) -> Result<Vec<Resource>, McpError> {
        self.request("resources/list", |peer| async move {
            peer.list_all_resources().await
        })
        .await
    }

    /// Resource `uri` as the server sent it.
    pub async fn read_resource_raw(&self, uri: &str) -> Result<ReadResourceResult, McpError> {
        let params = ReadResourceRequestParams::new(uri.to_string());
        self.request("resources/read", |peer| async move {
            peer.read_resource(params).await
        })
        .await
    }

    /// The text of resource `uri` (binary parts are described, as in tool results).
    pub async fn read_resource(&self, uri: &str) -> Result<String, McpError> {
        let result = self.read_resource_raw(uri).await?;
        Ok(result
            .contents
            .iter()
            .map(|c| match c {
                ResourceContents::TextResourceContents { text, .. } => text.clone(),
                ResourceContents::BlobResourceContents {
                    mime_type, blob, ..
                } => format!(
                    "[{}, {} base64 characters]",
                    mime_type.as_deref().unwrap_or("binary"),
                    blob.len()
                ),
                _ => "[resource of an unknown kind]".into(),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// End the session (a stdio server is asked to exit, then stopped). Later requests
    /// start a new one.
    pub async fn close(&self) {
        if let Some((_, mut session)) = self.inner.session.lock().await.take() {
            let _ = session.close_with_timeout(Duration::from_secs(5)).await;
        }
    }
}

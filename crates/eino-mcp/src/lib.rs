//! Model Context Protocol tools for eino, on the official Rust SDK ([`rmcp`]).
//!
//! [`McpClient`] connects to an MCP server, over a spawned command's stdio or over
//! Streamable HTTP, and lists its tools as [`McpTool`]s: eino
//! [`Tool`](eino::component::Tool)s usable in a `ToolsNode`, the ReAct agent and every
//! other agent. Results become the text the model reads ([`content`]); failures are typed
//! ([`McpError`]) and classified, and a `ToolsNode` hands them to the model like any tool
//! error. A session that ends (a stdio server that exits) is started again on the next
//! call; every call has a deadline; a call whose run is cancelled is cancelled on the
//! server.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use eino::component::Tool;
//! use eino::compose::ToolsNode;
//! use eino_mcp::{McpClient, McpOptions, McpTransport, StdioServer};
//!
//! # async fn run() -> Result<(), eino_mcp::McpError> {
//! let server = StdioServer::new("npx").args(["-y", "@modelcontextprotocol/server-everything"]);
//! let client = McpClient::connect("everything", McpTransport::Stdio(server), McpOptions::default()).await?;
//! let tools = client.tools().await?;
//! let node = ToolsNode::new(tools.into_iter().map(|t| Arc::new(t) as Arc<dyn Tool>));
//! # let _ = node; Ok(()) }
//! ```
//!
//! Security: a stdio server is a program this process runs, with this process's rights.
//! It gets only a small part of the environment ([`PASSED_THROUGH`]) plus what its
//! configuration sets, so it does not see this process's secrets unless told to
//! ([`StdioServer::inherit_env`]). See docs/mcp.md.

mod client;
pub mod content;
mod error;
#[cfg(feature = "server")]
mod proxy;
mod settings;
mod tool;
mod transport;

pub use client::{McpClient, McpOptions};
pub use error::McpError;
#[cfg(feature = "server")]
pub use proxy::{serve_proxy_stdio, McpProxy};
pub use settings::McpSettings;
pub use tool::McpTool;
pub use transport::{HttpServer, McpTransport, StdioServer, PASSED_THROUGH};

/// The SDK's protocol types (tools, results, resources), as this crate uses them.
pub use rmcp::model;

/// The whole SDK (feature `server`), for serving MCP with the same version.
#[cfg(feature = "server")]
pub use rmcp;

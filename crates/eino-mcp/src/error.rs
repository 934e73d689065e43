//! What can go wrong talking to an MCP server, classified the way eino's errors are
//! (retry, fix the call, give up), and carried as the source of an [`eino::Error`].

use std::time::Duration;

use eino::ErrorKind;

/// An MCP failure. Every variant names the server (its label in [`McpClient`]).
///
/// [`McpClient`]: crate::McpClient
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server could not be started or reached, or refused the handshake.
    #[error("MCP server {server}: cannot connect: {message}")]
    Connect {
        /// The server's label.
        server: String,
        /// What failed.
        message: String,
    },
    /// The connection ended (the process exited, the HTTP session is gone). The next
    /// call starts a new one.
    #[error("MCP server {server}: the connection closed during {method}: {message}")]
    Closed {
        /// The server's label.
        server: String,
        /// The request that was under way.
        method: &'static str,
        /// What the transport said.
        message: String,
    },
    /// No answer within the deadline; the request was cancelled on the server.
    #[error("MCP server {server}: {method} got no answer within {after:?}")]
    Timeout {
        /// The server's label.
        server: String,
        /// The request.
        method: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with a JSON-RPC error.
    #[error("MCP server {server}: {method} failed with JSON-RPC error {code}: {message}")]
    Rpc {
        /// The server's label.
        server: String,
        /// The request.
        method: &'static str,
        /// The JSON-RPC error code (-32602: invalid params, -32601: no such method …).
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The tool ran and reported failure (`isError`); the message is its content.
    #[error("MCP server {server}: tool {tool} failed: {message}")]
    ToolFailed {
        /// The server's label.
        server: String,
        /// The tool.
        tool: String,
        /// The tool's own account of the failure.
        message: String,
    },
    /// The server broke the protocol: an answer of the wrong shape, a tool whose input
    /// schema is not an object schema.
    #[error("MCP server {server}: {message}")]
    Protocol {
        /// The server's label.
        server: String,
        /// What was wrong.
        message: String,
    },
    /// The call was cancelled (its run was).
    #[error("MCP server {server}: {method} was cancelled")]
    Cancelled {
        /// The server's label.
        server: String,
        /// The request.
        method: &'static str,
    },
    /// The arguments a model produced are not a JSON object.
    #[error("tool {tool}: arguments must be a JSON object: {message}")]
    BadArguments {
        /// The tool.
        tool: String,
        /// Why they were refused.
        message: String,
    },
}

impl McpError {
    /// The eino error kind: transport failures and timeouts are worth a retry, a tool's
    /// own failure and bad arguments are the caller's to fix.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } | Self::Closed { .. } => ErrorKind::Transient,
            Self::Timeout { .. } => ErrorKind::Timeout,
            // -32603 (internal error) and server-defined codes may pass; -326xx request
            // errors will not.
            Self::Rpc { code, .. } if (-32602..=-32600).contains(code) || *code == -32700 => {
                ErrorKind::InvalidInput
            }
            Self::Rpc { .. } => ErrorKind::Transient,
            Self::ToolFailed { .. } | Self::BadArguments { .. } => ErrorKind::InvalidInput,
            Self::Protocol { .. } => ErrorKind::Internal,
            Self::Cancelled { .. } => ErrorKind::Cancelled,
        }
    }

    /// Whether the same call may succeed if made again.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// Classify an SDK error of request `method`.
    pub(crate) fn from_service(server: &str, method: &'static str, e: rmcp::ServiceError) -> Self {
        let server = server.to_string();
        match e {
            rmcp::ServiceError::McpError(data) => Self::Rpc {
                server,
                method,
                code: data.code.0,
                message: data.message.into_owned(),
            },
            rmcp::ServiceError::Timeout { timeout } => Self::Timeout {
                server,
                method,
                after: timeout,
            },
            rmcp::ServiceError::Cancelled { .. } => Self::Cancelled { server, method },
            rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => {
                Self::Closed {
                    server,
                    method,
                    message: e.to_string(),
                }
            }
            other => Self::Protocol {
                server,
                message: format!("{method}: {other}"),
            },
        }
    }
}

impl From<McpError> for eino::Error {
    fn from(e: McpError) -> Self {
        eino::Error::new(e.kind(), e.to_string()).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_whether_a_retry_can_help() {
        let rpc = |code| McpError::Rpc {
            server: "s".into(),
            method: "tools/call",
            code,
            message: "m".into(),
        };
        assert_eq!(rpc(-32602).kind(), ErrorKind::InvalidInput);
        assert_eq!(rpc(-32700).kind(), ErrorKind::InvalidInput);
        assert!(rpc(-32603).is_retryable());
        let closed = McpError::Closed {
            server: "files".into(),
            method: "tools/call",
            message: "Transport closed".into(),
        };
        assert!(closed.is_retryable());
        let e: eino::Error = closed.into();
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.message().contains("MCP server files"), "{e}");
        let failed: eino::Error = McpError::ToolFailed {
            server: "s".into(),
            tool: "t".into(),
            message: "no such file".into(),
        }
        .into();
        assert_eq!(failed.kind(), ErrorKind::InvalidInput);
        assert!(!failed.is_retryable());
    }
}

//! How to reach an MCP server: a command whose stdin and stdout speak MCP, or a
//! Streamable HTTP endpoint. [`connect`] starts one session (process or HTTP session,
//! then the MCP handshake).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use tokio::io::AsyncBufReadExt;

use crate::McpError;

/// One connected session with a server.
pub(crate) type Session = RunningService<RoleClient, ()>;

/// Where an MCP server is.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A local command, spawned; MCP over its stdin and stdout.
    Stdio(StdioServer),
    /// A remote (or local) server over Streamable HTTP.
    Http(HttpServer),
}

/// A server run as a child process.
///
/// The child does **not** inherit this process's environment: it gets only
/// [`PASSED_THROUGH`] (the search path, home, locale, proxies and CA settings) and the
/// variables set here, so a tool server never sees the database URL or API keys of the
/// process that runs it. [`StdioServer::inherit_env`] turns that off.
#[derive(Clone, PartialEq)]
pub struct StdioServer {
    /// The program (looked up in `PATH`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it (on top of the passed-through ones).
    pub env: BTreeMap<String, String>,
    /// Its working directory (default: this process's).
    pub cwd: Option<PathBuf>,
    /// Pass this process's whole environment on.
    pub inherit_env: bool,
}

/// Variables a [`StdioServer`] child gets from this process unless it inherits everything.
pub const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];

impl StdioServer {
    /// Run `command` with no arguments.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            inherit_env: false,
        }
    }

    /// Add arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set a variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Run in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Pass this process's whole environment to the child.
    pub fn inherit_env(mut self) -> Self {
        self.inherit_env = true;
        self
    }
}

impl std::fmt::Debug for StdioServer {
    // Values of `env` are often secrets: show the names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioServer")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("inherit_env", &self.inherit_env)
            .finish()
    }
}

/// A server reached over Streamable HTTP.
#[derive(Clone, PartialEq)]
pub struct HttpServer {
    /// The endpoint (`https://host/mcp`).
    pub url: String,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// A bearer token (`Authorization: Bearer …`).
    pub bearer: Option<String>,
}

impl HttpServer {
    /// The endpoint at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: BTreeMap::new(),
            bearer: None,
        }
    }

    /// Send `name: value` with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Authenticate with a bearer token.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("bearer", &self.bearer.as_ref().map(|_| "…"))
            .finish()
    }
}

/// How many of a child's last stderr lines a connection error quotes.
const STDERR_TAIL: usize = 12;

/// Start a session: spawn or reach the server and complete the MCP handshake within
/// `timeout`.
pub(crate) async fn connect(
    server: &str,
    transport: &McpTransport,
    timeout: Duration,
) -> Result<Session, McpError> {
    let fail = |message: String| McpError::Connect {
        server: server.to_string(),
        message,
    };
    match transport {
        McpTransport::Stdio(s) => {
            let mut cmd = tokio::process::Command::new(&s.command);
            cmd.args(&s.args);
            if !s.inherit_env {
                cmd.env_clear();
                for key in PASSED_THROUGH {
                    if let Some(v) = std::env::var_os(key) {
                        cmd.env(key, v);
                    }
                }
            }
            cmd.envs(&s.env);
            if let Some(dir) = &s.cwd {
                cmd.current_dir(dir);
            }
            let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
            wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
            let (child, stderr) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| fail(format!("cannot run {}: {e}", s.command)))?;
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            if let Some(stderr) = stderr {
                tokio::spawn(forward_stderr(server.to_string(), stderr, tail.clone()));
            }
            match handshake(().serve(child), timeout).await {
                Ok(session) => Ok(session),
                Err(e) => {
                    // A server that fails at start says why on stderr: let the reader
                    // catch up before quoting it.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let lines: Vec<String> = tail
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .cloned()
                        .collect();
                    Err(if lines.is_empty() {
                        fail(e)
                    } else {
                        fail(format!("{e}; its stderr ended with: {}", lines.join(" | ")))
                    })
                }
            }
        }
        McpTransport::Http(h) => {
            install_crypto_provider();
            let mut headers = std::collections::HashMap::new();
            for (name, value) in &h.headers {
                let n = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| fail(format!("header {name}: {e}")))?;
                let v = http::HeaderValue::from_str(value)
                    .map_err(|_| fail(format!("header {name}: not a valid header value")))?;
                headers.insert(n, v);
            }
            let mut config = StreamableHttpClientTransportConfig::with_uri(h.url.clone())
                .custom_headers(headers);
            if let Some(token) = &h.bearer {
                config = config.auth_header(token.clone());
            }
            let transport = StreamableHttpClientTransport::from_config(config);
            handshake(().serve(transport), timeout)
                .await
                .map_err(|e| fail(format!("{}: {e}", h.url)))
        }
    }
}

async fn handshake<E: std::fmt::Display>(
    serving: impl std::future::Future<Output = Result<Session, E>>,
    timeout: Duration,
) -> Result<Session, String> {
    match tokio::time::timeout(timeout, serving).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer to initialize within {timeout:?}")),
    }
}

/// A child's stderr goes to our log (debug level, tagged with the server), and its last
/// lines are kept for the connection error.
async fn forward_stderr(
    server: String,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(mcp_server = %server, "{line}");
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}

/// reqwest 0.13 (the SDK's HTTP client) is built without a TLS crypto provider of its own;
/// the workspace's is ring. Installing it twice is harmless (the first one stays).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! [`McpSettings`]: what a configuration file says about one MCP server (the service's
//! `tools: { NAME: { mcp: … } }`), with secrets named by environment variable, never
//! written in the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{HttpServer, McpOptions, McpTransport, StdioServer};

/// One MCP server, as configured: exactly one of `command` (stdio) and `url` (Streamable
/// HTTP).
///
/// ```yaml
/// command: npx
/// args: ["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"]
/// env_from: { GITHUB_TOKEN: GH_TOKEN }      # child variable: our variable
/// # or
/// url: https://mcp.example/mcp
/// headers_env: { x-api-key: EXAMPLE_KEY }   # header: our variable
/// bearer_env: EXAMPLE_TOKEN
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpSettings {
    /// The program to run (stdio).
    #[serde(default)]
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for it, as written.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables set for it from ours (child variable: our variable), read at start.
    #[serde(default)]
    pub env_from: BTreeMap<String, String>,
    /// Its working directory.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Pass our whole environment on (off: only the search path, home, locale, proxy and
    /// CA settings, and the variables above).
    #[serde(default)]
    pub inherit_env: bool,
    /// The Streamable HTTP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// Headers sent with every request, as written.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers from our variables (header: variable), read at start.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// A bearer token from this variable.
    #[serde(default)]
    pub bearer_env: Option<String>,
    /// Deadline of one call (default 60).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Deadline of starting a session (default 30).
    #[serde(default)]
    pub connect_timeout_secs: Option<u64>,
}

impl McpSettings {
    /// Check the shape; the error names the field (relative to this entry).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match (&self.command, &self.url) {
            (Some(c), None) if !c.trim().is_empty() => {
                if !self.headers.is_empty()
                    || !self.headers_env.is_empty()
                    || self.bearer_env.is_some()
                {
                    return Err((
                        "headers",
                        "headers and bearer_env are for `url` servers".into(),
                    ));
                }
            }
            (None, Some(u)) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(("url", "must be an http:// or https:// URL".into()));
                }
                if !self.args.is_empty()
                    || !self.env.is_empty()
                    || !self.env_from.is_empty()
                    || self.cwd.is_some()
                {
                    return Err((
                        "args",
                        "args, env, env_from and cwd are for `command` servers".into(),
                    ));
                }
            }
            _ => return Err(("command", "give exactly one of `command` and `url`".into())),
        }
        if self.timeout_secs == Some(0) {
            return Err(("timeout_secs", "must be > 0".into()));
        }
        if self.connect_timeout_secs == Some(0) {
            return Err(("connect_timeout_secs", "must be > 0".into()));
        }
        Ok(())
    }

    /// Where the server is, with secrets read through `secret(field, variable)` (the
    /// caller's environment lookup, which names the field when a variable is unset).
    pub fn to_transport<E>(
        &self,
        mut secret: impl FnMut(String, &str) -> Result<String, E>,
    ) -> Result<McpTransport, E> {
        if let Some(url) = &self.url {
            let mut server = HttpServer::new(url.clone());
            server.headers = self.headers.clone();
            for (header, var) in &self.headers_env {
                server.headers.insert(
                    header.clone(),
                    secret(format!("headers_env.{header}"), var)?,
                );
            }
            if let Some(var) = &self.bearer_env {
                server.bearer = Some(secret("bearer_env".into(), var)?);
            }
            return Ok(McpTransport::Http(server));
        }
        let mut server =
            StdioServer::new(self.command.clone().unwrap_or_default()).args(self.args.clone());
        server.env = self.env.clone();
        for (name, var) in &self.env_from {
            server
                .env
                .insert(name.clone(), secret(format!("env_from.{name}"), var)?);
        }
        server.cwd = self.cwd.clone();
        server.inherit_env = self.inherit_env;
        Ok(McpTransport::Stdio(server))
    }

    /// The deadlines.
    pub fn options(&self) -> McpOptions {
        let d = McpOptions::default();
        McpOptions {
            connect_timeout: self
                .connect_timeout_secs
                .map_or(d.connect_timeout, Duration::from_secs),
            call_timeout: self
                .timeout_secs
                .map_or(d.call_timeout, Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_like_json: serde_json::Value) -> McpSettings {
        serde_json::from_value(yaml_like_json).unwrap()
    }

    #[test]
    fn exactly_one_way_to_reach_the_server() {
        let field = |s: McpSettings| s.validate().unwrap_err().0;
        assert_eq!(field(McpSettings::default()), "command");
        assert_eq!(
            field(parse(
                serde_json::json!({"command": "npx", "url": "http://x"})
            )),
            "command"
        );
        assert_eq!(field(parse(serde_json::json!({"url": "ftp://x"}))), "url");
        assert_eq!(
            field(parse(serde_json::json!({"url": "http://x", "args": ["a"]}))),
            "args"
        );
        assert_eq!(
            field(parse(
                serde_json::json!({"command": "x", "bearer_env": "T"})
            )),
            "headers"
        );
        assert_eq!(
            field(parse(
                serde_json::json!({"command": "x", "timeout_secs": 0})
            )),
            "timeout_secs"
        );
        parse(serde_json::json!({"command": "npx", "args": ["-y", "pkg"]}))
            .validate()
            .unwrap();
        assert!(serde_json::from_value::<McpSettings>(serde_json::json!({"comand": "x"})).is_err());
    }

    #[test]
    fn secrets_come_from_the_lookup_and_name_their_field() {
        let s = parse(serde_json::json!({
            "url": "https://mcp.example/mcp", "headers": {"x-team": "a"},
            "headers_env": {"x-api-key": "KEY_VAR"}, "bearer_env": "TOKEN_VAR", "timeout_secs": 5
        }));
        let env = |field: String, var: &str| -> Result<String, String> {
            match var {
                "KEY_VAR" => Ok("k".into()),
                "TOKEN_VAR" => Ok("t".into()),
                _ => Err(field),
            }
        };
        let McpTransport::Http(h) = s.to_transport(env).unwrap() else {
            panic!()
        };
        assert_eq!(h.headers["x-api-key"], "k");
        assert_eq!(h.headers["x-team"], "a");
        assert_eq!(h.bearer.as_deref(), Some("t"));
        assert!(
            !format!("{h:?}").contains("\"k\""),
            "secrets stay out of Debug: {h:?}"
        );
        assert_eq!(s.options().call_timeout, Duration::from_secs(5));
        let missing = parse(serde_json::json!({"command": "x", "env_from": {"TOKEN": "UNSET"}}));
        assert_eq!(missing.to_transport(env).unwrap_err(), "env_from.TOKEN");
    }
}

//! [`McpTool`]: one tool of an MCP server as an eino [`Tool`].

use std::borrow::Cow;

use eino::component::{Tool, ToolOptions};
use eino::schema::ToolInfo;
use futures_util::future::BoxFuture;
use rmcp::model::JsonObject;
use serde_json::Value;

use crate::{content, McpClient, McpError};

/// A tool of an MCP server, callable wherever eino takes a [`Tool`]: a `ToolsNode`, the
/// ReAct agent, the multi-agent flows.
///
/// Its [`ToolInfo`] is the server's: the name, the description (or title), and the input
/// schema (without `$schema`, which some model APIs refuse). Calls go through the shared
/// [`McpClient`] with its deadline; failures are [`eino::Error`]s whose source is the
/// [`McpError`], so a `ToolsNode` hands them to the model like any tool's error.
#[derive(Debug, Clone)]
pub struct McpTool {
    client: McpClient,
    info: ToolInfo,
}

impl McpTool {
    /// Wrap `tool` of `client`'s server; refuses an input schema that is not an object
    /// schema (`"type": "object"`; a schema without `type` is taken as one).
    pub fn new(client: McpClient, tool: rmcp::model::Tool) -> Result<Self, McpError> {
        let mut schema: JsonObject = (*tool.input_schema).clone();
        match schema.get("type") {
            None => {
                schema.insert("type".into(), Value::String("object".into()));
            }
            Some(Value::String(t)) if t == "object" => {}
            Some(other) => {
                return Err(McpError::Protocol {
                    server: client.name().to_string(),
                    message: format!(
                        "tool {}: its input schema has type {other}, not \"object\"",
                        tool.name
                    ),
                })
            }
        }
        schema.remove("$schema");
        let description = tool
            .description
            .map(Cow::into_owned)
            .or(tool.title)
            .unwrap_or_default();
        Ok(Self {
            info: ToolInfo::new(tool.name.into_owned(), description, Value::Object(schema)),
            client,
        })
    }

    /// The server this tool belongs to.
    pub fn client(&self) -> &McpClient {
        &self.client
    }

    /// Call with the model's arguments (a JSON object, or empty for none).
    pub async fn call_json(&self, arguments: &str) -> Result<String, McpError> {
        let args = parse_arguments(&self.info.name, arguments)?;
        let result = self.client.call_tool(&self.info.name, args).await?;
        content::result_text(self.client.name(), &self.info.name, result)
    }
}

fn parse_arguments(tool: &str, arguments: &str) -> Result<Option<JsonObject>, McpError> {
    if arguments.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Err(McpError::BadArguments {
            tool: tool.to_string(),
            message: format!("got {other}"),
        }),
        Err(e) => Err(McpError::BadArguments {
            tool: tool.to_string(),
            message: e.to_string(),
        }),
    }
}

impl Tool for McpTool {
    fn info(&self) -> ToolInfo {
        self.info.clone()
    }

    fn call<'a>(
        &'a self,
        arguments: &'a str,
        _options: &'a ToolOptions,
    ) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async move { self.call_json(arguments).await.map_err(Into::into) })
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("mcp:{}", self.client.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_an_object() {
        assert_eq!(parse_arguments("t", "").unwrap(), None);
        assert_eq!(parse_arguments("t", "null").unwrap(), None);
        assert_eq!(
            parse_arguments("t", r#"{"a": 1}"#).unwrap().unwrap()["a"],
            1
        );
        let e = parse_arguments("t", "[1]").unwrap_err();
        assert_eq!(e.kind(), eino::ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("arguments must be a JSON object"),
            "{e}"
        );
        assert!(parse_arguments("t", "{oops").is_err());
    }
}

//! A graph that calls tools of an MCP server: the reference server
//! `@modelcontextprotocol/server-everything` (fetched by `npx`; Node.js needed), its tools
//! in a `ToolsNode`, behind a node that turns a request into tool calls.
//!
//! `cargo run -p eino-mcp --example everything`

use std::sync::Arc;

use eino::component::Tool;
use eino::compose::{lambda, CompileOptions, Context, Graph, Runnable, ToolsNode, END, START};
use eino::schema::{Message, ToolCall};
use eino_mcp::{McpClient, McpOptions, McpTransport, StdioServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = StdioServer::new("npx").args([
        "-y",
        "@modelcontextprotocol/server-everything@2026.8.31",
        "stdio",
    ]);
    let client = McpClient::connect(
        "everything",
        McpTransport::Stdio(server),
        McpOptions::default(),
    )
    .await?;
    let tools = client.tools().await?;
    println!(
        "{} tools: {}",
        tools.len(),
        tools
            .iter()
            .map(|t| t.info().name)
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut g = Graph::<(i64, i64), Vec<Message>>::new();
    // Where a model would decide, a plain function makes the calls.
    let plan = g.add_node(
        "plan",
        lambda(|(a, b): (i64, i64)| async move {
            Ok(Message::assistant(
                "",
                vec![
                    ToolCall::function("c1", "get-sum", format!(r#"{{"a": {a}, "b": {b}}}"#)),
                    ToolCall::function("c2", "echo", r#"{"message": "from an eino graph"}"#),
                ],
            ))
        }),
    );
    let call = g.add_node(
        "tools",
        ToolsNode::new(tools.into_iter().map(|t| Arc::new(t) as Arc<dyn Tool>)),
    );
    g.add_edge(START, plan);
    g.add_edge(plan, call);
    g.add_edge(call, END);
    let app = g.compile(CompileOptions::default())?;
    for answer in app.invoke((2, 3), &Context::new()).await? {
        println!(
            "{}: {}",
            answer.tool_call_id.as_deref().unwrap_or("?"),
            answer.content
        );
    }
    client.close().await;
    Ok(())
}

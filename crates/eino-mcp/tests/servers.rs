//! The client against MCP servers no one here wrote: `@modelcontextprotocol/server-everything`
//! (npm; stdio and Streamable HTTP) and a server built on the official Python SDK (`mcp`),
//! plus a hand-written broken server for the bad-input cases. The npm package and the
//! Python SDK are installed under the target directory on first run (pinned versions).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eino::component::Tool;
use eino::compose::{CompileOptions, Context, Graph, Runnable, ToolsNode, END, START};
use eino::schema::{Message, ToolCall};
use eino::ErrorKind;
use eino_mcp::{HttpServer, McpClient, McpError, McpOptions, McpTool, McpTransport, StdioServer};

use common::{everything, free_port, python, script, spawn_listening};

fn options(call_secs: u64) -> McpOptions {
    McpOptions {
        connect_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(call_secs),
    }
}

fn tool<'a>(tools: &'a [McpTool], name: &str) -> &'a McpTool {
    tools
        .iter()
        .find(|t| t.info().name == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio_in_a_tools_node() {
    let server = StdioServer::new("node").args([everything().to_str().unwrap(), "stdio"]);
    let client = McpClient::connect("everything", McpTransport::Stdio(server), options(30))
        .await
        .unwrap();
    let tools = client.tools().await.unwrap();
    let echo = tool(&tools, "echo").info();
    assert_eq!(echo.parameters["type"], "object");
    assert_eq!(echo.parameters["properties"]["message"]["type"], "string");
    assert!(echo.parameters.get("$schema").is_none());
    assert!(!echo.description.is_empty());

    // A graph's ToolsNode runs them like any tool; errors reach the model as tool messages.
    let mut g = Graph::<Message, Vec<Message>>::new();
    let node = g.add_node(
        "tools",
        ToolsNode::new(tools.iter().map(|t| Arc::new(t.clone()) as Arc<dyn Tool>)),
    );
    g.add_edge(START, node);
    g.add_edge(node, END);
    let graph = g.compile(CompileOptions::default()).unwrap();
    let calls = Message::assistant(
        "",
        vec![
            ToolCall::function("c1", "echo", r#"{"message": "hello"}"#),
            ToolCall::function("c2", "get-sum", r#"{"a": 2, "b": 3}"#),
            ToolCall::function("c3", "get-tiny-image", "{}"),
            ToolCall::function("c4", "get-sum", r#"{"a": "two"}"#),
        ],
    );
    let out = graph.invoke(calls, &Context::new()).await.unwrap();
    assert_eq!(out[0].content, "Echo: hello");
    assert!(out[1].content.contains('5'), "{}", out[1].content);
    assert!(
        out[2].content.contains("[image image/png,"),
        "{}",
        out[2].content
    );
    assert!(
        out[3].content.contains("MCP server everything"),
        "a bad call is the model's to fix: {}",
        out[3].content
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http() {
    let port = free_port();
    let _server = spawn_listening(
        Path::new("node"),
        &[everything().to_str().unwrap(), "streamableHttp"],
        &[("PORT", port.to_string())],
        port,
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    let client = McpClient::connect(
        "everything-http",
        McpTransport::Http(HttpServer::new(url).header("x-test", "1")),
        options(30),
    )
    .await
    .unwrap();
    let tools = client.tools().await.unwrap();
    assert_eq!(
        tool(&tools, "echo")
            .call_json(r#"{"message": "over http"}"#)
            .await
            .unwrap(),
        "Echo: over http"
    );
    assert!(!client.resources().await.unwrap().is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_or_dropped_is_cancelled_and_the_session_goes_on() {
    let server = StdioServer::new("node").args([everything().to_str().unwrap(), "stdio"]);
    let client = McpClient::connect("everything", McpTransport::Stdio(server), options(1))
        .await
        .unwrap();
    let tools = client.tools().await.unwrap();
    let slow = tool(&tools, "trigger-long-running-operation");
    let start = Instant::now();
    let e = slow
        .call_json(r#"{"duration": 20, "steps": 2}"#)
        .await
        .unwrap_err();
    assert!(matches!(e, McpError::Timeout { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // A run that is cancelled drops its call: the same.
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        slow.call_json(r#"{"duration": 20, "steps": 2}"#),
    )
    .await;
    assert!(dropped.is_err());
    assert_eq!(
        tool(&tools, "echo")
            .call_json(r#"{"message": "still here"}"#)
            .await
            .unwrap(),
        "Echo: still here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_over_stdio_and_http() {
    let stdio = StdioServer::new(python().to_str().unwrap())
        .args([script("py_server.py").to_str().unwrap(), "stdio"]);
    let port = free_port();
    let _http = spawn_listening(
        &python(),
        &[
            script("py_server.py").to_str().unwrap(),
            "http",
            &port.to_string(),
        ],
        &[],
        port,
    );
    let transports = [
        McpTransport::Stdio(stdio),
        McpTransport::Http(HttpServer::new(format!("http://127.0.0.1:{port}/mcp"))),
    ];
    for transport in transports {
        let client = McpClient::connect("py", transport, options(30))
            .await
            .unwrap();
        let tools = client.tools().await.unwrap();
        assert_eq!(
            tool(&tools, "add")
                .call_json(r#"{"a": 2, "b": 40}"#)
                .await
                .unwrap(),
            "42"
        );
        let weather = tool(&tools, "weather")
            .call_json(r#"{"city": "Oslo"}"#)
            .await
            .unwrap();
        assert!(
            weather.contains("21.5") && weather.contains("Oslo"),
            "{weather}"
        );
        let e = tool(&tools, "fail")
            .call_json(r#"{"reason": "no"}"#)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, McpError::ToolFailed { message, .. } if message.contains("refused: no")),
            "{e}"
        );
        assert!(!e.is_retryable());
        let e = tool(&tools, "add")
            .call_json(r#"{"a": "x"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let notes = client.resources().await.unwrap();
        assert!(notes.iter().any(|r| r.uri == "notes://today"), "{notes:?}");
        assert_eq!(
            client.read_resource("notes://today").await.unwrap(),
            "Buy milk."
        );
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_that_dies_is_started_again_on_the_next_call() {
    let server = StdioServer::new(python().to_str().unwrap())
        .args([script("py_server.py").to_str().unwrap(), "stdio"]);
    let client = McpClient::connect("py", McpTransport::Stdio(server), options(30))
        .await
        .unwrap();
    let tools = client.tools().await.unwrap();
    let first = tool(&tools, "pid").call_json("{}").await.unwrap();
    let e = tool(&tools, "die").call_json("{}").await.unwrap_err();
    assert!(matches!(e, McpError::Closed { .. }), "{e}");
    assert!(e.is_retryable());
    let second = tool(&tools, "pid").call_json("{}").await.unwrap();
    assert_ne!(first, second, "a new server process answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_are_clear_errors_and_never_hang() {
    let raw = |mode: &str| {
        McpTransport::Stdio(
            StdioServer::new("python3").args([script("raw_server.py").to_str().unwrap(), mode]),
        )
    };
    // It behaves.
    let ok = McpClient::connect("raw", raw("ok"), options(5))
        .await
        .unwrap();
    let tools = ok.tools().await.unwrap();
    assert_eq!(
        tool(&tools, "add")
            .call_json(r#"{"a": 1, "b": 2}"#)
            .await
            .unwrap(),
        "3"
    );

    // A tool whose schema is not an object schema.
    let c = McpClient::connect("raw", raw("bad_schema"), options(5))
        .await
        .unwrap();
    let e = c.tools().await.unwrap_err();
    assert!(
        e.to_string().contains("tool weird") && e.to_string().contains("not \"object\""),
        "{e}"
    );
    assert_eq!(
        c.list_tools().await.unwrap().len(),
        3,
        "the raw listing still works"
    );

    for (mode, expect) in [("garbage", "garbage"), ("hang", "hang"), ("exit", "exit")] {
        let c = McpClient::connect("raw", raw(mode), options(2))
            .await
            .unwrap();
        let add = c.tools().await.unwrap().remove(0);
        let start = Instant::now();
        let e = add.call_json(r#"{"a": 1, "b": 2}"#).await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{expect}: {:?}",
            start.elapsed()
        );
        let e: eino::Error = e.into();
        assert!(e.message().contains("MCP server raw"), "{expect}: {e}");
        assert!(e.is_retryable(), "{expect}: {e}");
    }

    // A command that does not exist, and one that exits at once, fail to connect clearly.
    let e = McpClient::connect(
        "nope",
        McpTransport::Stdio(StdioServer::new("no-such-mcp-server")),
        options(5),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("cannot run no-such-mcp-server"),
        "{e}"
    );
    let e = McpClient::connect(
        "sh",
        McpTransport::Stdio(
            StdioServer::new("sh").args(["-c", "echo 'missing API key' >&2; exit 1"]),
        ),
        options(5),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("missing API key"),
        "the server's own reason: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_sees_only_what_it_is_given() {
    // The child prints the names of its variables and exits: the connection error quotes it.
    let server = StdioServer::new(python().to_str().unwrap())
        .args([
            "-c",
            "import os,sys; sys.stderr.write(','.join(sorted(os.environ))); sys.exit(1)",
        ])
        .env("GIVEN", "1");
    let e = McpClient::connect("env", McpTransport::Stdio(server), options(5))
        .await
        .unwrap_err()
        .to_string();
    let names: Vec<&str> = e
        .split("its stderr ended with: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{e}"))
        .split(',')
        .collect();
    assert!(
        names.contains(&"GIVEN") && names.contains(&"PATH"),
        "{names:?}"
    );
    for n in &names {
        // Python may add LC_CTYPE itself (PEP 538).
        assert!(
            eino_mcp::PASSED_THROUGH.contains(n) || ["GIVEN", "LC_CTYPE"].contains(n),
            "{n} leaked from the parent: {names:?}"
        );
    }
    assert!(
        std::env::vars().any(|(k, _)| !names.contains(&k.as_str())),
        "the parent has variables the child did not get"
    );
}

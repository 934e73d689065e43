//! MCP tools in applications: an `mcp` entry of `tools:` starts an MCP server with the
//! service and its tools join a ReAct application like webhooks do (allowlist, `entry/tool`
//! picks, approvals). The server is eino-mcp's hand-written stdio test server; the model is
//! the scripted tool user of common/agent.rs (the test is about the wiring, not a model).
//! eino-mcp's own tests run the client against server-everything and the Python SDK.

mod common;

use common::agent::{server, ToolUser, Webhooks};
use eino_server::config::{Config, ToolConfig};
use serde_json::json;

fn raw_server() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../eino-mcp/tests/servers/raw_server.py"
    )
    .into()
}

fn mcp_entry(mode: &str, allow: &[&str], approval: bool) -> ToolConfig {
    ToolConfig {
        description: String::new(),
        parameters: None,
        approval,
        http: None,
        knowledge_search: None,
        mcp: Some(eino_mcp::McpSettings {
            command: Some("python3".into()),
            args: vec![raw_server(), mode.into()],
            timeout_secs: Some(5),
            ..Default::default()
        }),
        allow: allow.iter().map(|s| s.to_string()).collect(),
    }
}

/// Webhooks that are never called (the tests that use them only start or check).
fn unreachable_hooks() -> Webhooks {
    Webhooks {
        url: "http://127.0.0.1:9".into(),
        ..Webhooks::default()
    }
}

/// A server whose `agent` application has `tools` from the MCP entry `remote`, asked
/// "weather please" (the scripted model then calls `weather`): the server and the answer.
async fn ask_weather(
    entry: ToolConfig,
    tools: &str,
) -> (common::TestServer, u16, serde_json::Value) {
    let hooks = Webhooks::start().await;
    let model = ToolUser::default();
    let s = server(&hooks, &model, |c| {
        c.tools.insert("remote".into(), entry);
        c.applications.get_mut("agent").unwrap().tools = vec![tools.into()];
    })
    .await;
    let (status, out) = s
        .post(
            "/api/v1/chat",
            json!({"app": "agent", "message": "weather please"}),
        )
        .await;
    (s, status, out)
}

#[tokio::test]
async fn a_react_application_calls_an_mcp_tool_and_answers_with_its_result() {
    let (s, status, out) = ask_weather(mcp_entry("ok", &["weather"], false), "remote").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["message"]["content"], "tool said: sunny in Oslo");
    // The application lists the entry; the allowlist kept `add` out of the model's reach.
    let (_, apps) = s.get("/api/v1/applications").await;
    assert!(apps.to_string().contains("remote"), "{apps}");
    let (_, run) = s
        .get(&format!("/api/v1/runs/{}", out["run_id"].as_str().unwrap()))
        .await;
    assert!(
        run.to_string().contains("sunny in Oslo"),
        "the tool's answer is in the trace"
    );
}

#[tokio::test]
async fn an_mcp_tool_can_require_approval_and_be_picked_alone() {
    let (s, status, out) = ask_weather(mcp_entry("ok", &[], true), "remote/weather").await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["pending"][0]["tool"], "weather");
    let run = out["run_id"].as_str().unwrap();
    let call = out["pending"][0]["call_id"].as_str().unwrap();
    let (status, done) = s
        .post(
            &format!("/api/v1/runs/{run}/resume"),
            json!({"decisions": {call: {"approved": true}}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["message"]["content"], "tool said: sunny in Oslo");
}

/// The start fails, naming the entry, when the server cannot start or lacks an allowed tool.
#[tokio::test]
async fn a_server_that_cannot_start_stops_the_start_naming_the_entry() {
    async fn start_error(entry: ToolConfig) -> String {
        let hooks = unreachable_hooks();
        let mut cfg = Config::default();
        common::agent::configure(&mut cfg, &hooks);
        cfg.tools.insert("remote".into(), entry);
        cfg.applications.get_mut("agent").unwrap().tools = vec!["remote".into()];
        cfg.models.clear();
        cfg.applications.retain(|k, _| k == "agent");
        cfg.models.insert("tooluser".into(), common::placeholder());
        cfg.embedders.clear();
        cfg.server.data_dir = tempfile::tempdir().unwrap().keep();
        cfg.validate().unwrap();
        let mut reg = eino_server::registry::Registry::default();
        reg.insert_model("tooluser", std::sync::Arc::new(ToolUser::default()));
        match eino_server::state::AppState::build(cfg, reg).await {
            Ok(_) => panic!("started"),
            Err(e) => e.to_string(),
        }
    }
    let mut missing = mcp_entry("ok", &[], false);
    missing.mcp.as_mut().unwrap().command = Some("no-such-mcp-server".into());
    let e = start_error(missing).await;
    assert!(
        e.contains("tools.remote.mcp") && e.contains("no-such-mcp-server"),
        "{e}"
    );
    let e = start_error(mcp_entry("ok", &["weather", "nope"], false)).await;
    assert!(
        e.contains("tools.remote.allow") && e.contains("nope"),
        "{e}"
    );
    let e = start_error(mcp_entry("bad_schema", &[], false)).await;
    assert!(
        e.contains("tools.remote.mcp") && e.contains("tool weird"),
        "{e}"
    );
    let mut secret = mcp_entry("ok", &[], false);
    secret
        .mcp
        .as_mut()
        .unwrap()
        .env_from
        .insert("TOKEN".into(), "EINO_TEST_UNSET_MCP_TOKEN".into());
    let e = start_error(secret).await;
    assert!(
        e.contains("tools.remote.mcp.env_from.TOKEN") && e.contains("EINO_TEST_UNSET_MCP_TOKEN"),
        "{e}"
    );
}

#[test]
fn mcp_entries_are_checked_when_the_configuration_loads() {
    let hooks = unreachable_hooks();
    let check = |tweak: &dyn Fn(&mut Config)| {
        let mut cfg = Config::default();
        common::agent::configure(&mut cfg, &hooks);
        cfg.tools
            .insert("remote".into(), mcp_entry("ok", &["weather"], false));
        tweak(&mut cfg);
        cfg.validate().err().map(|e| e.to_string())
    };
    assert_eq!(check(&|_| {}), None);
    let e = check(&|c| c.applications.get_mut("agent").unwrap().tools = vec!["remote/add".into()]);
    assert!(e
        .unwrap()
        .contains("tools.remote.allow does not list \"add\""));
    let e = check(&|c| c.applications.get_mut("agent").unwrap().tools = vec!["weather/x".into()]);
    assert!(e.unwrap().contains("only an mcp entry"));
    let e = check(&|c| {
        let m = c.tools.get_mut("remote").unwrap().mcp.as_mut().unwrap();
        m.url = Some("http://127.0.0.1:1/mcp".into());
    });
    assert!(e.unwrap().contains("tools.remote.mcp.command"));
    let e = check(&|c| c.tools.get_mut("weather").unwrap().allow = vec!["x".into()]);
    assert!(e.unwrap().contains("tools.weather.allow"));
}

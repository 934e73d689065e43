//! Multi-agent applications end to end through the HTTP API: a supervisor whose
//! specialist's tool needs approval (interrupt, then resume through the approval
//! endpoint), plan-execute-replan over the OpenAI API, and a deep agent streaming its steps
//! over the native API. The models are rule-based fakes (the tests are about the agents'
//! orchestration, events, checkpoints and the API, not about what a model decides); the
//! tools are real HTTP webhooks on loopback.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::agent::{configure, Webhooks};
use common::{app, placeholder, sse, TestServer};
use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Message, Role, StreamReader, ToolCall, ToolInfo};
use eino_server::config::{AgentKind, Config};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

type Rule = fn(&[Message]) -> Message;

/// A model answering by a rule over the conversation.
#[derive(Clone)]
struct RuleModel(Rule);

impl ChatModel for RuleModel {
    fn generate<'a>(
        &'a self,
        m: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let out = (self.0)(m);
        Box::pin(async move { Ok(out) })
    }
    fn stream<'a>(
        &'a self,
        m: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(m, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

fn call(id: &str, name: &str, args: Value) -> Message {
    Message::assistant("", vec![ToolCall::function(id, name, args.to_string())])
}

fn say(text: impl Into<String>) -> Message {
    Message::assistant(text, vec![])
}

fn last_tool(m: &[Message]) -> Option<&str> {
    m.last()
        .filter(|l| l.role == Role::Tool)
        .map(|l| l.content.as_str())
}

/// The supervisor: hands over to the clerk, then reports what the clerk said.
fn boss(m: &[Message]) -> Message {
    let said = m
        .iter()
        .rev()
        .find_map(|m| m.content.strip_prefix("For context: [clerk] said: "));
    match said {
        Some(text) => say(format!("Boss: {}", text.trim_end_matches('.'))),
        None => call("t1", "transfer_to_agent", json!({ "agent_name": "clerk" })),
    }
}

/// The clerk: pays, then says what the payment tool answered.
fn clerk(m: &[Message]) -> Message {
    match last_tool(m) {
        Some(answer) => say(format!("clerk: {answer}")),
        None => call("pay_1", "pay", json!({ "invoice": "inv-9" })),
    }
}

/// One model for the planner, executor and replanner of plan-execute.
fn plan_execute(m: &[Message]) -> Message {
    let system = m
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect::<String>();
    if system.contains("step-by-step plan") {
        return call(
            "p1",
            "plan",
            json!({ "steps": ["get the weather in Oslo"] }),
        );
    }
    if system.contains("You re-plan") {
        let done = m.last().map(|m| m.content.as_str()).unwrap_or_default();
        let result = done.rsplit("Result: ").next().unwrap_or_default();
        return call(
            "r1",
            "respond",
            json!({ "response": format!("Final: {result}") }),
        );
    }
    match last_tool(m) {
        Some(answer) => say(format!("step done: {answer}")),
        None => call("w1", "weather", json!({ "city": "Oslo" })),
    }
}

/// The deep agent: plans, delegates to the researcher, keeps a note, answers.
fn deep(m: &[Message]) -> Message {
    let tools: Vec<&Message> = m.iter().filter(|m| m.role == Role::Tool).collect();
    match tools.len() {
        0 => call(
            "d1",
            "write_todos",
            json!({ "todos": [{ "content": "find the weather", "status": "in_progress" }] }),
        ),
        1 => call(
            "d2",
            "task",
            json!({ "subagent_type": "researcher", "description": "the weather in Oslo" }),
        ),
        2 => call(
            "d3",
            "write_file",
            json!({ "path": "notes.md", "content": tools[1].content }),
        ),
        3 => call("d4", "read_file", json!({ "path": "notes.md" })),
        _ => say(format!("Deep: {}", tools[3].content.trim())),
    }
}

/// The researcher: asks the weather tool, then says what it answered.
fn researcher(m: &[Message]) -> Message {
    match last_tool(m) {
        Some(answer) => say(format!("researcher: {answer}")),
        None => call("w1", "weather", json!({ "city": "Oslo" })),
    }
}

const RULES: [(&str, Rule); 5] = [
    ("boss_model", boss),
    ("clerk_model", clerk),
    ("pe_model", plan_execute),
    ("deep_model", deep),
    ("researcher_model", researcher),
];

fn configure_agents(c: &mut Config, hooks: &Webhooks) {
    configure(c, hooks);
    for (name, _) in RULES {
        c.models.insert(name.into(), placeholder());
    }
    let mut add = |id: &str, model: &str, kind: AgentKind, tools: &[&str], subs: &[&str]| {
        let mut a = app(model, &[], &[]);
        a.agent = kind;
        a.tools = tools.iter().map(|t| t.to_string()).collect();
        a.sub_agents = subs.iter().map(|t| t.to_string()).collect();
        a.description = Some(format!("the {id}"));
        c.applications.insert(id.into(), a);
    };
    add("clerk", "clerk_model", AgentKind::React, &["pay"], &[]);
    add("boss", "boss_model", AgentKind::Supervisor, &[], &["clerk"]);
    add(
        "planner",
        "pe_model",
        AgentKind::PlanExecute,
        &["weather"],
        &[],
    );
    add(
        "researcher",
        "researcher_model",
        AgentKind::React,
        &["weather"],
        &[],
    );
    add("deep", "deep_model", AgentKind::Deep, &[], &["researcher"]);
}

async fn server(hooks: &Webhooks) -> TestServer {
    std::env::set_var(common::agent::KEY_VAR, "s3cret");
    let h = hooks.clone();
    TestServer::start(
        move |c| configure_agents(c, &h),
        |r| {
            for (name, rule) in RULES {
                r.insert_model(name, Arc::new(RuleModel(rule)));
            }
            // `configure` adds app `agent` over model `tooluser`.
            r.insert_model("tooluser", Arc::new(RuleModel(clerk)));
        },
    )
    .await
}

#[tokio::test]
async fn supervisor_streams_its_steps_and_resumes_an_approval_deep_inside() {
    let hooks = Webhooks::start().await;
    let s = server(&hooks).await;
    let body = s
        .post_text(
            "/api/v1/chat",
            json!({ "app": "boss", "message": "pay my invoice", "stream": true }),
        )
        .await;
    let events = sse(&body);
    let agent_steps: Vec<Value> = events
        .iter()
        .filter(|(n, _)| n == "agent")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(agent_steps[0]["agent"], "boss");
    assert_eq!(
        agent_steps[2]["action"],
        json!({ "type": "transfer", "to": "clerk" })
    );
    assert_eq!(
        agent_steps.last().unwrap()["run_path"],
        json!(["boss", "clerk"])
    );
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "interrupted", "{body}");
    let waiting: Value = serde_json::from_str(data).unwrap();
    assert_eq!(waiting["pending"][0]["call_id"], "pay_1");
    assert_eq!(waiting["pending"][0]["tool"], "pay");
    assert_eq!(
        hooks.pay_calls.load(Ordering::SeqCst),
        0,
        "not paid before approval"
    );

    let id = waiting["run_id"].as_str().unwrap();
    let (st, done) = s
        .post(
            &format!("/api/v1/runs/{id}/resume"),
            json!({ "decisions": { "pay_1": { "approved": true } } }),
        )
        .await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["message"]["content"], "Boss: clerk: paid inv-9");
    assert_eq!(hooks.pay_calls.load(Ordering::SeqCst), 1);
    // The turn is in the session.
    let session = done["session_id"].as_str().unwrap();
    let (_, sess) = s.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(sess["messages"][1]["content"], "Boss: clerk: paid inv-9");
}

#[tokio::test]
async fn plan_execute_answers_over_the_openai_api() {
    let hooks = Webhooks::start().await;
    let s = server(&hooks).await;
    let (st, out) = s
        .post(
            "/v1/chat/completions",
            json!({ "model": "planner", "messages": [{ "role": "user", "content": "Weather in Oslo?" }] }),
        )
        .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "Final: step done: sunny in Oslo"
    );
    assert_eq!(hooks.weather_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn deep_agent_delegates_keeps_notes_and_answers() {
    let hooks = Webhooks::start().await;
    let s = server(&hooks).await;
    let body = s
        .post_text(
            "/api/v1/chat",
            json!({ "app": "deep", "message": "What is the weather in Oslo?", "stream": true }),
        )
        .await;
    let events = sse(&body);
    let tool_results: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "agent")
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
        .filter(|v| v["message"]["role"] == "tool")
        .map(|v| v["message"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tool_results,
        [
            "task list saved: 1 items, 1 open",
            "researcher: sunny in Oslo",
            "wrote 25 bytes to notes.md",
            "     1\tresearcher: sunny in Oslo"
        ]
    );
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "done", "{body}");
    let done: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        done["message"]["content"],
        "Deep: 1\tresearcher: sunny in Oslo"
    );
    assert_eq!(hooks.weather_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn sub_agents_are_checked_in_the_config() {
    let hooks = Webhooks::start().await;
    let bad = |f: fn(&mut Config)| {
        let mut c = Config::default();
        configure_agents(&mut c, &hooks);
        f(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert!(
        bad(|c| c.applications.get_mut("boss").unwrap().sub_agents.clear())
            .contains("a supervisor needs at least one sub-agent")
    );
    assert!(
        bad(|c| c.applications.get_mut("boss").unwrap().sub_agents = vec!["nope".into()])
            .contains("unknown application \"nope\"")
    );
    assert!(
        bad(|c| c.applications.get_mut("deep").unwrap().sub_agents = vec!["boss".into()])
            .contains("sub-agents are `chat` or `react` applications")
    );
    assert!(
        bad(|c| c.applications.get_mut("planner").unwrap().sub_agents = vec!["clerk".into()])
            .contains("only `agent: supervisor` and `agent: deep` have sub-agents")
    );
}

/// The approval of a supervisor's specialist is given to a new server (a restarted
/// process: new state over the same data directory, or the same PostgreSQL in the
/// PostgreSQL pass): the run resumes from the persistent checkpoint store.
#[tokio::test]
async fn an_agent_run_interrupted_in_one_server_resumes_in_another() {
    let hooks = Webhooks::start().await;
    let mut first = server(&hooks).await;
    let (st, waiting) = first
        .post("/api/v1/chat", json!({ "app": "boss", "message": "pay" }))
        .await;
    assert_eq!(st, 202, "{waiting}");
    let id = waiting["run_id"].as_str().unwrap().to_string();
    first.stop();
    let data_dir = first.dir.path().to_path_buf();
    let db = first.pg.as_ref().map(|p| p.url.clone());
    let h = hooks.clone();
    let second = TestServer::start(
        move |c| {
            configure_agents(c, &h);
            c.server.data_dir = data_dir;
            c.store.database_url = db;
        },
        |r| {
            for (name, rule) in RULES {
                r.insert_model(name, Arc::new(RuleModel(rule)));
            }
            r.insert_model("tooluser", Arc::new(RuleModel(clerk)));
        },
    )
    .await;
    let (st, done) = second
        .post(
            &format!("/api/v1/runs/{id}/resume"),
            json!({ "decisions": { "pay_1": { "approved": false } } }),
        )
        .await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(
        done["message"]["content"],
        "Boss: clerk: The user did not approve this call. Do not call it again; tell the user"
    );
    assert_eq!(hooks.pay_calls.load(Ordering::SeqCst), 0);
    drop(first);
}

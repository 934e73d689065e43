//! Agent middlewares inside a ChatModelAgent's loop: summarization, tool search, retry and
//! failover. Models are scripted fakes (the tests are about what the loop sends and keeps).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{call_msg, ScriptedModel};
use eino::adk::middlewares::{ModelFailover, ModelRetry, Summarization, ToolSearch};
use eino::adk::{Agent, ChatModelAgent, ChatModelAgentConfig, EventKind, Runner};
use eino::component::{tool_fn, ChatModel, ChatOptions, Tool};
use eino::compose::ToolsNode;
use eino::schema::{Message, StreamReader, ToolInfo};
use eino::{Error, ErrorKind};
use futures_util::future::BoxFuture;

/// Records the tools it was bound to at each call.
#[derive(Clone)]
struct Recording {
    inner: ScriptedModel,
    bound: Vec<String>,
    log: Arc<Mutex<Vec<Vec<String>>>>,
}

impl ChatModel for Recording {
    fn generate<'a>(
        &'a self,
        m: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        self.log.lock().unwrap().push(self.bound.clone());
        self.inner.generate(m, o)
    }
    fn stream<'a>(
        &'a self,
        m: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        self.log.lock().unwrap().push(self.bound.clone());
        self.inner.stream(m, o)
    }
    fn with_tools(&self, tools: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        let mut r = self.clone();
        r.bound = tools.into_iter().map(|t| t.name).collect();
        Ok(Arc::new(r))
    }
}

fn named_tool(name: &'static str, description: &'static str) -> Arc<dyn Tool> {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Any {}
    Arc::new(tool_fn(name, description, move |_: Any| async move {
        Ok(format!("{name} ran"))
    }))
}

async fn answer(agent: Arc<dyn Agent>, q: &str) -> Vec<String> {
    Runner::new(agent)
        .query(q)
        .collect()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Message(m) => Some(m.content.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tool_search_offers_hidden_tools_once_found() {
    let script = ScriptedModel::new(vec![
        call_msg(
            "",
            &[("s1", "tool_search", r#"{"query":"weather forecast"}"#)],
        ),
        call_msg("", &[("w1", "weather", "{}")]),
        Message::assistant("done", vec![]),
    ]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let model = Recording {
        inner: script,
        bound: vec![],
        log: log.clone(),
    };
    let cfg = ChatModelAgentConfig::new("a", "", Arc::new(model))
        .with_tools(ToolsNode::new([named_tool("clock", "Current time")]))
        .with_middleware(ToolSearch::new(vec![
            named_tool("weather", "Weather forecast for a city"),
            named_tool("email", "Send an email"),
        ]));
    let out = answer(Arc::new(ChatModelAgent::new(cfg).unwrap()), "weather?").await;
    assert_eq!(out[1], "weather: Weather forecast for a city");
    assert_eq!(out[3], "weather ran");
    let log = log.lock().unwrap();
    assert_eq!(log[0], ["clock", "tool_search"]);
    assert_eq!(log[1], ["clock", "weather", "tool_search"]);
}

#[tokio::test]
async fn summarization_replaces_old_turns_and_keeps_the_summary() {
    let model = ScriptedModel::new(vec![
        call_msg("", &[("c1", "clock", "{}")]),
        Message::assistant("It is noon.", vec![]),
    ]);
    let summarizer = ScriptedModel::new(vec![Message::assistant("user asked the time", vec![])]);
    let long = "x".repeat(400);
    let cfg = ChatModelAgentConfig::new("a", "", Arc::new(model.clone()))
        .with_tools(ToolsNode::new([named_tool("clock", "Current time")]))
        .with_middleware(Summarization::new(Arc::new(summarizer.clone())).with_budget(100, 30));
    let out = answer(Arc::new(ChatModelAgent::new(cfg).unwrap()), &long).await;
    assert_eq!(out.last().unwrap(), "It is noon.");
    // First call: under budget? No: 400 characters ≈ 104 tokens, summarised at once, but
    // nothing older than the recent part exists, so it is sent as is.
    let received = model.received.lock().unwrap();
    assert_eq!(received[0].len(), 1);
    // Second call: the long question is summarised; the call and its answer stay.
    let second: Vec<&str> = received[1].iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        second,
        [
            "Summary of the conversation so far:\nuser asked the time",
            "",
            "clock ran"
        ]
    );
    assert_eq!(summarizer.received.lock().unwrap().len(), 1);
}

/// Fails with `kind` the first `fails` calls, then answers `text`.
struct Flaky {
    fails: usize,
    kind: ErrorKind,
    calls: Arc<AtomicUsize>,
    text: &'static str,
}

impl ChatModel for Flaky {
    fn generate<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let r = if n < self.fails {
            Err(Error::new(self.kind, "flaky"))
        } else {
            Ok(Message::assistant(self.text, vec![]))
        };
        Box::pin(async move { r })
    }
    fn stream<'a>(
        &'a self,
        m: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(m, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Flaky {
            fails: self.fails,
            kind: self.kind,
            calls: self.calls.clone(),
            text: self.text,
        }))
    }
}

#[tokio::test]
async fn retry_then_failover_inside_the_loop() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        fails: 2,
        kind: ErrorKind::Transient,
        calls: calls.clone(),
        text: "ok",
    };
    let retry = ModelRetry {
        base_delay: Duration::from_millis(1),
        ..ModelRetry::default()
    };
    let cfg = ChatModelAgentConfig::new("a", "", Arc::new(flaky)).with_middleware(retry.clone());
    assert_eq!(
        answer(Arc::new(ChatModelAgent::new(cfg).unwrap()), "q").await,
        ["ok"]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Not retryable: no retry.
    let calls = Arc::new(AtomicUsize::new(0));
    let bad = Flaky {
        fails: 1,
        kind: ErrorKind::Auth,
        calls: calls.clone(),
        text: "ok",
    };
    let cfg = ChatModelAgentConfig::new("a", "", Arc::new(bad)).with_middleware(retry);
    let err = Runner::new(Arc::new(ChatModelAgent::new(cfg).unwrap()))
        .query("q")
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Failover: the primary refuses, the alternate answers and is tried first next time.
    let primary_calls = Arc::new(AtomicUsize::new(0));
    let primary = Flaky {
        fails: usize::MAX,
        kind: ErrorKind::Auth,
        calls: primary_calls.clone(),
        text: "",
    };
    let backup = Flaky {
        fails: 0,
        kind: ErrorKind::Transient,
        calls: Arc::default(),
        text: "from backup",
    };
    let cfg = ChatModelAgentConfig::new("a", "", Arc::new(primary))
        .with_middleware(ModelFailover::new(vec![Arc::new(backup)]));
    let agent: Arc<dyn Agent> = Arc::new(ChatModelAgent::new(cfg).unwrap());
    assert_eq!(answer(agent.clone(), "q").await, ["from backup"]);
    assert_eq!(answer(agent, "q").await, ["from backup"]);
    assert_eq!(
        primary_calls.load(Ordering::SeqCst),
        1,
        "the backup went first the second time"
    );
}

#[tokio::test]
async fn deep_agent_plans_delegates_and_keeps_files() {
    use eino::adk::filesystem::{FileBackend, MemoryFiles};
    use eino::adk::prebuilt::deep::{deep_agent, DeepAgentConfig, FileSpace};

    // One script for the deep agent and its general-purpose sub-agent (they share the model).
    let model = ScriptedModel::new(vec![
        call_msg(
            "",
            &[(
                "t1",
                "write_todos",
                r#"{"todos":[{"content":"collect facts","status":"in_progress"}]}"#,
            )],
        ),
        call_msg(
            "",
            &[(
                "k1",
                "task",
                r#"{"subagent_type":"general-purpose","description":"save the fact that water boils at 100 C in facts.md"}"#,
            )],
        ),
        call_msg(
            "",
            &[(
                "w1",
                "write_file",
                r#"{"path":"facts.md","content":"water boils at 100 C"}"#,
            )],
        ),
        Message::assistant("saved to facts.md", vec![]),
        call_msg("", &[("r1", "read_file", r#"{"path":"facts.md"}"#)]),
        Message::assistant("Water boils at 100 C.", vec![]),
    ]);
    let files = Arc::new(MemoryFiles::new());
    let mut cfg = DeepAgentConfig::new("deep", Arc::new(model.clone()));
    cfg.files = FileSpace::Backend(files.clone());
    let agent: Arc<dyn Agent> = Arc::new(deep_agent(cfg).unwrap());
    let events = Runner::new(agent)
        .query("When does water boil?")
        .collect()
        .await
        .unwrap();
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message(m) if m.role == eino::schema::Role::Tool => Some(m.content.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            "task list saved: 1 items, 1 open",
            "saved to facts.md",
            "     1\twater boils at 100 C"
        ]
    );
    assert_eq!(
        files.read("facts.md").await.unwrap(),
        "water boils at 100 C"
    );
    let last = events.last().unwrap();
    assert!(matches!(&last.kind, EventKind::Message(m) if m.content == "Water boils at 100 C."));
    // The sub-agent started from the task description alone (a fresh context).
    let received = model.received.lock().unwrap();
    let sub_first = &received[2];
    assert_eq!(
        sub_first
            .iter()
            .filter(|m| m.role == eino::schema::Role::User)
            .count(),
        1
    );
    assert!(sub_first
        .last()
        .unwrap()
        .content
        .starts_with("save the fact"));
}

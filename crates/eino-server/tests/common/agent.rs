//! Applications with tools: a scripted tool-calling model (the test is about the agent
//! loop, approvals, checkpoints and the HTTP API, not about what a model decides) and a
//! real webhook server on loopback that the `http` tools call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{FunctionCall, Message, Role, StreamReader, ToolCall, ToolInfo};
use eino::{Error, ErrorKind};
use eino_server::config::{AgentKind, Config};
use eino_server::config::{HttpToolConfig, ToolConfig};
use eino_server::registry::Registry;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{sse, TestServer};

/// Calls, in order, the tools whose names are words of the last user message, one per
/// round; then answers `tool said: <answers joined by " | ">`. Fails after a tool answer
/// while `fail_after_tool` is set.
#[derive(Clone, Default)]
pub struct ToolUser {
    tools: Vec<ToolInfo>,
    pub fail_after_tool: Arc<AtomicBool>,
}

impl ToolUser {
    fn answer(&self, msgs: &[Message]) -> eino::Result<Message> {
        let turn_start = msgs.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
        let user = &msgs[turn_start].content;
        let answers: Vec<&str> = msgs[turn_start..]
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.content.as_str())
            .collect();
        if !answers.is_empty() && self.fail_after_tool.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Transient, "upstream 503"));
        }
        let wanted: Vec<&ToolInfo> = user
            .split_whitespace()
            .filter_map(|w| self.tools.iter().find(|t| t.name == w))
            .collect();
        if let Some(tool) = wanted.get(answers.len()) {
            let call = ToolCall {
                index: Some(0),
                id: format!("call_{}", answers.len()),
                kind: "function".into(),
                function: FunctionCall {
                    name: tool.name.clone(),
                    arguments: json!({ "city": "Oslo", "invoice": "inv-7", "query": user })
                        .to_string(),
                },
                ..ToolCall::default()
            };
            return Ok(Message::assistant("", vec![call]));
        }
        if answers.is_empty() {
            return Ok(Message::assistant(format!("no tool for: {user}"), vec![]));
        }
        Ok(Message::assistant(
            format!("tool said: {}", answers.join(" | ")),
            vec![],
        ))
    }
}

impl ChatModel for ToolUser {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async move { self.answer(msgs) })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move {
            let full = self.answer(msgs)?;
            if !full.tool_calls.is_empty() {
                return Ok(StreamReader::from_vec(vec![full]));
            }
            let chunks = full
                .content
                .split_inclusive(' ')
                .map(|w| Message::assistant(w, vec![]))
                .collect();
            Ok(StreamReader::from_vec(chunks))
        })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Self {
            tools,
            fail_after_tool: self.fail_after_tool.clone(),
        }))
    }
}

/// The webhooks: `POST /weather` answers `sunny in <city>`, `POST /pay` answers
/// `paid <invoice>`; each counts its calls and keeps the last `x-api-key` header.
#[derive(Clone, Default)]
pub struct Webhooks {
    pub url: String,
    pub weather_calls: Arc<AtomicUsize>,
    pub pay_calls: Arc<AtomicUsize>,
    pub last_key: Arc<Mutex<Option<String>>>,
}

impl Webhooks {
    pub async fn start() -> Self {
        use axum::routing::post;
        let mut hooks = Webhooks::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        hooks.url = format!("http://{}", listener.local_addr().unwrap());
        let (w, p, k) = (
            hooks.weather_calls.clone(),
            hooks.pay_calls.clone(),
            hooks.last_key.clone(),
        );
        let app = axum::Router::new()
            .route(
                "/weather",
                post(
                    move |h: axum::http::HeaderMap, axum::Json(v): axum::Json<Value>| async move {
                        w.fetch_add(1, Ordering::SeqCst);
                        *k.lock().unwrap() =
                            h.get("x-api-key").map(|v| v.to_str().unwrap().to_string());
                        format!("sunny in {}", v["city"].as_str().unwrap_or("?"))
                    },
                ),
            )
            .route(
                "/pay",
                post(move |axum::Json(v): axum::Json<Value>| async move {
                    p.fetch_add(1, Ordering::SeqCst);
                    format!("paid {}", v["invoice"].as_str().unwrap_or("?"))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        hooks
    }
}

/// The environment variable the weather tool's secret header is read from.
pub const KEY_VAR: &str = "EINO_TEST_WEATHER_KEY";

/// Add model `tooluser` (a placeholder entry; the test registry supplies the fake), tools
/// `weather` (http) and `pay` (http, needs approval), and app `agent` (react).
pub fn configure(cfg: &mut Config, hooks: &Webhooks) {
    cfg.models.insert("tooluser".into(), super::placeholder());
    let http = |path: &str, secret: bool, approval: bool| ToolConfig {
        description: format!("Calls {path}"),
        parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        approval,
        http: Some(HttpToolConfig {
            url: format!("{}{path}", hooks.url),
            headers: BTreeMap::new(),
            secret_headers: if secret {
                BTreeMap::from([("x-api-key".to_string(), KEY_VAR.to_string())])
            } else {
                BTreeMap::new()
            },
            timeout_secs: Some(5),
        }),
        knowledge_search: None,
        mcp: None,
        allow: Vec::new(),
    };
    cfg.tools
        .insert("weather".into(), http("/weather", true, false));
    cfg.tools.insert("pay".into(), http("/pay", false, true));
    let mut app = super::app("tooluser", &[], &[]);
    app.agent = AgentKind::React;
    app.tools = vec!["weather".into(), "pay".into()];
    cfg.applications.insert("agent".into(), app);
}

/// A server with [`configure`]d tools; `tweak` changes the config further.
pub async fn server(
    hooks: &Webhooks,
    model: &ToolUser,
    tweak: impl FnOnce(&mut Config),
) -> TestServer {
    // Safe here: every test of this binary sets the same value before any server reads it.
    std::env::set_var(KEY_VAR, "s3cret");
    let hooks = hooks.clone();
    let model = model.clone();
    TestServer::start(
        move |c| {
            configure(c, &hooks);
            tweak(c);
        },
        move |r: &mut Registry| r.insert_model("tooluser", Arc::new(model)),
    )
    .await
}

async fn chat(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/api/v1/chat", body).await
}

async fn resume(s: &TestServer, id: &str, decisions: Value) -> (u16, Value) {
    s.post(
        &format!("/api/v1/runs/{id}/resume"),
        json!({ "decisions": decisions }),
    )
    .await
}

/// The whole approval flow against `s` (used with SQLite and with PostgreSQL).
pub async fn approval_flow(s: &TestServer, hooks: &Webhooks, model: &ToolUser) {
    // A tool without approval runs at once; its secret header came from the environment.
    let (status, out) = chat(s, json!({"app": "agent", "message": "weather please"})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["message"]["content"], "tool said: sunny in Oslo");
    assert_eq!(hooks.last_key.lock().unwrap().as_deref(), Some("s3cret"));
    let sid = out["session_id"].as_str().unwrap().to_string();
    let (_, run) = s
        .get(&format!("/api/v1/runs/{}", out["run_id"].as_str().unwrap()))
        .await;
    let nodes: Vec<&str> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(
        nodes.contains(&"agent") && nodes.contains(&"weather"),
        "{nodes:?}"
    );

    // A tool that needs approval stops the run: 202, nothing paid, the turn not stored.
    let (status, out) = chat(
        s,
        json!({"app": "agent", "session_id": sid, "message": "pay it"}),
    )
    .await;
    assert_eq!(status, 202, "{out}");
    assert_eq!(out["status"], "interrupted");
    assert_eq!(out["session_id"], sid.as_str());
    assert_eq!(out["pending"][0]["tool"], "pay");
    assert_eq!(out["pending"][0]["arguments"]["invoice"], "inv-7");
    let id = out["run_id"].as_str().unwrap().to_string();
    let call = out["pending"][0]["call_id"].as_str().unwrap().to_string();
    assert_eq!(hooks.pay_calls.load(Ordering::SeqCst), 0);
    let (_, listed) = s.get("/api/v1/runs/interrupted").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["run_id"], id.as_str());
    let (_, session) = s.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(session["messages"].as_array().unwrap().len(), 2);
    assert!(s.state.checkpoints.list().await.unwrap().contains(&id));

    // Bad decisions are 400s and leave the run waiting.
    let (status, err) = resume(s, &id, json!({})).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains(&call));
    let (status, _) = resume(
        s,
        &id,
        json!({ call.as_str(): {"approved": true}, "call_9": {"approved": true} }),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = resume(s, &id, json!({ call.as_str(): {"approve": "yes"} })).await;
    assert_eq!(status, 400);

    // A failure while resuming puts the run back: nothing is lost, it can be resumed again.
    model.fail_after_tool.store(true, Ordering::SeqCst);
    let (status, err) = resume(s, &id, json!({ call.as_str(): {"approved": true} })).await;
    assert_eq!(status, 502, "{err}");
    let (status, _) = s.get(&format!("/api/v1/runs/interrupted/{id}")).await;
    assert_eq!(status, 200);
    model.fail_after_tool.store(false, Ordering::SeqCst);
    let paid_before = hooks.pay_calls.load(Ordering::SeqCst);

    // Approved: the call runs, the answer and the turn's user message are stored together.
    let (status, out) = resume(s, &id, json!({ call.as_str(): {"approved": true} })).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["message"]["content"], "tool said: paid inv-7");
    assert_eq!(hooks.pay_calls.load(Ordering::SeqCst), paid_before + 1);
    let (_, session) = s.get(&format!("/api/v1/sessions/{sid}")).await;
    let contents: Vec<&str> = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents[2..], ["pay it", "tool said: paid inv-7"]);
    let (status, _) = resume(s, &id, json!({ call.as_str(): {"approved": true} })).await;
    assert_eq!(status, 404, "a finished run cannot be resumed twice");
    assert!(!s.state.checkpoints.list().await.unwrap().contains(&id));
    let (_, listed) = s.get("/api/v1/runs/interrupted").await;
    assert!(listed["data"].as_array().unwrap().is_empty());

    // Denied: the tool does not run; the model hears why.
    let (_, out) = chat(s, json!({"app": "agent", "message": "pay"})).await;
    let id = out["run_id"].as_str().unwrap().to_string();
    let paid = hooks.pay_calls.load(Ordering::SeqCst);
    let (status, out) = resume(
        s,
        &id,
        json!({"call_0": {"approved": false, "reason": "over budget"}}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let text = out["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("did not approve") && text.contains("over budget"),
        "{text}"
    );
    assert_eq!(hooks.pay_calls.load(Ordering::SeqCst), paid);

    // Two approvals in two rounds: the resumed run stops again with the next call.
    let (_, out) = chat(s, json!({"app": "agent", "message": "pay pay"})).await;
    let id = out["run_id"].as_str().unwrap().to_string();
    let (status, again) = resume(s, &id, json!({"call_0": {"approved": true}})).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["run_id"], id.as_str());
    assert_eq!(again["pending"][0]["call_id"], "call_1");
    let (status, out) = resume(s, &id, json!({"call_1": {"approved": true}})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out["message"]["content"],
        "tool said: paid inv-7 | paid inv-7"
    );

    // Streaming: the first round runs, the approval stops the stream with an event; the
    // streamed resume ends with `done`.
    let body = s
        .post_text(
            "/api/v1/chat",
            json!({"app": "agent", "message": "weather pay", "stream": true}),
        )
        .await;
    let events = sse(&body);
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0].0, "interrupted");
    let stopped: Value = serde_json::from_str(&events[0].1).unwrap();
    let id = stopped["run_id"].as_str().unwrap().to_string();
    let body = s
        .post_text(
            &format!("/api/v1/runs/{id}/resume"),
            json!({"decisions": {"call_1": {"approved": true}}, "stream": true}),
        )
        .await;
    let events = sse(&body);
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{body}");
    let done: Value = serde_json::from_str(done).unwrap();
    assert_eq!(
        done["message"]["content"],
        "tool said: sunny in Oslo | paid inv-7"
    );

    // Giving up removes the record and the checkpoint.
    let (_, out) = chat(s, json!({"app": "agent", "message": "pay"})).await;
    let id = out["run_id"].as_str().unwrap().to_string();
    let r = s
        .http
        .delete(s.url(&format!("/api/v1/runs/interrupted/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = s.get(&format!("/api/v1/runs/interrupted/{id}")).await;
    assert_eq!(status, 404);
    assert!(!s.state.checkpoints.list().await.unwrap().contains(&id));

    // The OpenAI-compatible API has no sessions: a 409 says where to decide.
    let (status, err) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "agent", "messages": [{"role": "user", "content": "pay"}]}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "interrupted");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/resume"));
    let (_, listed) = s.get("/api/v1/runs/interrupted").await;
    assert_eq!(listed["data"][0]["session_id"], Value::Null);
    assert_eq!(listed["data"][0]["pending"][0]["tool"], "pay");
}

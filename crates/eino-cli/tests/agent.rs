//! `eino chat` with an application whose tool needs approval, end to end: `eino serve`
//! (the real binary) with the OpenAI-compatible provider pointed at a fake upstream that
//! calls the tool and then answers with what it returned (the test is about the agent
//! loop, the approval prompt and the resume, not about a model), and a real webhook.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

/// The upstream's answer: a call of `pay` first, then the tool's answer quoted.
fn answer(req: &Value) -> (Option<String>, Option<Value>) {
    let last = req["messages"].as_array().and_then(|m| m.last()).cloned();
    match last {
        Some(m) if m["role"] == "tool" => (
            Some(format!("Paid: {}", m["content"].as_str().unwrap_or(""))),
            None,
        ),
        _ => (
            None,
            Some(json!({"index": 0, "id": "call_1", "type": "function",
                        "function": {"name": "pay", "arguments": "{\"invoice\":\"inv-7\"}"}})),
        ),
    }
}

async fn completions(Json(req): Json<Value>) -> Response {
    let (text, call) = answer(&req);
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    if req["stream"] != true {
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(c) = call {
            message["tool_calls"] = json!([c]);
        }
        return Json(
            json!({"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}),
        )
        .into_response();
    }
    let mut delta = json!({"role": "assistant"});
    match (text, call) {
        (Some(t), _) => delta["content"] = json!(t),
        (None, Some(c)) => delta["tool_calls"] = json!([c]),
        (None, None) => {}
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        Event::default().data(
            json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string(),
        )
    };
    let events = vec![
        chunk(delta, None),
        chunk(json!({}), Some(finish)),
        Event::default().data("[DONE]"),
    ];
    Sse::new(futures_util::stream::iter(
        events.into_iter().map(Ok::<_, std::convert::Infallible>),
    ))
    .into_response()
}

/// The fake upstream and the webhook on one loopback port; counts the webhook's calls.
fn start_fakes() -> (String, Arc<AtomicUsize>) {
    let paid = Arc::new(AtomicUsize::new(0));
    let p = paid.clone();
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .route(
            "/pay",
            post(move |Json(v): Json<Value>| async move {
                p.fetch_add(1, Ordering::SeqCst);
                format!("paid {}", v["invoice"].as_str().unwrap_or("?"))
            }),
        );
    (common::serve_router(app), paid)
}

fn chat(url: &str, stdin: &str) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eino"))
        .args(["chat", "--app", "agent", "--url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "eino chat: {o}\n{e}");
    (o, e)
}

#[test]
fn eino_chat_asks_before_a_tool_runs_and_resumes() {
    let (fakes, paid) = start_fakes();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eino.yaml");
    std::fs::write(
        &config,
        format!(
            "models:\n  up: {{ provider: openai, model: fake, base_url: \"{fakes}/v1\", max_retries: 0 }}\n\
             embedders: {{}}\n\
             tools:\n  pay:\n    description: Pay an invoice\n    approval: true\n    \
             parameters: {{ type: object, properties: {{ invoice: {{ type: string }} }} }}\n    \
             http: {{ url: \"{fakes}/pay\" }}\n\
             applications:\n  agent: {{ model: up, agent: react, tools: [pay] }}\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let (_server, url) = common::serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );

    // Allowed: the webhook runs once and the answer quotes it.
    let (out, err) = chat(&url, "pay the invoice\ny\n");
    assert!(err.contains("wants to call pay"), "{err}");
    assert!(out.contains("Paid: paid inv-7"), "{out}\n{err}");
    assert_eq!(paid.load(Ordering::SeqCst), 1);

    // Denied: the webhook does not run; the model hears that the user declined.
    let (out, err) = chat(&url, "pay the invoice\nn\n");
    assert!(out.contains("did not approve"), "{out}\n{err}");
    assert_eq!(paid.load(Ordering::SeqCst), 1);
}

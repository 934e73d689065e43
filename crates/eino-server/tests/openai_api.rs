//! The OpenAI-compatible API: shapes of completions and chunks, tools passthrough, usage,
//! embeddings, model list, and JSON 4xx errors for bad requests (fake models, see common).

mod common;

use common::{sse, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn models_list_applications_models_and_embedders() {
    let s = TestServer::default().await;
    let (status, body) = s.get("/v1/models").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["assistant", "resilient", "echo", "flaky"]);
    assert_eq!(body["object"], "list");
}

#[tokio::test]
async fn completion_shape_usage_and_run_header() {
    let s = TestServer::default().await;
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let run_id = r.headers()["x-eino-run-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    // System prompt + user: two messages reach the model; max_tokens passes through.
    assert_eq!(choice["message"]["content"], "echo(2): hi max=9");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    );
    // The run was recorded with its nodes and tokens.
    let (status, run) = s.get(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "ok");
    assert_eq!(run["prompt_tokens"], 10);
    let names: Vec<&str> = run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"retrieve") && names.contains(&"model"),
        "{names:?}"
    );
    assert!(
        names.contains(&"chat") && !names.contains(&"rag"),
        "plain-chat route: {names:?}"
    );
}

#[tokio::test]
async fn streaming_chunks_finish_usage_and_done() {
    let s = TestServer::default().await;
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(
            &json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|ch| ch["delta"]["content"].as_str())
        })
        .collect();
    assert_eq!(text, "echo(1): one two three");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 15);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
}

#[tokio::test]
async fn tools_pass_through_to_raw_models_streamed_and_not() {
    let s = TestServer::default().await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "d",
                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "echo", "tools": tools, "tool_choice": "auto",
              "messages": [{"role": "user", "content": "find x"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], r#"{"q":"find x"}"#);
    assert_eq!(call["type"], "function");
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "echo", "tools": tools, "stream": true,
                      "messages": [{"role": "user", "content": "find y"}]}))
        .send()
        .await
        .unwrap();
    let events = sse(&r.text().await.unwrap());
    let delta = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("a tool-call delta");
    assert_eq!(delta["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    // A tool message answering the call is accepted on the next turn.
    let (status, _) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "echo", "messages": [
            {"role": "user", "content": "find x"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "x is 1"}]}),
        )
        .await;
    assert_eq!(status, 200);
    // Applications do not take client tools.
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "assistant", "tools": tools,
              "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("application"));
}

#[tokio::test]
async fn content_parts_and_developer_role_are_accepted() {
    let s = TestServer::default().await;
    let (status, body) = s
        .post("/v1/chat/completions", json!({"model": "echo", "messages": [
            {"role": "developer", "content": "be nice"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "unknown_field": {"ignored": true}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "echo(2): ab");
}

#[tokio::test]
async fn bad_requests_get_json_4xx_never_500() {
    let s = TestServer::default().await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            400,
            "model",
        ),
        (json!({"model": "echo"}), 400, "messages"),
        (json!({"model": "echo", "messages": []}), 400, "empty"),
        (
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            404,
            "does not exist",
        ),
        (
            json!({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}),
            400,
            "role",
        ),
        (
            json!({"model": "echo", "messages": [{"role": "user", "content": 5}]}),
            400,
            "content",
        ),
        (
            json!({"model": "echo", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            400,
            "not supported",
        ),
        (
            json!({"model": "echo", "messages": [{"role": "tool", "content": "x"}]}),
            400,
            "tool_call_id",
        ),
        (
            json!({"model": "echo", "temperature": 7, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "temperature",
        ),
        (
            json!({"model": "echo", "n": 3, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "n = 1",
        ),
        (
            json!({"model": "echo", "stop": 5, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "stop",
        ),
        (
            json!({"model": "echo", "tool_choice": "sometimes", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "tool_choice",
        ),
        (
            json!({"model": "echo", "tools": [{"type": "retrieval", "function": {"name": "x"}}], "messages": [{"role": "user", "content": "x"}]}),
            400,
            "function tools",
        ),
        (json!([1, 2]), 400, ""),
    ];
    for (body, want, says) in cases {
        let (status, out) = s.post("/v1/chat/completions", body.clone()).await;
        assert_eq!(status, want, "{body} -> {out}");
        let msg = out["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{body} -> {out}"));
        assert!(msg.contains(says), "{body} -> {msg}");
        assert!(out["error"]["type"].is_string());
    }
    // Not JSON at all, and a wrong content type.
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .body("{bad")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Too large.
    let big = "x".repeat(5 << 20);
    let r = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].is_string());
}

#[tokio::test]
async fn embeddings_shape_and_errors() {
    use eino::component::{EmbedOptions, Embedder};
    struct Two;
    impl Embedder for Two {
        fn embed<'a>(
            &'a self,
            t: &'a [String],
            _: &'a EmbedOptions,
        ) -> futures_util::future::BoxFuture<'a, eino::Result<Vec<Vec<f32>>>> {
            Box::pin(async move { Ok(t.iter().map(|s| vec![s.len() as f32, 1.0]).collect()) })
        }
    }
    let s = TestServer::start(
        |_| {},
        |r| {
            r.embedders.insert("tiny".into(), std::sync::Arc::new(Two));
        },
    )
    .await;
    let (status, body) = s
        .post(
            "/v1/embeddings",
            json!({"model": "tiny", "input": ["ab", "abc"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][1]["embedding"], json!([3.0, 1.0]));
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["object"], "list");
    let (status, _) = s
        .post("/v1/embeddings", json!({"model": "tiny", "input": "one"}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .post("/v1/embeddings", json!({"model": "tiny", "input": []}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/embeddings", json!({"model": "tiny", "input": [1]}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/embeddings", json!({"model": "nope", "input": "x"}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_response_cache_answers_identical_requests_to_raw_models() {
    use std::sync::atomic::Ordering;
    let s = TestServer::start(|c| c.cache.enabled = true, |_| {}).await;
    let body = json!({"model": "echo", "messages": [{"role": "user", "content": "same"}]});
    let send = |b: Value| {
        let req = s.http.post(s.url("/v1/chat/completions")).json(&b);
        async move { req.send().await.unwrap() }
    };
    let first = send(body.clone()).await;
    assert!(first.headers().get("x-eino-cache").is_none());
    let first: Value = first.json().await.unwrap();
    let second = send(body.clone()).await;
    assert_eq!(second.headers()["x-eino-cache"], "hit");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["choices"], second["choices"]);
    assert_ne!(first["id"], second["id"], "a fresh id per response");
    assert_eq!(s.echo.calls.load(Ordering::SeqCst), 1, "the model ran once");
    // A different request, a stream, and an application all reach the model.
    send(json!({"model": "echo", "messages": [{"role": "user", "content": "other"}]})).await;
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    send(stream).await.text().await.unwrap();
    send(json!({"model": "assistant", "messages": [{"role": "user", "content": "same"}]})).await;
    send(json!({"model": "assistant", "messages": [{"role": "user", "content": "same"}]})).await;
    assert_eq!(s.echo.calls.load(Ordering::SeqCst), 5);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"eino_cache_requests_total{result="hit"}"#),
        "{metrics}"
    );
}

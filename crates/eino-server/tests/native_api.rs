//! The native API and the production middleware: sessions with persisted history, tenant
//! isolation, API keys and JWT, rate limits, request ids, trace context, headers, metrics,
//! health, OpenAPI, bind policy, graceful shutdown (fake models, see common).

mod common;

use common::{sse, with_keys, TestServer};
use eino_server::config::JwtConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn sessions_keep_history_and_commit_turns() {
    let s = TestServer::default().await;
    let (status, first) = s.post("/api/v1/chat", json!({"message": "hello"})).await;
    assert_eq!(status, 200, "{first}");
    let sid = first["session_id"].as_str().unwrap().to_string();
    // system + user
    assert_eq!(first["message"]["content"], "echo(2): hello");
    let (_, second) = s
        .post(
            "/api/v1/chat",
            json!({"message": "again", "session_id": sid}),
        )
        .await;
    // system + user + assistant + user: the history was loaded.
    assert_eq!(second["message"]["content"], "echo(4): again");
    let (_, got) = s.get(&format!("/api/v1/sessions/{sid}")).await;
    let roles: Vec<&str> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(got["session"]["title"], "hello");
    let (_, list) = s.get("/api/v1/sessions").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Streaming continues the same session; `done` comes after the turn is stored.
    let r = s
        .http
        .post(s.url("/api/v1/chat"))
        .json(&json!({"message": "third", "session_id": sid, "stream": true}))
        .send()
        .await
        .unwrap();
    let events = sse(&r.text().await.unwrap());
    assert_eq!(events[0].0, "sources");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "echo(6): third");
    assert_eq!(events.last().unwrap().0, "done");
    let (_, got) = s.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(got["messages"].as_array().unwrap().len(), 6);

    let r = s
        .http
        .delete(s.url(&format!("/api/v1/sessions/{sid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = s.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(status, 404);
    let (status, body) = s
        .post("/api/v1/chat", json!({"message": "x", "session_id": sid}))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn native_chat_rejects_bad_input() {
    let s = TestServer::default().await;
    for (body, want) in [
        (json!({"message": "  "}), 400),
        (json!({"message": "x", "app": "nope"}), 404),
        (json!({"nothing": 1}), 400),
        (json!({"message": "x", "session_id": "not-a-session"}), 404),
    ] {
        let (status, out) = s.post("/api/v1/chat", body.clone()).await;
        assert_eq!(status, want, "{body} -> {out}");
        assert!(out["error"]["message"].is_string());
    }
    let (_, first) = s.post("/api/v1/chat", json!({"message": "hi"})).await;
    let (status, out) = s
        .post(
            "/api/v1/chat",
            json!({"message": "x", "app": "resilient", "session_id": first["session_id"]}),
        )
        .await;
    assert_eq!(status, 400, "a session belongs to one application: {out}");
}

#[tokio::test]
async fn api_keys_give_tenants_that_cannot_see_each_other() {
    let s = TestServer::start(with_keys, |_| {}).await;
    let r = s.http.get(s.url("/api/v1/sessions")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Bearer"));
    let r = s
        .http
        .get(s.url("/v1/models"))
        .bearer_auth("wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let chat = |key: &'static str, body: Value| {
        let req = s
            .http
            .post(s.url("/api/v1/chat"))
            .bearer_auth(key)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, a) = chat(
        "key-of-alice-0123456789",
        json!({"message": "secret of alice"}),
    )
    .await;
    assert_eq!(status, 200);
    let sid = a["session_id"].as_str().unwrap();
    let get = |key: &'static str, path: String| {
        let req = s.http.get(s.url(&path)).bearer_auth(key);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        get("key-of-alice-0123456789", format!("/api/v1/sessions/{sid}"))
            .await
            .0,
        200
    );
    assert_eq!(
        get("key-of-bob-0123456789", format!("/api/v1/sessions/{sid}"))
            .await
            .0,
        404
    );
    let (_, bobs) = get("key-of-bob-0123456789", "/api/v1/sessions".into()).await;
    assert_eq!(bobs["data"], json!([]));
    let (status, _) = chat(
        "key-of-bob-0123456789",
        json!({"message": "x", "session_id": sid}),
    )
    .await;
    assert_eq!(status, 404, "bob cannot continue alice's session");
    let run = a["run_id"].as_str().unwrap();
    assert_eq!(
        get("key-of-bob-0123456789", format!("/api/v1/runs/{run}"))
            .await
            .0,
        404
    );
    assert_eq!(
        get("key-of-alice-0123456789", format!("/api/v1/runs/{run}"))
            .await
            .0,
        200
    );
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn jwt_hs256_only_with_expiry() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    // SAFETY of the test: the variable name is unique to this test.
    std::env::set_var("EINO_TEST_JWT_SECRET_1", secret);
    let s = TestServer::start(
        |c| {
            c.auth.jwt = Some(JwtConfig {
                secret_env: "EINO_TEST_JWT_SECRET_1".into(),
                issuer: None,
                audience: None,
                tenant_claim: None,
                tenant_from_sub: false,
            })
        },
        |_| {},
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |claims: Value, alg| {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let call = |t: String| {
        let req = s.http.get(s.url("/api/v1/sessions")).bearer_auth(t);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let good = token(
        json!({"sub": "u1", "tenant": "acme", "exp": now + 600}),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(call(good).await, 200);
    let expired = token(
        json!({"sub": "u1", "tenant": "acme", "exp": now - 600}),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(call(expired).await, 401);
    let no_exp = token(
        json!({"sub": "u1", "tenant": "acme"}),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(call(no_exp).await, 401);
    // `nbf` is honoured (with the 30 s leeway of `exp`).
    let not_yet = token(
        json!({"sub": "u1", "tenant": "acme", "exp": now + 600, "nbf": now + 300}),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(call(not_yet).await, 401, "nbf in the future");
    let already = token(
        json!({"sub": "u1", "tenant": "acme", "exp": now + 600, "nbf": now - 10}),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(call(already).await, 200);
    // Without a tenant claim the subject is not taken as the tenant (opt-in only).
    let sub_only = token(
        json!({"sub": "acme", "exp": now + 600}),
        jsonwebtoken::Algorithm::HS256,
    );
    let resp = s
        .http
        .get(s.url("/api/v1/sessions"))
        .bearer_auth(sub_only)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant"),
        "{body}"
    );
    let other_alg = token(
        json!({"sub": "u1", "exp": now + 600}),
        jsonwebtoken::Algorithm::HS512,
    );
    assert_eq!(call(other_alg).await, 401, "algorithm pinned to HS256");
    let forged = encode(
        &Header::default(),
        &json!({"sub": "u", "exp": now + 600}),
        &EncodingKey::from_secret(b"another-secret-0123456789-0123456789").unwrap(),
    )
    .unwrap();
    assert_eq!(call(forged).await, 401);
    // `alg: none` with an empty signature.
    let none = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(json!({"sub": "u", "exp": now + 600}).to_string().as_bytes())
    );
    assert_eq!(call(none).await, 401);
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn rate_limit_per_key_with_retry_after() {
    let s = TestServer::start(
        |c| {
            with_keys(c);
            c.limits.requests_per_minute = 60;
            c.limits.burst = 3;
        },
        |_| {},
    )
    .await;
    let call = |key: &'static str| {
        let req = s.http.get(s.url("/v1/models")).bearer_auth(key);
        async move { req.send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(call("key-of-alice-0123456789").await.status(), 200);
    }
    let limited = call("key-of-alice-0123456789").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_error"
    );
    assert_eq!(
        call("key-of-bob-0123456789").await.status(),
        200,
        "bob has his own bucket"
    );
}

#[tokio::test]
async fn request_ids_trace_context_and_security_headers() {
    let s = TestServer::default().await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = s
        .http
        .get(s.url("/v1/models"))
        .header("traceparent", parent)
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["x-request-id"], "req-123");
    let tp = h["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "trace id kept: {tp}"
    );
    assert!(!tp.contains("00f067aa0ba902b7"), "a new span id: {tp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    // A malformed traceparent starts a new trace; every response gets a request id.
    let r = s
        .http
        .get(s.url("/health"))
        .header("traceparent", "garbage")
        .send()
        .await
        .unwrap();
    let tp = r.headers()["traceparent"].to_str().unwrap().to_string();
    let (trace, span) = eino_server::telemetry::parse_traceparent(&tp).unwrap();
    assert_eq!(tp, format!("00-{trace}-{span}-01"));
    assert!(!r.headers()["x-request-id"].is_empty());
    assert!(eino_server::telemetry::parse_traceparent(
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    )
    .is_none());
    assert!(eino_server::telemetry::parse_traceparent(
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
    )
    .is_none());
}

#[tokio::test]
async fn health_ready_metrics_openapi_and_json_404() {
    let s = TestServer::default().await;
    assert_eq!(s.get("/health").await, (200, json!({"status": "ok"})));
    let (status, ready) = s.get("/ready").await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));
    s.post(
        "/v1/chat/completions",
        json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let text = s.metrics().await;
    for metric in [
        "http_requests_total",
        "http_request_duration_seconds",
        "eino_component_calls_total",
        "eino_tokens_total",
        "eino_runs_total",
        "eino_ready 1",
        "eino_build_info{version=",
    ] {
        assert!(text.contains(metric), "{metric} missing in:\n{text}");
    }
    assert!(text.contains(r#"route="/v1/chat/completions""#));
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented endpoint is routed (anything else is a JSON 404).
    for e in eino_server::api::openapi::ENDPOINTS {
        let (method, path) = (&e.method, e.path);
        let concrete = path
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{source}", "x");
        let req = match *method {
            "get" => s.http.get(s.url(&concrete)),
            "post" => s.http.post(s.url(&concrete)).json(&json!({})),
            _ => s.http.delete(s.url(&concrete)),
        };
        let r = req.send().await.unwrap();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["message"], "no such endpoint; see /openapi.json",
            "{method} {path}"
        );
    }
    let (status, body) = s.get("/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn openapi_describes_every_route_with_its_request_types() {
    let doc = eino_server::api::openapi::document();
    // Every path the router serves (its one table, in http.rs) is described.
    let router = include_str!("../src/router.rs");
    let described: Vec<&str> = eino_server::api::openapi::ENDPOINTS
        .iter()
        .map(|e| e.path)
        .collect();
    let mut routes = 0;
    for part in router.split(".route(").skip(1) {
        let path = part.trim_start().trim_start_matches('"');
        let path = &path[..path.find('"').unwrap()];
        assert!(described.contains(&path), "{path} is not in /openapi.json");
        routes += 1;
    }
    assert!(routes >= 20, "found {routes} routes");
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => schema.clone(),
        }
    };
    let body = |path: &str, method: &str| {
        resolve(&op(path, method)["requestBody"]["content"]["application/json"]["schema"])
    };
    let chat = body("/v1/chat/completions", "post");
    assert!(chat["properties"]["messages"].is_object(), "{chat}");
    assert!(chat["required"]
        .as_array()
        .unwrap()
        .contains(&json!("model")));
    assert!(body("/api/v1/chat", "post")["properties"]["message"].is_object());
    assert!(body("/api/v1/runs/{id}/resume", "post")["properties"]["decisions"].is_object());
    assert!(
        body("/api/v1/knowledge-bases/{name}/search", "post")["properties"]["top_k"].is_object()
    );
    let upload = op("/api/v1/knowledge-bases/{name}/documents", "post");
    assert!(upload["requestBody"]["content"]["multipart/form-data"].is_object());
    let limit = op("/api/v1/sessions", "get")["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .cloned()
        .expect("?limit= described");
    assert_eq!(limit["in"], "query");
    // Probes and metrics need no key; the API does.
    for public in ["/health", "/ready", "/metrics", "/openapi.json"] {
        assert_eq!(op(public, "get")["security"], json!([]), "{public}");
    }
    assert!(op("/v1/models", "get")["security"].is_null());
    assert_eq!(doc["security"], json!([{"bearer": []}]));
}

#[tokio::test]
async fn application_graph_as_json_and_mermaid() {
    let s = TestServer::default().await;
    let (status, g) = s.get("/api/v1/applications/assistant/graph").await;
    assert_eq!(status, 200);
    let mermaid = g["mermaid"].as_str().unwrap();
    assert!(mermaid.starts_with("flowchart TD"));
    assert!(
        mermaid.contains("start --> retrieve") && mermaid.contains("model --> end"),
        "{mermaid}"
    );
    assert!(g["topology"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "branch"));
    assert_eq!(s.get("/api/v1/applications/nope/graph").await.0, 404);
    let (_, apps) = s.get("/api/v1/applications").await;
    assert_eq!(apps["data"][1]["fallbacks"], json!(["echo"]));
}

#[test]
fn public_bind_needs_auth() {
    let public: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let err = eino_server::http::check_bind(public, false).unwrap_err();
    assert!(
        err.message.contains("refusing to listen on 0.0.0.0:8080"),
        "{}",
        err.message
    );
    assert!(eino_server::http::check_bind(public, true).is_ok());
    assert!(eino_server::http::check_bind("127.0.0.1:8080".parse().unwrap(), false).is_ok());
    assert!(eino_server::http::check_bind("[::1]:8080".parse().unwrap(), false).is_ok());
}

#[tokio::test]
async fn graceful_shutdown_lets_an_open_stream_finish() {
    graceful_shutdown_case(false).await;
}

/// The same on one shared work-stealing runtime instead of connection threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_an_open_stream_finish_work_stealing() {
    graceful_shutdown_case(true).await;
}

async fn graceful_shutdown_case(work_stealing: bool) {
    use std::sync::Arc;
    // A model whose stream takes a while: shutdown starts in the middle of it.
    struct Slow;
    impl eino::component::ChatModel for Slow {
        fn generate<'a>(
            &'a self,
            _: &'a [eino::schema::Message],
            _: &'a eino::component::ChatOptions,
        ) -> futures_util::future::BoxFuture<'a, eino::Result<eino::schema::Message>> {
            Box::pin(async { Ok(eino::schema::Message::assistant("x", vec![])) })
        }
        fn stream<'a>(
            &'a self,
            _: &'a [eino::schema::Message],
            _: &'a eino::component::ChatOptions,
        ) -> futures_util::future::BoxFuture<
            'a,
            eino::Result<eino::schema::StreamReader<eino::schema::Message>>,
        > {
            Box::pin(async {
                let (tx, rx) = eino::schema::pipe(4);
                tokio::spawn(async move {
                    for w in ["a ", "b ", "c"] {
                        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                        let _ = tx.send(eino::schema::Message::assistant(w, vec![])).await;
                    }
                });
                Ok(rx)
            })
        }
        fn with_tools(
            &self,
            _: Vec<eino::schema::ToolInfo>,
        ) -> eino::Result<Arc<dyn eino::component::ChatModel>> {
            Ok(Arc::new(Slow))
        }
    }
    let mut s = TestServer::start(
        |c| {
            c.server.work_stealing = work_stealing;
            c.models.insert("slow".into(), c.models["echo"].clone());
        },
        |r| r.insert_model("slow", Arc::new(Slow)),
    )
    .await;
    let resp = s
        .http
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    s.stop();
    let body = resp.text().await.unwrap();
    assert!(body.contains("[DONE]"), "the stream finished: {body}");
    let text: String = sse(&body)
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"]
                .get(0)
                .and_then(|ch| ch["delta"]["content"].as_str())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "a b c");
    let served = s.task.take().unwrap().await.unwrap();
    assert!(served.is_ok());
    // New connections are refused after shutdown.
    assert!(s.http.get(s.url("/health")).send().await.is_err());
}

#[tokio::test]
async fn run_sampling_keeps_failures_and_drops_unsampled_successes() {
    let s = TestServer::start(|c| c.telemetry.record_runs_sample = 0.0, |_| {}).await;
    let (status, ok) = s.post("/api/v1/chat", json!({"message": "hello"})).await;
    assert_eq!(status, 200, "{ok}");
    s.flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, _) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "flaky", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 502);
    let (_, runs) = s.get("/api/v1/runs").await;
    let runs = runs["data"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        (runs[0]["app"].as_str(), runs[0]["status"].as_str()),
        (Some("flaky"), Some("error"))
    );
    let (status, _) = s
        .get(&format!("/api/v1/runs/{}", ok["run_id"].as_str().unwrap()))
        .await;
    assert_eq!(
        status, 404,
        "a successful run outside the sample is not kept"
    );
    // Everything is in the sample at 1 (the default): see sessions_keep_history_and_commit_turns.
}

//! Breaker and fallback against a fake OpenAI-compatible upstream on loopback that fails,
//! stalls and recovers; the real `OpenAiChatModel` client talks to it over HTTP.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Json;
use common::TestServer;
use eino_openai::{OpenAiChatModel, OpenAiConfig};
use eino_server::resilience::Breaker;
use serde_json::{json, Value};

const OK: u8 = 0;
const FAIL: u8 = 1;
const STALL: u8 = 2;

struct Upstream {
    url: String,
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let mode = Arc::new(AtomicU8::new(OK));
    let hits = Arc::new(AtomicUsize::new(0));
    let (m, h) = (mode.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |Json(_): Json<Value>| {
            let (m, h) = (m.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                match m.load(Ordering::SeqCst) {
                    FAIL => (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": {"message": "overloaded"}}))),
                    STALL => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        (axum::http::StatusCode::OK, Json(json!({})))
                    }
                    _ => (
                        axum::http::StatusCode::OK,
                        Json(json!({"id": "x", "object": "chat.completion", "model": "up",
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": "from upstream"}}]})),
                    ),
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    Upstream { url, mode, hits }
}

async fn ask(s: &TestServer) -> String {
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "resilient", "messages": [{"role": "user", "content": "q"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn fails_over_opens_the_breaker_and_recovers() {
    let up = upstream().await;
    let mut cfg = OpenAiConfig::new("up")
        .with_base_url(up.url.clone())
        .with_max_retries(0);
    cfg.timeout = Duration::from_millis(400);
    let client = Arc::new(OpenAiChatModel::new(cfg).unwrap());
    let s = TestServer::start(
        |c| {
            c.models.insert("up".into(), c.models["echo"].clone());
            c.applications
                .insert("resilient".into(), common::app("up", &["echo"], &[]));
        },
        move |r| {
            r.insert_model_with_breaker("up", client, Breaker::new(2, Duration::from_millis(500)))
        },
    )
    .await;

    assert_eq!(ask(&s).await, "from upstream");
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);

    // Failing upstream: the fallback answers; two failures open the breaker.
    up.mode.store(FAIL, Ordering::SeqCst);
    assert!(ask(&s).await.starts_with("echo("));
    assert!(ask(&s).await.starts_with("echo("));
    assert_eq!(up.hits.load(Ordering::SeqCst), 3);
    // Open: the upstream is not called at all.
    assert!(ask(&s).await.starts_with("echo("));
    assert_eq!(up.hits.load(Ordering::SeqCst), 3, "breaker open");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("eino_breaker_rejections_total"),
        "{metrics}"
    );
    // The breaker's state is a gauge read at scrape time (the alert `EinoBreakerOpen`).
    assert!(
        metrics.contains(r#"eino_breaker_open{model="up"} 1"#),
        "{metrics}"
    );

    // Recovered upstream: after the cool-down, one trial closes the breaker.
    up.mode.store(OK, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(ask(&s).await, "from upstream");
    assert_eq!(ask(&s).await, "from upstream");
    assert_eq!(up.hits.load(Ordering::SeqCst), 5);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"eino_breaker_open{model="up"} 0"#),
        "{metrics}"
    );

    // A stalled upstream times out (retryable) and the fallback answers.
    up.mode.store(STALL, Ordering::SeqCst);
    let start = std::time::Instant::now();
    assert!(ask(&s).await.starts_with("echo("));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the client deadline cut the stall"
    );
}

#[tokio::test]
async fn raw_model_errors_map_to_gateway_statuses() {
    let up = upstream().await;
    up.mode.store(FAIL, Ordering::SeqCst);
    let cfg = OpenAiConfig::new("up")
        .with_base_url(up.url.clone())
        .with_max_retries(0);
    let client = Arc::new(OpenAiChatModel::new(cfg).unwrap());
    let s = TestServer::start(
        |c| {
            c.models.insert("up".into(), c.models["echo"].clone());
        },
        move |r| r.insert_model("up", client),
    )
    .await;
    let (status, body) = s
        .post(
            "/v1/chat/completions",
            json!({"model": "up", "messages": [{"role": "user", "content": "q"}]}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "upstream_error");
    // The failed run is recorded with its error.
    let (_, runs) = s.get("/api/v1/runs").await;
    assert_eq!(runs["data"][0]["status"], "error");
}

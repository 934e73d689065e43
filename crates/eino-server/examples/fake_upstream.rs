//! A fake OpenAI-compatible upstream for load tests: answers `/v1/chat/completions` at once
//! (JSON), or as SSE with `CHUNKS` chunks `CHUNK_DELAY_MS` apart when `stream` is true.
//!
//! `cargo run --release -p eino-server --example fake_upstream -- 127.0.0.1:9101`

use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Json;
use serde_json::{json, Value};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn chat(Json(req): Json<Value>) -> Response {
    if req["stream"] != true {
        return Json(json!({
            "id": "fake", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Hello from the fake upstream."}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        }))
        .into_response();
    }
    let (chunks, delay) = (
        env("CHUNKS", 8),
        Duration::from_millis(env("CHUNK_DELAY_MS", 0)),
    );
    let events = futures_util::stream::unfold(0u64, move |i| async move {
        if i > chunks {
            return None;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let data = if i == chunks {
            "[DONE]".to_string()
        } else {
            json!({"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                   "choices": [{"index": 0, "delta": {"content": "tok "},
                                "finish_reason": if i + 1 == chunks { Some("stop") } else { None }}]})
            .to_string()
        };
        Some((
            Ok::<_, std::convert::Infallible>(Event::default().data(data)),
            i + 1,
        ))
    });
    Sse::new(events).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9101".into());
    let app = axum::Router::new().route("/v1/chat/completions", post(chat));
    // Nagle off, as model servers do (uvicorn, Go's net/http, nginx): with it on, a chunk
    // written while the headers were unacknowledged waited for the client's delayed ACK
    // (40 ms) on a kept-alive connection.
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("fake upstream on http://{addr}/v1");
    axum::serve(listener, app).await
}

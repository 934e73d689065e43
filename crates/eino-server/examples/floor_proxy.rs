//! The least an HTTP proxy built on our stack does, as a floor for `eino serve`'s proxy
//! overhead in `scripts/bench_server.sh`: one axum route that forwards the request body's
//! bytes to an upstream with a shared reqwest client and relays the answer's status and
//! bytes (streamed, so SSE passes through). No auth, limits, parsing, traces or metrics: what
//! this costs is the price of the two HTTP exchanges themselves on this machine.
//!
//! `cargo run --release -p eino-server --example floor_proxy -- 127.0.0.1:9102 http://127.0.0.1:9101`

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn forward(State(up): State<Upstream>, body: Bytes) -> Response {
    let sent = up
        .client
        .post(&up.url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            // reqwest and axum share the `http` crate: status and header pass as they are.
            let status = resp.status();
            let kind = resp.headers().get(header::CONTENT_TYPE).cloned();
            let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
            *out.status_mut() = status;
            if let Some(k) = kind {
                out.headers_mut().insert(header::CONTENT_TYPE, k);
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9102".into());
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9101".into());
    let up = Upstream {
        client: reqwest::Client::new(),
        url: format!("{base}/v1/chat/completions"),
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(up);
    // Nagle off on accepted sockets, as `eino serve` does.
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

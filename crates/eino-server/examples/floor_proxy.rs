//! The least an HTTP proxy built on our stack does, as a floor for `eino serve`'s proxy
//! overhead in `scripts/bench_server.sh`: one axum route that forwards the request body's
//! bytes to an upstream with hyper-util's pooled client (the one `eino-openai` uses) and
//! relays the answer's status and bytes (streamed, so SSE passes through). No auth, limits,
//! parsing, traces or metrics: what this costs is the price of the two HTTP exchanges
//! themselves on this machine. (Until issue 22's session 24 the client was reqwest, as
//! eino's was; docs/benchmarks.md says what that cost.)
//!
//! `cargo run --release -p eino-server --example floor_proxy -- 127.0.0.1:9102 http://127.0.0.1:9101`
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Up {
    client: Client<HttpConnector, Body>,
    uri: Uri,
}

async fn forward(State(up): State<Up>, body: Bytes) -> Response {
    let mut req = Request::new(Body::from(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = up.uri.clone();
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match up.client.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut out = Response::new(Body::new(body));
            *out.status_mut() = parts.status;
            if let Some(k) = parts.headers.get(header::CONTENT_TYPE) {
                out.headers_mut().insert(header::CONTENT_TYPE, k.clone());
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
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let up = Up {
        client: Client::builder(TokioExecutor::new()).build(conn),
        uri: format!("{base}/v1/chat/completions")
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
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

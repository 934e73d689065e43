//! The router and its tower layers: request ids, W3C `traceparent`, request logs,
//! metrics, security headers, CORS, body limits, timeouts, JSON 404/405, and graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{native, openai};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The trace context of a request: the caller's trace id (or a new one) and our span id.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits: this server's span.
    pub span_id: String,
    /// The caller's span, if a valid `traceparent` came in.
    pub parent_span_id: Option<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

/// Parse a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); all-zero ids are invalid.
pub fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if parts.len() < 4
        || !hex(parts[0], 2)
        || parts[0] == "ff"
        || !hex(parts[1], 32)
        || !hex(parts[2], 16)
        || !hex(parts[3], 2)
    {
        return None;
    }
    if parts[1].bytes().all(|b| b == b'0') || parts[2].bytes().all(|b| b == b'0') {
        return None;
    }
    Some((parts[1].to_string(), parts[2].to_string()))
}

/// Runs inside the request span: with OTLP export the ids are the exported span's (which
/// continues the caller's trace, see `make_span`), otherwise the caller's trace id (or a
/// new one) and a new span id. The trace id goes into the span's logs either way.
async fn trace_context(mut req: Request, next: Next) -> Response {
    let incoming = req
        .headers()
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let span = tracing::Span::current();
    let (trace_id, span_id) = crate::telemetry::span_ids(&span).unwrap_or_else(|| {
        let trace = incoming
            .as_ref()
            .map_or_else(|| random_hex(16), |(t, _)| t.clone());
        (trace, random_hex(8))
    });
    span.record("trace_id", trace_id.as_str());
    let ctx = TraceContext {
        trace_id,
        span_id,
        parent_span_id: incoming.map(|(_, s)| s),
    };
    let out = format!("00-{}-{}-01", ctx.trace_id, ctx.span_id);
    req.extensions_mut().insert(ctx);
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&out) {
        resp.headers_mut().insert(TRACEPARENT, v);
    }
    resp
}

async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.server.request_timeout_secs);
    // Streams answer their headers at once, so this bounds the time to the first byte.
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable(format!("request timed out after {}s", limit.as_secs()))
            .with_code("timeout")
            .into_response(),
    }
}

/// Refuse a body larger than the route's limit from its declared `Content-Length`, at
/// the header: the client learns at once, and the server neither waits for nor reads it.
async fn declared_size(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared {
        let cfg = &state.config.server;
        let upload = req.method() == Method::POST && req.uri().path().ends_with("/documents");
        let (limit, key) = if upload {
            (cfg.max_upload_bytes, "server.max_upload_bytes")
        } else {
            (cfg.max_body_bytes, "server.max_body_bytes")
        };
        if n > limit as u64 {
            return ApiError::too_large(format!(
                "request body of {n} bytes is larger than {limit} ({key})"
            ))
            .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

async fn method_not_allowed() -> Response {
    let mut e = ApiError::bad_request("method not allowed for this endpoint").into_response();
    *e.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    e
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.shutdown.is_cancelled() {
        return ApiError::unavailable("shutting down").into_response();
    }
    match state.store.ping().await {
        Ok(()) => Json(
            json!({ "status": "ready", "models": state.registry.models.len(),
                               "applications": state.apps.len() }),
        )
        .into_response(),
        Err(e) => {
            ApiError::unavailable(format!("store not ready: {}", e.message())).into_response()
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, TRACEPARENT])
            .max_age(Duration::from_secs(600)),
    )
}

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    let cfg = &state.config.server;
    let api = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/api/v1/chat", post(native::chat))
        .route("/api/v1/sessions", get(native::list_sessions))
        .route(
            "/api/v1/sessions/{id}",
            get(native::get_session).delete(native::delete_session),
        )
        .route(
            "/api/v1/knowledge-bases",
            get(native::list_kbs).post(native::create_kb),
        )
        .route("/api/v1/knowledge-bases/{name}", delete(native::delete_kb))
        .route(
            "/api/v1/knowledge-bases/{name}/documents",
            get(native::list_documents)
                .post(native::upload)
                .layer(DefaultBodyLimit::max(cfg.max_upload_bytes)),
        )
        .route(
            "/api/v1/knowledge-bases/{name}/documents/{source}",
            delete(native::delete_document),
        )
        .route(
            "/api/v1/knowledge-bases/{name}/search",
            post(native::search),
        )
        .route("/api/v1/jobs/{id}", get(native::job))
        .route("/api/v1/jobs/{id}/events", get(native::job_events))
        .route("/api/v1/runs", get(native::list_runs))
        .route("/api/v1/runs/interrupted", get(crate::interrupts::list))
        .route(
            "/api/v1/runs/interrupted/{id}",
            get(crate::interrupts::get).delete(crate::interrupts::cancel),
        )
        .route("/api/v1/runs/{id}/resume", post(crate::interrupts::resume))
        .route("/api/v1/runs/{id}", get(native::get_run))
        .route("/api/v1/applications", get(native::list_apps))
        .route("/api/v1/applications/{id}/graph", get(native::app_graph))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), deadline));
    let open = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi));
    let open = if cfg.web_ui {
        open.merge(crate::ui::routes())
    } else {
        open
    };
    let mut app = api
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), declared_size))
        .layer(middleware::from_fn(crate::metrics::track))
        .layer(middleware::from_fn(trace_context))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ));
    if let Some(c) = cors(&cfg.cors_origins) {
        app = app.layer(c);
    }
    app.with_state(state)
}

/// The request's span. The path only: query strings can carry personal data. With OTLP
/// export it continues the caller's `traceparent`.
fn make_span(req: &Request) -> tracing::Span {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!("http", otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server", method = %req.method(), path = %req.uri().path(),
        request_id = %request_id, trace_id = tracing::field::Empty, tenant = tracing::field::Empty);
    crate::telemetry::continue_trace(&span, req.headers());
    span
}

/// Refuse to listen beyond loopback when no authentication is configured.
pub fn check_bind(addr: SocketAddr, auth_enabled: bool) -> Result<(), ApiError> {
    if auth_enabled || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "refusing to listen on {addr} without authentication: every caller would see every \
         session. Configure auth.api_keys or auth.jwt, or listen on 127.0.0.1"
    )))
}

/// Serve `state` on `listener` until `shutdown` completes; open streams get
/// `server.shutdown_grace_secs` to finish.
///
/// HTTP/1.1, one task per connection, at most `server.max_connections` at once (further
/// ones wait in the listen backlog). A connection must send a complete request head within
/// `server.header_read_timeout_secs` of opening or of its previous answer, so neither a
/// slow-header client nor an idle keep-alive connection holds a descriptor for long.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cfg = state.config.server.clone();
    let grace = Duration::from_secs(cfg.shutdown_grace_secs);
    let token = state.shutdown.clone();
    let runs = state.runs.clone();
    crate::interrupts::spawn_expiry(state.clone());
    crate::knowledge::spawn_job_sweep(state.store.clone(), state.shutdown.clone());
    crate::runs::spawn_sweep(state.store.clone(), &state.config.telemetry, token.clone());
    let app = router(state);
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stop = async {
            tokio::select! {
                _ = &mut shutdown => {}
                _ = token.cancelled() => {}
            }
        };
        let accepted = tokio::select! {
            a = accept(&listener, &slots) => a,
            _ = stop => break,
        };
        let Some((tcp, peer, slot)) = accepted else {
            continue;
        };
        // Small SSE writes must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(app.clone(), req.map(axum::body::Body::new))
        });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(slot);
        });
    }
    tracing::info!("shutting down; waiting for open requests and streams");
    token.cancel();
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
    // The traces of the last runs.
    runs.flush().await;
    Ok(())
}

/// The next connection, once a slot is free. `None` after an accept error (logged; the
/// loop goes on: running out of descriptors is a reason to wait, not to stop serving).
async fn accept(
    listener: &tokio::net::TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((tcp, peer)) => Some((tcp, peer, slot)),
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

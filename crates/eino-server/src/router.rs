//! The one routing table: every endpoint of the API with its handler, and the tower layers
//! around them (request ids, trace context, request logs, metrics, security headers, CORS,
//! body limits, deadlines, authentication, JSON 404/405).

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::middleware::{REQUEST_ID, TRACEPARENT};
use crate::api::{applications, jobs, knowledge, middleware as mw, openai, ops, runs, sessions};
use crate::state::AppState;

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
        .route("/api/v1/chat", post(sessions::chat))
        .route("/api/v1/sessions", get(sessions::list_sessions))
        .route(
            "/api/v1/sessions/{id}",
            get(sessions::get_session).delete(sessions::delete_session),
        )
        .route(
            "/api/v1/knowledge-bases",
            get(knowledge::list_kbs).post(knowledge::create_kb),
        )
        .route(
            "/api/v1/knowledge-bases/{name}",
            delete(knowledge::delete_kb),
        )
        .route(
            "/api/v1/knowledge-bases/{name}/documents",
            get(knowledge::list_documents)
                .post(knowledge::upload)
                .layer(DefaultBodyLimit::max(cfg.max_upload_bytes)),
        )
        .route(
            "/api/v1/knowledge-bases/{name}/documents/{source}",
            delete(knowledge::delete_document),
        )
        .route(
            "/api/v1/knowledge-bases/{name}/search",
            post(knowledge::search),
        )
        .route("/api/v1/jobs/{id}", get(jobs::job))
        .route("/api/v1/jobs/{id}/events", get(jobs::job_events))
        .route("/api/v1/runs", get(runs::list_runs))
        .route("/api/v1/runs/interrupted", get(runs::list))
        .route(
            "/api/v1/runs/interrupted/{id}",
            get(runs::get).delete(runs::cancel),
        )
        .route("/api/v1/runs/{id}/resume", post(runs::resume))
        .route("/api/v1/runs/{id}", get(runs::get_run))
        .route("/api/v1/applications", get(applications::list_apps))
        .route(
            "/api/v1/applications/{id}/graph",
            get(applications::app_graph),
        )
        .route_service("/mcp", crate::api::mcp::service(state.clone()))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            mw::authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), mw::deadline));
    let open = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics_text))
        .route("/openapi.json", get(ops::openapi));
    let open = if cfg.web_ui {
        open.merge(crate::api::ui::routes())
    } else {
        open
    };
    let mut app = api
        .merge(open)
        .fallback(mw::not_found)
        .method_not_allowed_fallback(mw::method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mw::declared_size,
        ))
        .layer(middleware::from_fn(mw::track))
        .layer(middleware::from_fn(mw::trace_context))
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

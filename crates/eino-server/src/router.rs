//! The one routing table: every endpoint of the API with its handler, and the tower layers
//! around them: the edge (request ids, trace context, request logs, metrics, security
//! headers, declared body sizes), CORS, body limits, deadlines, authentication, and the
//! JSON 404/405.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::edge::EdgeLayer;
use crate::api::{applications, jobs, knowledge, middleware as mw, openai, ops, runs, sessions};
use crate::state::AppState;
use crate::telemetry::TRACEPARENT;

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
        .route_layer(middleware::from_fn_with_state(state.clone(), mw::guard));
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
        .layer(EdgeLayer::new(cfg.max_body_bytes, cfg.max_upload_bytes));
    if let Some(c) = cors(&cfg.cors_origins) {
        app = app.layer(c);
    }
    app.with_state(state)
}

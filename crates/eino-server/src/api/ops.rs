//! Health, readiness, metrics and the OpenAPI document: what probes, scrapers and client
//! generators read, without credentials.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(()) => Json(
            json!({ "status": "ready", "models": state.registry.models.len(),
                               "applications": state.apps.len() }),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Ready: not shutting down, and the store answers.
async fn readiness(state: &AppState) -> Result<(), ApiError> {
    if state.shutdown.is_cancelled() {
        return Err(ApiError::unavailable("shutting down"));
    }
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(format!("store not ready: {}", e.message())))
}

pub(crate) async fn metrics_text(State(state): State<AppState>) -> Response {
    let ready = readiness(&state).await.is_ok();
    crate::metrics::observe_state(&state.registry, ready);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Json<serde_json::Value> {
    Json(crate::api::openapi::document())
}

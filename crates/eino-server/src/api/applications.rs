//! `/api/v1/applications`: the configured applications and their graphs.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::api::extract::Path;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /api/v1/applications`.
pub async fn list_apps(State(state): State<AppState>) -> Json<Value> {
    let apps: Vec<Value> = state
        .apps
        .values()
        .map(|a| {
            json!({ "id": a.id, "model": a.config.model, "fallbacks": a.config.fallbacks,
                    "knowledge_bases": a.config.knowledge_bases, "agent": a.config.agent,
                    "tools": a.config.tools, "interruptible": a.interruptible() })
        })
        .collect();
    Json(json!({ "data": apps }))
}

/// `GET /api/v1/applications/{id}/graph`: topology as JSON plus a Mermaid chart.
pub async fn app_graph(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let app = state
        .apps
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("application {id:?} does not exist")))?;
    let t = app.topology();
    Ok(Json(json!({ "topology": t, "mermaid": t.to_mermaid() })))
}

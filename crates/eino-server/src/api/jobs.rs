//! `/api/v1/jobs/{id}`: an ingestion job's progress, polled or as SSE.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::extract::Path;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /api/v1/jobs/{id}`: an ingestion job's status (from any replica).
pub async fn job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let status = state
        .knowledge
        .job(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    Ok(Json(json!(status)))
}

/// `GET /api/v1/jobs/{id}/events`: progress as server-sent events until the job ends.
pub async fn job_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let updates = state
        .knowledge
        .job_updates(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))?;
    let stream = updates.map(|s| {
        let name = if s.state == "running" {
            "progress"
        } else {
            "done"
        };
        Ok(Event::default().event(name).data(json!(s).to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

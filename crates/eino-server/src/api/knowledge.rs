//! `/api/v1/knowledge-bases`: knowledge bases, their documents (uploads start ingestion
//! jobs) and search.

use axum::extract::{Multipart, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::extract::{ApiJson, Path};
use crate::api::wire::sources_json;
use crate::auth::Caller;
use crate::config::valid_name;
use crate::error::{ApiError, ApiResult};
use crate::knowledge::Upload;
use crate::state::AppState;

/// `POST /api/v1/knowledge-bases` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct KbBody {
    /// 1-64 letters, digits, `-` or `_`.
    name: String,
}

fn check_kb_name(name: &str) -> ApiResult<()> {
    if valid_name(name) && !name.contains('.') && !name.contains("__") {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "knowledge base names are 1-64 letters, digits, '-' or '_' (no '__')",
        ))
    }
}

async fn require_kb(state: &AppState, tenant: &str, name: &str) -> ApiResult<()> {
    let exists = state
        .store
        .list_kbs(tenant)
        .await?
        .iter()
        .any(|k| k.name == name);
    if exists {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "knowledge base {name:?} does not exist"
        )))
    }
}

/// `POST /api/v1/knowledge-bases`.
pub async fn create_kb(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<KbBody>,
) -> ApiResult<Response> {
    check_kb_name(&body.name)?;
    if !state.store.create_kb(&caller.tenant, &body.name).await? {
        return Err(ApiError::conflict(format!(
            "knowledge base {:?} exists",
            body.name
        )));
    }
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "name": body.name })),
    )
        .into_response())
}

/// `GET /api/v1/knowledge-bases`.
pub async fn list_kbs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "data": state.store.list_kbs(&caller.tenant).await? }),
    ))
}

/// `DELETE /api/v1/knowledge-bases/{name}`: the knowledge base, its records and chunks.
pub async fn delete_kb(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.delete_kb(&caller.tenant, &name).await? {
        return Err(ApiError::not_found(format!(
            "knowledge base {name:?} does not exist"
        )));
    }
    state.knowledge.drop_kb(&caller.tenant, &name).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// `POST /api/v1/knowledge-bases/{name}/documents` (multipart, one or more `file` parts):
/// starts an ingestion job, answers 202 with its id.
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Response> {
    let mut form = form.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data upload: {}",
            e.body_text()
        ))
    })?;
    require_kb(&state, &caller.tenant, &name).await?;
    let mut files = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart body: {e}")))?
    {
        let Some(file_name) = field.file_name().map(str::to_string) else {
            continue;
        };
        let file_name = std::path::Path::new(&file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("a file part needs a file name"))?
            .to_string();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("upload too large (server.max_upload_bytes)")
            } else {
                ApiError::bad_request(format!("cannot read {file_name}: {e}"))
            }
        })?;
        files.push(Upload {
            name: file_name,
            bytes: bytes.to_vec(),
        });
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no file parts in the upload (use -F file=@path)",
        ));
    }
    let job = state
        .knowledge
        .start_ingest(&caller.tenant, &name, files)
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({ "job_id": job })),
    )
        .into_response())
}

/// `GET /api/v1/knowledge-bases/{name}/documents`.
pub async fn list_documents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_kb(&state, &caller.tenant, &name).await?;
    Ok(Json(
        json!({ "data": state.store.list_documents(&caller.tenant, &name).await? }),
    ))
}

/// `DELETE /api/v1/knowledge-bases/{name}/documents/{source}`.
pub async fn delete_document(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, source)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if !state
        .store
        .delete_document(&caller.tenant, &name, &source)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "document {source:?} is not in {name:?}"
        )));
    }
    let chunks = state
        .knowledge
        .remove_document(&caller.tenant, &name, &source)
        .await?;
    Ok(Json(json!({ "deleted": true, "chunks": chunks })))
}

/// `POST /api/v1/knowledge-bases/{name}/search` body.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchBody {
    query: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    min_score: Option<f64>,
}

/// `POST /api/v1/knowledge-bases/{name}/search`.
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<Json<Value>> {
    require_kb(&state, &caller.tenant, &name).await?;
    let k = body.top_k.unwrap_or(5).clamp(1, 100);
    let hits = state
        .knowledge
        .search(
            &caller.tenant,
            &[name],
            &body.query,
            k,
            body.min_score.unwrap_or(f64::MIN),
        )
        .await?;
    Ok(Json(json!({ "data": sources_json(&hits) })))
}

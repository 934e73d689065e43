//! Extractors whose rejections are the API's JSON errors (axum's own are plain text):
//! JSON bodies, path parameters and query strings.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with JSON 4xx errors that say what is wrong.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(rejection(r)),
        }
    }
}

fn rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::bad_request("expected Content-Type: application/json")
        }
        _ => ApiError::bad_request(r.body_text()),
    }
}

/// JSON with its raw bytes kept (for cache keys): same errors as [`ApiJson`].
pub struct RawJson<T>(pub T, pub axum::body::Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim().eq_ignore_ascii_case("application/json") || m.trim().ends_with("+json")
                })
            });
        if !json {
            return Err(ApiError::bad_request(
                "expected Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large("request body too large")
                } else {
                    ApiError::bad_request(format!("cannot read the body: {}", e.body_text()))
                }
            })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("Failed to deserialize the JSON body: {e}"))
        })?;
        Ok(Self(value, bytes))
    }
}

/// `axum::extract::Path` whose rejections (a segment that is not valid UTF-8 once
/// percent-decoded, a value of the wrong type) are the API's JSON 400s.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "bad path parameter: {}",
                r.body_text()
            ))),
        }
    }
}

/// `axum::extract::Query` whose rejections (`?limit=abc`) are the API's JSON 400s.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(r) => Err(ApiError::bad_request(format!(
                "bad query string: {}",
                r.body_text()
            ))),
        }
    }
}

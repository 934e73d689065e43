//! Errors: configuration errors that name the bad key, and API errors that become a JSON
//! body (`{"error": {"message", "type", "code"}}`, the OpenAI shape) with a 4xx/5xx status.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use eino::ErrorKind;
use serde_json::json;

/// A configuration problem, found at start.
pub use crate::config::ConfigError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI-style error type (`invalid_request_error`, `authentication_error` …).
    pub kind: &'static str,
    /// Machine-readable code, if any.
    pub code: Option<&'static str>,
    /// Human-readable message (never contains secrets).
    pub message: String,
    /// For 429/503: when to retry.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 401: missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    /// 404: no such thing (for this tenant).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", what)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict_error", message)
    }

    /// 413: body too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            message,
        )
    }

    /// 429: a rate limit.
    pub fn rate_limited(retry_after: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!(
                "rate limit exceeded; retry in {:.1}s",
                retry_after.as_secs_f64()
            ),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 503: not ready or shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            message,
        )
    }

    /// 500: a bug; the message is logged, the client sees a generic text.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal server error",
        )
    }

    /// With a machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl From<eino::Error> for ApiError {
    fn from(e: eino::Error) -> Self {
        let msg = e.message().to_string();
        match e.kind() {
            ErrorKind::InvalidInput => Self::bad_request(msg),
            ErrorKind::ContextLength => Self::bad_request(msg).with_code("context_length_exceeded"),
            ErrorKind::RateLimited => {
                let mut out = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    format!("upstream rate limit: {msg}"),
                );
                out.retry_after = e.retry_after();
                out
            }
            // The server's own credentials for a provider were refused: not the client's fault.
            ErrorKind::Auth => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the model provider refused the server's credentials: {msg}"),
            ),
            ErrorKind::Transient => Self::new(StatusCode::BAD_GATEWAY, "upstream_error", msg),
            ErrorKind::Timeout => Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout_error", msg),
            ErrorKind::Cancelled => Self::unavailable(msg),
            ErrorKind::Interrupted => Self::conflict(msg).with_code("interrupted"),
            _ => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "code": self.code,
            }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

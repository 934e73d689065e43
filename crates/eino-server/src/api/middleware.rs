//! The API's middleware below the edge (`edge.rs`): the guard of the API's routes (the
//! deadline, authentication with its per-address throttle and per-caller rate limit), and
//! the JSON 404/405.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Middleware on the API's routes (not the open ones: health, metrics, the web UI): the
/// request's deadline around authentication and the handler. One layer, where there were
/// two: each layer clones the boxed route below it on every request.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.server.request_timeout_secs);
    // Streams answer their headers at once, so this bounds the time to the first byte.
    match tokio::time::timeout(limit, authenticate(&state, req, next)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable(format!("request timed out after {}s", limit.as_secs()))
            .with_code("timeout")
            .into_response(),
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /openapi.json")
}

pub(crate) async fn method_not_allowed() -> Response {
    let mut e = ApiError::bad_request("method not allowed for this endpoint").into_response();
    *e.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    e
}

pub(crate) fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Resolve the caller (401 on bad credentials, 429 for an address that failed too often),
/// apply its rate limit (429 with `Retry-After`), and hand the [`Caller`] to handlers.
///
/// [`Caller`]: crate::auth::Caller
async fn authenticate(state: &AppState, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let failures = state.auth_failures.as_ref().zip(ip);
    if let Some((limiter, ip)) = failures {
        if let Some(wait) = limiter.refused(ip) {
            metrics::counter!("eino_auth_throttled_total").increment(1);
            return ApiError::rate_limited(wait).into_response();
        }
    }
    let caller = match state.auth.check(bearer(&req)) {
        Ok(c) => c,
        Err(e) => {
            if let Some((limiter, ip)) = failures {
                if let Some(wait) = limiter.fail(ip) {
                    metrics::counter!("eino_auth_throttled_total").increment(1);
                    return ApiError::rate_limited(wait).into_response();
                }
            }
            return e.into_response();
        }
    };
    if let Some(limiter) = &state.limiter {
        let key = format!("{}/{}", caller.tenant, caller.principal);
        if let Err(wait) = limiter.check(&key).await {
            // No tenant label: /metrics is public, and tenants are not its business.
            metrics::counter!("eino_rate_limited_total").increment(1);
            return ApiError::rate_limited(wait).into_response();
        }
    }
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    req.extensions_mut().insert(caller);
    next.run(req).await
}

//! The API's middleware: request trace context, deadlines, declared body sizes,
//! authentication (with its per-address throttle and per-caller rate limit), metrics, and
//! the JSON 404/405.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;
use crate::telemetry::{parse_traceparent, random_hex, TraceContext};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Runs inside the request span: with OTLP export the ids are the exported span's (which
/// continues the caller's trace, see `make_span`), otherwise the caller's trace id (or a
/// new one) and a new span id. The trace id goes into the span's logs either way.
pub(crate) async fn trace_context(mut req: Request, next: Next) -> Response {
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

pub(crate) async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
pub(crate) async fn declared_size(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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

/// Middleware: resolve the caller (401 on bad credentials, 429 for an address that failed
/// too often), apply its rate limit (429 with `Retry-After`), and hand the [`Caller`] to
/// handlers.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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

/// Counts and times every request: `http_requests_total{method,route,status}`,
/// `http_request_duration_seconds{method,route}`. Routes are the matched templates
/// (`/api/v1/sessions/{id}`), so ids do not explode the label space.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

//! The edge of every request, in one tower layer: the request id (kept from the client or
//! a new UUID, echoed on the response), the request's span (with OTLP export it continues
//! the caller's `traceparent`), the W3C trace context handed to handlers, the refusal of a
//! body whose declared size is past the route's limit, the request metrics and the
//! security headers.
//!
//! These were eleven layers (tower-http's request id, trace and set-header layers and four
//! `from_fn` middlewares). Each layer costs the proxy path a clone of the boxed service
//! below it and a future per request; one layer with one boxed future does the same work
//! for less (docs/benchmarks.md, "The floor under a proxy").

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use crate::error::ApiError;
use crate::telemetry::{IncomingTrace, TraceContext, TRACEPARENT};

/// The request id header, kept from the client or set here.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers every response carries unless its handler set them.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// The layer; see the module docs.
#[derive(Clone)]
pub(crate) struct EdgeLayer {
    shared: Arc<Shared>,
}

struct Shared {
    max_body_bytes: usize,
    max_upload_bytes: usize,
    metrics: RequestMetrics,
}

impl EdgeLayer {
    /// Refuses declared bodies past `max_body_bytes` (`max_upload_bytes` for document
    /// uploads).
    pub(crate) fn new(max_body_bytes: usize, max_upload_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                max_body_bytes,
                max_upload_bytes,
                metrics: RequestMetrics::default(),
            }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`EdgeLayer`] wraps around each route.
#[derive(Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone is fresh (maybe not ready); the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let request_id = request_id(&mut req);
        let incoming = IncomingTrace::from_headers(req.headers());
        let span = make_span(&req, &request_id, incoming);
        let enabled = !span.is_disabled();
        let ctx_span = span.clone();
        let fut = async move {
            let start = Instant::now();
            tracing::debug!("started processing request");
            let traceparent = trace_context(&mut req, &ctx_span, incoming);
            let method = req.method().clone();
            let route = req.extensions().get::<MatchedPath>().cloned();
            let mut resp = match declared_too_large(&shared, &req) {
                Some(refused) => refused.into_response(),
                None => match inner.call(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                },
            };
            let elapsed = start.elapsed();
            let status = resp.status();
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            shared
                .metrics
                .record(&method, route, status.as_u16(), elapsed);
            let headers = resp.headers_mut();
            if let Some(v) = traceparent {
                headers.insert(TRACEPARENT, v);
            }
            headers.entry(REQUEST_ID).or_insert(request_id);
            for (name, value) in &SECURITY_HEADERS {
                headers
                    .entry(name)
                    .or_insert_with(|| HeaderValue::from_static(value));
            }
            let latency_ms = elapsed.as_secs_f64() * 1e3;
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), latency_ms, "response failed");
            } else {
                tracing::debug!(
                    status = status.as_u16(),
                    latency_ms,
                    "finished processing request"
                );
            }
            Ok(resp)
        };
        if !enabled {
            // No subscriber wants the span (no OTLP, logs above info): skip its wrappers.
            return Box::pin(fut);
        }
        Box::pin(
            async move {
                let resp = fut.await?;
                // The span lasts until the body ends, so a stream's logs and its exported
                // span cover the whole answer, not only its head.
                let span = Span::current();
                Ok(resp.map(|body| Body::new(SpannedBody { body, span })))
            }
            .instrument(span),
        )
    }
}

/// The request's span. The path only: query strings can carry personal data. With OTLP
/// export it continues the caller's `traceparent`.
fn make_span(req: &Request, request_id: &HeaderValue, incoming: Option<IncomingTrace>) -> Span {
    let request_id = request_id.to_str().unwrap_or("");
    let span = tracing::info_span!("http", otel.name = %format_args!("{} {}", req.method(), req.uri().path()),
        otel.kind = "server", method = %req.method(), path = %req.uri().path(),
        request_id = %request_id, trace_id = tracing::field::Empty, tenant = tracing::field::Empty);
    crate::telemetry::continue_trace(&span, incoming);
    span
}

/// The client's `x-request-id`, or a new UUID set on the request (handlers and the span
/// read it from there); returned for the response.
fn request_id(req: &mut Request) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID) {
        return v.clone();
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    let v = HeaderValue::from_str(id).expect("a UUID is a valid header value");
    req.headers_mut().insert(REQUEST_ID, v.clone());
    v
}

/// With OTLP export the ids are the exported span's (which continues the caller's trace,
/// see `make_span`), otherwise the caller's trace id (or a new one) and a new span id. The
/// trace id goes into the span's logs either way; handlers get a [`TraceContext`]. Returns
/// the response's `traceparent`.
fn trace_context(
    req: &mut Request,
    span: &Span,
    incoming: Option<IncomingTrace>,
) -> Option<HeaderValue> {
    let incoming = incoming.map(|i| (i.trace_id, i.span_id));
    let ctx = match crate::telemetry::span_ids(span) {
        Some((trace_id, span_id)) => TraceContext {
            trace_id,
            span_id,
            parent_span_id: incoming.map(|(_, s)| s),
        },
        None => TraceContext::new(incoming),
    };
    let traceparent = ctx.traceparent();
    // `00-<trace id>-...`: the trace id's 32 ASCII digits.
    span.record(
        "trace_id",
        std::str::from_utf8(&traceparent[3..35]).unwrap_or_default(),
    );
    req.extensions_mut().insert(ctx);
    HeaderValue::from_bytes(&traceparent).ok()
}

/// A body larger than the route's limit by its declared `Content-Length` is refused at the
/// header: the client learns at once, and the server neither waits for nor reads it.
fn declared_too_large(shared: &Shared, req: &Request) -> Option<ApiError> {
    let n = req
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    let upload = req.method() == Method::POST && req.uri().path().ends_with("/documents");
    let (limit, key) = if upload {
        (shared.max_upload_bytes, "server.max_upload_bytes")
    } else {
        (shared.max_body_bytes, "server.max_body_bytes")
    };
    (n > limit as u64).then(|| {
        ApiError::too_large(format!(
            "request body of {n} bytes is larger than {limit} ({key})"
        ))
    })
}

/// `http_requests_total{method,route,status}` and
/// `http_request_duration_seconds{method,route}`, with the handles kept per label set: the
/// recorder's lookup builds and hashes the labels on every call otherwise. Routes are the
/// matched templates (`/api/v1/sessions/{id}`) and methods outside the standard nine count
/// as `OTHER`, so clients cannot grow the label space.
#[derive(Default)]
struct RequestMetrics {
    by_route: RwLock<HashMap<String, Vec<Handles>>>,
}

struct Handles {
    method: Method,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestMetrics {
    fn record(&self, method: &Method, route: &str, status: u16, elapsed: std::time::Duration) {
        let method = standard(method);
        let count = |h: &Handles| {
            h.requests.increment(1);
            h.duration.record(elapsed.as_secs_f64());
        };
        let is = |h: &&Handles| h.method == method && h.status == status;
        {
            let map = self.by_route.read().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = map.get(route).and_then(|hs| hs.iter().find(is)) {
                return count(h);
            }
        }
        // First request of this label set (or a race with another one): register it once.
        let mut map = self.by_route.write().unwrap_or_else(|e| e.into_inner());
        let handles = map.entry(route.to_string()).or_default();
        if let Some(h) = handles.iter().find(is) {
            return count(h);
        }
        let (m, r) = (method.to_string(), route.to_string());
        let h = Handles {
            requests: metrics::counter!("http_requests_total", "method" => m.clone(), "route" => r.clone(), "status" => status.to_string()),
            duration: metrics::histogram!("http_request_duration_seconds", "method" => m, "route" => r),
            method,
            status,
        };
        count(&h);
        handles.push(h);
    }
}

/// The method as a metric label: one of the nine standard methods, or `OTHER`.
fn standard(method: &Method) -> Method {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if STANDARD.contains(method) {
        method.clone()
    } else {
        Method::from_bytes(b"OTHER").expect("OTHER is a valid method")
    }
}

/// A response body that enters the request's span while it is polled and keeps the span
/// open until it is dropped.
struct SpannedBody {
    body: Body,
    span: Span,
}

impl http_body::Body for SpannedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_nine_share_one_label() {
        assert_eq!(standard(&Method::POST), Method::POST);
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(standard(&odd).as_str(), "OTHER");
    }

    #[test]
    fn handles_are_kept_once_per_label_set() {
        let m = RequestMetrics::default();
        let ms = std::time::Duration::from_millis(1);
        for _ in 0..3 {
            m.record(&Method::POST, "/v1/chat/completions", 200, ms);
        }
        m.record(&Method::POST, "/v1/chat/completions", 400, ms);
        m.record(&Method::from_bytes(b"BREW").unwrap(), "unmatched", 404, ms);
        m.record(&Method::from_bytes(b"SIP").unwrap(), "unmatched", 404, ms);
        let map = m.by_route.read().unwrap();
        assert_eq!(map["/v1/chat/completions"].len(), 2);
        assert_eq!(map["unmatched"].len(), 1, "odd methods share OTHER");
    }
}

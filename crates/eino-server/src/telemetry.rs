//! Logs and traces: the process's `tracing` subscriber (JSON or text logs on stderr) and,
//! when `telemetry.otlp` is configured, OpenTelemetry export of the spans over OTLP/HTTP.
//!
//! With OTLP on, every request's span continues the caller's W3C `traceparent` (or starts
//! a trace), the eino components of the run (graph, nodes, models, tools) are exported as
//! GenAI spans inside it, and the ids in the logs and in the response's `traceparent` are
//! the exported ones. Spans leave in batches on a background thread; [`Telemetry`] flushes
//! the last ones when dropped (at shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eino::{Error, Result};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

use crate::config::{OtlpConfig, OtlpProtocol, TelemetryConfig};

impl OtlpConfig {
    /// The traces URL.
    fn traces_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        match base.parse::<axum::http::Uri>() {
            Ok(u) if u.path() != "/" && !u.path().is_empty() => base.to_string(),
            _ => format!("{base}/v1/traces"),
        }
    }
}

static OTLP_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (then request spans carry OpenTelemetry ids).
pub fn otlp_enabled() -> bool {
    OTLP_ON.load(Ordering::Relaxed)
}

/// Keeps the exporter alive; dropping it flushes the spans not yet sent.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Send every finished span now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.force_flush() {
                tracing::warn!(error = %e, "cannot flush spans to the OTLP collector");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Install the process's subscriber from `config` (once per process; `RUST_LOG` overrides
/// the level). Call inside the tokio runtime: exports run on it.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry> {
    use tracing_subscriber::EnvFilter;
    // PostgreSQL's notices ("relation already exists, skipping" from every idempotent
    // migration step at each start) arrive as tokio_postgres INFO events, and the MCP
    // SDK logs every JSON-RPC error it answers (a client's bad call) as a warning: neither
    // is ours to log.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},tokio_postgres=warn,rmcp::service=error",
            config.log_level
        ))
    });
    let (provider, otel) = match &config.otlp {
        Some(o) => {
            let provider = tracer_provider(o)?;
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("eino"));
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if config.log_format == "json" {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| Error::invalid_input(format!("cannot install the log subscriber: {e}")))?;
    if provider.is_some() {
        OTLP_ON.store(true, Ordering::Relaxed);
        // Component calls become GenAI spans inside the request's span.
        eino::callbacks::append_global_handlers([
            Arc::new(eino::callbacks::TracingHandler) as Arc<dyn eino::callbacks::Handler>
        ]);
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(o: &OtlpConfig) -> Result<SdkTracerProvider> {
    let bad = |what: String| Error::invalid_input(format!("telemetry.otlp: {what}"));
    let mut headers = HashMap::new();
    for (header, var) in &o.headers_env {
        let key = format!("telemetry.otlp.headers_env.{header}");
        headers.insert(header.clone(), crate::registry::secret_var(&key, var)?);
    }
    let protocol = match o.protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    };
    let timeout = Duration::from_secs(o.timeout_secs.unwrap_or(10));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Exporting::new(timeout)?)
        .with_endpoint(o.traces_url())
        .with_protocol(protocol)
        .with_timeout(timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(o.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            o.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: the service's reqwest (rustls, no second TLS stack), with
/// each request spawned on the tokio runtime, because the batch exporter runs its own
/// thread without one.
#[derive(Debug)]
struct Exporting {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl Exporting {
    fn new(timeout: Duration) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::internal("telemetry::init must run inside the tokio runtime"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| Error::internal(format!("OTLP HTTP client: {e}")).with_source(e))?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> std::result::Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let mut req = self
            .client
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        let sent = self.runtime.spawn(async move {
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        Ok(opentelemetry_http::Response::builder()
            .status(status)
            .body(body)?)
    }
}

/// Make a new request span continue the caller's trace (the `traceparent` header's trace
/// id, span id and sampled flag). Call before the span is entered; a no-op without OTLP.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !otlp_enabled() {
        return;
    }
    let Some(value) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some((trace, parent)) = parse_traceparent(value) else {
        return;
    };
    let (Ok(trace), Ok(parent)) = (TraceId::from_hex(&trace), SpanId::from_hex(&parent)) else {
        return;
    };
    let sampled = value
        .trim()
        .rsplit('-')
        .next()
        .and_then(|f| u8::from_str_radix(f, 16).ok())
        .is_some_and(|f| f & 1 == 1);
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = SpanContext::new(trace, parent, flags, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The exported ids of `span` (trace id, span id), if spans are exported.
pub fn span_ids(span: &tracing::Span) -> Option<(String, String)> {
    if !otlp_enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(endpoint: &str) -> OtlpConfig {
        OtlpConfig {
            endpoint: endpoint.into(),
            protocol: OtlpProtocol::default(),
            headers_env: Default::default(),
            service_name: "eino".into(),
            sample_ratio: 1.0,
            timeout_secs: None,
        }
    }

    #[test]
    fn the_traces_path_is_added_to_a_base_url() {
        assert_eq!(
            otlp("http://c:4318").traces_url(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            otlp("http://c:4318/").traces_url(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            otlp("https://v.example/otlp/v1/traces").traces_url(),
            "https://v.example/otlp/v1/traces"
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = otlp("collector:4318").validate().unwrap_err().to_string();
        assert!(e.contains("telemetry.otlp.endpoint"), "{e}");
        let mut c = otlp("http://c:4318");
        c.sample_ratio = 2.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sample_ratio"));
        otlp("http://c:4318").validate().unwrap();
    }
}

/// The trace context of a request: the caller's trace id (or a new one) and our span id.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits: this server's span.
    pub span_id: String,
    /// The caller's span, if a valid `traceparent` came in.
    pub parent_span_id: Option<String>,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

/// Parse a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); all-zero ids are invalid.
pub fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if parts.len() < 4
        || !hex(parts[0], 2)
        || parts[0] == "ff"
        || !hex(parts[1], 32)
        || !hex(parts[2], 16)
        || !hex(parts[3], 2)
    {
        return None;
    }
    if parts[1].bytes().all(|b| b == b'0') || parts[2].bytes().all(|b| b == b'0') {
        return None;
    }
    Some((parts[1].to_string(), parts[2].to_string()))
}

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

/// Make a new request span continue the caller's trace (parsed once by
/// [`IncomingTrace::from_headers`]). Call before the span is entered; a no-op without OTLP.
pub fn continue_trace(span: &tracing::Span, incoming: Option<IncomingTrace>) {
    if !otlp_enabled() {
        return;
    }
    let Some(incoming) = incoming else {
        return;
    };
    let flags = if incoming.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = SpanContext::new(
        incoming.trace_id,
        incoming.span_id,
        flags,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The exported ids of `span` (trace id, span id), if spans are exported.
pub fn span_ids(span: &tracing::Span) -> Option<(TraceId, SpanId)> {
    if !otlp_enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_bad_ones_are_refused() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, span) = parse_traceparent(caller).unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let ctx = TraceContext::new(Some((trace, span)));
        assert_eq!(ctx.trace_id, trace);
        assert_eq!(ctx.parent_span_id, Some(span));
        let header = ctx.traceparent();
        let header = std::str::from_utf8(&header).unwrap();
        assert_eq!(header, format!("00-{trace}-{}-01", ctx.span_id));
        assert_eq!(parse_traceparent(header), Some((trace, ctx.span_id)));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
            "",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_incoming_traceparent_is_read_with_its_sampled_flag() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(IncomingTrace::from_headers(&h), None);
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let i = IncomingTrace::from_headers(&h).unwrap();
        assert_eq!(i.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(i.span_id.to_string(), "00f067aa0ba902b7");
        assert!(i.sampled);
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"
                .parse()
                .unwrap(),
        );
        assert!(!IncomingTrace::from_headers(&h).unwrap().sampled);
        h.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        assert_eq!(IncomingTrace::from_headers(&h), None);
    }

    #[test]
    fn new_trace_contexts_have_fresh_nonzero_ids() {
        let a = TraceContext::new(None);
        let b = TraceContext::new(None);
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id, TraceId::INVALID);
        assert_ne!(a.span_id, SpanId::INVALID);
        assert_eq!(a.parent_span_id, None);
        let header = a.traceparent();
        assert!(parse_traceparent(std::str::from_utf8(&header).unwrap()).is_some());
    }

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
/// The ids print as W3C hex (32 and 16 lowercase digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// This server's span.
    pub span_id: SpanId,
    /// The caller's span, if a valid `traceparent` came in.
    pub parent_span_id: Option<SpanId>,
}

impl TraceContext {
    /// A new span in the caller's trace (or in a new trace); ids from the process's fast
    /// random generator (the one UUIDs use), never all zeros.
    pub fn new(incoming: Option<(TraceId, SpanId)>) -> Self {
        let trace_id = incoming.map_or_else(
            // A v4 UUID has fixed version bits, so it is never zero.
            || TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes()),
            |(t, _)| t,
        );
        // The low half of a v4 UUID carries the variant bits: never zero either.
        let span_id = SpanId::from_bytes(uuid::Uuid::new_v4().as_u64_pair().1.to_be_bytes());
        Self {
            trace_id,
            span_id,
            parent_span_id: incoming.map(|(_, s)| s),
        }
    }

    /// The `traceparent` header of this span (sampled), written without allocating.
    pub fn traceparent(&self) -> [u8; TRACEPARENT_LEN] {
        use std::io::Write as _;
        let mut out = [0u8; TRACEPARENT_LEN];
        write!(&mut out[..], "00-{}-{}-01", self.trace_id, self.span_id)
            .expect("a traceparent is exactly TRACEPARENT_LEN bytes");
        out
    }
}

/// The length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-01`.
pub const TRACEPARENT_LEN: usize = 55;

/// The W3C trace-context header, read from requests and set on responses.
pub const TRACEPARENT: axum::http::HeaderName = axum::http::HeaderName::from_static("traceparent");

/// A caller's `traceparent`, parsed once per request (for the exported span's parent and
/// for the handlers' [`TraceContext`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncomingTrace {
    /// The caller's trace.
    pub trace_id: TraceId,
    /// The caller's span: the parent of this request's.
    pub span_id: SpanId,
    /// The caller sampled its trace (flag bit 0).
    pub sampled: bool,
}

impl IncomingTrace {
    /// The request's `traceparent`, if it is present and valid.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Self> {
        Self::parse(headers.get(TRACEPARENT)?.to_str().ok()?)
    }

    /// Parse a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase); all-zero ids
    /// and version `ff` are invalid.
    pub fn parse(v: &str) -> Option<Self> {
        let mut parts = v.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(span).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

/// Parse a W3C `traceparent` into its trace and parent span ids ([`IncomingTrace::parse`]
/// without the flags).
pub fn parse_traceparent(v: &str) -> Option<(TraceId, SpanId)> {
    IncomingTrace::parse(v).map(|i| (i.trace_id, i.span_id))
}

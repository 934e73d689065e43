//! Logs and traces: the process's `tracing` subscriber (JSON or text logs on stderr) and,
//! when `telemetry.otlp` is configured, OpenTelemetry export of the spans over OTLP/HTTP.
//!
//! With OTLP on, every request's span continues the caller's W3C `traceparent` (or starts
//! a trace), the eino components of the run (graph, nodes, models, tools) are exported as
//! GenAI spans inside it, and the ids in the logs and in the response's `traceparent` are
//! the exported ones. Spans leave in batches on a background thread; [`Telemetry`] flushes
//! the last ones when dropped (at shutdown).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eino::{Error, Result};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

use crate::config::TelemetryConfig;

/// `telemetry.otlp:` an OpenTelemetry collector to export traces to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to
    /// `<endpoint>/v1/traces` unless the URL already has a path.
    pub endpoint: String,
    /// `http/protobuf` (default) or `http/json`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Request headers whose values come from environment variables (header → variable),
    /// e.g. a vendor's API key.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// Share of new traces kept (0–1); a caller's sampled flag is honoured.
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// Deadline of one export.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_service() -> String {
    "eino".into()
}
fn default_ratio() -> f64 {
    1.0
}

/// The OTLP encoding.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// Protocol buffers (what collectors expect by default).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpConfig {
    /// Check the entry; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), crate::error::ConfigError> {
        use crate::error::ConfigError;
        let url = self.endpoint.parse::<axum::http::Uri>().ok();
        if !url
            .as_ref()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        {
            return Err(ConfigError::new(
                "telemetry.otlp.endpoint",
                format!("{:?} is not an http:// or https:// URL", self.endpoint),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::new(
                "telemetry.otlp.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }

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
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&config.log_level));
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
    let Some((trace, parent)) = crate::http::parse_traceparent(value) else {
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
            headers_env: BTreeMap::new(),
            service_name: default_service(),
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

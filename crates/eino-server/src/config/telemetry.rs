//! `telemetry:`: logs, run traces and OpenTelemetry export.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{positive, ConfigError};

/// `telemetry:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `json` or `text`.
    pub log_format: String,
    /// A tracing filter (`info`, `eino_server=debug` …).
    pub log_level: String,
    /// Keep run traces for `/api/v1/runs` (one row per request, written in batches off the
    /// request path; about a third of the CPU of a plain proxied request).
    pub record_runs: bool,
    /// Share of successful runs whose traces are kept (0–1). Failed, interrupted and
    /// cancelled runs are always kept (without node details when outside the sample).
    pub record_runs_sample: f64,
    /// Export traces to an OpenTelemetry collector (OTLP/HTTP).
    pub otlp: Option<OtlpConfig>,
    /// Run traces older than this are removed (hourly sweep); 0 keeps them.
    pub runs_ttl_secs: u64,
    /// Run traces kept at most (the oldest go first, hourly sweep); 0: no cap.
    pub runs_max: u64,
    /// How long (milliseconds) run traces are gathered before they are written, in
    /// transactions of 32 (512 gathered sooner go in one); 0 writes as soon as the writer
    /// is free. A crash loses at most this window's traces; a shutdown and
    /// `GET /api/v1/runs` write them first.
    pub runs_flush_ms: u64,
    /// Largest stored trace of one run (its nodes' inputs and outputs as JSON); a larger
    /// trace keeps its nodes' names, timings and errors without their inputs and outputs.
    pub runs_max_trace_bytes: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: "json".into(),
            log_level: "info".into(),
            record_runs: true,
            record_runs_sample: 1.0,
            otlp: None,
            runs_ttl_secs: 7 * 24 * 3600,
            runs_max: 1_000_000,
            runs_max_trace_bytes: 256 << 10,
            runs_flush_ms: 100,
        }
    }
}

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

impl TelemetryConfig {
    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !["json", "text"].contains(&self.log_format.as_str()) {
            return Err(ConfigError::new(
                "telemetry.log_format",
                "must be json or text",
            ));
        }
        if !(0.0..=1.0).contains(&self.record_runs_sample) {
            return Err(ConfigError::new(
                "telemetry.record_runs_sample",
                "must be between 0 and 1",
            ));
        }
        positive(
            "telemetry.runs_max_trace_bytes",
            self.runs_max_trace_bytes as u64,
        )?;
        if self.runs_flush_ms > 60_000 {
            return Err(ConfigError::new(
                "telemetry.runs_flush_ms",
                "must be at most 60000 (a minute of traces at risk in a crash)",
            ));
        }
        if let Some(o) = &self.otlp {
            o.validate()?;
        }
        Ok(())
    }
}

impl OtlpConfig {
    /// Check the entry; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
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
}

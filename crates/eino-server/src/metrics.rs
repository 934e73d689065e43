//! Prometheus metrics: the recorder, an HTTP middleware (requests, latency by route and
//! status), gauges of work in flight, and gauges of state read at scrape time.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Install the process-wide recorder once and return its handle (later calls share it).
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (embedding application): render an empty one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Counts itself in a gauge (`eino_streams_in_flight`, `eino_ingest_jobs_running`) while
/// alive, so an early return or a dropped future cannot leave the gauge off by one.
pub struct InFlight(&'static str);

impl InFlight {
    /// One more in `gauge` until this is dropped.
    pub fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// Gauges read at scrape time rather than kept up to date: `eino_breaker_open{model}` (1
/// while a model's breaker refuses calls, half-open included), `eino_ready` (what
/// `/ready` would answer) and `eino_build_info{version}`. Alerts on a breaker that stays
/// open and on readiness that flaps read these.
pub fn observe_state(models: &crate::registry::Registry, ready: bool) {
    for (id, m) in &models.models {
        let open = m.breaker.state() != crate::resilience::BreakerState::Closed;
        metrics::gauge!("eino_breaker_open", "model" => id.clone()).set(f64::from(u8::from(open)));
    }
    metrics::gauge!("eino_ready").set(f64::from(u8::from(ready)));
    metrics::gauge!("eino_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

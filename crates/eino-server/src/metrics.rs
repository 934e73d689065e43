//! Prometheus metrics: the recorder, an HTTP middleware (requests, latency by route and
//! status), and a gauge of open streams.

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

/// Counts itself in `eino_streams_in_flight` while alive.
pub struct InFlightStream(());

impl InFlightStream {
    /// One more open stream.
    pub fn new() -> Self {
        metrics::gauge!("eino_streams_in_flight").increment(1.0);
        Self(())
    }
}

impl Default for InFlightStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for InFlightStream {
    fn drop(&mut self) {
        metrics::gauge!("eino_streams_in_flight").decrement(1.0);
    }
}

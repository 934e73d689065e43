//! [`MetricsHandler`]: component calls, latency, errors and tokens for `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use eino::callbacks::{
    CallbackStream, CallbackValue, ComponentKind, Handler, RunInfo, ScopeValue, StreamEnd,
    StreamWatcher,
};
use eino::Error;

use super::usage_of;

/// Counts every component call of every run in `/metrics`:
/// `eino_component_calls_total`, `eino_component_errors_total`,
/// `eino_component_duration_seconds`, `eino_tokens_total{kind=prompt|completion}`.
///
/// The handles are kept per component and node name (names come from the applications'
/// graphs, a bounded set): the recorder's lookup builds and hashes the labels on every
/// call otherwise, twice per component of every request.
#[derive(Default)]
pub struct MetricsHandler {
    by_name: RwLock<HashMap<String, Vec<ComponentMetrics>>>,
    tokens: OnceLock<[metrics::Counter; 2]>,
}

impl std::fmt::Debug for MetricsHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandler").finish_non_exhaustive()
    }
}

/// One component's handles.
struct ComponentMetrics {
    component: ComponentKind,
    calls: metrics::Counter,
    errors: metrics::Counter,
    duration: metrics::Histogram,
}

impl MetricsHandler {
    /// Run `f` on the handles of `info`'s component and name, registering them on first use.
    fn with<R>(&self, info: &RunInfo, f: impl FnOnce(&ComponentMetrics) -> R) -> R {
        let is = |m: &&ComponentMetrics| m.component == info.component;
        {
            let map = self.by_name.read().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = map
                .get(info.name.as_ref())
                .and_then(|ms| ms.iter().find(is))
            {
                return f(m);
            }
        }
        let mut map = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(info.name.to_string()).or_default();
        if let Some(m) = list.iter().find(is) {
            return f(m);
        }
        let labels = [
            ("component", info.component.as_str().to_string()),
            ("name", info.name.to_string()),
        ];
        let m = ComponentMetrics {
            component: info.component,
            calls: metrics::counter!("eino_component_calls_total", &labels),
            errors: metrics::counter!("eino_component_errors_total", &labels),
            duration: metrics::histogram!("eino_component_duration_seconds", &labels),
        };
        let r = f(&m);
        list.push(m);
        r
    }

    /// `eino_tokens_total{kind="prompt"}` and `{kind="completion"}`.
    fn token_counters(&self) -> &[metrics::Counter; 2] {
        self.tokens.get_or_init(|| {
            [
                metrics::counter!("eino_tokens_total", "kind" => "prompt"),
                metrics::counter!("eino_tokens_total", "kind" => "completion"),
            ]
        })
    }
}

fn count_tokens(counters: &[metrics::Counter; 2], usage: Option<(u64, u64)>) {
    if let Some((p, c)) = usage {
        counters[0].increment(p);
        counters[1].increment(c);
    }
}

impl Handler for MetricsHandler {
    fn on_start(
        &self,
        info: &RunInfo,
        _: CallbackValue<'_>,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        self.with(info, |m| m.calls.increment(1));
        Some(Arc::new(Instant::now()))
    }

    fn on_end(&self, info: &RunInfo, output: CallbackValue<'_>, scope: Option<&ScopeValue>) {
        if let Some(t) = scope.and_then(|s| s.downcast_ref::<Instant>()) {
            self.with(info, |m| m.duration.record(t.elapsed().as_secs_f64()));
        }
        if info.component == ComponentKind::ChatModel {
            count_tokens(self.token_counters(), usage_of(output));
        }
    }

    fn on_error(&self, info: &RunInfo, _: &Error, _: Option<&ScopeValue>) {
        self.with(info, |m| m.errors.increment(1));
    }

    fn on_start_with_stream_input(
        &self,
        info: &RunInfo,
        input: CallbackStream,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        drop(input);
        self.with(info, |m| m.calls.increment(1));
        Some(Arc::new(Instant::now()))
    }

    fn watch_stream_output(
        &self,
        info: &RunInfo,
        scope: Option<&ScopeValue>,
    ) -> Option<Box<dyn StreamWatcher>> {
        let is_model = info.component == ComponentKind::ChatModel;
        Some(Box::new(DurationWatcher {
            start: scope.and_then(|s| s.downcast_ref::<Instant>()).copied(),
            duration: self.with(info, |m| m.duration.clone()),
            tokens: is_model.then(|| self.token_counters().clone()),
            last_usage: None,
        }))
    }
}

/// Records a streamed call's duration at its stream's end, and a model's token usage.
struct DurationWatcher {
    start: Option<Instant>,
    duration: metrics::Histogram,
    /// The token counters, for a model's stream only.
    tokens: Option<[metrics::Counter; 2]>,
    last_usage: Option<(u64, u64)>,
}

impl StreamWatcher for DurationWatcher {
    fn on_item(&mut self, item: Result<CallbackValue<'_>, &Error>) {
        if self.tokens.is_some() {
            if let Some(u) = item.ok().and_then(usage_of) {
                self.last_usage = Some(u);
            }
        }
    }

    fn on_finish(self: Box<Self>, _: StreamEnd) {
        if let Some(t) = self.start {
            self.duration.record(t.elapsed().as_secs_f64());
        }
        if let Some(tokens) = &self.tokens {
            count_tokens(tokens, self.last_usage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_handles_are_kept_once_per_component_and_name() {
        let m = MetricsHandler::default();
        let model = RunInfo::new("model", "Fake", ComponentKind::ChatModel);
        let lambda = RunInfo::new("model", "Lambda", ComponentKind::Lambda);
        let other = RunInfo::new("retrieve", "Fake", ComponentKind::Retriever);
        for info in [&model, &model, &lambda, &other, &model] {
            let scope = m.on_start(info, &(), None);
            m.on_end(info, &(), scope.as_ref());
        }
        m.on_error(&other, &Error::internal("x"), None);
        let map = m.by_name.read().unwrap();
        assert_eq!(map["model"].len(), 2, "one entry per component kind");
        assert_eq!(map["retrieve"].len(), 1);
        assert_eq!(map.len(), 2);
    }
}

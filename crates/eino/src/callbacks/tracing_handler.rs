//! A handler that emits `tracing` spans named and attributed after the OpenTelemetry GenAI
//! semantic conventions, so an OTLP exporter downstream shows model calls as GenAI spans.

use std::sync::Arc;

use tracing::field::Empty;
use tracing::Span;

use super::{CallbackValue, ComponentKind, Handler, RunInfo, ScopeValue, StreamEnd, StreamWatcher};
use crate::component::ChatCallbackInput;
use crate::error::Error;
use crate::schema::Message;

/// Emits one `tracing` span per component call, nested like the calls (graph → node →
/// component), with `gen_ai.operation.name`, `gen_ai.request.model`,
/// `gen_ai.request.temperature`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
/// `gen_ai.response.finish_reasons` and `error.type` where they apply.
///
/// ```
/// use std::sync::Arc;
/// eino::callbacks::append_global_handlers([Arc::new(eino::callbacks::TracingHandler) as _]);
/// # eino::callbacks::clear_global_handlers();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingHandler;

/// The GenAI operation name for a component kind.
pub(crate) fn operation_name(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::ChatModel => "chat",
        ComponentKind::Embedder => "embeddings",
        ComponentKind::Tool => "execute_tool",
        ComponentKind::Retriever => "retrieve",
        ComponentKind::Graph | ComponentKind::Chain | ComponentKind::Workflow => "invoke_graph",
        _ => "invoke_component",
    }
}

impl TracingHandler {
    fn open(info: &RunInfo, parent: Option<&ScopeValue>) -> Span {
        let parent = parent.and_then(|p| p.downcast_ref::<Span>()).cloned();
        let op = operation_name(info.component);
        // The outermost call joins whatever span is current (a server's request span), so
        // a run shows up inside the trace of the request that started it.
        let parent_id = match &parent {
            Some(p) => p.id(),
            None => Span::current().id(),
        };
        let span = tracing::info_span!(
            parent: parent_id,
            "gen_ai",
            otel.name = %format_args!("{op} {}", info.name),
            gen_ai.operation.name = op,
            eino.component = info.component.as_str(),
            eino.type = %info.typ,
            eino.name = %info.name,
            gen_ai.request.model = Empty,
            gen_ai.request.temperature = Empty,
            gen_ai.request.max_tokens = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.tool.name = Empty,
            error.type = Empty,
        );
        if info.component == ComponentKind::Tool {
            span.record("gen_ai.tool.name", info.name.as_ref());
        }
        span
    }
}

fn record_message(span: &Span, m: &Message) {
    if let Some(meta) = &m.meta {
        if let Some(u) = meta.usage {
            span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
            span.record("gen_ai.usage.output_tokens", u.completion_tokens);
        }
        if let Some(fr) = &meta.finish_reason {
            span.record("gen_ai.response.finish_reasons", fr.as_str());
        }
    }
}

impl Handler for TracingHandler {
    fn on_start(
        &self,
        info: &RunInfo,
        input: CallbackValue<'_>,
        parent: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        let span = Self::open(info, parent);
        if let Some(chat) = input.downcast_ref::<ChatCallbackInput>() {
            if let Some(model) = &chat.options.model {
                span.record("gen_ai.request.model", model.as_str());
            }
            if let Some(t) = chat.options.temperature {
                span.record("gen_ai.request.temperature", t);
            }
            if let Some(m) = chat.options.max_tokens {
                span.record("gen_ai.request.max_tokens", m);
            }
        }
        Some(Arc::new(span))
    }

    fn on_end(&self, _info: &RunInfo, output: CallbackValue<'_>, scope: Option<&ScopeValue>) {
        let Some(span) = scope.and_then(|s| s.downcast_ref::<Span>()) else {
            return;
        };
        if let Some(m) = output.downcast_ref::<Message>() {
            record_message(span, m);
        }
    }

    fn on_error(&self, _info: &RunInfo, error: &Error, scope: Option<&ScopeValue>) {
        if let Some(span) = scope.and_then(|s| s.downcast_ref::<Span>()) {
            span.record("error.type", error.kind().to_string().as_str());
            let _g = span.enter();
            tracing::error!(error = %error, "component failed");
        }
    }

    fn on_start_with_stream_input(
        &self,
        info: &RunInfo,
        _input: super::CallbackStream,
        parent: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        Some(Arc::new(Self::open(info, parent)))
    }

    fn watch_stream_output(
        &self,
        _info: &RunInfo,
        scope: Option<&ScopeValue>,
    ) -> Option<Box<dyn StreamWatcher>> {
        let span = scope.and_then(|s| s.downcast_ref::<Span>()).cloned()?;
        Some(Box::new(SpanWatcher {
            span,
            metas: Vec::new(),
        }))
    }
}

/// Usage and finish reason arrive in the stream: keeps the chunks that carry them (one or
/// two per answer) and records them on the span at the end.
struct SpanWatcher {
    span: Span,
    metas: Vec<Message>,
}

impl StreamWatcher for SpanWatcher {
    fn on_item(&mut self, item: Result<CallbackValue<'_>, &Error>) {
        if let Some(m) = item.ok().and_then(|c| c.downcast_ref::<Message>()) {
            if m.meta.is_some() {
                self.metas.push(Message {
                    role: m.role,
                    meta: m.meta.clone(),
                    ..Message::default()
                });
            }
        }
    }

    fn on_finish(self: Box<Self>, _: StreamEnd) {
        if self.metas.is_empty() {
            return;
        }
        if let Ok(m) = <Message as crate::schema::Concat>::concat(self.metas) {
            record_message(&self.span, &m);
        }
    }
}

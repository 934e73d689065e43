//! Callbacks: observe every component, lambda, tools node and graph at five timings.
//!
//! A [`Handler`] sees `on_start` / `on_end` / `on_error` for value calls and
//! `on_start_with_stream_input` / `on_end_with_stream_output` for streams. Handlers come from
//! [`append_global_handlers`] or per call ([`Context::with_callbacks`](crate::compose::Context::with_callbacks),
//! optionally designated to nodes). With no handler installed nothing is copied or allocated.
//!
//! A handler can keep per-call data (a tracing span, a start time) by returning a
//! [`ScopeValue`] from `on_start`; it gets it back in `on_end` / `on_error`, and nested
//! components receive it as their `parent`.
//!
//! A handler that only looks at a streamed output's chunks as they pass (a duration, token
//! usage) can return a [`StreamWatcher`] from [`Handler::watch_stream_output`] instead of
//! reading a copy: it is called from the stream's reader, with no buffer and no task.

mod manager;
mod tracing_handler;
mod watch;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::error::Error;
use crate::schema::StreamReader;

pub(crate) use manager::{ActiveCall, Callbacks};
pub use tracing_handler::TracingHandler;
pub use watch::{StreamEnd, StreamWatcher};

/// What kind of thing a callback is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComponentKind {
    /// A chat model.
    ChatModel,
    /// A prompt template.
    ChatTemplate,
    /// One tool call.
    Tool,
    /// A node running an assistant message's tool calls.
    ToolsNode,
    /// A retriever.
    Retriever,
    /// An embedder.
    Embedder,
    /// An indexer.
    Indexer,
    /// A document loader.
    Loader,
    /// A document transformer (splitter, filter …).
    Transformer,
    /// A user function node.
    Lambda,
    /// A node that passes its input on unchanged.
    Passthrough,
    /// A compiled graph (also when used as a subgraph).
    Graph,
    /// A compiled chain.
    Chain,
    /// A compiled workflow.
    Workflow,
}

impl ComponentKind {
    /// Eino's name for the kind (`ChatModel`, `Lambda`, `Graph` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatModel => "ChatModel",
            Self::ChatTemplate => "ChatTemplate",
            Self::Tool => "Tool",
            Self::ToolsNode => "ToolsNode",
            Self::Retriever => "Retriever",
            Self::Embedder => "Embedding",
            Self::Indexer => "Indexer",
            Self::Loader => "Loader",
            Self::Transformer => "DocumentTransformer",
            Self::Lambda => "Lambda",
            Self::Passthrough => "Passthrough",
            Self::Graph => "Graph",
            Self::Chain => "Chain",
            Self::Workflow => "Workflow",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which callback is about to fire; see [`Handler::needed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timing {
    /// Before a value call.
    Start,
    /// After a value call succeeded.
    End,
    /// After a call failed.
    Error,
    /// Before a call that takes a stream.
    StartWithStreamInput,
    /// After a call that returns a stream.
    EndWithStreamOutput,
}

/// Who is being called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// Node name (the node key unless a name was set), or the graph name.
    pub name: Cow<'static, str>,
    /// Implementation type (`Lambda`, `OpenAI`, `Default` …).
    pub typ: Cow<'static, str>,
    /// Component kind.
    pub component: ComponentKind,
}

impl RunInfo {
    /// A run info.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        typ: impl Into<Cow<'static, str>>,
        component: ComponentKind,
    ) -> Self {
        Self {
            name: name.into(),
            typ: typ.into(),
            component,
        }
    }
}

/// Per-call data a handler keeps between `on_start` and `on_end`, also handed to nested
/// components as their parent (e.g. a tracing span).
pub type ScopeValue = Arc<dyn Any + Send + Sync>;

/// A callback's view of a value: the component's input or output (downcast it with
/// `downcast_ref::<Vec<Message>>()` etc.).
pub type CallbackValue<'a> = &'a (dyn Any + Send + Sync);

/// A copy of a streamed input or output, type-erased. Dropping it closes the copy.
pub type CallbackStream = StreamReader<Arc<dyn Any + Send + Sync>>;

/// Observes component calls. Every method has a no-op default, so implement what you need.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
/// use eino::callbacks::{CallbackValue, Handler, RunInfo, ScopeValue};
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl Handler for Count {
///     fn on_start(&self, _: &RunInfo, _: CallbackValue<'_>, _: Option<&ScopeValue>) -> Option<ScopeValue> {
///         self.0.fetch_add(1, Ordering::Relaxed);
///         None
///     }
/// }
/// ```
pub trait Handler: Send + Sync {
    /// Whether this handler wants `timing` for `info`; returning false saves a stream copy.
    fn needed(&self, info: &RunInfo, timing: Timing) -> bool {
        let _ = (info, timing);
        true
    }

    /// Before a value call. `parent` is what this handler returned for the enclosing call.
    fn on_start(
        &self,
        info: &RunInfo,
        input: CallbackValue<'_>,
        parent: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        let _ = (info, input);
        parent.cloned()
    }

    /// After a value call succeeded; `scope` is what `on_start` returned.
    fn on_end(&self, info: &RunInfo, output: CallbackValue<'_>, scope: Option<&ScopeValue>) {
        let _ = (info, output, scope);
    }

    /// After a call failed.
    fn on_error(&self, info: &RunInfo, error: &Error, scope: Option<&ScopeValue>) {
        let _ = (info, error, scope);
    }

    /// Before a call whose input is a stream; the handler must drop `input` when done.
    fn on_start_with_stream_input(
        &self,
        info: &RunInfo,
        input: CallbackStream,
        parent: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        let _ = (info, input);
        parent.cloned()
    }

    /// After a call that returns a stream; the handler must drop `output` when done.
    fn on_end_with_stream_output(
        &self,
        info: &RunInfo,
        output: CallbackStream,
        scope: Option<&ScopeValue>,
    ) {
        let _ = (info, output, scope);
    }

    /// After a call that returns a stream, for a handler that only looks at the chunks as
    /// they pass: a [`StreamWatcher`] returned here is called from the stream's reader as
    /// it takes each chunk, and this handler gets no copy
    /// ([`on_end_with_stream_output`](Self::on_end_with_stream_output) is not called). No
    /// buffer, no lock per chunk, no task of the handler's own. `None` (the default) asks
    /// for the copy.
    fn watch_stream_output(
        &self,
        info: &RunInfo,
        scope: Option<&ScopeValue>,
    ) -> Option<Box<dyn StreamWatcher>> {
        let _ = (info, scope);
        None
    }
}

static GLOBAL: RwLock<Vec<Arc<dyn Handler>>> = RwLock::new(Vec::new());

/// Add handlers that observe every run started afterwards (in this process).
pub fn append_global_handlers(handlers: impl IntoIterator<Item = Arc<dyn Handler>>) {
    let mut g = GLOBAL.write().unwrap_or_else(|p| p.into_inner());
    g.extend(handlers);
    crate::compose::note_globals_changed(!g.is_empty());
}

/// Remove every global handler (mainly for tests).
pub fn clear_global_handlers() {
    GLOBAL.write().unwrap_or_else(|p| p.into_inner()).clear();
    crate::compose::note_globals_changed(false);
}

pub(crate) fn global_handlers() -> Vec<Arc<dyn Handler>> {
    let g = GLOBAL.read().unwrap_or_else(|p| p.into_inner());
    if g.is_empty() {
        Vec::new()
    } else {
        g.clone()
    }
}

//! The per-run context handed to every node: callbacks, call options (optionally designated
//! to nodes), graph state, cancellation and step limits. Like Go's `ctx`, but typed.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::checkpoint::{CheckpointRun, NodePath, NodeResume};
use crate::callbacks::{self, ActiveCall, Callbacks, ComponentKind, Handler, RunInfo};
use crate::component::{
    ChatOptions, EmbedOptions, IndexOptions, LoadOptions, RetrieveOptions, ToolOptions,
    TransformOptions,
};
use crate::error::{Error, Result};

/// An option for one call of a graph, routed by type to the nodes that use it, or
/// designated to particular nodes (also inside subgraphs).
///
/// ```
/// use eino::compose::{CallOption, Context};
/// use eino::component::ChatOptions;
/// let ctx = Context::new()
///     .with_option(CallOption::chat_model(ChatOptions::default().with_top_p(1.0)))
///     .with_option(CallOption::chat_model(ChatOptions::default().with_model("123")).designate("2"))
///     .with_option(CallOption::lambda(42u32).designate_path(["sub", "inner"]));
/// # let _ = ctx;
/// ```
#[derive(Clone)]
pub struct CallOption {
    value: Arc<dyn Any + Send + Sync>,
    type_id: TypeId,
    type_name: &'static str,
    target: ComponentKind,
    paths: Vec<NodePath>,
}

impl fmt::Debug for CallOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOption")
            .field("type", &self.type_name)
            .field("target", &self.target)
            .field("paths", &self.paths)
            .finish()
    }
}

impl CallOption {
    fn of<T: Any + Send + Sync>(value: T, target: ComponentKind) -> Self {
        Self {
            value: Arc::new(value),
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            target,
            paths: Vec::new(),
        }
    }

    /// Options for chat-model nodes.
    pub fn chat_model(o: ChatOptions) -> Self {
        Self::of(o, ComponentKind::ChatModel)
    }

    /// Options for retriever nodes.
    pub fn retriever(o: RetrieveOptions) -> Self {
        Self::of(o, ComponentKind::Retriever)
    }

    /// Options for embedder nodes.
    pub fn embedder(o: EmbedOptions) -> Self {
        Self::of(o, ComponentKind::Embedder)
    }

    /// Options for indexer nodes.
    pub fn indexer(o: IndexOptions) -> Self {
        Self::of(o, ComponentKind::Indexer)
    }

    /// Options for loader nodes.
    pub fn loader(o: LoadOptions) -> Self {
        Self::of(o, ComponentKind::Loader)
    }

    /// Options for transformer nodes.
    pub fn transformer(o: TransformOptions) -> Self {
        Self::of(o, ComponentKind::Transformer)
    }

    /// Options passed to every tool a tools node calls.
    pub fn tools(o: ToolOptions) -> Self {
        Self::of(o, ComponentKind::ToolsNode)
    }

    /// A value of your own type for lambda nodes (read with [`Context::options`]).
    pub fn lambda<T: Any + Send + Sync>(value: T) -> Self {
        Self::of(value, ComponentKind::Lambda)
    }

    /// Apply only to the node `key` of the graph being called.
    pub fn designate(mut self, key: impl Into<String>) -> Self {
        self.paths.push(vec![key.into()]);
        self
    }

    /// Apply only to the node at `path` (subgraph keys, then the node key).
    pub fn designate_path<S: Into<String>>(mut self, path: impl IntoIterator<Item = S>) -> Self {
        self.paths.push(path.into_iter().map(Into::into).collect());
        self
    }
}

/// A designated path's first key, whether it goes deeper, and the option's target kind and
/// type name (`None` for handlers).
pub(crate) type Designation<'a> = (&'a str, bool, Option<(ComponentKind, &'static str)>);

/// A frame of graph state; nested graphs link to their parent's frame.
pub(crate) struct StateFrame {
    pub(crate) value: Mutex<Box<dyn Any + Send>>,
    pub(crate) parent: Option<Arc<StateFrame>>,
}

#[derive(Clone, Default)]
struct Inner {
    callbacks: Callbacks,
    designated_handlers: Vec<(NodePath, Arc<dyn Handler>)>,
    options: Vec<CallOption>,
    run_info: Option<RunInfo>,
    state: Option<Arc<StateFrame>>,
    /// Shared: a token's own clone takes a lock, and contexts are cloned per node.
    cancel: Option<Arc<CancellationToken>>,
    max_steps: Option<usize>,
    globals_applied: bool,
    /// Root-call checkpoint options (consumed by the outermost graph).
    checkpoint: Option<Arc<CheckpointRun>>,
    /// What a re-run node or resumed subgraph gets back (consumed by that node).
    resume: Option<Arc<NodeResume>>,
    /// Inside a checkpointed run: nodes keep a copy of their input in case they interrupt.
    durable: bool,
}

/// The context of one call: what the caller asked for (callbacks, options, cancellation,
/// step limit) and what the running graph provides (state). Cheap to clone; an empty
/// context allocates nothing.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use eino::compose::{lambda, Context, Runnable};
/// let add_one = lambda(|x: i64| async move { Ok(x + 1) });
/// assert_eq!(add_one.invoke(41, &Context::new()).await.unwrap(), 42);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Context {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Context(empty)"),
            Some(i) => f
                .debug_struct("Context")
                .field("options", &i.options)
                .field("run_info", &i.run_info)
                .field("has_state", &i.state.is_some())
                .field("max_steps", &i.max_steps)
                .finish(),
        }
    }
}

static GLOBALS_PRESENT: AtomicBool = AtomicBool::new(false);

pub(crate) fn note_globals_changed(present: bool) {
    GLOBALS_PRESENT.store(present, Ordering::Release);
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = self
            .inner
            .take()
            .map(|i| Arc::try_unwrap(i).unwrap_or_else(|a| (*a).clone()))
            .unwrap_or_default();
        f(&mut inner);
        self.inner = Some(Arc::new(inner));
        self
    }

    /// Add a handler for this call: it sees the graph and every node inside it.
    pub fn with_callbacks(self, handler: Arc<dyn Handler>) -> Self {
        self.edit(|i| i.callbacks = i.callbacks.with_front(&[handler]))
    }

    /// Add a handler that sees only the node at `path` (and what runs inside it).
    pub fn with_callbacks_for<S: Into<String>>(
        self,
        handler: Arc<dyn Handler>,
        path: impl IntoIterator<Item = S>,
    ) -> Self {
        let path: NodePath = path.into_iter().map(Into::into).collect();
        self.edit(|i| i.designated_handlers.push((path, handler)))
    }

    /// Add a call option.
    pub fn with_option(self, option: CallOption) -> Self {
        self.edit(|i| i.options.push(option))
    }

    /// Stop the run when `token` is cancelled (nodes are dropped, streams closed).
    ///
    /// Callback handlers' copies of streams end too (with a `cancelled` error), so a
    /// handler reading its copy does not keep the source running.
    pub fn with_cancel(self, token: CancellationToken) -> Self {
        self.edit(|i| {
            let token = Arc::new(token);
            i.callbacks = i.callbacks.with_cancel(Some(token.clone()));
            i.cancel = Some(token);
        })
    }

    /// Override the step limit of a cyclic (Pregel) graph for this call.
    pub fn with_max_steps(self, steps: usize) -> Self {
        self.edit(|i| i.max_steps = Some(steps))
    }

    /// Whether the caller cancelled the run.
    /// Checkpoint this run: save on interrupt, resume from a saved checkpoint, hand resume
    /// data to interrupted nodes. The graph must be compiled with a checkpoint store.
    pub fn with_checkpoint(self, run: CheckpointRun) -> Self {
        self.edit(|i| i.checkpoint = Some(Arc::new(run)))
    }

    /// In a node that interrupted itself with
    /// [`Error::interrupt_with_state`](crate::Error::interrupt_with_state) and now re-runs:
    /// the state it saved. `None` on a first run or if it does not fit `T`.
    pub fn interrupt_state<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let r = self.inner.as_ref()?.resume.as_ref()?;
        serde_json::from_value(r.state.clone()?).ok()
    }

    /// In a re-run node: the data the caller passed with
    /// [`CheckpointRun::resume_with`] for it. `None` if none was given or it does not fit `T`.
    pub fn resume_data<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        let r = self.inner.as_ref()?.resume.as_ref()?;
        serde_json::from_value(r.data.clone()?).ok()
    }

    /// True in a node that interrupted before and is now re-running.
    pub fn is_resumed(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.resume.is_some())
    }

    pub(crate) fn checkpoint_run(&self) -> Option<&Arc<CheckpointRun>> {
        self.inner.as_ref().and_then(|i| i.checkpoint.as_ref())
    }

    pub(crate) fn node_resume(&self) -> Option<&Arc<NodeResume>> {
        self.inner.as_ref().and_then(|i| i.resume.as_ref())
    }

    pub(crate) fn is_durable(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.durable || i.checkpoint.is_some())
    }

    /// This context for the graph body: checkpoint options and resume data consumed, runs
    /// durable if they were set.
    pub(crate) fn for_graph_body(&self) -> Context {
        let Some(inner) = &self.inner else {
            return Context::default();
        };
        if inner.checkpoint.is_none() && inner.resume.is_none() {
            return self.clone();
        }
        self.clone().edit(|i| {
            i.durable = true;
            i.checkpoint = None;
            i.resume = None;
        })
    }

    /// This context as for a first run of the node (what it saved is ignored).
    pub(crate) fn without_resume(&self) -> Context {
        if self.inner.as_ref().is_some_and(|i| i.resume.is_some()) {
            return self.clone().edit(|i| i.resume = None);
        }
        self.clone()
    }

    pub(crate) fn with_resume(self, resume: Arc<NodeResume>) -> Context {
        self.edit(|i| i.resume = Some(resume))
    }

    /// The state frame of the innermost graph that has state.
    pub(crate) fn top_state_frame(&self) -> Option<&Arc<StateFrame>> {
        self.inner.as_ref().and_then(|i| i.state.as_ref())
    }

    /// True if the token was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel_token().is_some_and(|t| t.is_cancelled())
    }

    pub(crate) fn cancel_token(&self) -> Option<&CancellationToken> {
        self.inner.as_ref().and_then(|i| i.cancel.as_deref())
    }

    pub(crate) fn max_steps(&self) -> Option<usize> {
        self.inner.as_ref().and_then(|i| i.max_steps)
    }

    /// The options of type `T` that apply here, in the order they were added.
    pub fn options<T: Any + Send + Sync>(&self) -> impl Iterator<Item = &T> {
        let id = TypeId::of::<T>();
        self.inner
            .iter()
            .flat_map(|i| i.options.iter())
            .filter(move |o| o.type_id == id && o.paths.is_empty())
            .filter_map(|o| o.value.downcast_ref::<T>())
    }

    /// The chat options that apply here, merged in order (later wins).
    pub fn chat_options(&self) -> ChatOptions {
        let mut out = ChatOptions::default();
        for o in self.options::<ChatOptions>() {
            out.merge(o);
        }
        out
    }

    /// Who is running (set by graphs for each node when callbacks are installed).
    pub fn run_info(&self) -> Option<&RunInfo> {
        self.inner.as_ref().and_then(|i| i.run_info.as_ref())
    }

    /// Run `f` on the graph state of type `S`, searching from the innermost graph outwards
    /// (an inner state of the same type shadows the outer one). The state's lock is held
    /// while `f` runs.
    pub fn process_state<S: Any + Send, R>(&self, f: impl FnOnce(&mut S) -> R) -> Result<R> {
        let mut frame = self.inner.as_ref().and_then(|i| i.state.clone());
        while let Some(fr) = frame {
            let mut guard = fr.value.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = guard.downcast_mut::<S>() {
                return Ok(f(s));
            }
            drop(guard);
            frame = fr.parent.clone();
        }
        Err(Error::invalid_input(format!(
            "no graph state of type {} in this context",
            std::any::type_name::<S>()
        )))
    }

    // ----- crate-internal plumbing -----

    pub(crate) fn callbacks(&self) -> Option<&Callbacks> {
        self.inner
            .as_ref()
            .map(|i| &i.callbacks)
            .filter(|c| !c.is_empty())
    }

    /// Make sure global handlers are included (once, at the outermost call).
    pub(crate) fn rooted(&self) -> Context {
        let applied = self.inner.as_ref().is_some_and(|i| i.globals_applied);
        if applied {
            return self.clone();
        }
        if !GLOBALS_PRESENT.load(Ordering::Acquire) {
            // No globals: nothing to add, and no need to mark (keeps an empty context empty).
            return self.clone();
        }
        let globals = callbacks::global_handlers();
        self.clone().edit(|i| {
            i.globals_applied = true;
            // Per-call handlers first, then globals.
            i.callbacks = Callbacks::new(globals).with_front_callbacks(&i.callbacks);
        })
    }

    /// A context for code running inside `call` (nested components see its scopes).
    pub(crate) fn nested_in(&self, call: &ActiveCall) -> Context {
        self.clone().edit(|i| i.callbacks = call.nested())
    }

    /// Attach a new state frame on top of the existing ones.
    pub(crate) fn with_state_frame(&self, value: Box<dyn Any + Send>) -> Context {
        let parent = self.inner.as_ref().and_then(|i| i.state.clone());
        self.clone().edit(|i| {
            i.state = Some(Arc::new(StateFrame {
                value: Mutex::new(value),
                parent,
            }))
        })
    }

    /// Every designated path's first key, with whether the path goes deeper and the
    /// option's target kind (`None` for handlers).
    pub(crate) fn designations(&self) -> Vec<Designation<'_>> {
        let Some(i) = &self.inner else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for o in &i.options {
            for p in &o.paths {
                if let Some(first) = p.first() {
                    out.push((first.as_str(), p.len() > 1, Some((o.target, o.type_name))));
                }
            }
        }
        for (p, _) in &i.designated_handlers {
            if let Some(first) = p.first() {
                out.push((first.as_str(), p.len() > 1, None));
            }
        }
        out
    }

    /// The context for node `key` of the graph this context belongs to: options designated
    /// to the node become plain options, deeper paths lose their first key, handlers
    /// designated to the node join its callbacks, and `info` is recorded for callbacks.
    pub(crate) fn for_node(&self, key: &str, info: impl FnOnce() -> RunInfo) -> Context {
        let Some(inner) = &self.inner else {
            return Context::default();
        };
        let designated = inner.options.iter().any(|o| !o.paths.is_empty())
            || !inner.designated_handlers.is_empty();
        if inner.callbacks.is_empty()
            && !designated
            && inner.run_info.is_none()
            && inner.max_steps.is_none()
            && inner.checkpoint.is_none()
            && inner.resume.is_none()
        {
            return self.clone();
        }
        let mut options = Vec::with_capacity(inner.options.len());
        for o in &inner.options {
            if o.paths.is_empty() {
                options.push(o.clone());
                continue;
            }
            let mut here = false;
            let mut deeper = Vec::new();
            for p in &o.paths {
                if p.first().map(String::as_str) == Some(key) {
                    if p.len() == 1 {
                        here = true;
                    } else {
                        deeper.push(p[1..].to_vec());
                    }
                }
            }
            if here {
                let mut c = o.clone();
                c.paths.clear();
                options.push(c);
            }
            if !deeper.is_empty() {
                let mut c = o.clone();
                c.paths = deeper;
                options.push(c);
            }
        }
        let mut extra_handlers = Vec::new();
        let mut designated_handlers = Vec::new();
        for (p, h) in &inner.designated_handlers {
            if p.first().map(String::as_str) == Some(key) {
                if p.len() == 1 {
                    extra_handlers.push(h.clone());
                } else {
                    designated_handlers.push((p[1..].to_vec(), h.clone()));
                }
            }
        }
        let callbacks = inner.callbacks.with_front(&extra_handlers);
        let run_info = (!callbacks.is_empty()).then(info);
        Context {
            inner: Some(Arc::new(Inner {
                callbacks,
                designated_handlers,
                options,
                run_info,
                state: inner.state.clone(),
                cancel: inner.cancel.clone(),
                max_steps: None,
                globals_applied: inner.globals_applied,
                checkpoint: None,
                resume: None,
                durable: inner.durable || inner.checkpoint.is_some(),
            })),
        }
    }
}

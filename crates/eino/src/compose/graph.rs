//! The typed graph builder: nodes are added as typed handles, so an edge between an output
//! and an input of different types does not compile. `compile()` checks what rustc cannot.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::compile::{CompileOptions, GraphDef};
use super::context::Context;
use super::ids::{Node, NodeId, Sink, Source, ANY_GRAPH};
use super::node::{IntoNode, NodeDef};
use super::plan::{decode_state, encode_state, PlanBranch, StateHook, StateInit};
use super::run::Compiled;
use super::value::{AnyStream, AnyValue, GraphValue};
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};
use crate::schema::StreamReader;

type ValueCond<T> = Arc<dyn Fn(&T) -> Result<Vec<NodeId>> + Send + Sync>;
type StreamCond<T> =
    Arc<dyn Fn(StreamReader<T>) -> BoxFuture<'static, Result<Vec<NodeId>>> + Send + Sync>;

/// The graph state, for an async state handler: lock it briefly with
/// [`with`](Self::with) (never across an await).
pub struct StateAccess<S> {
    ctx: Context,
    _state: std::marker::PhantomData<fn() -> S>,
}

impl<S> std::fmt::Debug for StateAccess<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateAccess")
    }
}

impl<S: Send + 'static> StateAccess<S> {
    pub(crate) fn new(ctx: Context) -> Self {
        Self {
            ctx,
            _state: std::marker::PhantomData,
        }
    }

    /// Run `f` on the state, locked while `f` runs.
    pub fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> Result<R> {
        self.ctx.process_state(f)
    }
}

/// A branch condition over values of type `T`, choosing among the targets added with
/// [`BranchBuilder::to`].
pub struct Branch<T> {
    value: Option<ValueCond<T>>,
    stream: Option<StreamCond<T>>,
}

impl<T: GraphValue> Branch<T> {
    /// Pick one target from the whole value (in stream mode the stream is joined first).
    pub fn new(cond: impl Fn(&T) -> Result<NodeId> + Send + Sync + 'static) -> Self {
        Self {
            value: Some(Arc::new(move |t| cond(t).map(|id| vec![id]))),
            stream: None,
        }
    }

    /// Pick any number of targets (all receive the value; none is allowed).
    pub fn multi(cond: impl Fn(&T) -> Result<Vec<NodeId>> + Send + Sync + 'static) -> Self {
        Self {
            value: Some(Arc::new(cond)),
            stream: None,
        }
    }

    /// Pick one target from the live stream, e.g. after its first chunk.
    pub fn stream<F, Fut>(cond: F) -> Self
    where
        F: Fn(StreamReader<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<NodeId>> + Send + 'static,
    {
        Self {
            value: None,
            stream: Some(Arc::new(move |s| {
                let f = cond(s);
                Box::pin(async move { f.await.map(|id| vec![id]) })
            })),
        }
    }

    /// Also give a value branch a stream condition for stream mode (instead of joining the
    /// stream first); invoke mode keeps the value condition, which reads the value in
    /// place without a copy.
    pub fn or_stream<F, Fut>(mut self, cond: F) -> Self
    where
        F: Fn(StreamReader<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<NodeId>> + Send + 'static,
    {
        self.stream = Branch::stream(cond).stream;
        self
    }

    /// Pick several targets from the live stream.
    pub fn stream_multi<F, Fut>(cond: F) -> Self
    where
        F: Fn(StreamReader<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<NodeId>>> + Send + 'static,
    {
        Self {
            value: None,
            stream: Some(Arc::new(move |s| Box::pin(cond(s)))),
        }
    }

    /// Rewrite the ids the condition returns (a Workflow's END is its assembler node).
    pub(crate) fn map_ids(self, f: impl Fn(NodeId) -> NodeId + Send + Sync + 'static) -> Self {
        let f = Arc::new(f);
        let value = self.value.map(|v| {
            let f = f.clone();
            Arc::new(move |t: &T| v(t).map(|ids| ids.into_iter().map(|i| f(i)).collect()))
                as ValueCond<T>
        });
        let stream = self.stream.map(|c| {
            let f = f.clone();
            Arc::new(move |s: StreamReader<T>| {
                let fut = c(s);
                let f = f.clone();
                Box::pin(
                    async move { fut.await.map(|ids| ids.into_iter().map(|i| f(i)).collect()) },
                ) as BoxFuture<'static, Result<Vec<NodeId>>>
            }) as StreamCond<T>
        });
        Branch { value, stream }
    }

    pub(crate) fn clone_erased(&self, targets: Vec<usize>) -> PlanBranch {
        Branch {
            value: self.value.clone(),
            stream: self.stream.clone(),
        }
        .erase(targets)
    }

    pub(crate) fn erase(self, targets: Vec<usize>) -> PlanBranch {
        let value = self.value.map(|f| {
            Arc::new(move |v: &AnyValue| match v.downcast_ref::<T>() {
                Some(t) => f(t),
                None => Err(Error::internal("branch input has an unexpected type")),
            }) as Arc<dyn Fn(&AnyValue) -> Result<Vec<NodeId>> + Send + Sync>
        });
        let stream = self.stream.map(|f| {
            Arc::new(move |s: AnyStream| match s.downcast::<StreamReader<T>>() {
                Ok(s) => f(*s),
                Err(_) => {
                    Box::pin(async { Err(Error::internal("branch stream has an unexpected type")) })
                        as BoxFuture<'static, Result<Vec<NodeId>>>
                }
            })
                as Arc<dyn Fn(AnyStream) -> BoxFuture<'static, Result<Vec<NodeId>>> + Send + Sync>
        });
        PlanBranch {
            value,
            stream,
            targets,
        }
    }
}

/// Adds targets to a branch; see [`Graph::add_branch`].
pub struct BranchBuilder<'g, T, O> {
    targets: &'g mut Vec<usize>,
    graph: u32,
    errors: &'g mut Vec<Error>,
    _p: PhantomData<fn(T) -> O>,
}

impl<T, O> BranchBuilder<'_, T, O> {
    /// Allow the condition to pick `target` (whose input type must be `T`).
    pub fn to(self, target: impl Sink<T, O>) -> Self {
        let id = target.sink_id();
        if id.graph != ANY_GRAPH && id.graph != self.graph {
            self.errors
                .push(Error::graph("branch target belongs to another graph"));
        } else if !self.targets.contains(&id.index()) {
            self.targets.push(id.index());
        }
        self
    }
}

/// A typed graph from input `I` to output `O`, with optional per-run state `S`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use eino::compose::{lambda, CompileOptions, Context, Graph, Runnable, END, START};
/// let mut g = Graph::<String, String>::new();
/// let a = g.add_node("a", lambda(|s: String| async move { Ok(format!("{s}a")) }));
/// let b = g.add_node("b", lambda(|s: String| async move { Ok(format!("{s}b")) }));
/// g.add_edge(START, a);
/// g.add_edge(a, b);
/// g.add_edge(b, END);
/// let app = g.compile(CompileOptions::default()).unwrap();
/// assert_eq!(app.invoke("x".into(), &Context::new()).await.unwrap(), "xab");
/// # });
/// ```
///
/// Connecting nodes of different types is a compile error:
///
/// ```compile_fail
/// use eino::compose::{lambda, Graph, START};
/// let mut g = Graph::<String, String>::new();
/// let n = g.add_node("n", lambda(|x: i64| async move { Ok(x.to_string()) }));
/// g.add_edge(START, n); // START yields String, n takes i64
/// ```
pub struct Graph<I, O, S = ()> {
    def: GraphDef,
    _p: PhantomData<fn(I, S) -> O>,
}

impl<I: GraphValue, O: GraphValue> Default for Graph<I, O, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: GraphValue, O: GraphValue> Graph<I, O, ()> {
    /// An empty graph without state.
    pub fn new() -> Self {
        Self {
            def: GraphDef::new::<I, O>(ComponentKind::Graph),
            _p: PhantomData,
        }
    }

    /// An empty graph whose every run starts with state `init()`, reachable from nodes with
    /// [`Context::process_state`](super::Context::process_state) and from state handlers.
    ///
    /// State is a serde type so checkpoints can save it.
    pub fn with_state<S: Serialize + DeserializeOwned + Send + 'static>(
        init: impl Fn() -> S + Send + Sync + 'static,
    ) -> Graph<I, O, S> {
        let mut def = GraphDef::new::<I, O>(ComponentKind::Graph);
        def.state = Some(StateInit {
            init: Arc::new(move || Box::new(init()) as Box<dyn Any + Send>),
            encode: encode_state::<S>,
            decode: decode_state::<S>,
        });
        Graph {
            def,
            _p: PhantomData,
        }
    }
}

impl<I: GraphValue, O: GraphValue, S: Send + 'static> Graph<I, O, S> {
    /// Add a node under `key` (unique in this graph; `start` and `end` are reserved).
    pub fn add_node<NI: GraphValue, NO: GraphValue>(
        &mut self,
        key: impl Into<String>,
        node: impl IntoNode<NI, NO>,
    ) -> Node<NI, NO> {
        Node {
            id: self.def.add(key.into(), node.into_node()),
            _p: PhantomData,
        }
    }

    /// Add a subgraph node (compiled now with `opts`; errors surface at `compile()`).
    pub fn add_graph<NI: GraphValue, NO: GraphValue, NS: Send + 'static>(
        &mut self,
        key: impl Into<String>,
        graph: Graph<NI, NO, NS>,
        opts: CompileOptions,
    ) -> Node<NI, NO> {
        let key = key.into();
        match graph.compile(opts) {
            Ok(c) => self.add_node(key, c),
            Err(e) => {
                self.def.errors.push(e.in_node(key.clone()));
                Node {
                    id: NodeId {
                        graph: self.def.id,
                        index: u32::MAX,
                    },
                    _p: PhantomData,
                }
            }
        }
    }

    /// Connect `from`'s output to `to`'s input (same type, checked by rustc).
    pub fn add_edge<T>(&mut self, from: impl Source<T, I>, to: impl Sink<T, O>) {
        self.def.edge(from.source_id(), to.sink_id());
    }

    /// Add a branch after `from`; add its possible targets with [`BranchBuilder::to`].
    pub fn add_branch<T: GraphValue>(
        &mut self,
        from: impl Source<T, I>,
        branch: Branch<T>,
    ) -> BranchBuilder<'_, T, O> {
        let from = from.source_id();
        self.def.check_id(from);
        self.def
            .branches
            .push((from.index(), branch.erase(Vec::new())));
        let (_, last) = self.def.branches.last_mut().expect("just pushed");
        BranchBuilder {
            targets: &mut last.targets,
            graph: self.def.id,
            errors: &mut self.def.errors,
            _p: PhantomData,
        }
    }

    /// Name the node for callbacks (default: its key).
    pub fn set_name<NI, NO>(&mut self, node: Node<NI, NO>, name: impl Into<String>) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.name = name.into();
        }
    }

    /// Fail the node with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if it takes
    /// longer than `timeout` (in stream mode: to produce its stream).
    pub fn set_timeout<NI, NO>(&mut self, node: Node<NI, NO>, timeout: Duration) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.timeout = Some(timeout);
        }
    }

    /// Promise that `node` never interrupts itself (a model call, a pure function): a
    /// checkpointed run then keeps no copy of its input. An interrupt from it anyway fails
    /// the run with an error saying its input was not kept.
    pub(crate) fn set_never_interrupts<NI, NO>(&mut self, node: Node<NI, NO>) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.never_interrupts = true;
        }
    }

    /// Run `f` on the node's input with the state locked, before the node runs. In stream
    /// mode the input stream is joined first.
    ///
    /// A node that interrupted itself re-runs on resume with its saved input, and `f` runs
    /// again, on the state restored from the checkpoint (which already holds what `f` did
    /// the first time): write `f` so that a second pass changes nothing.
    pub fn set_pre_handler<NI: GraphValue, NO>(
        &mut self,
        node: Node<NI, NO>,
        f: impl Fn(NI, &mut S) -> Result<NI> + Send + Sync + 'static,
    ) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.pre = Some(StateHook::value::<NI, S>(f));
        }
    }

    /// Run `f` on the node's output with the state locked, after the node succeeded.
    pub fn set_post_handler<NI, NO: GraphValue>(
        &mut self,
        node: Node<NI, NO>,
        f: impl Fn(NO, &mut S) -> Result<NO> + Send + Sync + 'static,
    ) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.post = Some(StateHook::value::<NO, S>(f));
        }
    }

    /// Like [`set_pre_handler`](Self::set_pre_handler) but on the live stream (the state is
    /// locked only while `f` runs, not while the stream is read).
    pub fn set_stream_pre_handler<NI: GraphValue, NO>(
        &mut self,
        node: Node<NI, NO>,
        f: impl Fn(StreamReader<NI>, &mut S) -> Result<StreamReader<NI>> + Send + Sync + 'static,
    ) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.pre = Some(StateHook::stream::<NI, S>(f));
        }
    }

    /// Like [`set_stream_pre_handler`](Self::set_stream_pre_handler), but `f` is async: it
    /// may await (read the stream, call a service) without holding a thread, and locks the
    /// state only inside [`StateAccess::with`].
    pub fn set_async_stream_pre_handler<NI: GraphValue, NO, F, Fut>(
        &mut self,
        node: Node<NI, NO>,
        f: F,
    ) where
        S: Send + 'static,
        F: Fn(StreamReader<NI>, StateAccess<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StreamReader<NI>>> + Send + 'static,
    {
        if let Some(n) = self.def.node_mut(node.id) {
            n.pre = Some(StateHook::async_stream::<NI, S>(move |s, st| {
                Box::pin(f(s, st))
            }));
        }
    }

    /// Like [`set_stream_post_handler`](Self::set_stream_post_handler), but async (see
    /// [`set_async_stream_pre_handler`](Self::set_async_stream_pre_handler)).
    pub fn set_async_stream_post_handler<NI, NO: GraphValue, F, Fut>(
        &mut self,
        node: Node<NI, NO>,
        f: F,
    ) where
        S: Send + 'static,
        F: Fn(StreamReader<NO>, StateAccess<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<StreamReader<NO>>> + Send + 'static,
    {
        if let Some(n) = self.def.node_mut(node.id) {
            n.post = Some(StateHook::async_stream::<NO, S>(move |s, st| {
                Box::pin(f(s, st))
            }));
        }
    }

    /// Like [`set_post_handler`](Self::set_post_handler) but on the live stream.
    pub fn set_stream_post_handler<NI, NO: GraphValue>(
        &mut self,
        node: Node<NI, NO>,
        f: impl Fn(StreamReader<NO>, &mut S) -> Result<StreamReader<NO>> + Send + Sync + 'static,
    ) {
        if let Some(n) = self.def.node_mut(node.id) {
            n.post = Some(StateHook::stream::<NO, S>(f));
        }
    }

    /// Check the graph and freeze it into a runnable.
    pub fn compile(self, opts: CompileOptions) -> Result<Compiled<I, O>> {
        Ok(Compiled::new(self.def.compile(opts)?))
    }
}

impl<I: GraphValue, O: GraphValue> IntoNode<I, O> for Compiled<I, O> {
    fn into_node(self) -> NodeDef<I, O> {
        NodeDef {
            kind: self.plan().kind,
            typ: Cow::Borrowed(self.plan().kind.as_str()),
            // A subgraph's nodes were checked when it compiled.
            streams_output: false,
            is_subgraph: true,
            error: None,
            sub_serde_problem: self.plan().serde_problem.clone(),
            runnable: Arc::new(self),
        }
    }
}

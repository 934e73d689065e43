//! The typed graph builder: nodes are added as typed handles, so an edge between an output
//! and an input of different types does not compile. `compile()` checks what rustc cannot.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::checkpoint::CheckpointStore;
use super::node::{IntoNode, NodeDef};
use super::run::{Compiled, ErasedNode, Plan, PlanBranch, PlanNode, StateHook};
use super::value::{ops_of, AnyStream, AnyValue, GraphValue};
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};
use crate::schema::StreamReader;

static NEXT_GRAPH: AtomicU32 = AtomicU32::new(1);

/// Identifies a node of one graph (or START / END of any graph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId {
    graph: u32,
    index: u32,
}

const ANY_GRAPH: u32 = 0;

impl NodeId {
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }
}

/// A typed handle to a node with input `I` and output `O`.
pub struct Node<I, O> {
    id: NodeId,
    _p: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Node<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I, O> Copy for Node<I, O> {}

impl<I, O> std::fmt::Debug for Node<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.id.index)
    }
}

impl<I, O> Node<I, O> {
    /// The node's id (what a branch condition returns to pick it).
    pub fn id(&self) -> NodeId {
        self.id
    }
}

/// The graph's entry: its output type is the graph's input type.
#[derive(Debug, Clone, Copy)]
pub struct Start;
/// The graph's exit: its input type is the graph's output type.
#[derive(Debug, Clone, Copy)]
pub struct End;

/// The entry of every graph.
pub const START: Start = Start;
/// The exit of every graph.
pub const END: End = End;

const START_ID: NodeId = NodeId {
    graph: ANY_GRAPH,
    index: 0,
};
const END_ID: NodeId = NodeId {
    graph: ANY_GRAPH,
    index: 1,
};

pub(crate) const START_ID_PUB: NodeId = START_ID;
pub(crate) const END_ID_PUB: NodeId = END_ID;

impl End {
    /// END's id, for branch conditions.
    pub fn id(&self) -> NodeId {
        END_ID
    }
}

impl<I, O> From<Node<I, O>> for NodeId {
    fn from(n: Node<I, O>) -> Self {
        n.id
    }
}
impl From<End> for NodeId {
    fn from(_: End) -> Self {
        END_ID
    }
}

/// Something whose output has type `T` in a graph whose input is `GI`.
pub trait Source<T, GI> {
    /// Its id.
    fn source_id(&self) -> NodeId;
}
/// Something whose input has type `T` in a graph whose output is `GO`.
pub trait Sink<T, GO> {
    /// Its id.
    fn sink_id(&self) -> NodeId;
}

impl<X, T, GI> Source<T, GI> for Node<X, T> {
    fn source_id(&self) -> NodeId {
        self.id
    }
}
impl<GI> Source<GI, GI> for Start {
    fn source_id(&self) -> NodeId {
        START_ID
    }
}
impl<T, X, GO> Sink<T, GO> for Node<T, X> {
    fn sink_id(&self) -> NodeId {
        self.id
    }
}
impl<GO> Sink<GO, GO> for End {
    fn sink_id(&self) -> NodeId {
        END_ID
    }
}

/// How a graph schedules nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Supersteps: a node runs when any predecessor wrote in the previous step; cycles are
    /// allowed and bounded by a step limit (Eino's `AnyPredecessor`, the default).
    #[default]
    Pregel,
    /// A node runs once all its predecessors finished or were skipped; no cycles
    /// (Eino's `AllPredecessor`). Runs eagerly: a node starts as soon as it is ready.
    Dag,
}

/// Options for [`Graph::compile`].
#[derive(Clone, Default)]
pub struct CompileOptions {
    /// Graph name for callbacks and errors.
    pub name: Option<String>,
    /// Scheduling mode.
    pub mode: RunMode,
    /// Step limit in Pregel mode (default: number of nodes + 10).
    pub max_steps: Option<usize>,
    /// Nodes whose fan-in stream merge reports each predecessor's end (see
    /// [`StreamReader::merge_named`]); END is named by `"end"`.
    pub stream_merge_with_source_end: Vec<String>,
    /// Where checkpoints are saved (needed to resume runs; see
    /// [`Context::with_checkpoint`](super::Context::with_checkpoint)). Requires every value
    /// type to have a [`Codec`](super::Codec).
    pub checkpoint_store: Option<Arc<dyn CheckpointStore>>,
    /// Stop before these nodes run (human approval); requires codecs like a store.
    pub interrupt_before: Vec<String>,
    /// Stop after these nodes ran.
    pub interrupt_after: Vec<String>,
}

impl std::fmt::Debug for CompileOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileOptions")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("max_steps", &self.max_steps)
            .field(
                "stream_merge_with_source_end",
                &self.stream_merge_with_source_end,
            )
            .field("checkpoint_store", &self.checkpoint_store.is_some())
            .field("interrupt_before", &self.interrupt_before)
            .field("interrupt_after", &self.interrupt_after)
            .finish()
    }
}

impl CompileOptions {
    /// DAG mode.
    pub fn dag() -> Self {
        Self {
            mode: RunMode::Dag,
            ..Self::default()
        }
    }

    /// Set the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Set the Pregel step limit.
    pub fn with_max_steps(mut self, steps: usize) -> Self {
        self.max_steps = Some(steps);
        self
    }

    /// Save checkpoints in `store`.
    pub fn with_checkpoint_store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.checkpoint_store = Some(store);
        self
    }

    /// Stop before these nodes.
    pub fn with_interrupt_before<S: Into<String>>(
        mut self,
        keys: impl IntoIterator<Item = S>,
    ) -> Self {
        self.interrupt_before
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// Stop after these nodes.
    pub fn with_interrupt_after<S: Into<String>>(
        mut self,
        keys: impl IntoIterator<Item = S>,
    ) -> Self {
        self.interrupt_after
            .extend(keys.into_iter().map(Into::into));
        self
    }
}

type ValueCond<T> = Arc<dyn Fn(&T) -> Result<Vec<NodeId>> + Send + Sync>;
type StreamCond<T> =
    Arc<dyn Fn(StreamReader<T>) -> BoxFuture<'static, Result<Vec<NodeId>>> + Send + Sync>;

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

type ValueMap = Arc<dyn Fn(AnyValue) -> Result<AnyValue> + Send + Sync>;
type StreamMap = Arc<dyn Fn(AnyStream) -> Result<AnyStream> + Send + Sync>;

/// A transform applied to values crossing one edge.
#[derive(Clone)]
pub(crate) struct EdgeMap {
    pub(crate) value: ValueMap,
    pub(crate) stream: StreamMap,
}

/// How a graph makes, saves and restores its state.
pub(crate) struct StateInit {
    pub(crate) init: Arc<dyn Fn() -> Box<dyn Any + Send> + Send + Sync>,
    pub(crate) encode: fn(&dyn Any) -> Result<serde_json::Value>,
    pub(crate) decode: fn(serde_json::Value) -> Result<Box<dyn Any + Send>>,
}

fn encode_state<S: Serialize + 'static>(s: &dyn Any) -> Result<serde_json::Value> {
    let s = s
        .downcast_ref::<S>()
        .ok_or_else(|| Error::internal("graph state of unexpected type"))?;
    Ok(serde_json::to_value(s)?)
}

fn decode_state<S: DeserializeOwned + Send + 'static>(
    v: serde_json::Value,
) -> Result<Box<dyn Any + Send>> {
    let s: S = serde_json::from_value(v).map_err(|e| {
        Error::invalid_input(format!(
            "saved state does not fit type {}: {e}",
            std::any::type_name::<S>()
        ))
    })?;
    Ok(Box::new(s))
}

/// Graph definition without types: shared by [`Graph`] and [`Chain`](super::Chain).
pub(crate) struct GraphDef {
    pub(crate) id: u32,
    pub(crate) nodes: Vec<PlanNode>,
    pub(crate) keys: HashMap<String, usize>,
    pub(crate) edges: Vec<(usize, usize)>,
    /// Edges that deliver data but do not make the target wait (Workflow only).
    pub(crate) data_edges: Vec<(usize, usize)>,
    /// Per (from, to) value transforms applied on delivery (Workflow field mappings).
    pub(crate) edge_maps: HashMap<(usize, usize), EdgeMap>,
    /// The same for data-only edges.
    pub(crate) data_maps: HashMap<(usize, usize), EdgeMap>,
    pub(crate) branches: Vec<(usize, PlanBranch)>,
    pub(crate) errors: Vec<Error>,
    pub(crate) state: Option<StateInit>,
    pub(crate) kind: ComponentKind,
}

impl GraphDef {
    pub(crate) fn new<I: GraphValue, O: GraphValue>(kind: ComponentKind) -> Self {
        let id = NEXT_GRAPH.fetch_add(1, Ordering::Relaxed);
        let start = PlanNode::terminal("start", ops_of::<I>());
        let end = PlanNode::terminal("end", ops_of::<O>());
        Self {
            id,
            nodes: vec![start, end],
            keys: HashMap::new(),
            edges: Vec::new(),
            data_edges: Vec::new(),
            edge_maps: HashMap::new(),
            data_maps: HashMap::new(),
            branches: Vec::new(),
            errors: Vec::new(),
            state: None,
            kind,
        }
    }

    pub(crate) fn add<I: GraphValue, O: GraphValue>(
        &mut self,
        key: String,
        def: NodeDef<I, O>,
    ) -> NodeId {
        let index = self.nodes.len();
        if key == "start" || key == "end" {
            self.errors
                .push(Error::graph(format!("node key '{key}' is reserved")));
        } else if self.keys.insert(key.clone(), index).is_some() {
            self.errors
                .push(Error::graph(format!("node '{key}' already present")));
        }
        if let Some(e) = def.error {
            self.errors.push(e.in_node(key.clone()));
        }
        self.nodes.push(PlanNode {
            name: key.clone(),
            key,
            kind: def.kind,
            typ: def.typ,
            runner: Some(Arc::new(ErasedNode::new(def.runnable))),
            input: ops_of::<I>(),
            output: ops_of::<O>(),
            streams_output: def.streams_output,
            is_subgraph: def.is_subgraph,
            sub_serde_problem: def.sub_serde_problem,
            pre: None,
            post: None,
            timeout: None,
        });
        NodeId {
            graph: self.id,
            index: index as u32,
        }
    }

    /// The id of the node at `idx`.
    pub(crate) fn node_id(&self, idx: usize) -> NodeId {
        match idx {
            0 => START_ID,
            1 => END_ID,
            _ => NodeId {
                graph: self.id,
                index: idx as u32,
            },
        }
    }

    pub(crate) fn check_id(&mut self, id: NodeId) -> bool {
        if id.graph != ANY_GRAPH && (id.graph != self.id || id.index() >= self.nodes.len()) {
            self.errors
                .push(Error::graph("node handle belongs to another graph"));
            return false;
        }
        true
    }

    pub(crate) fn edge(&mut self, from: NodeId, to: NodeId) {
        if !self.check_id(from) || !self.check_id(to) {
            return;
        }
        let e = (from.index(), to.index());
        if from == END_ID || to == START_ID {
            self.errors
                .push(Error::graph("edges cannot leave END or enter START"));
        } else if self.edges.contains(&e) {
            self.errors.push(Error::graph(format!(
                "edge {} -> {} already present",
                self.nodes[e.0].key, self.nodes[e.1].key
            )));
        } else {
            self.edges.push(e);
        }
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut PlanNode> {
        if !self.check_id(id) {
            return None;
        }
        self.nodes.get_mut(id.index())
    }

    /// Validate and freeze.
    pub(crate) fn compile(self, opts: CompileOptions) -> Result<Plan> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        let n = self.nodes.len();
        if !self.data_edges.is_empty() && opts.mode != RunMode::Dag {
            return Err(Error::graph("data-only edges need DAG mode"));
        }
        let mut data_succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &self.data_edges {
            data_succ[a].push(b);
        }
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &self.edges {
            succ[a].push(b);
        }
        let mut branches: Vec<Vec<PlanBranch>> = (0..n).map(|_| Vec::new()).collect();
        for (from, b) in self.branches {
            if b.targets.is_empty() {
                return Err(Error::graph(format!(
                    "branch from '{}' has no targets",
                    self.nodes[from].key
                )));
            }
            branches[from].push(b);
        }
        // All possible successors, in declaration order: edges then branch targets.
        let mut next: Vec<Vec<usize>> = succ.clone();
        for (i, bs) in branches.iter().enumerate() {
            for b in bs {
                for &t in &b.targets {
                    if !next[i].contains(&t) {
                        next[i].push(t);
                    }
                }
            }
        }
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ns) in next.iter().enumerate() {
            for &t in ns {
                preds[t].push(i);
            }
        }
        if next[0].is_empty() {
            return Err(Error::graph(
                "start node not set: add an edge or branch from START",
            ));
        }
        if preds[1].is_empty() {
            return Err(Error::graph(
                "end node not set: add an edge or branch into END",
            ));
        }
        for &(a, b) in &self.data_edges {
            // The target must wait for the source through other edges, or it could run
            // before the data arrives.
            if !reachable(a, &next)[b] {
                return Err(Error::graph(format!(
                    "data edge {} -> {} has no dependency path: '{}' could run before '{}' \
                     delivers; add a dependency",
                    self.nodes[a].key, self.nodes[b].key, self.nodes[b].key, self.nodes[a].key
                )));
            }
        }
        let reach_from_start = reachable(0, &next);
        // `preds` is the reverse adjacency of `next`.
        let reach_end = reachable(1, &preds);
        for i in 2..n {
            let key = &self.nodes[i].key;
            if !reach_from_start[i] {
                return Err(Error::graph(format!(
                    "node '{key}' is unreachable from START"
                )));
            }
            if !reach_end[i] {
                return Err(Error::graph(format!("node '{key}' has no path to END")));
            }
        }
        for node in &self.nodes[2..] {
            if node.streams_output && !node.output.has_concat() {
                return Err(Error::graph(format!(
                    "node '{}' streams values of type {}, which has no Concat rule, so its \
                     chunks cannot be joined; implement Concat and use graph_value!(T: concat)",
                    node.key,
                    node.output.type_name()
                )));
            }
        }
        if opts.mode == RunMode::Dag {
            if let Some(cycle) = find_cycle(&next) {
                let names: Vec<&str> = cycle.iter().map(|&i| self.nodes[i].key.as_str()).collect();
                return Err(Error::graph(format!(
                    "DAG mode does not allow cycles: {}",
                    names.join(" -> ")
                )));
            }
            // A node reached only through plain edges from nodes that always run, always
            // runs. Two such predecessors always both deliver, so their input type needs a
            // merge rule; fan-in that a branch may thin out is checked when values arrive.
            let mut always = vec![false; n];
            always[0] = true;
            let mut changed = true;
            while changed {
                changed = false;
                for v in 2..n {
                    if !always[v]
                        && !preds[v].is_empty()
                        && preds[v].iter().all(|&p| always[p] && succ[p].contains(&v))
                    {
                        always[v] = true;
                        changed = true;
                    }
                }
            }
            for (i, p) in preds.iter().enumerate() {
                let sure = p
                    .iter()
                    .filter(|&&u| always[u] && succ[u].contains(&i))
                    .count();
                if sure > 1 && !self.nodes[i].input.has_merge() {
                    return Err(Error::graph(format!(
                        "node '{}' has {} predecessors that always run, but its input type {} \
                         has no merge rule (use a Map with output keys, or \
                         graph_value!(T: merge = f))",
                        self.nodes[i].key,
                        sure,
                        self.nodes[i].input.type_name()
                    )));
                }
            }
        }
        let mut named_merge = vec![false; n];
        for key in &opts.stream_merge_with_source_end {
            let idx = if key == "end" {
                Some(1)
            } else {
                self.keys.get(key).copied()
            };
            match idx {
                Some(i) => named_merge[i] = true,
                None => {
                    return Err(Error::graph(format!(
                        "fan-in merge option names unknown node '{key}'"
                    )))
                }
            }
        }
        let serde_problem = self.nodes.iter().find_map(|node| {
            if let Some(p) = &node.sub_serde_problem {
                return Some(format!("in subgraph node '{}': {p}", node.key));
            }
            [&node.input, &node.output]
                .into_iter()
                .find(|o| !o.has_codec())
                .map(|o| {
                    format!(
                        "node '{}' carries type {}, which has no checkpoint codec (declare it \
                         with graph_value!(T: serde))",
                        node.key,
                        o.type_name()
                    )
                })
        });
        let find = |keys: &[String]| -> Result<Vec<usize>> {
            keys.iter()
                .map(|k| {
                    self.keys.get(k).copied().ok_or_else(|| {
                        Error::graph(format!("interrupt option names unknown node '{k}'"))
                    })
                })
                .collect()
        };
        let interrupt_before = find(&opts.interrupt_before)?;
        let interrupt_after = find(&opts.interrupt_after)?;
        let durable = opts.checkpoint_store.is_some()
            || !interrupt_before.is_empty()
            || !interrupt_after.is_empty();
        if let (true, Some(p)) = (durable, &serde_problem) {
            return Err(Error::graph(format!(
                "checkpointing needs serializable values: {p}"
            )));
        }
        let default_name = match self.kind {
            ComponentKind::Chain => "Chain",
            _ => "Graph",
        };
        Ok(Plan {
            name: Cow::Owned(opts.name.unwrap_or_else(|| default_name.to_string())),
            kind: self.kind,
            mode: opts.mode,
            max_steps: opts.max_steps.unwrap_or(n - 2 + 10),
            nodes: self.nodes,
            keys: self.keys,
            succ,
            branches,
            preds,
            next,
            named_merge,
            state: self.state,
            data_succ,
            edge_maps: self.edge_maps,
            data_maps: self.data_maps,
            store: opts.checkpoint_store,
            interrupt_before,
            interrupt_after,
            serde_problem,
        })
    }
}

fn reachable(from: usize, adj: &[Vec<usize>]) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    let mut stack = vec![from];
    seen[from] = true;
    while let Some(i) = stack.pop() {
        for &j in &adj[i] {
            if !seen[j] {
                seen[j] = true;
                stack.push(j);
            }
        }
    }
    seen
}

fn find_cycle(adj: &[Vec<usize>]) -> Option<Vec<usize>> {
    // 0 = unvisited, 1 = on stack, 2 = done
    fn dfs(
        i: usize,
        adj: &[Vec<usize>],
        mark: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[i] = 1;
        stack.push(i);
        for &j in &adj[i] {
            if mark[j] == 1 {
                let pos = stack.iter().position(|&x| x == j).unwrap_or(0);
                let mut c = stack[pos..].to_vec();
                c.push(j);
                return Some(c);
            }
            if mark[j] == 0 {
                if let Some(c) = dfs(j, adj, mark, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        mark[i] = 2;
        None
    }
    let mut mark = vec![0u8; adj.len()];
    let mut stack = Vec::new();
    (0..adj.len()).find_map(|i| {
        if mark[i] == 0 {
            dfs(i, adj, &mut mark, &mut stack)
        } else {
            None
        }
    })
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
    /// [`Context::process_state`] and from state handlers.
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

    /// Run `f` on the node's input with the state locked, before the node runs. In stream
    /// mode the input stream is joined first.
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

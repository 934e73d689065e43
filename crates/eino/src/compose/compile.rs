//! Compiling a graph definition: what rustc cannot check (unreachable nodes, no path to
//! END, cycles in DAG mode, fan-in without a merge rule, streamed types without a concat
//! rule, checkpoints without codecs) is refused here, before anything runs, and a [`Plan`]
//! comes out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::checkpoint::CheckpointStore;
use std::borrow::Cow;

use super::ids::{NodeId, ANY_GRAPH, END_ID, START_ID};
use super::node::NodeDef;
use super::plan::{EdgeMap, ErasedNode, Plan, PlanBranch, PlanNode, RunMode, StateInit};
use super::value::{ops_of, GraphValue};
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};

static NEXT_GRAPH: AtomicU32 = AtomicU32::new(1);

/// Options for [`Graph::compile`](super::Graph::compile).
#[derive(Clone, Default)]
pub struct CompileOptions {
    /// Graph name for callbacks and errors.
    pub name: Option<String>,
    /// Scheduling mode.
    pub mode: RunMode,
    /// Step limit in Pregel mode (default: number of nodes + 10).
    pub max_steps: Option<usize>,
    /// Nodes whose fan-in stream merge reports each predecessor's end (see
    /// [`StreamReader::merge_named`](crate::schema::StreamReader::merge_named)); END is named by `"end"`.
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
            never_interrupts: false,
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

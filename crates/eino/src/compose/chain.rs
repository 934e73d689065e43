//! `Chain`: a linear, typed builder over a Pregel graph, with parallel and branch steps.

use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;

use super::compile::{CompileOptions, GraphDef};
use super::graph::Branch;
use super::ids::NodeId;
use super::node::{IntoNode, NodeDef};
use super::plan::PlanNode;
use super::run::Compiled;
use super::value::{ops_of, GraphValue};
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};
use crate::schema::{Map, StreamReader};

/// A chain of steps from `I`; `O` is the output of the last step so far.
///
/// Node keys are generated like Eino's: `node_<i>`, `node_<i>_parallel_<j>`,
/// `node_<i>_branch_<key>`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use eino::compose::{lambda, Chain, Context, Runnable};
/// let chain = Chain::<i64>::new()
///     .then(lambda(|x: i64| async move { Ok(x + 1) }))
///     .then(lambda(|x: i64| async move { Ok(x * 10) }))
///     .then(lambda(|x: i64| async move { Ok(format!("={x}")) }))
///     .compile()
///     .unwrap();
/// assert_eq!(chain.invoke(1, &Context::new()).await.unwrap(), "=20");
/// # });
/// ```
pub struct Chain<I, O = I> {
    def: GraphDef,
    tail: Vec<NodeId>,
    steps: usize,
    _p: PhantomData<fn(I) -> O>,
}

impl<I: GraphValue> Default for Chain<I, I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: GraphValue> Chain<I, I> {
    /// An empty chain (its output is its input until a step is added).
    pub fn new() -> Self {
        Self {
            def: GraphDef::new::<I, I>(ComponentKind::Chain),
            tail: vec![super::ids::START_ID_PUB],
            steps: 0,
            _p: PhantomData,
        }
    }
}

impl<I: GraphValue, O: GraphValue> Chain<I, O> {
    fn link(&mut self, to: NodeId) {
        for &t in &self.tail {
            self.def.edge(t, to);
        }
    }

    fn retype<N>(self, tail: Vec<NodeId>) -> Chain<I, N> {
        Chain {
            def: self.def,
            tail,
            steps: self.steps + 1,
            _p: PhantomData,
        }
    }

    /// Append a step.
    pub fn then<N: GraphValue>(self, node: impl IntoNode<O, N>) -> Chain<I, N> {
        let key = format!("node_{}", self.steps);
        self.then_keyed(key, node)
    }

    /// Append a step under a chosen key.
    pub fn then_keyed<N: GraphValue>(
        mut self,
        key: impl Into<String>,
        node: impl IntoNode<O, N>,
    ) -> Chain<I, N> {
        let id = self.def.add(key.into(), node.into_node());
        self.link(id);
        self.retype(vec![id])
    }

    /// Append nodes that run in parallel on the same input; the next step receives a [`Map`]
    /// with each node's output under its key.
    pub fn parallel(mut self, p: Parallel<O>) -> Chain<I, Map> {
        if p.nodes.len() < 2 {
            self.def
                .errors
                .push(Error::graph("parallel needs at least 2 nodes"));
        }
        let i = self.steps;
        let mut ids = Vec::new();
        for (j, (_, def)) in p.nodes.into_iter().enumerate() {
            let id = self.def.add(format!("node_{i}_parallel_{j}"), def);
            self.link(id);
            ids.push(id);
        }
        self.retype(ids)
    }

    /// Append a branch: the condition picks one of the branch's nodes by its key (or, for a
    /// [`ChainBranch::multi`] branch, several, whose outputs are merged for the next step
    /// like Go's `NewChainMultiBranch`).
    pub fn branch<N: GraphValue, K>(mut self, b: ChainBranch<O, N, K>) -> Chain<I, N>
    where
        K: Clone + PartialEq + Debug + Send + Sync + 'static,
    {
        if b.nodes.len() < 2 {
            self.def
                .errors
                .push(Error::graph("chain branch needs at least 2 nodes"));
        }
        let i = self.steps;
        let mut routes: Vec<(K, NodeId)> = Vec::new();
        for (k, def) in b.nodes {
            let id = self.def.add(format!("node_{i}_branch_{k:?}"), def);
            routes.push((k, id));
        }
        let routes = Arc::new(routes);
        let lookup = move |routes: &[(K, NodeId)], keys: Vec<K>| {
            if keys.is_empty() {
                return Err(Error::graph("chain multi-branch selected no branch"));
            }
            keys.into_iter()
                .map(|k| {
                    routes
                        .iter()
                        .find(|(rk, _)| *rk == k)
                        .map(|(_, id)| *id)
                        .ok_or_else(|| {
                            Error::graph(format!(
                                "branch invocation returns unintended end node: {k:?}"
                            ))
                        })
                })
                .collect::<Result<Vec<NodeId>>>()
        };
        let branch = match b.cond {
            Cond::Value(f) => {
                let routes = routes.clone();
                Branch::multi(move |x: &O| lookup(&routes, f(x)?))
            }
            Cond::Stream(f) => {
                let routes = routes.clone();
                Branch::stream_multi(move |s: StreamReader<O>| {
                    let fut = f(s);
                    let routes = routes.clone();
                    async move { lookup(&routes, fut.await?) }
                })
            }
        };
        let targets: Vec<usize> = routes.iter().map(|(_, id)| id.index()).collect();
        for &t in &self.tail {
            self.def
                .branches
                .push((t.index(), branch.clone_erased(targets.clone())));
        }
        let ids = routes.iter().map(|(_, id)| *id).collect();
        self.retype(ids)
    }

    /// Connect the last step to END and compile (Pregel mode, like Eino's Chain).
    pub fn compile(self) -> Result<Compiled<I, O>> {
        self.compile_with(CompileOptions::default())
    }

    /// Compile with options.
    pub fn compile_with(mut self, opts: CompileOptions) -> Result<Compiled<I, O>> {
        self.def.nodes[1] = PlanNode::terminal("end", ops_of::<O>());
        let end = super::ids::END_ID_PUB;
        self.link(end);
        Ok(Compiled::new(self.def.compile(opts)?))
    }
}

/// Nodes that run side by side in a [`Chain`]; each output lands under its key.
pub struct Parallel<X> {
    nodes: Vec<(String, NodeDef<X, Map>)>,
}

impl<X: GraphValue> Default for Parallel<X> {
    fn default() -> Self {
        Self::new()
    }
}

impl<X: GraphValue> Parallel<X> {
    /// An empty parallel step.
    pub fn new() -> Self {
        Self { nodes: Vec::new() }
    }

    /// Add a node whose output goes under `output_key`.
    pub fn add<Y: GraphValue + Serialize>(
        mut self,
        output_key: impl Into<String>,
        node: impl IntoNode<X, Y>,
    ) -> Self {
        let key = output_key.into();
        self.nodes
            .push((key.clone(), node.into_node().output_key(key)));
        self
    }
}

type KeyFn<X, K> = Arc<dyn Fn(&X) -> Result<Vec<K>> + Send + Sync>;
type StreamKeyFn<X, K> =
    Arc<dyn Fn(StreamReader<X>) -> BoxFuture<'static, Result<Vec<K>>> + Send + Sync>;

enum Cond<X, K> {
    Value(KeyFn<X, K>),
    Stream(StreamKeyFn<X, K>),
}

/// A branch step of a [`Chain`]: nodes keyed by `K` (an enum of routes, a string …) and a
/// condition that returns the key to run ([`new`](Self::new), [`stream`](Self::stream)) or
/// the keys ([`multi`](Self::multi), [`stream_multi`](Self::stream_multi)).
pub struct ChainBranch<X, Y, K> {
    cond: Cond<X, K>,
    nodes: Vec<(K, NodeDef<X, Y>)>,
}

impl<X: GraphValue, Y: GraphValue, K> ChainBranch<X, Y, K> {
    /// Decide from the whole value.
    pub fn new(cond: impl Fn(&X) -> Result<K> + Send + Sync + 'static) -> Self {
        Self::multi(move |x| cond(x).map(|k| vec![k]))
    }

    /// Decide from the whole value, choosing several branches (at least one): all run on
    /// the value and the next step receives their outputs merged (so `Y` needs a merge
    /// rule, like [`Map`]).
    pub fn multi(cond: impl Fn(&X) -> Result<Vec<K>> + Send + Sync + 'static) -> Self {
        Self {
            cond: Cond::Value(Arc::new(cond)),
            nodes: Vec::new(),
        }
    }

    /// Decide from the live stream (e.g. its first chunk).
    pub fn stream<F, Fut>(cond: F) -> Self
    where
        F: Fn(StreamReader<X>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<K>> + Send + 'static,
        K: Send + 'static,
    {
        Self::stream_multi(move |s| {
            let f = cond(s);
            async move { f.await.map(|k| vec![k]) }
        })
    }

    /// Decide several branches from the live stream.
    pub fn stream_multi<F, Fut>(cond: F) -> Self
    where
        F: Fn(StreamReader<X>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<K>>> + Send + 'static,
    {
        Self {
            cond: Cond::Stream(Arc::new(move |s| Box::pin(cond(s)))),
            nodes: Vec::new(),
        }
    }

    /// Add the node run for `key`.
    pub fn add(mut self, key: K, node: impl IntoNode<X, Y>) -> Self {
        self.nodes.push((key, node.into_node()));
        self
    }
}

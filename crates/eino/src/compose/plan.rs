//! The plan: what sits between the graph builder and the runner. [`compile`](super::compile)
//! turns a graph definition into a [`Plan`] of erased nodes, branches, edge transforms and
//! state hooks; [`Compiled`](super::Compiled) runs it.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::checkpoint::CheckpointStore;
use super::ids::NodeId;
use super::runnable::Runnable;
use super::value::{downcast, downcast_stream, AnyStream, AnyValue, GraphValue, ValueOps};
use super::Context;
use crate::callbacks::ComponentKind;
use crate::error::{Error, Result};
use crate::schema::StreamReader;

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

pub(crate) fn encode_state<S: Serialize + 'static>(s: &dyn Any) -> Result<serde_json::Value> {
    let s = s
        .downcast_ref::<S>()
        .ok_or_else(|| Error::internal("graph state of unexpected type"))?;
    Ok(serde_json::to_value(s)?)
}

pub(crate) fn decode_state<S: DeserializeOwned + Send + 'static>(
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

/// A value or a stream moving along an edge.
pub(crate) enum Flow {
    V(AnyValue),
    S(AnyStream),
}

type ValueHook = Arc<dyn Fn(AnyValue, &Context) -> Result<AnyValue> + Send + Sync>;
type StreamHook = Arc<dyn Fn(AnyStream, &Context) -> Result<AnyStream> + Send + Sync>;
type AsyncStreamHook =
    Arc<dyn Fn(AnyStream, Context) -> BoxFuture<'static, Result<AnyStream>> + Send + Sync>;

/// A state pre- or post-handler, erased. A stream handler is either sync (it runs with the
/// state locked) or async (it may await, and locks the state only inside
/// [`StateAccess::with`](super::StateAccess::with)).
pub(crate) struct StateHook {
    value: Option<ValueHook>,
    stream: Option<StreamHook>,
    async_stream: Option<AsyncStreamHook>,
    ops: Arc<dyn ValueOps>,
}

impl StateHook {
    pub(crate) fn value<T: GraphValue, S: Send + 'static>(
        f: impl Fn(T, &mut S) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        Self {
            value: Some(Arc::new(move |v, ctx| {
                let t = downcast::<T>(v)?;
                let out = ctx.process_state::<S, _>(|s| f(t, s))??;
                Ok(Box::new(out) as AnyValue)
            })),
            stream: None,
            async_stream: None,
            ops: super::value::ops_of::<T>(),
        }
    }

    pub(crate) fn async_stream<T: GraphValue, S: Send + 'static>(
        f: impl Fn(
                StreamReader<T>,
                super::StateAccess<S>,
            ) -> BoxFuture<'static, Result<StreamReader<T>>>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        let f = Arc::new(f);
        Self {
            value: None,
            stream: None,
            async_stream: Some(Arc::new(move |v, ctx| {
                let f = f.clone();
                Box::pin(async move {
                    let t = downcast_stream::<T>(v)?;
                    let out = f(t, super::StateAccess::new(ctx)).await?;
                    Ok(Box::new(out) as AnyStream)
                })
            })),
            ops: super::value::ops_of::<T>(),
        }
    }

    pub(crate) fn stream<T: GraphValue, S: Send + 'static>(
        f: impl Fn(StreamReader<T>, &mut S) -> Result<StreamReader<T>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            value: None,
            stream: Some(Arc::new(move |v, ctx| {
                let t = downcast_stream::<T>(v)?;
                let out = ctx.process_state::<S, _>(|s| f(t, s))??;
                Ok(Box::new(out) as AnyStream)
            })),
            async_stream: None,
            ops: super::value::ops_of::<T>(),
        }
    }

    pub(crate) async fn apply(&self, flow: Flow, ctx: &Context) -> Result<Flow> {
        if let Some(f) = &self.async_stream {
            return match flow {
                Flow::S(s) => Ok(Flow::S(f(s, ctx.clone()).await?)),
                Flow::V(v) => {
                    let s = f(self.ops.box_stream(v), ctx.clone()).await?;
                    Ok(Flow::V(self.ops.concat_stream(s).await?))
                }
            };
        }
        match (flow, &self.value, &self.stream) {
            (Flow::V(v), Some(f), _) => Ok(Flow::V(f(v, ctx)?)),
            (Flow::S(s), _, Some(f)) => Ok(Flow::S(f(s, ctx)?)),
            (Flow::V(v), None, Some(f)) => {
                let s = f(self.ops.box_stream(v), ctx)?;
                Ok(Flow::V(self.ops.concat_stream(s).await?))
            }
            (Flow::S(s), Some(f), None) => {
                let v = self.ops.concat_stream(s).await?;
                Ok(Flow::S(self.ops.box_stream(f(v, ctx)?)))
            }
            (flow, None, None) => Ok(flow),
        }
    }
}

type ValueCond = Arc<dyn Fn(&AnyValue) -> Result<Vec<NodeId>> + Send + Sync>;
type StreamCond = Arc<dyn Fn(AnyStream) -> BoxFuture<'static, Result<Vec<NodeId>>> + Send + Sync>;

/// A branch, erased: exactly one of `value` / `stream` is set.
pub(crate) struct PlanBranch {
    pub(crate) value: Option<ValueCond>,
    pub(crate) stream: Option<StreamCond>,
    pub(crate) targets: Vec<usize>,
}

pub(crate) trait ErasedRun: Send + Sync {
    fn invoke<'a>(&'a self, v: AnyValue, ctx: &'a Context) -> BoxFuture<'a, Result<AnyValue>>;
    fn transform<'a>(&'a self, s: AnyStream, ctx: &'a Context) -> BoxFuture<'a, Result<AnyStream>>;
}

struct Typed<I, O>(Arc<dyn Runnable<I, O>>);

impl<I: GraphValue, O: GraphValue> ErasedRun for Typed<I, O> {
    fn invoke<'a>(&'a self, v: AnyValue, ctx: &'a Context) -> BoxFuture<'a, Result<AnyValue>> {
        Box::pin(async move {
            let i = downcast::<I>(v)?;
            Ok(Box::new(self.0.invoke(i, ctx).await?) as AnyValue)
        })
    }
    fn transform<'a>(&'a self, s: AnyStream, ctx: &'a Context) -> BoxFuture<'a, Result<AnyStream>> {
        Box::pin(async move {
            let i = downcast_stream::<I>(s)?;
            Ok(Box::new(self.0.transform(i, ctx).await?) as AnyStream)
        })
    }
}

/// A node's runnable with its types erased.
pub(crate) struct ErasedNode(pub(crate) Box<dyn ErasedRun>);

impl ErasedNode {
    pub(crate) fn new<I: GraphValue, O: GraphValue>(r: Arc<dyn Runnable<I, O>>) -> Self {
        Self(Box::new(Typed(r)))
    }
}

/// One node of a compiled plan.
pub(crate) struct PlanNode {
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) kind: ComponentKind,
    pub(crate) typ: Cow<'static, str>,
    pub(crate) runner: Option<Arc<ErasedNode>>,
    pub(crate) input: Arc<dyn ValueOps>,
    pub(crate) output: Arc<dyn ValueOps>,
    pub(crate) streams_output: bool,
    pub(crate) is_subgraph: bool,
    pub(crate) sub_serde_problem: Option<String>,
    pub(crate) pre: Option<StateHook>,
    pub(crate) post: Option<StateHook>,
    pub(crate) timeout: Option<Duration>,
    /// The node never interrupts itself, so a checkpointed run need not keep a copy of its
    /// input (a rerun node's input is what an interrupt saves).
    pub(crate) never_interrupts: bool,
}

impl PlanNode {
    pub(crate) fn terminal(key: &str, ops: Arc<dyn ValueOps>) -> Self {
        Self {
            key: key.into(),
            name: key.into(),
            kind: ComponentKind::Passthrough,
            typ: Cow::Borrowed("Passthrough"),
            runner: None,
            input: ops.clone(),
            output: ops,
            streams_output: false,
            is_subgraph: false,
            sub_serde_problem: None,
            pre: None,
            post: None,
            timeout: None,
            never_interrupts: true,
        }
    }
}

/// A validated graph. Index 0 is START, 1 is END.
pub(crate) struct Plan {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: ComponentKind,
    pub(crate) mode: RunMode,
    pub(crate) max_steps: usize,
    pub(crate) nodes: Vec<PlanNode>,
    pub(crate) keys: HashMap<String, usize>,
    /// Edge successors, in declaration order.
    pub(crate) succ: Vec<Vec<usize>>,
    pub(crate) branches: Vec<Vec<PlanBranch>>,
    /// Every possible predecessor (edges and branches), in declaration order.
    pub(crate) preds: Vec<Vec<usize>>,
    /// Every possible successor (edges, then branch targets).
    pub(crate) next: Vec<Vec<usize>>,
    pub(crate) named_merge: Vec<bool>,
    pub(crate) state: Option<StateInit>,
    /// Data-only successors (Workflow): they get the value but do not wait for it.
    pub(crate) data_succ: Vec<Vec<usize>>,
    pub(crate) edge_maps: HashMap<(usize, usize), EdgeMap>,
    pub(crate) data_maps: HashMap<(usize, usize), EdgeMap>,
    pub(crate) store: Option<Arc<dyn CheckpointStore>>,
    pub(crate) interrupt_before: Vec<usize>,
    pub(crate) interrupt_after: Vec<usize>,
    /// Why this graph's values cannot be checkpointed, if so.
    pub(crate) serde_problem: Option<String>,
}

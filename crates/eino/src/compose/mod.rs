//! Orchestration: lambdas, graphs (DAG and Pregel), chains, branches, state, call options.
//!
//! Every node supports the four paradigms; a graph run with `invoke` runs its nodes in
//! invoke mode, a graph run with `stream`/`transform`/`collect` runs them in transform mode,
//! so streams flow from node to node and the first chunk reaches the caller early.

mod chain;
mod checkpoint;
mod compile;
mod context;
mod field_check;
mod graph;
mod ids;
mod node;
mod plan;
mod run;
mod runnable;
mod tools_node;
mod topology;
mod value;
mod workflow;

pub use chain::{Chain, ChainBranch, Parallel};
pub use checkpoint::{
    list_checkpoints, Checkpoint, CheckpointPolicy, CheckpointRun, CheckpointStore, InterruptInfo,
    MemoryCheckpointStore, NodePath,
};
pub use compile::CompileOptions;
pub(crate) use context::note_globals_changed;
pub use context::{CallOption, Context};
pub use graph::{Branch, BranchBuilder, Graph, StateAccess};
pub use ids::{End, Node, NodeId, Sink, Source, Start, END, START};
pub use node::{IntoNode, IntoNodeExt, NodeDef, Passthrough};
pub use plan::RunMode;
pub use run::Compiled;
pub use runnable::{collect_lambda, lambda, stream_lambda, transform_lambda, Lambda, Runnable};
pub use tools_node::{
    InvokeNext, StreamNext, ToolInput, ToolMiddleware, ToolsInterruptState, ToolsNode,
};
pub use topology::{EdgeKind, Topology, TopologyEdge, TopologyNode};
pub use value::{merge_maps, Codec, GraphValue, JoinFn};
pub use workflow::{
    from_field, map_fields, map_paths, map_with, to_field, FieldMapping, Workflow, WorkflowNode,
    WorkflowSource, WorkflowTarget,
};

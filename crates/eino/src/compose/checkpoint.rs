//! Durable runs: checkpoint stores, what a checkpoint holds, and the per-call options that
//! save, resume and interrupt a run.
//!
//! A checkpoint is plain JSON (values go through each type's [`Codec`](super::Codec)), so
//! a run interrupted in one process resumes in another from the same store. Unlike Go
//! Eino, the input of an interrupted node is saved too, so on resume it re-runs with the
//! input it had, not with a zero value (inventory §7).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A path of node keys from the graph being called down into subgraphs.
pub type NodePath = Vec<String>;

/// Where checkpoints live: bytes by checkpoint id. Implementations: [`MemoryCheckpointStore`]
/// here, SQLite in `eino-sqlite`.
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint saved under `id`, if any.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;
    /// Save (or replace) the checkpoint `id`.
    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<()>>;
    /// Remove the checkpoint `id` (no error if absent).
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Every saved checkpoint id, sorted.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>>;
}

/// A process-local store (tests, single-process services).
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    items: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn items(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        let v = self.items().get(id).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<()>> {
        self.items().insert(id.to_string(), data);
        Box::pin(async { Ok(()) })
    }
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.items().remove(id);
        Box::pin(async { Ok(()) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        let ids = self.items().keys().cloned().collect();
        Box::pin(async move { Ok(ids) })
    }
}

/// Why and where a run stopped for outside input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterruptInfo {
    /// Checkpoint id to resume from (set on the root graph when it was saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_id: Option<String>,
    /// Nodes the run stopped before.
    pub before_nodes: Vec<String>,
    /// Nodes the run stopped after.
    pub after_nodes: Vec<String>,
    /// Nodes that interrupted themselves and re-run on resume.
    pub rerun_nodes: Vec<String>,
    /// What each interrupting node reported (its interrupt info), by node key.
    pub rerun_info: BTreeMap<String, serde_json::Value>,
    /// Interrupts inside subgraph nodes, by node key.
    pub subgraphs: BTreeMap<String, InterruptInfo>,
    /// The graph state when it stopped (if the graph has state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

impl InterruptInfo {
    /// The node path of every interrupt point, subgraphs included (`["2", "1"]` is node
    /// `1` inside subgraph node `2`); paths are what [`CheckpointRun::resume_with`] targets.
    pub fn interrupt_paths(&self) -> Vec<NodePath> {
        let mut out = Vec::new();
        for k in self
            .before_nodes
            .iter()
            .chain(&self.after_nodes)
            .chain(&self.rerun_nodes)
        {
            out.push(vec![k.clone()]);
        }
        for (k, sub) in &self.subgraphs {
            for mut p in sub.interrupt_paths() {
                p.insert(0, k.clone());
                out.push(p);
            }
        }
        out
    }
}

/// One value waiting in a node's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedInput {
    pub(crate) to: String,
    pub(crate) from: String,
    pub(crate) value: serde_json::Value,
}

/// A node to run first on resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedTask {
    pub(crate) node: String,
    pub(crate) input: serde_json::Value,
    /// The node interrupted itself: it gets its saved interrupt state and resume data.
    pub(crate) rerun: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node_state: Option<serde_json::Value>,
    /// The checkpoint of a subgraph node that interrupted inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subgraph: Option<Box<Checkpoint>>,
}

/// Everything needed to continue a run: the scheduler's inboxes and pending tasks, the DAG
/// counters, the step count and the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub(crate) version: u32,
    pub(crate) graph: String,
    pub(crate) step: usize,
    pub(crate) inputs: Vec<SavedInput>,
    pub(crate) tasks: Vec<SavedTask>,
    /// DAG mode: per node key, (predecessors reported, of which skipped).
    #[serde(default)]
    pub(crate) counters: BTreeMap<String, (usize, usize)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<serde_json::Value>,
    /// Why the run stopped; `None` for a progress checkpoint of a run still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interrupt: Option<InterruptInfo>,
}

pub(crate) const CHECKPOINT_VERSION: u32 = 1;

impl Checkpoint {
    /// The name of the graph that saved it.
    pub fn graph_name(&self) -> &str {
        &self.graph
    }

    /// Why the run stopped, or `None` for a progress checkpoint (saved after every step by
    /// [`CheckpointPolicy::EveryStep`]) of a run that has not finished.
    pub fn interrupt(&self) -> Option<&InterruptInfo> {
        self.interrupt.as_ref()
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::internal("cannot encode checkpoint").with_source(e))
    }

    /// Decode stored bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let cp: Checkpoint = serde_json::from_slice(b)
            .map_err(|e| Error::internal("stored checkpoint is not readable").with_source(e))?;
        if cp.version != CHECKPOINT_VERSION {
            return Err(Error::internal(format!(
                "checkpoint version {} is not supported (expected {CHECKPOINT_VERSION})",
                cp.version
            )));
        }
        Ok(cp)
    }
}

/// Every interrupted run in `store`, with why it stopped: what a service shows as
/// "waiting for input". Progress checkpoints of unfinished runs are listed with `None`.
pub async fn list_checkpoints(
    store: &dyn CheckpointStore,
) -> Result<Vec<(String, Option<InterruptInfo>)>> {
    let mut out = Vec::new();
    for id in store.list().await? {
        if let Some(bytes) = store.get(&id).await? {
            let cp = Checkpoint::from_bytes(&bytes)?;
            out.push((id, cp.interrupt));
        }
    }
    Ok(out)
}

/// When a run writes its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointPolicy {
    /// Only when it is interrupted (Go Eino's behaviour).
    #[default]
    OnInterrupt,
    /// Also after every superstep (Pregel) or node (DAG), so a crashed process can resume
    /// where it was. Streams are joined to be saved, so in stream mode a step's output is
    /// materialised before the next step starts.
    EveryStep,
}

pub(crate) type StateModifier = Arc<dyn Fn(&[String], &mut dyn Any) + Send + Sync>;

/// Per-call checkpoint options: pass with [`Context::with_checkpoint`](super::Context::with_checkpoint).
///
/// If the store holds checkpoint `id`, the run resumes from it (its input argument is then
/// ignored); otherwise it starts fresh. On success the checkpoint is deleted; on interrupt it
/// is saved and the error carries [`InterruptInfo`].
#[derive(Clone)]
pub struct CheckpointRun {
    pub(crate) id: String,
    pub(crate) write_to: Option<String>,
    pub(crate) force_new: bool,
    pub(crate) resume: Vec<(NodePath, serde_json::Value)>,
    pub(crate) modifier: Option<StateModifier>,
    pub(crate) before: Vec<String>,
    pub(crate) after: Vec<String>,
    pub(crate) policy: CheckpointPolicy,
}

impl std::fmt::Debug for CheckpointRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointRun")
            .field("id", &self.id)
            .field("write_to", &self.write_to)
            .field("force_new", &self.force_new)
            .field("resume", &self.resume)
            .field("before", &self.before)
            .field("after", &self.after)
            .field("policy", &self.policy)
            .finish()
    }
}

impl CheckpointRun {
    /// Save to and resume from checkpoint `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            write_to: None,
            force_new: false,
            resume: Vec::new(),
            modifier: None,
            before: Vec::new(),
            after: Vec::new(),
            policy: CheckpointPolicy::OnInterrupt,
        }
    }

    /// Resume from `id` but save to another id.
    pub fn write_to(mut self, id: impl Into<String>) -> Self {
        self.write_to = Some(id.into());
        self
    }

    /// Ignore any saved checkpoint and start from the input.
    pub fn force_new_run(mut self) -> Self {
        self.force_new = true;
        self
    }

    /// Hand `data` to the interrupt point at `path` (see
    /// [`InterruptInfo::interrupt_paths`]); the node reads it with
    /// [`Context::resume_data`](super::Context::resume_data). An empty path targets the
    /// graph itself: `data` then replaces its state.
    pub fn resume_with<S: Into<String>>(
        mut self,
        path: impl IntoIterator<Item = S>,
        data: impl Serialize,
    ) -> Result<Self> {
        let v = serde_json::to_value(data)?;
        self.resume
            .push((path.into_iter().map(Into::into).collect(), v));
        Ok(self)
    }

    /// Hand `data` to the graph itself: on resume it replaces the graph's state.
    pub fn resume_state(self, data: impl Serialize) -> Result<Self> {
        self.resume_with(Vec::<String>::new(), data)
    }

    /// Edit the restored state of the graph (or subgraph) at a node path before it goes on.
    pub fn modify_state<S: 'static>(
        mut self,
        f: impl Fn(&[String], &mut S) + Send + Sync + 'static,
    ) -> Self {
        self.modifier = Some(Arc::new(move |path, any| {
            if let Some(s) = any.downcast_mut::<S>() {
                f(path, s)
            }
        }));
        self
    }

    /// Also stop before these nodes (in addition to the compiled ones).
    pub fn interrupt_before<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.before.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Also stop after these nodes.
    pub fn interrupt_after<S: Into<String>>(mut self, keys: impl IntoIterator<Item = S>) -> Self {
        self.after.extend(keys.into_iter().map(Into::into));
        self
    }

    /// When to write (default: on interrupt only).
    pub fn policy(mut self, policy: CheckpointPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// What a re-run node (or a resumed subgraph) receives from the run that resumes it.
#[derive(Default)]
pub(crate) struct NodeResume {
    /// Saved by the node when it interrupted.
    pub(crate) state: Option<serde_json::Value>,
    /// Resume data for this node (or, for a subgraph, for its state).
    pub(crate) data: Option<serde_json::Value>,
    /// Resume data for points deeper inside (subgraphs), by path below this node.
    pub(crate) deeper: Vec<(NodePath, serde_json::Value)>,
    /// A subgraph's own checkpoint.
    pub(crate) checkpoint: Option<Box<Checkpoint>>,
    pub(crate) modifier: Option<StateModifier>,
    pub(crate) path: NodePath,
}

/// Split resume data addressed from one graph into what goes to node `key`.
pub(crate) fn resume_for(
    data: &[(NodePath, serde_json::Value)],
    key: &str,
) -> (
    Option<serde_json::Value>,
    Vec<(NodePath, serde_json::Value)>,
) {
    let mut here = None;
    let mut deeper = Vec::new();
    for (p, v) in data {
        if p.first().map(String::as_str) == Some(key) {
            if p.len() == 1 {
                here = Some(v.clone());
            } else {
                deeper.push((p[1..].to_vec(), v.clone()));
            }
        }
    }
    (here, deeper)
}

//! The checkpoint side of running a graph: which run saves and resumes, turning the
//! scheduler's inboxes and pending tasks into a [`Checkpoint`] and back.

use std::any::Any;
use std::sync::Arc;

use super::Compiled;
use crate::compose::checkpoint::NodePath;
use crate::compose::checkpoint::{
    resume_for, Checkpoint, CheckpointPolicy, CheckpointStore, InterruptInfo, NodeResume,
    SavedInput, SavedTask, StateModifier, CHECKPOINT_VERSION,
};
use crate::compose::plan::StateInit;
use crate::compose::plan::{Flow, Plan};
use crate::compose::value::{GraphValue, ValueOps};
use crate::compose::Context;
use crate::error::{Error, Result};

/// A node to run, with its input and, on resume, what it gets back.
pub(crate) struct Task {
    pub(crate) idx: usize,
    pub(crate) input: Flow,
    pub(crate) resume: Option<Arc<NodeResume>>,
}

impl Task {
    #[inline]
    pub(crate) fn new(idx: usize, input: Flow) -> Self {
        Self {
            idx,
            input,
            resume: None,
        }
    }
}

/// A node that interrupted itself: its index, its kept input, its interrupt error.
pub(crate) type Rerun = (usize, Option<Flow>, Error);

/// Why a DAG run is stopping, gathered while the running nodes finish.
#[derive(Default)]
pub(crate) struct Stopping {
    pub(crate) before: Vec<usize>,
    pub(crate) after: Vec<usize>,
    /// Ready nodes not started because the run is stopping.
    pub(crate) held: Vec<(usize, Flow)>,
    pub(crate) reruns: Vec<Rerun>,
}

impl Stopping {
    pub(crate) fn is_stopping(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty() || !self.reruns.is_empty()
    }
}

/// What a checkpoint is made from (borrowed: a progress save leaves the run going).
pub(crate) struct Snapshot<'a, 'b> {
    pub(crate) step: usize,
    pub(crate) inbox: &'a mut [Vec<(usize, Flow)>],
    pub(crate) tasks: &'a mut [(usize, &'b mut Flow)],
    pub(crate) reruns: &'a mut [Rerun],
    /// DAG mode: predecessors reported and skipped, per node.
    pub(crate) counters: Option<(&'a [usize], &'a [usize])>,
}

/// Where a run resumes from and what it hands on; boxed in [`Scope`] because most runs
/// have none of it.
#[derive(Default)]
struct Resume {
    load: Option<(Arc<dyn CheckpointStore>, String)>,
    /// A resumed subgraph's own checkpoint, handed down by its parent.
    sub_checkpoint: Option<Box<Checkpoint>>,
    /// Resume data for points inside this graph, by path.
    data: Vec<(NodePath, serde_json::Value)>,
    /// Resume data for this graph itself: replaces its state.
    own_data: Option<serde_json::Value>,
    modifier: Option<StateModifier>,
    path: NodePath,
}

static NO_RESUME: Resume = Resume {
    load: None,
    sub_checkpoint: None,
    data: Vec::new(),
    own_data: None,
    modifier: None,
    path: Vec::new(),
};

/// One graph run's checkpoint settings.
#[derive(Default)]
pub(crate) struct Scope {
    /// The outermost graph of a checkpointed call writes here.
    pub(crate) save: Option<(Arc<dyn CheckpointStore>, String)>,
    resume: Option<Box<Resume>>,
    pub(crate) before: Vec<usize>,
    pub(crate) after: Vec<usize>,
    /// Keep node inputs so an interrupt can save them.
    pub(crate) durable: bool,
    pub(crate) every_step: bool,
}

impl Scope {
    pub(crate) fn new(plan: &Plan, ctx: &Context) -> Result<Self> {
        let mut sc = Scope {
            before: plan.interrupt_before.clone(),
            after: plan.interrupt_after.clone(),
            durable: ctx.is_durable()
                || plan.store.is_some()
                || !plan.interrupt_before.is_empty()
                || !plan.interrupt_after.is_empty(),
            ..Scope::default()
        };
        if let Some(run) = ctx.checkpoint_run() {
            let Some(store) = plan.store.clone() else {
                return Err(Error::graph(
                    "receive checkpoint id but have not set checkpoint store",
                ));
            };
            let index = |k: &String| {
                plan.keys.get(k).copied().ok_or_else(|| {
                    Error::graph(format!("interrupt option names unknown node '{k}'"))
                })
            };
            for k in &run.before {
                sc.before.push(index(k)?);
            }
            for k in &run.after {
                sc.after.push(index(k)?);
            }
            let save_id = run.write_to.clone().unwrap_or_else(|| run.id.clone());
            sc.save = Some((store.clone(), save_id));
            let mut r = Resume::default();
            if !run.force_new {
                r.load = Some((store, run.id.clone()));
            }
            for (p, v) in &run.resume {
                if p.is_empty() {
                    r.own_data = Some(v.clone());
                } else {
                    r.data.push((p.clone(), v.clone()));
                }
            }
            r.modifier = run.modifier.clone();
            sc.resume = Some(Box::new(r));
            sc.every_step = run.policy == CheckpointPolicy::EveryStep;
            sc.durable = true;
        } else if let Some(r) = ctx.node_resume() {
            sc.resume = Some(Box::new(Resume {
                load: None,
                sub_checkpoint: r.checkpoint.clone(),
                data: r.deeper.clone(),
                own_data: r.data.clone(),
                modifier: r.modifier.clone(),
                path: r.path.clone(),
            }));
        }
        Ok(sc)
    }

    fn resume(&self) -> &Resume {
        self.resume.as_deref().unwrap_or(&NO_RESUME)
    }

    /// True if [`Scope::load`] may find a checkpoint.
    pub(crate) fn has_checkpoint_source(&self) -> bool {
        let r = self.resume();
        r.sub_checkpoint.is_some() || r.load.is_some()
    }

    /// The checkpoint this run resumes from, if any.
    pub(crate) async fn load(&mut self) -> Result<Option<Box<Checkpoint>>> {
        let Some(r) = self.resume.as_deref_mut() else {
            return Ok(None);
        };
        if let Some(cp) = r.sub_checkpoint.take() {
            return Ok(Some(cp));
        }
        let Some((store, id)) = &r.load else {
            return Ok(None);
        };
        match store.get(id).await? {
            Some(bytes) => Checkpoint::from_bytes(&bytes).map(|c| Some(Box::new(c))),
            None => Ok(None),
        }
    }

    /// Fresh state, or the restored one with resume data and the state modifier applied.
    pub(crate) fn initial_state(
        &self,
        init: &StateInit,
        restored: Option<&Checkpoint>,
    ) -> Result<Box<dyn Any + Send>> {
        let Some(cp) = restored else {
            return Ok((init.init)());
        };
        let r = self.resume();
        let mut state = match (&r.own_data, &cp.state) {
            (Some(d), _) => (init.decode)(d.clone())?,
            (None, Some(s)) => (init.decode)(s.clone())?,
            (None, None) => (init.init)(),
        };
        if let Some(m) = &r.modifier {
            m(&r.path, &mut *state);
        }
        Ok(state)
    }
}

async fn encode_flow(ops: &dyn ValueOps, f: &mut Flow) -> Result<serde_json::Value> {
    let s = match std::mem::replace(f, Flow::V(Box::new(()))) {
        Flow::V(v) => {
            let out = ops.encode(&v);
            *f = Flow::V(v);
            return out;
        }
        Flow::S(s) => s,
    };
    // Streams are joined to be saved; the run keeps an identical copy.
    let mut copies = ops.copy_stream(s, 2);
    let (Some(mine), Some(theirs)) = (copies.pop(), copies.pop()) else {
        return Err(Error::internal("checkpoint: stream of unexpected type"));
    };
    *f = Flow::S(theirs);
    let v = ops.concat_stream(mine).await?;
    ops.encode(&v)
}

impl<I: GraphValue, O: GraphValue> Compiled<I, O> {
    fn key(&self, idx: usize) -> String {
        self.plan().nodes[idx].key.clone()
    }

    fn index_of(&self, key: &str) -> Result<usize> {
        let plan = self.plan();
        match key {
            "start" => Ok(0),
            "end" => Ok(1),
            _ => plan.keys.get(key).copied().ok_or_else(|| {
                Error::graph(format!(
                    "checkpoint does not match graph '{}': it has no node '{key}'",
                    plan.name
                ))
            }),
        }
    }

    fn encode_state(&self, ctx: &Context) -> Result<Option<serde_json::Value>> {
        let (Some(init), Some(frame)) = (&self.plan().state, ctx.top_state_frame()) else {
            return Ok(None);
        };
        let guard = frame.value.lock().unwrap_or_else(|p| p.into_inner());
        (init.encode)(&**guard).map(Some)
    }

    async fn encode(&self, snap: Snapshot<'_, '_>, ctx: &Context) -> Result<Checkpoint> {
        let plan = self.plan();
        let mut inputs = Vec::new();
        for (r, items) in snap.inbox.iter_mut().enumerate() {
            for (p, f) in items.iter_mut() {
                let value = encode_flow(&*plan.nodes[r].input, f).await?;
                inputs.push(SavedInput {
                    to: self.key(r),
                    from: self.key(*p),
                    value,
                });
            }
        }
        let mut tasks = Vec::new();
        for (idx, f) in snap.tasks.iter_mut() {
            tasks.push(SavedTask {
                node: self.key(*idx),
                input: encode_flow(&*plan.nodes[*idx].input, f).await?,
                rerun: false,
                node_state: None,
                subgraph: None,
            });
        }
        for (idx, kept, e) in snap.reruns.iter_mut() {
            let Some(f) = kept.as_mut() else {
                return Err(Error::graph(format!(
                    "node '{}' interrupted, but its input was not kept; run the graph with a \
                     checkpoint (Context::with_checkpoint) to resume it",
                    self.key(*idx)
                )));
            };
            let parts = e.interrupt_parts();
            tasks.push(SavedTask {
                node: self.key(*idx),
                input: encode_flow(&*plan.nodes[*idx].input, f).await?,
                rerun: true,
                node_state: parts.and_then(|p| p.state.clone()),
                subgraph: parts.and_then(|p| p.checkpoint.clone()),
            });
        }
        let counters = snap
            .counters
            .map(|(reported, skipped)| {
                (1..plan.nodes.len())
                    .filter(|&i| reported[i] > 0)
                    .map(|i| (self.key(i), (reported[i], skipped[i])))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Checkpoint {
            version: CHECKPOINT_VERSION,
            graph: plan.name.to_string(),
            step: snap.step,
            inputs,
            tasks,
            counters,
            state: self.encode_state(ctx)?,
            interrupt: None,
        })
    }

    /// Build the interrupt (saving it if this is the outermost checkpointed graph).
    pub(crate) async fn interrupt(
        &self,
        snap: Snapshot<'_, '_>,
        before: &[usize],
        after: &[usize],
        sc: &Scope,
        ctx: &Context,
    ) -> Error {
        let mut info = InterruptInfo {
            before_nodes: before.iter().map(|&i| self.key(i)).collect(),
            after_nodes: after.iter().map(|&i| self.key(i)).collect(),
            ..InterruptInfo::default()
        };
        for (idx, _, e) in snap.reruns.iter() {
            let k = self.key(*idx);
            let parts = e.interrupt_parts();
            if let Some(sub) = parts.and_then(|p| p.graph.as_ref()) {
                info.subgraphs.insert(k, sub.clone());
                continue;
            }
            if let Some(v) = parts.and_then(|p| p.info.as_ref()) {
                info.rerun_info.insert(k.clone(), v.clone());
            }
            info.rerun_nodes.push(k);
        }
        let mut cp = match self.encode(snap, ctx).await {
            Ok(cp) => cp,
            // A run that should save must say why it cannot; otherwise report the interrupt.
            Err(e) if sc.save.is_some() => return e,
            Err(_) => {
                info.state = self.encode_state(ctx).ok().flatten();
                return Error::graph_interrupt(info, None);
            }
        };
        // The checkpoint already holds the encoded state.
        info.state = cp.state.clone();
        if let Some((store, id)) = &sc.save {
            info.checkpoint_id = Some(id.clone());
            cp.interrupt = Some(info.clone());
            let saved = match cp.to_bytes() {
                Ok(bytes) => store.put(id, bytes).await,
                Err(e) => Err(e),
            };
            if let Err(e) = saved {
                return e;
            }
        } else {
            cp.interrupt = Some(info.clone());
        }
        Error::graph_interrupt(info, Some(cp))
    }

    /// [`CheckpointPolicy::EveryStep`]: save where the run is.
    pub(crate) async fn save_progress(
        &self,
        snap: Snapshot<'_, '_>,
        sc: &Scope,
        ctx: &Context,
    ) -> Result<()> {
        if let Some((store, id)) = &sc.save {
            let cp = self.encode(snap, ctx).await?;
            store.put(id, cp.to_bytes()?).await?;
        }
        Ok(())
    }

    /// Put a checkpoint's inputs back into the inboxes; returns its step and the tasks to
    /// run first.
    pub(crate) fn restore(
        &self,
        cp: Box<Checkpoint>,
        streaming: bool,
        sc: &Scope,
        inbox: &mut [Vec<(usize, Flow)>],
        counters: Option<(&mut [usize], &mut [usize])>,
    ) -> Result<(usize, Vec<Task>)> {
        let plan = self.plan();
        let flow = |i: usize, v: serde_json::Value| -> Result<Flow> {
            let ops = &plan.nodes[i].input;
            let value = ops.decode(v)?;
            Ok(if streaming {
                Flow::S(ops.box_stream(value))
            } else {
                Flow::V(value)
            })
        };
        let cp = *cp;
        for si in cp.inputs {
            let to = self.index_of(&si.to)?;
            let from = self.index_of(&si.from)?;
            inbox[to].push((from, flow(to, si.value)?));
        }
        if let Some((reported, skipped)) = counters {
            for (k, (r, s)) in cp.counters {
                let i = self.index_of(&k)?;
                reported[i] = r;
                skipped[i] = s;
            }
        }
        let mut tasks = Vec::with_capacity(cp.tasks.len());
        for t in cp.tasks {
            let idx = self.index_of(&t.node)?;
            let r = sc.resume();
            let (data, deeper) = resume_for(&r.data, &t.node);
            let needs = t.rerun || data.is_some() || t.subgraph.is_some() || !deeper.is_empty();
            let mut path = r.path.clone();
            path.push(t.node.clone());
            let resume = needs.then(|| {
                Arc::new(NodeResume {
                    state: t.node_state,
                    data,
                    deeper,
                    checkpoint: t.subgraph,
                    modifier: r.modifier.clone(),
                    path,
                })
            });
            tasks.push(Task {
                idx,
                input: flow(idx, t.input)?,
                resume,
            });
        }
        Ok((cp.step, tasks))
    }
}

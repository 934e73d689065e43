//! Running a compiled graph: DAG (run when every predecessor reported, eager) or Pregel
//! (supersteps with a step limit), in invoke mode (values) or transform mode (streams).
//!
//! All node futures of one run are polled by the run's own future (no task spawning), so
//! dropping the run's future stops every node and closes every stream.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;

use futures_util::future::{select, BoxFuture, Either};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

mod durable;

use super::checkpoint::Checkpoint;
use super::plan::{Flow, Plan, RunMode};
use super::runnable::Runnable;
use super::value::{downcast, downcast_stream, GraphValue, ValueOps};
use super::Context;
use crate::callbacks::RunInfo;
use crate::error::{Error, ErrorKind, Result};
use crate::schema::StreamReader;
use durable::{Rerun, Scope, Snapshot, Stopping, Task};

/// A compiled graph or chain: a [`Runnable`] from `I` to `O`. Cheap to clone and share.
pub struct Compiled<I, O> {
    plan: Arc<Plan>,
    _p: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Compiled<I, O> {
    fn clone(&self) -> Self {
        Self {
            plan: self.plan.clone(),
            _p: PhantomData,
        }
    }
}

impl<I, O> std::fmt::Debug for Compiled<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.plan.name)
            .field("nodes", &(self.plan.nodes.len() - 2))
            .finish()
    }
}

const END: usize = 1;

fn fan(flow: Flow, ops: &dyn ValueOps, n: usize) -> Vec<Flow> {
    match (n, flow) {
        (0, _) => Vec::new(),
        (1, f) => vec![f],
        (_, Flow::V(v)) => {
            let mut out: Vec<Flow> = (1..n).map(|_| Flow::V(ops.clone_value(&v))).collect();
            out.push(Flow::V(v));
            out
        }
        (_, Flow::S(s)) => ops.copy_stream(s, n).into_iter().map(Flow::S).collect(),
    }
}

/// What a finished node hands to the scheduler: its output and, per branch, the chosen targets.
type NodeDone = (usize, Result<(Flow, Vec<usize>)>);

impl<I: GraphValue, O: GraphValue> Compiled<I, O> {
    pub(crate) fn new(plan: Plan) -> Self {
        Self {
            plan: Arc::new(plan),
            _p: PhantomData,
        }
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The node keys in the order they were added.
    pub fn node_keys(&self) -> Vec<&str> {
        self.plan.nodes[2..]
            .iter()
            .map(|n| n.key.as_str())
            .collect()
    }

    async fn run(&self, input: Flow, ctx: &Context) -> Result<Flow> {
        let plan = &*self.plan;
        let ctx = ctx.rooted();
        let Some(cbs) = ctx.callbacks().cloned() else {
            return self.run_checked(input, &ctx).await;
        };
        let name = ctx
            .run_info()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| plan.name.clone());
        let info = RunInfo::new(name, plan.kind.as_str(), plan.kind);
        let in_ops = &plan.nodes[0].output;
        let out_ops = &plan.nodes[END].input;
        let (input, call) = match input {
            Flow::V(v) => {
                let call = cbs.start(&info, v.as_ref());
                (Flow::V(v), call)
            }
            Flow::S(s) => {
                let (s, call) = in_ops.callbacks_start_stream(&cbs, &info, s);
                (Flow::S(s), call)
            }
        };
        let inner = ctx.nested_in(&call);
        match self.run_checked(input, &inner).await {
            Ok(Flow::V(v)) => {
                call.end(v.as_ref());
                Ok(Flow::V(v))
            }
            Ok(Flow::S(s)) => Ok(Flow::S(out_ops.callbacks_end_stream(&call, s))),
            Err(e) => {
                call.error(&e);
                Err(e)
            }
        }
    }

    fn validate_call(&self, ctx: &Context) -> Result<()> {
        let plan = &*self.plan;
        if plan.mode == RunMode::Dag && ctx.max_steps().is_some() {
            return Err(Error::graph("cannot set max steps in DAG mode"));
        }
        for (first, deeper, target) in ctx.designations() {
            let Some(&idx) = plan.keys.get(first) else {
                return Err(Error::graph(format!(
                    "option designated to node '{first}', which is not in graph '{}'",
                    plan.name
                )));
            };
            let node = &plan.nodes[idx];
            if deeper && !node.is_subgraph {
                return Err(Error::graph(format!(
                    "option designated into node '{first}', which is not a graph"
                )));
            }
            if let (false, Some((kind, type_name))) = (deeper || node.is_subgraph, target) {
                if kind != node.kind {
                    return Err(Error::graph(format!(
                        "option type[{type_name}] is different from which the designated \
                         node[{first}] expects[{}]",
                        node.kind
                    )));
                }
            }
        }
        Ok(())
    }

    async fn run_checked(&self, input: Flow, ctx: &Context) -> Result<Flow> {
        if ctx.is_cancelled() {
            return Err(Error::cancelled());
        }
        self.validate_call(ctx)?;
        let plan = &*self.plan;
        let mut scope = Scope::new(plan, ctx)?;
        // Cold paths are boxed so they do not grow every run's future.
        let restored = match scope.has_checkpoint_source() {
            true => Box::pin(scope.load()).await?,
            false => None,
        };
        let body = ctx.for_graph_body();
        let body = match &plan.state {
            Some(init) => body.with_state_frame(scope.initial_state(init, restored.as_deref())?),
            None => body,
        };
        let streaming = matches!(input, Flow::S(_));
        let out = match plan.mode {
            RunMode::Dag => {
                self.run_dag(input, restored, streaming, &scope, &body)
                    .await
            }
            RunMode::Pregel => {
                self.run_pregel(input, restored, streaming, &scope, &body)
                    .await
            }
        }?;
        // A finished run leaves no checkpoint behind.
        if let Some((store, id)) = &scope.save {
            Box::pin(store.delete(id)).await?;
        }
        Ok(out)
    }

    async fn run_node(&self, task: Task, ctx: &Context) -> NodeDone {
        let idx = task.idx;
        let r = self.run_node_inner(task, ctx).await;
        let node = &self.plan.nodes[idx];
        (
            idx,
            r.map_err(|e| {
                if idx == 0 {
                    e
                } else {
                    e.in_node(node.key.clone())
                }
            }),
        )
    }

    async fn run_node_inner(&self, task: Task, ctx: &Context) -> Result<(Flow, Vec<usize>)> {
        let plan = &*self.plan;
        let Task { idx, input, resume } = task;
        let node = &plan.nodes[idx];
        let out = match &node.runner {
            None => input,
            Some(runner) => {
                let nctx = ctx.for_node(&node.key, || {
                    RunInfo::new(node.name.clone(), node.typ.clone(), node.kind)
                });
                let nctx = match resume {
                    Some(r) => nctx.with_resume(r),
                    None => nctx,
                };
                // A resumed subgraph restores its own state; its pre-handler already ran.
                let input = match (&node.pre, nctx.is_resumed() && node.is_subgraph) {
                    (Some(h), false) => h.apply(input, &nctx).await?,
                    _ => input,
                };
                let call = async {
                    match input {
                        Flow::V(v) => runner.0.invoke(v, &nctx).await.map(Flow::V),
                        Flow::S(s) => runner.0.transform(s, &nctx).await.map(Flow::S),
                    }
                };
                let out = match node.timeout {
                    None => call.await?,
                    Some(d) => tokio::time::timeout(d, call).await.map_err(|_| {
                        Error::new(
                            ErrorKind::Timeout,
                            format!("node '{}' timed out after {d:?}", node.key),
                        )
                    })??,
                };
                match &node.post {
                    Some(h) => h.apply(out, &nctx).await?,
                    None => out,
                }
            }
        };
        let branches = &plan.branches[idx];
        if branches.is_empty() {
            return Ok((out, Vec::new()));
        }
        let ops = &*node.output;
        let mut chosen: Vec<usize> = Vec::new();
        // Value conditions read the output in place; every other condition gets its own copy.
        let needs_copy = match out {
            Flow::V(_) => branches.iter().filter(|b| b.value.is_none()).count(),
            Flow::S(_) => branches.len(),
        };
        let mut copies = fan(out, ops, 1 + needs_copy);
        let main = copies.pop().expect("fan(n >= 1) is non-empty");
        for b in branches {
            let ids = match (&main, &b.value, &b.stream) {
                (Flow::V(v), Some(f), _) => f(v)?,
                (_, _, Some(f)) => match copies.pop() {
                    Some(Flow::V(v)) => f(ops.box_stream(v)).await?,
                    Some(Flow::S(s)) => f(s).await?,
                    None => Vec::new(),
                },
                (Flow::S(_), Some(f), None) => match copies.pop() {
                    Some(Flow::S(s)) => f(&ops.concat_stream(s).await?)?,
                    _ => Vec::new(),
                },
                (_, None, None) => Vec::new(),
            };
            for id in ids {
                let t = id.index();
                if !b.targets.contains(&t) {
                    let key = plan.nodes.get(t).map(|n| n.key.as_str()).unwrap_or("?");
                    return Err(Error::graph(format!(
                        "branch invocation returns unintended end node: {key}"
                    )));
                }
                if !chosen.contains(&t) {
                    chosen.push(t);
                }
            }
        }
        Ok((main, chosen))
    }

    /// Where a finished node's output goes: edge successors, then chosen branch targets.
    fn receivers(&self, idx: usize, chosen: &[usize]) -> Cow<'_, [usize]> {
        let succ = &self.plan.succ[idx];
        if chosen.iter().all(|c| succ.contains(c)) {
            return Cow::Borrowed(succ);
        }
        let mut r = succ.clone();
        for &c in chosen {
            if !r.contains(&c) {
                r.push(c);
            }
        }
        Cow::Owned(r)
    }

    fn merge_inputs(&self, idx: usize, mut inputs: Vec<(usize, Flow)>) -> Result<Flow> {
        let plan = &*self.plan;
        if inputs.len() == 1 {
            return Ok(inputs.pop().expect("len is 1").1);
        }
        // Deterministic: order by predecessor declaration order, never by arrival.
        let order = &plan.preds[idx];
        inputs.sort_by_key(|(p, _)| order.iter().position(|x| x == p).unwrap_or(usize::MAX));
        let ops = &plan.nodes[idx].input;
        if matches!(inputs[0].1, Flow::V(_)) {
            let vs = inputs
                .into_iter()
                .filter_map(|(_, f)| match f {
                    Flow::V(v) => Some(v),
                    Flow::S(_) => None,
                })
                .collect();
            ops.merge_values(vs).map(Flow::V)
        } else {
            let ss = inputs
                .into_iter()
                .filter_map(|(p, f)| match f {
                    Flow::S(s) => Some((plan.nodes[p].key.clone(), s)),
                    Flow::V(_) => None,
                })
                .collect();
            ops.merge_streams(ss, plan.named_merge[idx]).map(Flow::S)
        }
    }

    /// [`Self::merge_inputs`] for node `r`, with the node in the error's path.
    fn merge_for(&self, r: usize, inputs: Vec<(usize, Flow)>) -> Result<Flow> {
        self.merge_inputs(r, inputs)
            .map_err(|e| e.in_node(self.plan.nodes[r].key.clone()))
    }

    fn no_tasks(&self, last: Option<usize>) -> Error {
        let last = last
            .map(|i| self.plan.nodes[i].key.as_str())
            .unwrap_or("start");
        Error::graph(format!(
            "[GraphRunError] no tasks to execute, last completed nodes: [{last}]"
        ))
    }

    /// In a checkpointed run, keep a copy of a task's input so an interrupt can save it.
    #[inline]
    fn keep(&self, task: Task, sc: &Scope, inflight: &mut [Option<Flow>]) -> Task {
        // Progress checkpoints (every step) save every pending input.
        let needless = self.plan.nodes[task.idx].never_interrupts && !sc.every_step;
        if !sc.durable || task.idx == 0 || needless {
            return task;
        }
        let ops = &*self.plan.nodes[task.idx].input;
        let mut copies = fan(task.input, ops, 2);
        inflight[task.idx] = copies.pop();
        let input = copies.pop().unwrap_or(Flow::V(Box::new(())));
        Task { input, ..task }
    }

    async fn run_dag(
        &self,
        input: Flow,
        restored: Option<Box<Checkpoint>>,
        streaming: bool,
        sc: &Scope,
        ctx: &Context,
    ) -> Result<Flow> {
        let plan = &*self.plan;
        let n = plan.nodes.len();
        let mut inbox: Vec<Vec<(usize, Flow)>> = (0..n).map(|_| Vec::new()).collect();
        let mut reported = vec![0usize; n];
        let mut skipped = vec![0usize; n];
        let mut inflight: Vec<Option<Flow>> = (0..n).map(|_| None).collect();
        let mut running = FuturesUnordered::new();
        let mut resumed: Vec<usize> = Vec::new();
        match restored {
            None => running.push(self.run_node(Task::new(0, input), ctx)),
            Some(cp) => {
                let counters = Some((&mut reported[..], &mut skipped[..]));
                let (_, tasks) = self.restore(cp, streaming, sc, &mut inbox, counters)?;
                for t in tasks {
                    resumed.push(t.idx);
                    let t = self.keep(t, sc, &mut inflight);
                    running.push(self.run_node(t, ctx));
                }
            }
        }
        let mut last = None;
        let mut stop = Stopping::default();
        while let Some((idx, result)) = next_done(&mut running, ctx).await? {
            let kept = inflight[idx].take();
            let (out, chosen) = match result {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::Interrupted && idx != 0 => {
                    stop.reruns.push((idx, kept, e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            drop(kept);
            last = Some(idx);
            if sc.after.contains(&idx) {
                stop.after.push(idx);
            }
            let receivers = self
                .deliver(idx, out, &chosen, &mut inbox)
                .map_err(|e| e.in_node(plan.nodes[idx].key.clone()))?;
            // Every possible successor hears from this node: data, or a skip.
            let mut ready: Vec<usize> = receivers.to_vec();
            for &r in receivers.iter() {
                reported[r] += 1;
            }
            let mut skip_queue: Vec<usize> = plan.next[idx]
                .iter()
                .copied()
                .filter(|t| !receivers.contains(t))
                .collect();
            while let Some(t) = skip_queue.pop() {
                reported[t] += 1;
                skipped[t] += 1;
                if reported[t] == plan.preds[t].len() && skipped[t] == reported[t] {
                    skip_queue.extend(plan.next[t].iter().copied());
                } else {
                    ready.push(t);
                }
            }
            for r in ready {
                if reported[r] != plan.preds[r].len() || skipped[r] == reported[r] {
                    continue;
                }
                let inputs = std::mem::take(&mut inbox[r]);
                if inputs.is_empty() {
                    continue;
                }
                let merged = self.merge_for(r, inputs)?;
                if r == END {
                    return Ok(merged);
                }
                if sc.before.contains(&r) && !resumed.contains(&r) {
                    stop.before.push(r);
                    stop.held.push((r, merged));
                } else if stop.is_stopping() {
                    // Stopping: let running nodes finish, start nothing new.
                    stop.held.push((r, merged));
                } else {
                    let t = self.keep(Task::new(r, merged), sc, &mut inflight);
                    running.push(self.run_node(t, ctx));
                }
            }
            if sc.every_step && !stop.is_stopping() {
                let mut tasks: Vec<(usize, &mut Flow)> = inflight
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(i, f)| f.as_mut().map(|f| (i, f)))
                    .collect();
                let snap = Snapshot {
                    step: 0,
                    inbox: &mut inbox,
                    tasks: &mut tasks,
                    reruns: &mut [],
                    counters: Some((&reported, &skipped)),
                };
                Box::pin(self.save_progress(snap, sc, ctx)).await?;
            }
        }
        if stop.is_stopping() {
            let mut tasks: Vec<(usize, &mut Flow)> =
                stop.held.iter_mut().map(|(i, f)| (*i, f)).collect();
            let snap = Snapshot {
                step: 0,
                inbox: &mut inbox,
                tasks: &mut tasks,
                reruns: &mut stop.reruns,
                counters: Some((&reported, &skipped)),
            };
            return Err(Box::pin(self.interrupt(snap, &stop.before, &stop.after, sc, ctx)).await);
        }
        Err(self.no_tasks(last))
    }

    async fn run_pregel(
        &self,
        input: Flow,
        restored: Option<Box<Checkpoint>>,
        streaming: bool,
        sc: &Scope,
        ctx: &Context,
    ) -> Result<Flow> {
        let plan = &*self.plan;
        let n = plan.nodes.len();
        let max_steps = ctx.max_steps().unwrap_or(plan.max_steps);
        let mut channels: Vec<Vec<(usize, Flow)>> = (0..n).map(|_| Vec::new()).collect();
        let mut inflight: Vec<Option<Flow>> = (0..n).map(|_| None).collect();
        let mut step = 0usize;
        // The restored first superstep does not stop again before the nodes it stopped at.
        let mut resumed = false;
        let mut tasks: Vec<Task> = Vec::new();
        match restored {
            None => {
                let (_, start) = self.run_node(Task::new(0, input), ctx).await;
                let (out, chosen) = start?;
                self.deliver(0, out, &chosen, &mut channels)?;
            }
            Some(cp) => {
                (step, tasks) = self.restore(cp, streaming, sc, &mut channels, None)?;
                resumed = true;
            }
        }
        let mut last = Some(0);
        loop {
            if !channels[END].is_empty() {
                let inputs = std::mem::take(&mut channels[END]);
                return self.merge_inputs(END, inputs);
            }
            self.take_ready(&mut channels, &mut tasks)?;
            if tasks.is_empty() {
                return Err(self.no_tasks(last));
            }
            if !resumed {
                let hit: Vec<usize> = tasks
                    .iter()
                    .map(|t| t.idx)
                    .filter(|i| sc.before.contains(i))
                    .collect();
                if !hit.is_empty() {
                    let mut held: Vec<(usize, &mut Flow)> =
                        tasks.iter_mut().map(|t| (t.idx, &mut t.input)).collect();
                    let snap = Snapshot {
                        step,
                        inbox: &mut channels,
                        tasks: &mut held,
                        reruns: &mut [],
                        counters: None,
                    };
                    return Err(Box::pin(self.interrupt(snap, &hit, &[], sc, ctx)).await);
                }
            }
            resumed = false;
            step += 1;
            if step > max_steps {
                return Err(Error::new(
                    ErrorKind::ExceededMaxSteps,
                    format!("exceeds max steps ({max_steps})"),
                ));
            }
            let mut reruns: Vec<Rerun> = Vec::new();
            let mut after: Vec<usize> = Vec::new();
            // Outputs are delivered as nodes finish: nothing reads the channels before the
            // next superstep.
            let mut settle = |(idx, result): NodeDone, inflight: &mut [Option<Flow>]| {
                let kept = inflight[idx].take();
                match result {
                    Ok((out, chosen)) => {
                        drop(kept);
                        self.deliver(idx, out, &chosen, &mut channels)
                            .map_err(|e| e.in_node(plan.nodes[idx].key.clone()))?;
                        last = Some(idx);
                        if sc.after.contains(&idx) {
                            after.push(idx);
                        }
                        Ok(())
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {
                        reruns.push((idx, kept, e));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            if let [_] = tasks[..] {
                // One task in this superstep (a chain): run it inline, no task set needed.
                let t = self.keep(tasks.remove(0), sc, &mut inflight);
                let run = self.run_node(t, ctx);
                let done = match ctx.cancel_token() {
                    None => run.await,
                    Some(token) => match select(pin!(run), pin!(token.cancelled())).await {
                        Either::Left((done, _)) => done,
                        Either::Right(_) => return Err(Error::cancelled()),
                    },
                };
                settle(done, &mut inflight)?;
            } else {
                let mut running = FuturesUnordered::new();
                for t in tasks.drain(..) {
                    let t = self.keep(t, sc, &mut inflight);
                    running.push(self.run_node(t, ctx));
                }
                // Superstep barrier: every task of this step finishes before the next starts.
                while let Some(done) = next_done(&mut running, ctx).await? {
                    settle(done, &mut inflight)?;
                }
            }
            if (!reruns.is_empty() || !after.is_empty()) && channels[END].is_empty() {
                // Save the next superstep with the interrupt; a before-node in it is
                // reported too, and the resumed step will not stop at it again.
                self.take_ready(&mut channels, &mut tasks)?;
                let before: Vec<usize> = tasks
                    .iter()
                    .map(|t| t.idx)
                    .filter(|i| sc.before.contains(i))
                    .collect();
                let mut held: Vec<(usize, &mut Flow)> =
                    tasks.iter_mut().map(|t| (t.idx, &mut t.input)).collect();
                let snap = Snapshot {
                    step,
                    inbox: &mut channels,
                    tasks: &mut held,
                    reruns: &mut reruns,
                    counters: None,
                };
                return Err(Box::pin(self.interrupt(snap, &before, &after, sc, ctx)).await);
            }
            if sc.every_step && channels[END].is_empty() {
                let snap = Snapshot {
                    step,
                    inbox: &mut channels,
                    tasks: &mut [],
                    reruns: &mut [],
                    counters: None,
                };
                Box::pin(self.save_progress(snap, sc, ctx)).await?;
            }
        }
    }

    /// Move every node with input into `tasks` (a node already there keeps its input for
    /// the step after).
    fn take_ready(&self, channels: &mut [Vec<(usize, Flow)>], tasks: &mut Vec<Task>) -> Result<()> {
        for (r, channel) in channels.iter_mut().enumerate().skip(2) {
            if channel.is_empty() || tasks.iter().any(|t| t.idx == r) {
                continue;
            }
            let merged = self.merge_for(r, std::mem::take(channel))?;
            tasks.push(Task::new(r, merged));
        }
        Ok(())
    }

    /// Hand a finished node's output to its receivers' inboxes (copies for all but one),
    /// through any edge transform; returns the receivers that wait for it (data-only
    /// successors get the value too).
    fn deliver(
        &self,
        idx: usize,
        out: Flow,
        chosen: &[usize],
        inboxes: &mut [Vec<(usize, Flow)>],
    ) -> Result<Cow<'_, [usize]>> {
        let plan = &*self.plan;
        let receivers = self.receivers(idx, chosen);
        let data = &plan.data_succ[idx];
        if data.is_empty() && plan.edge_maps.is_empty() && plan.data_maps.is_empty() {
            if let [only] = receivers[..] {
                inboxes[only].push((idx, out));
            } else {
                let flows = fan(out, &*plan.nodes[idx].output, receivers.len());
                for (&r, f) in receivers.iter().zip(flows) {
                    inboxes[r].push((idx, f));
                }
            }
            return Ok(receivers);
        }
        let all = receivers
            .iter()
            .map(|r| (r, &plan.edge_maps))
            .chain(data.iter().map(|r| (r, &plan.data_maps)));
        let flows = fan(out, &*plan.nodes[idx].output, receivers.len() + data.len());
        for ((&r, maps), f) in all.zip(flows) {
            let f = match maps.get(&(idx, r)) {
                None => f,
                Some(m) => match f {
                    Flow::V(v) => Flow::V((m.value)(v)?),
                    Flow::S(s) => Flow::S((m.stream)(s)?),
                },
            };
            inboxes[r].push((idx, f));
        }
        Ok(receivers)
    }
}

/// The next finished node, or a cancellation error if the caller's token fires first.
async fn next_done<F: std::future::Future>(
    running: &mut FuturesUnordered<F>,
    ctx: &Context,
) -> Result<Option<F::Output>> {
    let Some(token) = ctx.cancel_token() else {
        return Ok(running.next().await);
    };
    let next = pin!(running.next());
    let cancelled = pin!(token.cancelled());
    match select(next, cancelled).await {
        Either::Left((item, _)) => Ok(item),
        Either::Right(_) => Err(Error::cancelled()),
    }
}

impl<I: GraphValue, O: GraphValue> Runnable<I, O> for Compiled<I, O> {
    fn invoke<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        Box::pin(async move {
            match self.run(Flow::V(Box::new(input)), ctx).await? {
                Flow::V(v) => downcast::<O>(v),
                Flow::S(s) => super::value::concat_typed(downcast_stream::<O>(s)?).await,
            }
        })
    }

    fn stream<'a>(&'a self, input: I, ctx: &'a Context) -> BoxFuture<'a, Result<StreamReader<O>>> {
        self.transform(StreamReader::once(input), ctx)
    }

    fn collect<'a>(&'a self, input: StreamReader<I>, ctx: &'a Context) -> BoxFuture<'a, Result<O>> {
        Box::pin(async move {
            let s = self.transform(input, ctx).await?;
            super::value::concat_typed(s).await
        })
    }

    fn transform<'a>(
        &'a self,
        input: StreamReader<I>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<O>>> {
        Box::pin(async move {
            match self.run(Flow::S(Box::new(input)), ctx).await? {
                Flow::S(s) => downcast_stream::<O>(s),
                Flow::V(v) => Ok(StreamReader::once(downcast::<O>(v)?)),
            }
        })
    }
}

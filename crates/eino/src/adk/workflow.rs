//! Workflow agents: [`SequentialAgent`] (one after another), [`ParallelAgent`] (side by
//! side) and [`LoopAgent`] (again and again until an agent breaks the loop). Each
//! sub-agent reads the input plus what the earlier ones wrote, rewritten for it
//! ([`rewrite_history`](super::rewrite_history)). All can be interrupted inside and resumed:
//! only the interrupted sub-agents continue.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::{join_all, BoxFuture};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::AgentAction;
use super::interrupt::{AgentInterrupt, InterruptPoint};
use super::run::AgentRun;
use super::team::rewrite_history;
use super::Agent;
use crate::error::{Error, Result};
use crate::schema::Message;

/// A named, described, non-empty list of sub-agents.
struct Group {
    name: String,
    description: String,
    agents: Vec<Arc<dyn Agent>>,
}

impl Group {
    fn new(
        kind: &str,
        name: String,
        description: String,
        agents: Vec<Arc<dyn Agent>>,
    ) -> Result<Self> {
        if agents.is_empty() {
            return Err(Error::invalid_input(format!(
                "a {kind} agent needs at least one sub-agent"
            )));
        }
        Ok(Self {
            name,
            description,
            agents,
        })
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.agents.iter().map(|a| a.name()).collect();
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("agents", &names)
            .finish()
    }
}

/// Where a sequence (or loop) stopped: which round and agent, the history length when it
/// started (what came later is the earlier agents' work), and the agent's state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Position {
    iteration: usize,
    index: usize,
    mark: usize,
    child: Value,
}

/// The input of a sub-agent: the sequence's input and what was written since it started.
fn input_for(messages: &[Message], run: &AgentRun, mark: usize, agent: &str) -> Vec<Message> {
    let history = run.history();
    let mut input = messages.to_vec();
    input.extend(rewrite_history(
        history.get(mark..).unwrap_or_default(),
        agent,
    ));
    input
}

/// How a pass over the agents ended.
enum Pass {
    /// Every agent ran.
    Done,
    /// An agent asked to exit the whole run, or to break the loop.
    Stop(AgentAction),
}

/// Run `agents` in order from `pos`, saving `pos` if one interrupts.
async fn run_in_order(
    agents: &[Arc<dyn Agent>],
    messages: &[Message],
    run: &AgentRun,
    pos: &mut Position,
) -> Result<Pass> {
    while pos.index < agents.len() {
        // A safe point: between agents (not when continuing one that stopped inside).
        if run.stop_requested() && pos.child.is_null() {
            return Err(run.stopped(&*pos));
        }
        let agent = &agents[pos.index];
        let child = std::mem::take(&mut pos.child);
        let sub = run
            .enter(agent.name())
            .resuming((!child.is_null()).then_some(child));
        let input = input_for(messages, run, pos.mark, agent.name());
        match agent.run(input, &sub).await {
            Ok(Some(a @ (AgentAction::Exit | AgentAction::BreakLoop))) => return Ok(Pass::Stop(a)),
            Ok(_) => pos.index += 1,
            Err(e) => {
                let Some(state) = AgentRun::child_state(&e) else {
                    return Err(e);
                };
                pos.child = state;
                return Err(run.wrap_interrupt(e, &*pos));
            }
        }
    }
    Ok(Pass::Done)
}

fn start(run: &AgentRun) -> Position {
    run.resume_state::<Position>().unwrap_or(Position {
        mark: run.history().len(),
        ..Position::default()
    })
}

/// Runs its sub-agents one after another. An [`AgentAction::Exit`] stops the sequence
/// (and the run); a [`AgentAction::BreakLoop`] stops it and the enclosing loop.
#[derive(Debug)]
pub struct SequentialAgent(Group);

impl SequentialAgent {
    /// A sequence of at least one agent.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        agents: Vec<Arc<dyn Agent>>,
    ) -> Result<Self> {
        Group::new("sequential", name.into(), description.into(), agents).map(Self)
    }
}

impl Agent for SequentialAgent {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn description(&self) -> &str {
        &self.0.description
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let mut pos = start(run);
            Ok(
                match run_in_order(&self.0.agents, &messages, run, &mut pos).await? {
                    Pass::Done => None,
                    Pass::Stop(a) => Some(a),
                },
            )
        })
    }
}

/// Runs its sub-agents over and over until one breaks the loop
/// ([`AgentAction::BreakLoop`]), one exits, or `max_iterations` rounds ran (0: no limit).
#[derive(Debug)]
pub struct LoopAgent {
    group: Group,
    max_iterations: usize,
}

impl LoopAgent {
    /// A loop over at least one agent.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        agents: Vec<Arc<dyn Agent>>,
        max_iterations: usize,
    ) -> Result<Self> {
        Ok(Self {
            group: Group::new("loop", name.into(), description.into(), agents)?,
            max_iterations,
        })
    }
}

impl Agent for LoopAgent {
    fn name(&self) -> &str {
        &self.group.name
    }
    fn description(&self) -> &str {
        &self.group.description
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let mut pos = start(run);
            while self.max_iterations == 0 || pos.iteration < self.max_iterations {
                match run_in_order(&self.group.agents, &messages, run, &mut pos).await? {
                    Pass::Done => {
                        pos.iteration += 1;
                        pos.index = 0;
                    }
                    // The break is for this loop; an exit ends the run.
                    Pass::Stop(AgentAction::BreakLoop) => return Ok(None),
                    Pass::Stop(a) => return Ok(Some(a)),
                }
            }
            Ok(None)
        })
    }
}

/// Runs its sub-agents side by side on the same input; their events interleave. If some
/// interrupt, the others' work is kept and only those continue on resume.
#[derive(Debug)]
pub struct ParallelAgent(Group);

impl ParallelAgent {
    /// Agents to run concurrently (at least one).
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        agents: Vec<Arc<dyn Agent>>,
    ) -> Result<Self> {
        Group::new("parallel", name.into(), description.into(), agents).map(Self)
    }
}

/// The lanes that interrupted, with their states (the others finished).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Lanes {
    waiting: BTreeMap<usize, Value>,
}

impl Agent for ParallelAgent {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn description(&self) -> &str {
        &self.0.description
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let saved = run.resume_state::<Lanes>();
            let lanes: Vec<(usize, Option<Value>)> = match saved {
                Some(l) => l.waiting.into_iter().map(|(i, s)| (i, Some(s))).collect(),
                None => (0..self.0.agents.len()).map(|i| (i, None)).collect(),
            };
            let results = join_all(lanes.iter().map(|(i, state)| {
                let agent = &self.0.agents[*i];
                let sub = run.enter(agent.name()).resuming(state.clone());
                let input = messages.clone();
                async move { agent.run(input, &sub).await }
            }))
            .await;
            let mut waiting = Lanes::default();
            let mut points = vec![InterruptPoint::new(
                run.address().to_vec(),
                Value::Null,
                false,
            )];
            let mut action = None;
            for ((i, _), r) in lanes.iter().zip(results) {
                match r {
                    Ok(Some(AgentAction::Exit)) => action = Some(AgentAction::Exit),
                    Ok(Some(AgentAction::BreakLoop)) if action.is_none() => {
                        action = Some(AgentAction::BreakLoop)
                    }
                    Ok(_) => {}
                    Err(e) => match AgentInterrupt::from_error(&e) {
                        Some(inner) => {
                            points.extend(inner.points);
                            waiting.waiting.insert(*i, inner.state);
                        }
                        None => return Err(e),
                    },
                }
            }
            if !waiting.waiting.is_empty() {
                let state = serde_json::to_value(&waiting)?;
                return Err(AgentInterrupt { points, state }.into_error());
            }
            Ok(action)
        })
    }
}

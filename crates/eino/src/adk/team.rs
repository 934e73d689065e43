//! Transfer between agents: a [`Team`] is a root agent with sub-agents (which may have
//! their own); an agent ends its turn with [`AgentAction::TransferTo`] and the team runs
//! the named agent — a sub-agent or the parent — on the shared history, rewritten for it
//! ([`rewrite_history`]). [`DeterministicTransfer`] makes an agent always hand back.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat_model::TRANSFER_TOOL;
use super::event::AgentAction;
use super::run::{AgentRun, HistoryEntry, Targets};
use super::Agent;
use crate::error::{Error, Result};
use crate::schema::{Message, Role, ToolCall};

/// The history as `agent` should read it: the caller's input and its own messages as
/// they are; other agents' messages as user messages "For context: \[name\] said: …" (their
/// tool calls and tool results described the same way), like Eino's default rewriter.
pub fn rewrite_history(history: &[HistoryEntry], agent: &str) -> Vec<Message> {
    history
        .iter()
        .map(|h| match h.agent.as_deref() {
            None => (*h.message).clone(),
            Some(a) if a == agent => (*h.message).clone(),
            Some(a) => rewrite(&h.message, a),
        })
        .collect()
}

fn rewrite(m: &Message, agent: &str) -> Message {
    let mut text = String::from("For context:");
    match m.role {
        Role::Assistant => {
            if !m.content.is_empty() {
                text.push_str(&format!(" [{agent}] said: {}.", m.content));
            }
            for c in &m.tool_calls {
                text.push_str(&format!(
                    " [{agent}] called tool: `{}` with arguments: {}.",
                    c.function.name, c.function.arguments
                ));
            }
        }
        Role::Tool if !m.content.is_empty() => text.push_str(&format!(
            " [{agent}] `{}` tool returned result: {}.",
            m.name.as_deref().unwrap_or_default(),
            m.content
        )),
        _ => {}
    }
    let mut out = Message::user(text);
    out.parts = m.parts.clone();
    out
}

struct Member {
    agent: Arc<dyn Agent>,
    parent: Option<usize>,
    children: Vec<usize>,
    transfer_to_parent: bool,
    /// Who it may transfer to (kept, so every run shares one list).
    targets: Targets,
}

/// A root agent and its sub-agents, transferring the conversation between them.
///
/// Transfer between agents: a [`Team`] is a root agent with sub-agents (which may have
/// their own); an agent ends its turn with [`AgentAction::TransferTo`] and the team runs
/// the named agent — a sub-agent or the parent — on the shared history, rewritten for it
/// ([`rewrite_history`]). [`DeterministicTransfer`] makes an agent always hand back.
///
/// As Eino's own docs say, handing the full conversation from agent to agent has not proven
/// better than agents as tools ([`AgentTool`](super::AgentTool)); prefer those unless the
/// pattern (e.g. a supervisor) needs transfers.
pub struct Team {
    members: Vec<Member>,
    max_transfers: usize,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(|m| m.agent.name()).collect();
        f.debug_struct("Team")
            .field("members", &names)
            .field("max_transfers", &self.max_transfers)
            .finish()
    }
}

/// What a team saves when the agent it runs interrupts.
#[derive(Debug, Serialize, Deserialize)]
struct TeamState {
    /// The agents transferred to, in order (the run path below the root).
    chain: Vec<String>,
    transfers: usize,
    child: Value,
}

impl Team {
    /// A team led by `root` (the team's name and description are the root's).
    pub fn new(root: Arc<dyn Agent>) -> Self {
        Self {
            members: vec![Member {
                agent: root,
                parent: None,
                children: Vec::new(),
                transfer_to_parent: false,
                targets: Targets::default(),
            }],
            max_transfers: 100,
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.agent.name() == name)
    }

    /// Put `subs` under the member `parent`; names must be unique in the team.
    pub fn with_sub_agents(mut self, parent: &str, subs: Vec<Arc<dyn Agent>>) -> Result<Self> {
        let p = self
            .index(parent)
            .ok_or_else(|| Error::invalid_input(format!("the team has no agent '{parent}'")))?;
        for agent in subs {
            if self.index(agent.name()).is_some() {
                return Err(Error::invalid_input(format!(
                    "two agents of the team are named '{}'",
                    agent.name()
                )));
            }
            let i = self.members.len();
            self.members.push(Member {
                agent,
                parent: Some(p),
                children: Vec::new(),
                transfer_to_parent: true,
                targets: Targets::default(),
            });
            self.members[p].children.push(i);
        }
        Ok(self.retarget())
    }

    /// The sub-agent `name` may not transfer back to its parent.
    pub fn disallow_transfer_to_parent(mut self, name: &str) -> Result<Self> {
        let i = self
            .index(name)
            .ok_or_else(|| Error::invalid_input(format!("the team has no agent '{name}'")))?;
        self.members[i].transfer_to_parent = false;
        Ok(self.retarget())
    }

    /// At most `n` transfers in one run (default 100); one more is an error, so two agents
    /// handing the conversation back and forth cannot run forever.
    pub fn with_max_transfers(mut self, n: usize) -> Self {
        self.max_transfers = n;
        self
    }

    /// Who member `i` may transfer to, as (name, description).
    fn targets_of(&self, i: usize) -> Targets {
        let m = &self.members[i];
        let parent = m.parent.filter(|_| m.transfer_to_parent);
        let list = m
            .children
            .iter()
            .copied()
            .chain(parent)
            .map(|j| {
                let a = &self.members[j].agent;
                (a.name().to_string(), a.description().to_string())
            })
            .collect();
        Arc::new(list)
    }

    /// Compute every member's targets again (after the tree changed).
    fn retarget(mut self) -> Self {
        for i in 0..self.members.len() {
            self.members[i].targets = self.targets_of(i);
        }
        self
    }
}

impl Agent for Team {
    fn name(&self) -> &str {
        self.members[0].agent.name()
    }
    fn description(&self) -> &str {
        self.members[0].agent.description()
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let mut state = TeamState {
                chain: Vec::new(),
                transfers: 0,
                child: Value::Null,
            };
            let mut current = 0;
            let mut member_run = run.clone();
            let mut input = messages;
            let mut child: Option<Value> = None;
            if let Some(saved) = run.resume_state::<TeamState>() {
                for name in &saved.chain {
                    member_run = member_run.enter(name);
                    current = self.index(name).ok_or_else(|| {
                        Error::invalid_input(format!("the saved run names unknown agent '{name}'"))
                    })?;
                }
                if current != 0 {
                    input = rewrite_history(&run.history(), self.members[current].agent.name());
                }
                child = (!saved.child.is_null()).then_some(saved.child);
                state = TeamState {
                    child: Value::Null,
                    ..saved
                };
            }
            loop {
                // A safe point: before an agent takes its turn (not one resumed inside).
                if run.stop_requested() && child.is_none() {
                    state.child = Value::Null;
                    return Err(run.stopped(&state));
                }
                let agent = &self.members[current].agent;
                let this_run = member_run
                    .clone()
                    .with_transfer_targets(self.members[current].targets.clone())
                    .resuming(child.take());
                let action = match agent.run(input, &this_run).await {
                    Ok(a) => a,
                    Err(e) => {
                        let Some(inner) = AgentRun::child_state(&e) else {
                            return Err(e);
                        };
                        state.child = inner;
                        return Err(AgentRun::repack_interrupt(e, &state));
                    }
                };
                let Some(AgentAction::TransferTo(to)) = action else {
                    return Ok(action);
                };
                if !self.members[current].targets.iter().any(|(n, _)| *n == to) {
                    return Err(Error::invalid_input(format!(
                        "transfer failed: agent '{to}' not found when transferring from '{}'",
                        agent.name()
                    )));
                }
                state.transfers += 1;
                if state.transfers > self.max_transfers {
                    return Err(Error::new(
                        crate::ErrorKind::ExceededMaxSteps,
                        format!("more than {} transfers in one run", self.max_transfers),
                    ));
                }
                current = self.index(&to).unwrap_or(0);
                member_run = member_run.enter(&to);
                state.chain.push(to.clone());
                input = rewrite_history(&run.history(), &to);
            }
        })
    }
}

/// An agent that, when it ends its turn normally, hands the conversation to `to` (a
/// sub-agent reporting back to its supervisor). Exits, transfers of its own and
/// interrupts pass through.
pub struct DeterministicTransfer {
    agent: Arc<dyn Agent>,
    to: String,
    /// The transfer call's id, arguments and answer (the same every time).
    call_id: String,
    arguments: String,
    answer: String,
}

impl std::fmt::Debug for DeterministicTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeterministicTransfer")
            .field("agent", &self.agent.name())
            .field("to", &self.to)
            .finish()
    }
}

impl DeterministicTransfer {
    /// Wrap `agent` to transfer to `to` after its turn.
    pub fn new(agent: Arc<dyn Agent>, to: impl Into<String>) -> Self {
        let to = to.into();
        Self {
            agent,
            call_id: format!("transfer-{to}"),
            arguments: serde_json::json!({ "agent_name": to }).to_string(),
            answer: format!("successfully transferred to agent [{to}]"),
            to,
        }
    }
}

impl Agent for DeterministicTransfer {
    fn name(&self) -> &str {
        self.agent.name()
    }
    fn description(&self) -> &str {
        self.agent.description()
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            let action = self.agent.run(messages, run).await?;
            if action.is_some() {
                return Ok(action);
            }
            // The messages a model's transfer would have written, so the history reads the
            // same either way (Eino's GenTransferMessages).
            run.emit_message(Message::assistant(
                "",
                vec![ToolCall::function(
                    self.call_id.clone(),
                    TRANSFER_TOOL,
                    self.arguments.clone(),
                )],
            ));
            run.emit_message(
                Message::tool(self.answer.clone(), self.call_id.clone()).with_name(TRANSFER_TOOL),
            );
            Ok(run.act(AgentAction::TransferTo(self.to.clone())))
        })
    }
}

//! [`AgentNode`]: an agent as a node of a compose graph (`Vec<Message>` in, the agent's
//! final answer out), so an application graph can end in any agent and run under the
//! graph's checkpoint store.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{AgentEvents, EventSink};
use super::interrupt::{AgentInterrupt, InterruptPoint, ResumeTargets, SegmentKind};
use super::run::{AgentRun, HistoryEntry, RunSeed};
use super::Agent;
use crate::callbacks::ComponentKind;
use crate::compose::{Context, IntoNode, Lambda, NodeDef};
use crate::error::{Error, Result};
use crate::schema::{Map, Message, Role};

/// Where an [`AgentNode`] sends its events: pass it with `CallOption::lambda(tap)`.
#[derive(Debug, Clone)]
pub struct EventTap {
    sink: EventSink,
    streaming: bool,
}

impl EventTap {
    /// A tap and the events it receives (complete messages, not streams).
    pub fn channel() -> (Self, AgentEvents) {
        let (sink, events) = EventSink::channel();
        (
            Self {
                sink,
                streaming: false,
            },
            events,
        )
    }

    /// Have model turns arrive as streams.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }
}

/// What the node saves when the agent interrupts.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    state: Value,
    history: Vec<HistoryEntry>,
    session: Map,
    points: Vec<InterruptPoint>,
}

/// An agent as a graph node.
///
/// [`AgentNode`]: an agent as a node of a compose graph (`Vec<Message>` in, the agent's
/// final answer out), so an application graph can end in any agent and run under the
/// graph's checkpoint store.
///
/// - Events go to an [`EventTap`] passed as a call option (`CallOption::lambda(tap)`), if
///   any.
/// - An interrupt inside the agent interrupts the node: its interrupt info holds the points
///   (`adk_interrupt_points`), its saved state what the agent needs to continue.
/// - On resume the node's resume data is an object keyed by interrupt point id, or by the
///   tool call id of a point (as approval APIs know them), each with that point's data.
#[derive(Clone)]
pub struct AgentNode {
    agent: Arc<dyn Agent>,
}

impl std::fmt::Debug for AgentNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentNode")
            .field("agent", &self.agent.name())
            .finish()
    }
}

impl AgentNode {
    /// Wrap `agent`.
    pub fn new(agent: Arc<dyn Agent>) -> Self {
        Self { agent }
    }

    async fn run(&self, messages: Vec<Message>, ctx: Context) -> Result<Message> {
        let tap = ctx.options::<EventTap>().last().cloned();
        let saved = ctx.interrupt_state::<Saved>();
        let targets = match (&saved, ctx.resume_data::<Map>()) {
            (Some(s), Some(data)) => targets_for(&s.points, data),
            _ => ResumeTargets::new(),
        };
        let resumed = saved.is_some();
        let (history, session, state) = match saved {
            Some(s) => (s.history, s.session, Some(s.state)),
            None => (Vec::new(), Map::new(), None),
        };
        let seed = RunSeed {
            session,
            history,
            targets,
            streaming: tap.as_ref().is_some_and(|t| t.streaming),
            stop: Default::default(),
            ctx,
            resume: None,
        };
        let sink = tap.map(|t| t.sink).unwrap_or_else(EventSink::discard);
        let run = AgentRun::root(seed, sink)
            .enter(self.agent.name())
            .resuming(state);
        if !resumed {
            run.record_input(&messages);
        }
        match self.agent.run(messages, &run).await {
            Ok(_) => Ok(final_answer(&run.history())),
            Err(e) => match AgentInterrupt::from_error(&e) {
                Some(i) => {
                    let info = AgentInterrupt::points_info(&i.points);
                    let saved = Saved {
                        state: i.state,
                        history: run.history(),
                        session: run.session_values(),
                        points: i.points,
                    };
                    Err(Error::interrupt_with_state(
                        info,
                        serde_json::to_value(saved)?,
                    ))
                }
                None => Err(e),
            },
        }
    }
}

/// The resume targets for `data` keyed by point id or by a root point's tool call id.
fn targets_for(points: &[InterruptPoint], data: Map) -> ResumeTargets {
    let mut t = ResumeTargets::new();
    for (key, v) in data {
        let by_call = points.iter().find(|p| {
            p.is_root_cause
                && p.address.last().is_some_and(|s| {
                    s.kind == SegmentKind::Tool && s.sub_id.as_deref() == Some(key.as_str())
                })
        });
        let id = by_call.map(|p| p.id.clone()).unwrap_or(key);
        t.0.insert(id, v);
    }
    t
}

/// A run's answer: the last message an agent wrote that is not a tool call or a transfer
/// (an `exit` tool's or a return-directly tool's result counts), as an assistant message.
pub fn final_answer(history: &[HistoryEntry]) -> Message {
    let last = history.iter().rev().find(|h| {
        h.agent.is_some()
            && match h.message.role {
                Role::Assistant => h.message.tool_calls.is_empty(),
                Role::Tool => h.message.name.as_deref() != Some(super::TRANSFER_TOOL),
                _ => false,
            }
    });
    let mut m = last.map(|h| (*h.message).clone()).unwrap_or_default();
    m.role = Role::Assistant;
    m.tool_call_id = None;
    m.name = None;
    m
}

impl IntoNode<Vec<Message>, Message> for AgentNode {
    fn into_node(self) -> NodeDef<Vec<Message>, Message> {
        Lambda::new()
            .with_invoke(move |messages: Vec<Message>, ctx: Context| {
                let node = self.clone();
                async move { node.run(messages, ctx).await }
            })
            .with_kind(ComponentKind::Lambda)
            .with_type_name("Agent")
            .into_node()
    }
}

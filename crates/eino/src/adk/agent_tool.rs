//! [`AgentTool`]: an agent offered to another agent's model as a tool. The call's
//! `request` becomes the agent's user message (or the caller's whole history with it);
//! the agent's last message is the tool's result. Its transfers, exits and loop breaks stay
//! inside the tool; its interrupts stop the caller too, with addresses through the call.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use super::event::EventSink;
use super::interrupt::AgentInterrupt;
use super::run::{tool_args, AgentRun, RunSeed};
use super::Agent;
use crate::component::{Tool, ToolOptions, ToolResume};
use crate::compose::Context;
use crate::error::{Error, Result};
use crate::schema::{Message, Role, ToolInfo};

#[derive(Deserialize, JsonSchema)]
struct Request {
    /// What the agent should do, in full sentences.
    request: String,
}

/// An agent as a tool.
///
/// [`AgentTool`]: an agent offered to another agent's model as a tool. The call's
/// `request` becomes the agent's user message (or the caller's whole history with it);
/// the agent's last message is the tool's result. Its transfers, exits and loop breaks stay
/// inside the tool; its interrupts stop the caller too, with addresses through the call.
pub struct AgentTool {
    agent: Arc<dyn Agent>,
    full_history: bool,
    forward_events: bool,
}

impl std::fmt::Debug for AgentTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTool")
            .field("agent", &self.agent.name())
            .field("full_history", &self.full_history)
            .field("forward_events", &self.forward_events)
            .finish()
    }
}

impl AgentTool {
    /// Offer `agent` as a tool named after it.
    pub fn new(agent: Arc<dyn Agent>) -> Self {
        Self {
            agent,
            full_history: false,
            forward_events: false,
        }
    }

    /// Give the agent the caller's whole conversation (other agents' turns rewritten as
    /// context) followed by the request, instead of the request alone.
    pub fn with_full_history(mut self) -> Self {
        self.full_history = true;
        self
    }

    /// Forward the agent's events to the caller's event stream (their run path continues
    /// the caller's).
    pub fn with_forwarded_events(mut self) -> Self {
        self.forward_events = true;
        self
    }
}

/// The text the tool answers with: the agent's last message of its own.
fn answer(run: &AgentRun, agent: &str) -> String {
    run.history()
        .into_iter()
        .rev()
        .find(|h| {
            h.agent.as_deref() == Some(agent)
                && matches!(h.message.role, Role::Assistant | Role::Tool)
        })
        .map(|h| h.message.content.clone())
        .unwrap_or_default()
}

/// Run `agent` for the tool call in `options` (tool `tool`) on `request`: the agent
/// continues the caller's run (session, cancellation, interrupt addresses through the
/// call) with its own history. Used by [`AgentTool`] and the deep agent's `task` tool.
pub(crate) async fn run_for_call(
    agent: &dyn Agent,
    tool: &str,
    request: String,
    options: &ToolOptions,
    forward_events: bool,
    full_history: bool,
) -> Result<String> {
    let name = agent.name();
    // Outside an agent (a plain tools node), the agent runs on its own.
    let parent = match options.extensions.get::<AgentRun>() {
        Some(run) => run.clone(),
        None => AgentRun::root(
            RunSeed {
                session: Default::default(),
                history: Vec::new(),
                targets: Default::default(),
                streaming: false,
                stop: Default::default(),
                ctx: Context::new(),
                resume: None,
            },
            EventSink::discard(),
        ),
    };
    let call_id = options.call_id().unwrap_or(tool);
    let saved = options
        .extensions
        .get::<ToolResume>()
        .and_then(|r| r.info.as_ref())
        .and_then(AgentInterrupt::from_tool_info)
        .map(|i| i.state);
    let run = parent
        .for_tool(tool, call_id, forward_events)
        .enter(name)
        .resuming(saved);
    let mut input = Vec::new();
    if full_history {
        input = super::team::rewrite_history(&parent.history(), name);
    }
    input.push(Message::user(request));
    run.record_input(&input);
    match agent.run(input, &run).await {
        Ok(_) => Ok(answer(&run, name)),
        Err(e) => match AgentInterrupt::from_error(&e) {
            Some(i) => Err(Error::interrupt(i.into_tool_info())),
            None => Err(e),
        },
    }
}

impl Tool for AgentTool {
    fn info(&self) -> ToolInfo {
        ToolInfo::of::<Request>(self.agent.name(), self.agent.description())
    }

    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let req: Request = tool_args(self.agent.name(), arguments)?;
            run_for_call(
                &*self.agent,
                self.agent.name(),
                req.request,
                options,
                self.forward_events,
                self.full_history,
            )
            .await
        })
    }
}

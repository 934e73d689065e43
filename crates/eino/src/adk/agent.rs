//! The agent abstraction: a named, described unit that runs on a conversation and reports
//! what it does as events.

use futures_util::future::BoxFuture;

use super::event::AgentAction;
use super::run::AgentRun;
use crate::error::Result;
use crate::schema::Message;

/// An agent: runs on a conversation, sends its messages and actions as events through
/// `run`, and returns the action that ends its turn, if any (a transfer, an exit, a loop
/// break). An interrupt is returned as an [`ErrorKind::Interrupted`](crate::ErrorKind)
/// error made with [`AgentRun::interrupt`] or [`AgentRun::wrap_interrupt`].
///
/// On resume the runner calls `run` again with the same input; the agent finds what it
/// saved in [`AgentRun::resume_state`].
pub trait Agent: Send + Sync {
    /// Unique among the agents it works with (transfers and tools name it).
    fn name(&self) -> &str;
    /// What it is good at (other agents' models read this).
    fn description(&self) -> &str;
    /// Run on `messages`.
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>>;
}

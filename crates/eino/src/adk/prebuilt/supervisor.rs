//! The supervisor pattern: a supervisor agent transfers the conversation to one of its
//! sub-agents; each sub-agent, when done, always transfers back (it cannot go elsewhere);
//! the supervisor decides what next or answers. Like Eino's `prebuilt/supervisor`.
//!
//! The supervisor is usually a [`ChatModelAgent`](crate::adk::ChatModelAgent) (it gets a
//! `transfer_to_agent` tool listing the sub-agents); sub-agents can be any agents.

use std::sync::Arc;

use crate::adk::{Agent, DeterministicTransfer, Team};
use crate::error::Result;

/// A team where `supervisor` leads and every sub-agent reports back to it.
pub fn supervisor(supervisor: Arc<dyn Agent>, sub_agents: Vec<Arc<dyn Agent>>) -> Result<Team> {
    let name = supervisor.name().to_string();
    let subs = sub_agents
        .into_iter()
        .map(|a| Arc::new(DeterministicTransfer::new(a, name.clone())) as Arc<dyn Agent>)
        .collect();
    Team::new(supervisor).with_sub_agents(&name, subs)
}

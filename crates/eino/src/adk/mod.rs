//! Agents the way Eino's ADK builds them: an [`Agent`] runs on a conversation and reports
//! what it does as a stream of typed [`AgentEvent`]s; a [`Runner`] owns a run's lifecycle
//! (events, checkpoints, resume in another process, cancellation).
//!
//! - [`ChatModelAgent`]: a model and tools in a ReAct loop (a compose graph inside).
//! - Multi-agent: [`AgentTool`] (an agent as another's tool), [`Team`] (transfer between a
//!   parent and its sub-agents, with the history rewritten for the receiver),
//!   [`SequentialAgent`], [`ParallelAgent`], [`LoopAgent`].
//! - [`prebuilt`]: the supervisor and plan-execute-replan patterns.
//! - Interrupts carry addresses ([`InterruptPoint`]); a resume gives data to chosen points
//!   ([`ResumeTargets`]), also for a tool inside a sub-agent inside a supervisor.
//!
//! See `docs/agents.md` for a guide with runnable examples.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use eino::adk::{ChatModelAgent, ChatModelAgentConfig, EventKind, Runner};
//! use eino::component::ChatModel;
//! use eino::schema::{Message, StreamReader, ToolInfo};
//! use futures_util::future::BoxFuture;
//!
//! struct Echo; // a stand-in model that repeats the user
//! impl ChatModel for Echo {
//!     fn generate<'a>(&'a self, m: &'a [Message], _: &'a eino::component::ChatOptions)
//!         -> BoxFuture<'a, eino::Result<Message>> {
//!         let text = m.last().map(|m| m.content.clone()).unwrap_or_default();
//!         Box::pin(async move { Ok(Message::assistant(text, vec![])) })
//!     }
//!     fn stream<'a>(&'a self, m: &'a [Message], o: &'a eino::component::ChatOptions)
//!         -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
//!         Box::pin(async move { Ok(StreamReader::once(self.generate(m, o).await?)) })
//!     }
//!     fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> { Ok(Arc::new(Echo)) }
//! }
//!
//! let agent = ChatModelAgent::new(ChatModelAgentConfig::new("echo", "repeats", Arc::new(Echo))).unwrap();
//! let events = Runner::new(Arc::new(agent)).query("hello").collect().await.unwrap();
//! assert!(matches!(&events[0].kind, EventKind::Message(m) if m.content == "hello"));
//! # });
//! ```

#[doc = include_str!("../../../../docs/agents.md")]
pub mod guide {}

mod agent;
mod agent_tool;
mod chat_model;
mod event;
pub mod filesystem;
mod interrupt;
mod middleware;
pub mod middlewares;
mod node;
pub mod prebuilt;
mod run;
mod runner;
mod team;
mod workflow;

pub use agent::Agent;
pub use agent_tool::AgentTool;
pub use chat_model::{ChatModelAgent, ChatModelAgentConfig, EXIT_TOOL, TRANSFER_TOOL};
pub use event::{AgentAction, AgentEvent, AgentEvents, EventKind};
pub use interrupt::{point_id, AddressSegment, InterruptPoint, ResumeTargets, SegmentKind};
pub use middleware::AgentMiddleware;
pub use node::{final_answer, AgentNode, EventTap};
pub use run::{AgentRun, HistoryEntry};
pub use runner::{AgentCheckpoint, RunHandle, RunOptions, Runner};
pub use team::{rewrite_history, DeterministicTransfer, Team};
pub use workflow::{LoopAgent, ParallelAgent, SequentialAgent};

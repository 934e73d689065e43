//! Ready-made [`AgentMiddleware`](super::AgentMiddleware)s:
//!
//! - [`Summarization`]: summarise older messages once the conversation passes a token
//!   budget.
//! - [`ToolResultReduction`]: cut very long tool results and clear old ones.
//! - [`PatchToolCalls`]: answer dangling tool calls so providers accept the history.
//! - [`ToolSearch`]: many tools, offered only once the model searched for them.
//! - [`ModelRetry`] and [`ModelFailover`]: retries and alternate models inside the loop.
//! - [`Filesystem`]: file tools over a [`FileBackend`](crate::adk::filesystem::FileBackend).
//! - [`Todos`]: a `write_todos` planning tool.

mod filesystem;
mod patch;
mod reduce;
mod resilience;
mod summarize;
mod todos;
mod tool_search;

pub use filesystem::Filesystem;
pub use patch::PatchToolCalls;
pub use reduce::ToolResultReduction;
pub use resilience::{ModelFailover, ModelRetry};
pub use summarize::{estimate_tokens, Summarization};
pub use todos::{Todo, TodoStatus, Todos, TODOS_KEY};
pub use tool_search::ToolSearch;

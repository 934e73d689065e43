//! [`Todos`]: a `write_todos` tool for planning: the model writes its task list (each item
//! pending, in progress or done) and rewrites it as it goes; the list is kept in the
//! session under [`TODOS_KEY`] (Eino's deep agent's write-todos tool).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adk::run::tool_args;
use crate::adk::{AgentMiddleware, AgentRun};
use crate::component::{Tool, ToolOptions};
use crate::error::Result;
use crate::schema::ToolInfo;

/// The session key of the task list (`Vec<Todo>`).
pub const TODOS_KEY: &str = "todos";

/// One item of the task list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Todo {
    /// What to do.
    pub content: String,
    /// Where it stands.
    pub status: TodoStatus,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TodoStatus {
    /// Not started.
    Pending,
    /// Being worked on.
    InProgress,
    /// Finished.
    Completed,
}

#[derive(Deserialize, JsonSchema)]
struct WriteTodos {
    /// The whole task list (it replaces the previous one).
    todos: Vec<Todo>,
}

/// The planning tool.
///
/// [`Todos`]: a `write_todos` tool for planning: the model writes its task list (each item
/// pending, in progress or done) and rewrites it as it goes; the list is kept in the
/// session under [`TODOS_KEY`] (Eino's deep agent's write-todos tool).
#[derive(Debug, Clone, Default)]
pub struct Todos;

struct WriteTodosTool;

impl Tool for WriteTodosTool {
    fn info(&self) -> ToolInfo {
        ToolInfo::of::<WriteTodos>(
            "write_todos",
            "Write your task list for a complex task; update it as items progress.",
        )
    }
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let w: WriteTodos = tool_args("write_todos", arguments)?;
            let run = AgentRun::of_tool(options, "write_todos")?;
            let open = w
                .todos
                .iter()
                .filter(|t| t.status != TodoStatus::Completed)
                .count();
            let n = w.todos.len();
            run.session_set(TODOS_KEY, w.todos)?;
            Ok(format!("task list saved: {n} items, {open} open"))
        })
    }
}

impl AgentMiddleware for Todos {
    fn instruction(&self) -> Option<String> {
        Some(
            "For a task of several steps, first write a task list with write_todos, then keep \
             it current: mark an item in_progress when you start it and completed when done."
                .into(),
        )
    }
    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        vec![Arc::new(WriteTodosTool)]
    }
}

//! The deep agent, like Eino's `prebuilt/deep` (after LangChain's DeepAgents): one model
//! that plans with a task list, delegates sub-tasks to sub-agents through a `task` tool
//! (each runs with a fresh context and returns only its result), keeps notes in files, and
//! keeps its own context small (long tool results cut, old turns summarised, dangling tool
//! calls answered).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::adk::agent_tool::run_for_call;
use crate::adk::filesystem::FileBackend;
use crate::adk::middlewares::{
    Filesystem, PatchToolCalls, Summarization, Todos, ToolResultReduction,
};
use crate::adk::run::tool_args;
use crate::adk::{Agent, ChatModelAgent, ChatModelAgentConfig};
use crate::component::{ChatModel, Tool, ToolOptions};
use crate::compose::ToolsNode;
use crate::error::Result;
use crate::schema::ToolInfo;

/// Where a deep agent keeps its files.
#[derive(Clone, Default)]
pub enum FileSpace {
    /// No file tools.
    None,
    /// Each run's own files, kept in its session ([`SessionFiles`](crate::adk::filesystem::SessionFiles)).
    #[default]
    Session,
    /// A shared backend (a directory, memory …).
    Backend(Arc<dyn FileBackend>),
}

impl FileSpace {
    fn middleware(&self) -> Option<Filesystem> {
        match self {
            FileSpace::None => None,
            FileSpace::Session => Some(Filesystem::in_session()),
            FileSpace::Backend(b) => Some(Filesystem::new(b.clone())),
        }
    }
}

/// The name of the sub-agent that has the deep agent's own tools.
pub const GENERAL_PURPOSE: &str = "general-purpose";

/// The configuration of [`deep_agent`].
#[derive(Clone)]
pub struct DeepAgentConfig {
    /// The agent's name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its instruction, added to the deep agent's own.
    pub instruction: String,
    /// The model (it must call tools).
    pub model: Arc<dyn ChatModel>,
    /// Its tools (the general-purpose sub-agent gets them too).
    pub tools: Vec<Arc<dyn Tool>>,
    /// Specialists reachable through the `task` tool.
    pub sub_agents: Vec<Arc<dyn Agent>>,
    /// Where its files live (default: each run's session).
    pub files: FileSpace,
    /// Add the general-purpose sub-agent (default true).
    pub general_sub_agent: bool,
    /// Most model calls of the agent, and of the general-purpose sub-agent (default 50).
    pub max_iterations: usize,
    /// Summarise the conversation past this many tokens (default 30 000; `None`: never).
    pub summarize_at_tokens: Option<usize>,
}

impl std::fmt::Debug for DeepAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subs: Vec<&str> = self.sub_agents.iter().map(|a| a.name()).collect();
        f.debug_struct("DeepAgentConfig")
            .field("name", &self.name)
            .field("sub_agents", &subs)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

impl DeepAgentConfig {
    /// A deep agent over `model` with the defaults and no tools, sub-agents or files.
    pub fn new(name: impl Into<String>, model: Arc<dyn ChatModel>) -> Self {
        Self {
            name: name.into(),
            description: "plans and carries out complex tasks, delegating sub-tasks".into(),
            instruction: String::new(),
            model,
            tools: Vec::new(),
            sub_agents: Vec::new(),
            files: FileSpace::Session,
            general_sub_agent: true,
            max_iterations: 50,
            summarize_at_tokens: Some(30_000),
        }
    }
}

const DEEP_PROMPT: &str = "You work on complex tasks step by step. Plan with write_todos \
    and keep the list current. Hand self-contained sub-tasks to a sub-agent with the `task` \
    tool: it starts with a fresh context and returns only its result, so describe the \
    sub-task fully. Give the user a complete final answer when done.";

#[derive(Deserialize)]
struct Task {
    subagent_type: String,
    description: String,
}

/// Runs a sub-task on a named sub-agent.
struct TaskTool {
    agents: Vec<Arc<dyn Agent>>,
}

impl Tool for TaskTool {
    fn info(&self) -> ToolInfo {
        let names: Vec<&str> = self.agents.iter().map(|a| a.name()).collect();
        let list = self
            .agents
            .iter()
            .map(|a| format!("- {}: {}", a.name(), a.description()))
            .collect::<Vec<_>>()
            .join("\n");
        ToolInfo::new(
            "task",
            format!("Hand a self-contained sub-task to a sub-agent and get its result. Sub-agents:\n{list}"),
            json!({
                "type": "object",
                "properties": {
                    "subagent_type": {"type": "string", "enum": names, "description": "Which sub-agent"},
                    "description": {"type": "string", "description": "The sub-task, fully described"}
                },
                "required": ["subagent_type", "description"]
            }),
        )
    }
    fn call<'a>(
        &'a self,
        arguments: &'a str,
        options: &'a ToolOptions,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let t: Task = tool_args("task", arguments)?;
            let Some(agent) = self.agents.iter().find(|a| a.name() == t.subagent_type) else {
                let names: Vec<&str> = self.agents.iter().map(|a| a.name()).collect();
                return Ok(format!(
                    "there is no sub-agent '{}'; choose one of: {}",
                    t.subagent_type,
                    names.join(", ")
                ));
            };
            run_for_call(&**agent, "task", t.description, options, false, false).await
        })
    }
}

/// Build a deep agent.
///
/// The deep agent, like Eino's `prebuilt/deep` (after LangChain's DeepAgents): one model
/// that plans with a task list, delegates sub-tasks to sub-agents through a `task` tool
/// (each runs with a fresh context and returns only its result), keeps notes in files, and
/// keeps its own context small (long tool results cut, old turns summarised, dangling tool
/// calls answered).
pub fn deep_agent(config: DeepAgentConfig) -> Result<ChatModelAgent> {
    let mut subs = config.sub_agents.clone();
    if config.general_sub_agent {
        let mut general = ChatModelAgentConfig::new(
            GENERAL_PURPOSE,
            "a general assistant with the same tools, for any self-contained sub-task",
            config.model.clone(),
        )
        .with_instruction("Carry out the sub-task you are given and answer with its result.")
        .with_tools(ToolsNode::new(config.tools.clone()))
        .with_max_iterations(config.max_iterations)
        .with_middleware(ToolResultReduction::default())
        .with_middleware(PatchToolCalls::new());
        if let Some(fs) = config.files.middleware() {
            general = general.with_middleware(fs);
        }
        subs.push(Arc::new(ChatModelAgent::new(general)?));
    }
    let mut tools = config.tools.clone();
    if !subs.is_empty() {
        tools.push(Arc::new(TaskTool { agents: subs }));
    }
    let instruction = [DEEP_PROMPT, config.instruction.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n");
    let mut cfg = ChatModelAgentConfig::new(config.name, config.description, config.model.clone())
        .with_instruction(instruction)
        .with_tools(ToolsNode::new(tools))
        .with_max_iterations(config.max_iterations)
        .with_middleware(Todos)
        .with_middleware(PatchToolCalls::new())
        .with_middleware(ToolResultReduction::default());
    if let Some(fs) = config.files.middleware() {
        cfg = cfg.with_middleware(fs);
    }
    if let Some(at) = config.summarize_at_tokens {
        cfg = cfg.with_middleware(Summarization::new(config.model).with_budget(at, at / 4));
    }
    ChatModelAgent::new(cfg)
}

//! `applications:`: what answers a model id of the API: a model, a prompt, knowledge bases
//! and, for agents, tools.

use serde::{Deserialize, Serialize};

/// An application: a model, a system prompt and optional knowledge bases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The chat model id.
    pub model: String,
    /// Models tried in order when `model` fails with a retryable error or its breaker is open.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Knowledge bases searched for context (names; `*` for all of the tenant's).
    #[serde(default)]
    pub knowledge_bases: Vec<String>,
    /// The embedder for the knowledge bases.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// Chunks put into the prompt.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Chunks scoring below this are ignored; when none is left the app answers as plain chat.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
    /// Past messages of a session sent to the model.
    #[serde(default = "default_history")]
    pub history_messages: usize,
    /// How messages are answered: `chat` (one model call, with knowledge-base context when
    /// some is found), `react` (a ReAct agent that may call `tools`), or one of the
    /// multi-agent kinds `supervisor`, `plan_execute`, `deep` (see `docs/agents.md`).
    #[serde(default)]
    pub agent: AgentKind,
    /// Tools the agent may call (names of the `tools:` section).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Model calls per message at most (`react`; for the multi-agent kinds, per agent).
    #[serde(default = "default_max_model_calls")]
    pub max_model_calls: usize,
    /// `supervisor` and `deep`: the applications (of kind `chat` or `react`) that work as
    /// this one's sub-agents, by id.
    #[serde(default)]
    pub sub_agents: Vec<String>,
    /// What the application is good at, read by a supervisor or deep agent choosing among
    /// sub-agents (default: its id).
    #[serde(default)]
    pub description: Option<String>,
}

/// An application's agent type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Routed per message: RAG when the knowledge bases hold relevant chunks, else plain chat.
    #[default]
    Chat,
    /// A ReAct agent over the application's tools (context from the knowledge bases, when
    /// found, goes into its system prompt).
    React,
    /// A supervisor (this application's model, prompt and tools) that hands the
    /// conversation to its `sub_agents`, which always report back.
    Supervisor,
    /// Plan, execute a step with the tools, re-plan, until the model answers.
    PlanExecute,
    /// A deep agent: a task list, sub-agents through a `task` tool (the `sub_agents` and a
    /// general-purpose one), scratch files kept with the run, context reduction.
    Deep,
}

impl AgentKind {
    /// Built from the multi-agent layer (`eino::adk`).
    pub fn is_multi_agent(self) -> bool {
        matches!(self, Self::Supervisor | Self::PlanExecute | Self::Deep)
    }
}

pub(super) fn default_max_model_calls() -> usize {
    8
}

pub(super) fn default_embedder() -> String {
    "minilm".into()
}
pub(super) fn default_top_k() -> usize {
    4
}
pub(super) fn default_min_score() -> f64 {
    // MiniLM scores unrelated text up to ~0.2: keep those out of the prompt.
    0.3
}
pub(super) fn default_history() -> usize {
    20
}

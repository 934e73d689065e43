//! Multi-agent applications (`agent: supervisor | plan_execute | deep`): the eino ADK
//! agents built from the configuration.
//!
//! A sub-agent is another application (of kind `chat` or `react`) run as a
//! [`ChatModelAgent`]: its model (with fallbacks), its system prompt as instruction, its
//! tools and its model-call limit; its `description` (default: its id) is what the
//! supervisor or deep agent reads when choosing. The application's own system prompt and
//! knowledge-base context reach the agent as a system message of its input (the graph's
//! `tools` node), so they are not repeated as an instruction.

use std::sync::Arc;

use eino::adk::prebuilt::deep::{deep_agent, DeepAgentConfig, FileSpace};
use eino::adk::prebuilt::plan_execute::{plan_execute, PlanExecuteConfig};
use eino::adk::prebuilt::supervisor::supervisor;
use eino::adk::{Agent, ChatModelAgent, ChatModelAgentConfig};
use eino::component::{ChatModel, Tool};
use eino::compose::ToolsNode;
use eino::{Error, Result};

use crate::config::{AgentKind, AppConfig, Config};

/// The tools of an application, by id.
pub type ToolsOf<'a> = &'a dyn Fn(&str) -> Result<Vec<Arc<dyn Tool>>>;

/// What building needs besides the configuration: each application's model and tools.
pub struct Sources<'a> {
    /// The model of an application, with its fallbacks.
    pub model: &'a dyn Fn(&str) -> Result<Arc<dyn ChatModel>>,
    /// The tools of an application.
    pub tools: ToolsOf<'a>,
}

/// A prompt used as an instruction, whose braces are text (instructions are formatted with
/// the session values).
fn literal(prompt: &str) -> String {
    prompt.replace('{', "{{").replace('}', "}}")
}

fn app_of<'c>(config: &'c Config, id: &str) -> Result<&'c AppConfig> {
    config
        .applications
        .get(id)
        .ok_or_else(|| Error::invalid_input(format!("no application {id:?}")))
}

/// The application `id` as a sub-agent.
fn sub_agent(config: &Config, id: &str, src: &Sources<'_>) -> Result<Arc<dyn Agent>> {
    let app = app_of(config, id)?;
    let description = app.description.clone().unwrap_or_else(|| id.to_string());
    let mut cfg = ChatModelAgentConfig::new(id, description, (src.model)(id)?)
        .with_tools(ToolsNode::new((src.tools)(id)?))
        .with_max_iterations(app.max_model_calls);
    if let Some(p) = &app.system_prompt {
        cfg = cfg.with_instruction(literal(p));
    }
    Ok(Arc::new(ChatModelAgent::new(cfg)?))
}

/// The agent of the multi-agent application `id`.
pub fn build(config: &Config, id: &str, src: &Sources<'_>) -> Result<Arc<dyn Agent>> {
    let app = app_of(config, id)?;
    let description = app.description.clone().unwrap_or_else(|| id.to_string());
    let model = (src.model)(id)?;
    let tools = (src.tools)(id)?;
    let subs = app
        .sub_agents
        .iter()
        .map(|s| sub_agent(config, s, src))
        .collect::<Result<Vec<_>>>()?;
    // The application itself as a ReAct agent over its tools (the supervisor, the executor).
    let own = || -> Result<Arc<dyn Agent>> {
        let cfg = ChatModelAgentConfig::new(id, description.clone(), model.clone())
            .with_tools(ToolsNode::new(tools.clone()))
            .with_max_iterations(app.max_model_calls);
        Ok(Arc::new(ChatModelAgent::new(cfg)?))
    };
    Ok(match app.agent {
        AgentKind::Supervisor => Arc::new(supervisor(own()?, subs)?),
        AgentKind::PlanExecute => Arc::new(plan_execute(PlanExecuteConfig::new(
            model.clone(),
            own()?,
            model,
        ))?),
        AgentKind::Deep => {
            let mut cfg = DeepAgentConfig::new(id, model);
            cfg.description = description;
            cfg.tools = tools;
            cfg.sub_agents = subs;
            cfg.files = FileSpace::Session;
            cfg.max_iterations = app.max_model_calls;
            Arc::new(deep_agent(cfg)?)
        }
        AgentKind::Chat | AgentKind::React => {
            return Err(Error::invalid_input(format!(
                "applications.{id}: not a multi-agent application"
            )))
        }
    })
}

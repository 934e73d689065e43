//! Applications: each is a compiled eino graph, the seed's "chain selection":
//!
//! ```text
//! agent: chat    retrieve ─┬─ rag  ─┬─ model ── end
//!                          └─ chat ─┘
//! agent: react   retrieve ── tools ── agent ── end
//! agent: supervisor | plan_execute | deep
//!                retrieve ── tools ── agent ── end
//! ```
//!
//! `retrieve` searches the application's knowledge bases. An `agent: chat` application
//! goes the `rag` way when relevant chunks were found (context in the system prompt) and
//! the `chat` way otherwise; an `agent: react` application hands the conversation to a
//! ReAct agent (the subgraph `agent`) over its tools, with the context, if any, in its
//! system prompt. A multi-agent application's `agent` node is an
//! [`AgentNode`](eino::adk::AgentNode) over the agent built by [`crate::agents`]; its
//! events go to an [`EventTap`](eino::adk::EventTap) when the caller passes one. Model nodes are
//! [`FallbackModel`]s, so an application degrades to its fallback models when the first
//! one fails. The graph runs under the service's checkpoint store: a tool that needs
//! approval interrupts the run, which resumes later from the checkpoint.

use std::sync::{Arc, Mutex};

use eino::component::ChatModel;
use eino::component::{Tool, ToolOptions};
use eino::compose::{
    Branch, CallOption, CheckpointRun, CheckpointStore, CompileOptions, Compiled, Context, Graph,
    Lambda, ToolsNode, Topology, END, START,
};
use eino::flow::react::{ReactAgent, ReactConfig};
use eino::schema::{Document, Message, Role};
use eino::Result;
use serde::{Deserialize, Serialize};

use crate::config::{AgentKind, AppConfig};
use crate::knowledge::Knowledge;
use crate::resilience::FallbackModel;
use crate::tools::CallerTenant;

/// What an application runs on: the tenant and the conversation so far (history + new
/// user message, without the system prompt).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppInput {
    /// Whose knowledge bases to search.
    pub tenant: String,
    /// The conversation.
    pub messages: Vec<Message>,
}
eino::graph_value!(AppInput: serde);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Retrieved {
    messages: Vec<Message>,
    context: Vec<Document>,
}
eino::graph_value!(Retrieved: serde);

/// Where a run's retrieved chunks are put for the response (`sources`).
#[derive(Clone, Default)]
pub struct SourcesSink(pub Arc<Mutex<Vec<Document>>>);

impl SourcesSink {
    /// The chunks the run retrieved.
    pub fn take(&self) -> Vec<Document> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A configured application.
#[derive(Clone)]
pub struct Application {
    /// Its id (a model id of the OpenAI-compatible API).
    pub id: String,
    /// Its configuration.
    pub config: AppConfig,
    graph: Compiled<AppInput, Message>,
    interruptible: bool,
}

fn system(text: String) -> Message {
    Message::new(Role::System, text)
}

/// The prompt of the `rag`, `chat` and `tools` routes: the system prompt (with the
/// context, when there is some), then the conversation.
fn prompt(base: &str, r: Retrieved) -> Vec<Message> {
    let text = if r.context.is_empty() {
        base.to_string()
    } else {
        format!(
            "{base}\n\nAnswer using the context below; cite sources as [n]. If the context \
             does not contain the answer, say you do not know.\n\nContext:\n{}",
            crate::knowledge::context_block(&r.context)
        )
    };
    let head = (!text.trim().is_empty()).then(|| system(text.trim_start().to_string()));
    head.into_iter().chain(r.messages).collect()
}

/// What an application is built from besides its configuration.
pub struct AppParts {
    /// Its model, with fallbacks.
    pub model: FallbackModel,
    /// The knowledge bases.
    pub knowledge: Knowledge,
    /// Its tools (`agent: react`), in configuration order.
    pub tools: Vec<Arc<dyn Tool>>,
    /// The agent of a multi-agent application (see [`crate::agents`]).
    pub agent: Option<Arc<dyn eino::adk::Agent>>,
    /// Where interrupted runs are saved; set when a tool needs approval (only then can a
    /// run stop, so only then are runs checkpointed).
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
}

impl Application {
    /// Compile the application's graph.
    pub fn build(id: &str, config: AppConfig, parts: AppParts) -> Result<Self> {
        let AppParts {
            model,
            knowledge,
            tools,
            agent,
            checkpoints,
        } = parts;
        let kbs = config.knowledge_bases.clone();
        let (top_k, min_score) = (config.top_k, config.min_score);
        let retrieve = Lambda::new().with_invoke(move |input: AppInput, ctx: Context| {
            let (knowledge, kbs) = (knowledge.clone(), kbs.clone());
            async move {
                let query = input
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                let context = if kbs.is_empty() {
                    Vec::new()
                } else {
                    knowledge
                        .search(&input.tenant, &kbs, &query, top_k, min_score)
                        .await?
                };
                if let Some(sink) = ctx.options::<SourcesSink>().next() {
                    *sink.0.lock().unwrap_or_else(|e| e.into_inner()) = context.clone();
                }
                Ok(Retrieved {
                    messages: input.messages,
                    context,
                })
            }
        });
        let base = Arc::new(config.system_prompt.clone().unwrap_or_default());
        let route_prompt = |base: Arc<String>| {
            eino::compose::lambda(move |r: Retrieved| {
                let base = base.clone();
                async move { Ok(prompt(&base, r)) }
            })
        };
        let model: Arc<dyn ChatModel> = Arc::new(model);
        let mut g = Graph::<AppInput, Message>::new();
        let retrieve = g.add_node("retrieve", retrieve);
        g.add_edge(START, retrieve);
        if let Some(agent) = agent.filter(|_| config.agent.is_multi_agent()) {
            let with_context = g.add_node("tools", route_prompt(base));
            let agent = g.add_node("agent", eino::adk::AgentNode::new(agent));
            g.add_edge(retrieve, with_context);
            g.add_edge(with_context, agent);
            g.add_edge(agent, END);
        } else if config.agent.is_multi_agent() {
            return Err(eino::Error::invalid_input(format!(
                "applications.{id}: a multi-agent application is built with its agent"
            )));
        } else if config.agent == AgentKind::React {
            let with_tools = g.add_node("tools", route_prompt(base));
            let agent = ReactAgent::new(
                ReactConfig::new(model, ToolsNode::new(tools))
                    .with_max_model_calls(config.max_model_calls),
            )?;
            let agent = g.add_node("agent", agent.graph().clone());
            g.add_edge(retrieve, with_tools);
            g.add_edge(with_tools, agent);
            g.add_edge(agent, END);
        } else {
            let rag = g.add_node("rag", route_prompt(base.clone()));
            let chat = g.add_node("chat", route_prompt(base));
            let answer = g.add_node("model", model);
            g.add_edge(rag, answer);
            g.add_edge(chat, answer);
            g.add_edge(answer, END);
            let (to_rag, to_chat) = (rag.id(), chat.id());
            g.add_branch(
                retrieve,
                Branch::new(move |r: &Retrieved| {
                    Ok(if r.context.is_empty() {
                        to_chat
                    } else {
                        to_rag
                    })
                }),
            )
            .to(rag)
            .to(chat);
        }
        let mut opts = CompileOptions::default().with_name(id.to_string());
        let interruptible = checkpoints.is_some();
        if let Some(store) = checkpoints {
            opts = opts.with_checkpoint_store(store);
        }
        Ok(Self {
            id: id.to_string(),
            config,
            graph: g.compile(opts)?,
            interruptible,
        })
    }

    /// Answer in one piece.
    pub async fn invoke(&self, input: AppInput, ctx: &Context) -> Result<Message> {
        eino::compose::Runnable::invoke(&self.graph, input, ctx).await
    }

    /// Answer as a stream of chunks.
    pub async fn stream(
        &self,
        input: AppInput,
        ctx: &Context,
    ) -> Result<eino::schema::StreamReader<Message>> {
        eino::compose::Runnable::stream(&self.graph, input, ctx).await
    }

    /// The graph's nodes and edges.
    pub fn topology(&self) -> Topology {
        self.graph.topology()
    }

    /// Whether a run can stop for a person's decision (a tool needs approval).
    pub fn interruptible(&self) -> bool {
        self.interruptible
    }

    /// The context of one run for `tenant`: a sink for the retrieved sources, the tenant
    /// for the tools (of an agent), and, in an interruptible application, `checkpoint` (a new run:
    /// `CheckpointRun::new(run_id).force_new_run()`; a resumed one: its decisions).
    pub fn run_context(
        &self,
        ctx: Context,
        tenant: &str,
        checkpoint: CheckpointRun,
    ) -> (Context, SourcesSink) {
        let sink = SourcesSink::default();
        let mut ctx = ctx.with_option(CallOption::lambda(sink.clone()));
        // Only agents call tools: chat applications skip building the options per request.
        if self.config.agent != AgentKind::Chat {
            let mut tool_options = ToolOptions::default();
            tool_options
                .extensions
                .insert(CallerTenant(tenant.to_string()));
            ctx = ctx.with_option(CallOption::tools(tool_options));
        }
        if self.interruptible {
            ctx = ctx.with_checkpoint(checkpoint);
        }
        (ctx, sink)
    }
}

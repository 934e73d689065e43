//! The ReAct agent: a Pregel graph where the model and the tools take turns until the model
//! answers without tool calls.
//!
//! Fixed on purpose relative to Go Eino (inventory §5 items 1 and 2):
//! - The streaming stop check reads the model's stream until a tool-call delta appears or the
//!   stream ends ([`ToolCallCheck::AnyDelta`], the default), so a model that writes text
//!   before its tool calls (Claude, DeepSeek …) does not end the loop early.
//! - The step limit counts model calls ([`ReactConfig::max_model_calls`]), not graph steps.
//! - Tool failures reach the model as tool messages (see [`ToolsNode`]).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use eino::component::{tool_fn, ChatModel, ChatOptions, Tool};
//! use eino::compose::{Context, ToolsNode};
//! use eino::flow::react::{ReactAgent, ReactConfig};
//! use eino::schema::{Message, Role, StreamReader, ToolCall, ToolInfo};
//! use futures_util::future::BoxFuture;
//!
//! // A scripted model: asks for the weather once, then answers with what the tool said.
//! struct Scripted;
//! impl ChatModel for Scripted {
//!     fn generate<'a>(&'a self, msgs: &'a [Message], _: &'a ChatOptions)
//!         -> BoxFuture<'a, eino::Result<Message>> {
//!         let last = msgs.last().cloned().unwrap_or_default();
//!         Box::pin(async move {
//!             Ok(match last.role {
//!                 Role::Tool => Message::assistant(format!("It is {}.", last.content), vec![]),
//!                 _ => Message::assistant("", vec![ToolCall::function("c1", "weather", r#"{"city":"Oslo"}"#)]),
//!             })
//!         })
//!     }
//!     fn stream<'a>(&'a self, msgs: &'a [Message], o: &'a ChatOptions)
//!         -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
//!         Box::pin(async move { Ok(StreamReader::once(self.generate(msgs, o).await?)) })
//!     }
//!     fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
//!         Ok(Arc::new(Scripted))
//!     }
//! }
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct City { city: String }
//! let weather: Arc<dyn Tool> = Arc::new(tool_fn("weather", "Weather in a city", |c: City| async move {
//!     Ok(format!("sunny in {}", c.city))
//! }));
//! let agent = ReactAgent::new(ReactConfig::new(Arc::new(Scripted), ToolsNode::new([weather]))).unwrap();
//! let answer = agent.generate(vec![Message::user("Weather in Oslo?")], &Context::new()).await.unwrap();
//! assert_eq!(answer.content, "It is sunny in Oslo.");
//! # });
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::callbacks::ComponentKind;
use crate::component::{tool_fn, ChatModel, Tool};
use crate::compose::{
    Branch, CompileOptions, Compiled, Context, Graph, Lambda, NodeId, Runnable, ToolsNode, END,
    START,
};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Message, Role, StreamReader};

type MessagesFn = Arc<dyn Fn(Vec<Message>) -> Vec<Message> + Send + Sync>;

/// How the streaming agent decides whether the model called tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolCallCheck {
    /// Read until a chunk carries a tool call (→ tools) or the stream ends (→ answer).
    /// Correct for every model; a plain answer reaches the caller once it is complete.
    #[default]
    AnyDelta,
    /// Go Eino's default: decide at the first chunk with content or tool calls. The answer
    /// streams to the caller at once, but a model that writes text before its tool calls
    /// ends the loop early. Only for models known to put tool calls first.
    FirstChunk,
}

/// Configuration of a [`ReactAgent`].
#[derive(Clone)]
pub struct ReactConfig {
    /// A model that can call tools; the tools' definitions are bound with `with_tools`.
    pub model: Arc<dyn ChatModel>,
    /// The tools.
    pub tools: ToolsNode,
    /// Most model calls per run (default 20); one more is an
    /// [`ErrorKind::ExceededMaxSteps`] error.
    pub max_model_calls: usize,
    /// Tools whose answer ends the run and is returned as is (the first such call wins).
    pub return_directly: HashSet<String>,
    /// Shapes the messages sent to the model each turn (not saved in the history), e.g. to
    /// prepend a system prompt.
    pub message_modifier: Option<MessagesFn>,
    /// Rewrites the saved history before each turn, e.g. to keep it short.
    pub message_rewriter: Option<MessagesFn>,
    /// The streaming stop check.
    pub tool_call_check: ToolCallCheck,
    /// Graph name for callbacks.
    pub name: String,
}

impl std::fmt::Debug for ReactConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactConfig")
            .field("tools", &self.tools)
            .field("max_model_calls", &self.max_model_calls)
            .field("return_directly", &self.return_directly)
            .field("tool_call_check", &self.tool_call_check)
            .field("name", &self.name)
            .finish()
    }
}

impl ReactConfig {
    /// A model and its tools, with the defaults.
    pub fn new(model: Arc<dyn ChatModel>, tools: ToolsNode) -> Self {
        Self {
            model,
            tools,
            max_model_calls: 20,
            return_directly: HashSet::new(),
            message_modifier: None,
            message_rewriter: None,
            tool_call_check: ToolCallCheck::AnyDelta,
            name: "ReActAgent".into(),
        }
    }

    /// Set the model-call limit.
    pub fn with_max_model_calls(mut self, n: usize) -> Self {
        self.max_model_calls = n;
        self
    }

    /// End the run with this tool's answer when it is called.
    pub fn with_return_directly(mut self, tool: impl Into<String>) -> Self {
        self.return_directly.insert(tool.into());
        self
    }

    /// Set the message modifier.
    pub fn with_message_modifier(
        mut self,
        f: impl Fn(Vec<Message>) -> Vec<Message> + Send + Sync + 'static,
    ) -> Self {
        self.message_modifier = Some(Arc::new(f));
        self
    }

    /// Set the history rewriter.
    pub fn with_message_rewriter(
        mut self,
        f: impl Fn(Vec<Message>) -> Vec<Message> + Send + Sync + 'static,
    ) -> Self {
        self.message_rewriter = Some(Arc::new(f));
        self
    }

    /// Prepend a system prompt to every model call.
    pub fn with_system_prompt(self, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        self.with_message_modifier(move |msgs| {
            let mut out = Vec::with_capacity(msgs.len() + 1);
            out.push(Message::system(prompt.clone()));
            out.extend(msgs);
            out
        })
    }

    /// Set the streaming stop check.
    pub fn with_tool_call_check(mut self, check: ToolCallCheck) -> Self {
        self.tool_call_check = check;
        self
    }

    /// Ask for a structured final answer of type `T`: a tool `name` whose arguments are the
    /// answer (schema from `T`) is added and returns directly; read it with
    /// [`ReactAgent::generate_structured`].
    pub fn with_structured_answer<T>(mut self, name: &str, description: &str) -> Self
    where
        T: for<'de> Deserialize<'de> + Serialize + JsonSchema + Send + 'static,
    {
        let answer: Arc<dyn Tool> = Arc::new(tool_fn(name, description, |a: T| async move {
            // Re-serialised from the parsed value: valid JSON of the declared shape.
            serde_json::to_string(&a).map_err(Error::from)
        }));
        self.tools = self.tools.with_tool(answer);
        self.return_directly.insert(name.to_string());
        self
    }
}

/// The agent's run state: the conversation so far and the model-call count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReactState {
    /// Messages so far (input, model turns, tool answers).
    pub messages: Vec<Message>,
    /// Model calls so far.
    pub model_calls: usize,
}

/// A ReAct agent: model ⇄ tools until the model answers. Checkpointable (its values and
/// state are serde types), so it can run under a checkpoint store and be interrupted by
/// tools.
#[derive(Clone, Debug)]
pub struct ReactAgent {
    graph: Compiled<Vec<Message>, Message>,
}

async fn has_tool_calls(mut s: StreamReader<Message>, check: ToolCallCheck) -> Result<bool> {
    while let Some(chunk) = s.recv().await {
        let chunk = chunk?;
        if !chunk.tool_calls.is_empty() {
            return Ok(true);
        }
        if check == ToolCallCheck::FirstChunk && !chunk.content.is_empty() {
            return Ok(false);
        }
    }
    Ok(false)
}

impl ReactAgent {
    /// Build and compile the agent graph.
    pub fn new(config: ReactConfig) -> Result<Self> {
        Self::with_options(config, CompileOptions::default())
    }

    /// Build with extra compile options (a checkpoint store, interrupts …). The step limit
    /// is set from [`ReactConfig::max_model_calls`].
    pub fn with_options(config: ReactConfig, opts: CompileOptions) -> Result<Self> {
        let model = config
            .model
            .with_tools(config.tools.tool_infos().to_vec())?;
        let max_calls = config.max_model_calls;
        let mut g = Graph::<Vec<Message>, Message>::with_state(ReactState::default);
        let chat = g.add_node("chat", model);
        let tools = g.add_node("tools", config.tools.clone());
        let direct_set = config.return_directly.clone();
        let direct = g.add_node(
            "direct_return",
            Lambda::new()
                .with_invoke(move |answers: Vec<Message>, _ctx: Context| {
                    let set = direct_set.clone();
                    async move {
                        answers
                            .into_iter()
                            .find(|m| m.name.as_ref().is_some_and(|n| set.contains(n)))
                            .ok_or_else(|| Error::internal("return-directly answer missing"))
                    }
                })
                .with_kind(ComponentKind::Lambda),
        );
        let (rewriter, modifier) = (config.message_rewriter, config.message_modifier);
        g.set_pre_handler(chat, move |input: Vec<Message>, st: &mut ReactState| {
            st.model_calls += 1;
            if st.model_calls > max_calls {
                return Err(Error::new(
                    ErrorKind::ExceededMaxSteps,
                    format!("exceeds max steps: more than {max_calls} model calls"),
                ));
            }
            st.messages.extend(input);
            if let Some(r) = &rewriter {
                st.messages = r(std::mem::take(&mut st.messages));
            }
            Ok(match &modifier {
                Some(m) => m(st.messages.clone()),
                None => st.messages.clone(),
            })
        });
        g.set_pre_handler(tools, |call: Message, st: &mut ReactState| {
            // A tools node that interrupted re-runs on resume, and its pre-handler with it,
            // on the restored state that already holds the call.
            if st.messages.last() != Some(&call) {
                st.messages.push(call.clone());
            }
            Ok(call)
        });
        g.add_edge(START, chat);
        let check = config.tool_call_check;
        let (to_tools, to_end): (NodeId, NodeId) = (tools.id(), END.id());
        g.add_branch(
            chat,
            // Invoke mode reads the whole message in place; stream mode reads the live copy.
            Branch::new(move |m: &Message| {
                Ok(if m.tool_calls.is_empty() {
                    to_end
                } else {
                    to_tools
                })
            })
            .or_stream(move |s: StreamReader<Message>| async move {
                Ok(if has_tool_calls(s, check).await? {
                    to_tools
                } else {
                    to_end
                })
            }),
        )
        .to(tools)
        .to(END);
        let direct_set = config.return_directly;
        let (to_chat, to_direct) = (chat.id(), direct.id());
        g.add_branch(
            tools,
            Branch::new(move |answers: &Vec<Message>| {
                let direct = answers.iter().any(|m| {
                    m.role == Role::Tool && m.name.as_ref().is_some_and(|n| direct_set.contains(n))
                });
                Ok(if direct { to_direct } else { to_chat })
            }),
        )
        .to(chat)
        .to(direct);
        g.add_edge(direct, END);
        // Each round is two supersteps (model, tools); the last answer and a direct return
        // add two. The model-call count above is the limit users set.
        let opts = CompileOptions {
            name: Some(opts.name.unwrap_or(config.name)),
            max_steps: Some(2 * max_calls + 2),
            ..opts
        };
        Ok(Self {
            graph: g.compile(opts)?,
        })
    }

    /// Run to the final answer.
    pub async fn generate(&self, messages: Vec<Message>, ctx: &Context) -> Result<Message> {
        self.graph.invoke(messages, ctx).await
    }

    /// Run and stream the final answer (tool rounds run first).
    pub async fn stream(
        &self,
        messages: Vec<Message>,
        ctx: &Context,
    ) -> Result<StreamReader<Message>> {
        self.graph.stream(messages, ctx).await
    }

    /// Run and parse the final answer as `T` (see [`ReactConfig::with_structured_answer`]).
    pub async fn generate_structured<T: for<'de> Deserialize<'de>>(
        &self,
        messages: Vec<Message>,
        ctx: &Context,
    ) -> Result<T> {
        let m = self.generate(messages, ctx).await?;
        serde_json::from_str(&m.content).map_err(|e| {
            Error::invalid_input(format!(
                "the final answer is not the requested structure: {e}"
            ))
            .with_source(e)
        })
    }

    /// The compiled graph, to embed as a subgraph or inspect.
    pub fn graph(&self) -> &Compiled<Vec<Message>, Message> {
        &self.graph
    }
}

impl Runnable<Vec<Message>, Message> for ReactAgent {
    fn invoke<'a>(
        &'a self,
        input: Vec<Message>,
        ctx: &'a Context,
    ) -> futures_util::future::BoxFuture<'a, Result<Message>> {
        self.graph.invoke(input, ctx)
    }
    fn stream<'a>(
        &'a self,
        input: Vec<Message>,
        ctx: &'a Context,
    ) -> futures_util::future::BoxFuture<'a, Result<StreamReader<Message>>> {
        self.graph.stream(input, ctx)
    }
    fn collect<'a>(
        &'a self,
        input: StreamReader<Vec<Message>>,
        ctx: &'a Context,
    ) -> futures_util::future::BoxFuture<'a, Result<Message>> {
        self.graph.collect(input, ctx)
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<Vec<Message>>,
        ctx: &'a Context,
    ) -> futures_util::future::BoxFuture<'a, Result<StreamReader<Message>>> {
        self.graph.transform(input, ctx)
    }
}

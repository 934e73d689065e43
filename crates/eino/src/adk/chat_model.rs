//! [`ChatModelAgent`]: a model with tools in a ReAct loop, built as a compose graph (so
//! callbacks, call options and checkpoints work inside it), reporting each model turn and
//! tool result as an event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{AgentAction, EventKind};
use super::interrupt::{AddressSegment, AgentInterrupt, InterruptPoint};
use super::run::{AgentRun, Targets};
use super::{Agent, AgentMiddleware};
use crate::callbacks::ComponentKind;
use crate::component::{ChatModel, ToolOptions};
use crate::compose::{
    Branch, CallOption, CheckpointRun, CheckpointStore, CompileOptions, Compiled, Context, Graph,
    Lambda, MemoryCheckpointStore, NodeId, Runnable, ToolsInterruptState, ToolsNode, END, START,
};
use crate::error::{Error, ErrorKind, Result};
use crate::prompt::format_fstring;
use crate::schema::{Message, Role, ToolCall, ToolInfo};

/// The tool a model calls to hand the conversation to another agent.
pub const TRANSFER_TOOL: &str = "transfer_to_agent";
/// The tool a model calls to end the whole run.
pub const EXIT_TOOL: &str = "exit";

/// Configuration of a [`ChatModelAgent`].
#[derive(Clone)]
pub struct ChatModelAgentConfig {
    /// Unique name.
    pub name: String,
    /// What it is good at.
    pub description: String,
    /// System prompt; `{key}` is replaced by the session value `key`. Empty: none.
    pub instruction: String,
    /// A model that can call tools.
    pub model: Arc<dyn ChatModel>,
    /// Its tools (errors reach the model as answers, see [`ToolsNode`]).
    pub tools: ToolsNode,
    /// Tools whose result ends the run (the last such call in a turn wins).
    pub return_directly: HashSet<String>,
    /// Offer an `exit` tool that ends the whole run with its `final_result`.
    pub exit_tool: bool,
    /// Store the final answer's text in the session under this key.
    pub output_key: Option<String>,
    /// Most model calls in one run (default 20); one more is an
    /// [`ErrorKind::ExceededMaxSteps`] error.
    pub max_iterations: usize,
    /// Middlewares, in the order they apply (see [`AgentMiddleware`]).
    pub middlewares: Vec<Arc<dyn AgentMiddleware>>,
}

impl std::fmt::Debug for ChatModelAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModelAgentConfig")
            .field("name", &self.name)
            .field("tools", &self.tools)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

impl ChatModelAgentConfig {
    /// An agent over `model` with no tools and the defaults.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        model: Arc<dyn ChatModel>,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            instruction: String::new(),
            model,
            tools: ToolsNode::new([]),
            return_directly: HashSet::new(),
            exit_tool: false,
            output_key: None,
            max_iterations: 20,
            middlewares: Vec::new(),
        }
    }

    /// Add a middleware (after those added before).
    pub fn with_middleware(mut self, m: impl AgentMiddleware + 'static) -> Self {
        self.middlewares.push(Arc::new(m));
        self
    }

    /// Set the instruction (system prompt over session values).
    pub fn with_instruction(mut self, instruction: impl Into<String>) -> Self {
        self.instruction = instruction.into();
        self
    }

    /// Set the tools.
    pub fn with_tools(mut self, tools: ToolsNode) -> Self {
        self.tools = tools;
        self
    }

    /// End the run with this tool's result when it is called.
    pub fn with_return_directly(mut self, tool: impl Into<String>) -> Self {
        self.return_directly.insert(tool.into());
        self
    }

    /// Offer the `exit` tool.
    pub fn with_exit_tool(mut self) -> Self {
        self.exit_tool = true;
        self
    }

    /// Store the final answer in the session under `key`.
    pub fn with_output_key(mut self, key: impl Into<String>) -> Self {
        self.output_key = Some(key.into());
        self
    }

    /// Set the model-call limit.
    pub fn with_max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }
}

#[derive(Deserialize, JsonSchema)]
struct TransferArgs {
    /// The name of the agent to hand the conversation to.
    agent_name: String,
}

#[derive(Deserialize, JsonSchema)]
struct ExitArgs {
    /// The final answer to the user.
    final_result: String,
}

fn transfer_info(targets: &[(String, String)]) -> ToolInfo {
    let list = targets
        .iter()
        .map(|(n, d)| format!("- {n}: {d}"))
        .collect::<Vec<_>>()
        .join("\n");
    ToolInfo::of::<TransferArgs>(
        TRANSFER_TOOL,
        format!("Hand the conversation to another agent that is better suited. Agents:\n{list}"),
    )
}

/// The graph's state: the conversation so far and the model-call count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LoopState {
    messages: Vec<Message>,
    iterations: usize,
}

/// How a run of the loop ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Turn {
    message: Message,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transfer_to: Option<String>,
    #[serde(default)]
    exit: bool,
}
crate::graph_value!(Turn: serde);

/// What the agent saves when a tool interrupts: the loop's checkpoint and the interrupted
/// calls (their ids and tool names, to rebuild addresses on resume).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedLoop {
    checkpoint: Value,
    calls: Vec<(String, String)>,
}

/// A model with tools in a ReAct loop.
///
/// [`ChatModelAgent`]: a model with tools in a ReAct loop, built as a compose graph (so
/// callbacks, call options and checkpoints work inside it), reporting each model turn and
/// tool result as an event.
///
/// Behaviour follows Eino's `adk.NewChatModelAgent`: the instruction is a system prompt
/// formatted with the session values (`{key}`), at most `max_iterations` model calls
/// (default 20), a return-directly tool ends the run with its result (the **last** such
/// call wins), an optional `exit` tool ends the whole run, `output_key` stores the final
/// answer in the session, and when the agent has transfer targets a `transfer_to_agent`
/// tool is offered. Unlike Eino, a transfer to an unknown agent is told to the model as
/// the tool's answer (it can correct itself) rather than failing the run.
pub struct ChatModelAgent {
    config: Arc<ChatModelAgentConfig>,
    graph: Compiled<Vec<Message>, Turn>,
    /// Holds a run's loop checkpoint between the graph's interrupt and the agent's
    /// (the agent's interrupt state carries it out; Eino's "bridge store").
    bridge: Arc<MemoryCheckpointStore>,
}

impl std::fmt::Debug for ChatModelAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModelAgent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

static RUN_SEQ: AtomicU64 = AtomicU64::new(0);

/// Which tools end the loop, decided from a turn's tool answers.
#[derive(Clone)]
struct Enders {
    return_directly: Arc<HashSet<String>>,
}

/// Marks (in `extra`) a transfer or exit answer that ends the turn; a rejected transfer is
/// answered without it and the loop goes on. Providers do not send `extra`.
const ENDS_TURN: &str = "eino_adk_ends_turn";

impl Enders {
    fn is_ender(&self, m: &Message) -> bool {
        m.extra.contains_key(ENDS_TURN)
            || m.name
                .as_deref()
                .is_some_and(|n| self.return_directly.contains(n))
    }
}

/// The run handle a graph node runs for: [`ChatModelAgent::run`] puts it in the tools'
/// options (which every node sees), so one call option carries it.
fn agent_run(ctx: &Context) -> Result<&AgentRun> {
    ctx.options::<ToolOptions>()
        .last()
        .and_then(|o| o.extensions.get::<AgentRun>())
        .ok_or_else(|| Error::internal("the agent loop runs without its agent run"))
}

/// What the loop's model node needs: the configuration (tools and instruction merged with
/// the middlewares'), the model wrapped by the middlewares, and that model bound to every
/// tool (used as is when nothing changes the offer per turn).
struct ModelNode {
    config: Arc<ChatModelAgentConfig>,
    wrapped: Arc<dyn ChatModel>,
    bound: Arc<dyn ChatModel>,
    /// The model bound for the last transfer-target list seen (a team member's runs share
    /// one list), so each turn does not rebuild the tool definitions.
    with_transfer: std::sync::Mutex<Option<(Targets, Arc<dyn ChatModel>)>>,
}

impl ModelNode {
    /// The model for this turn: bound to the tools offered now.
    fn model_for(&self, run: &AgentRun) -> Result<Arc<dyn ChatModel>> {
        let cfg = &self.config;
        let targets = run.transfer_targets_shared();
        if cfg.middlewares.is_empty() {
            if targets.is_empty() {
                return Ok(self.bound.clone());
            }
            let cached = self.with_transfer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, m)) = cached.as_ref().filter(|(t, _)| Arc::ptr_eq(t, targets)) {
                return Ok(m.clone());
            }
        }
        let mut infos = cfg.tools.tool_infos().to_vec();
        infos.extend(exit_info(cfg));
        if !run.transfer_targets().is_empty() {
            infos.push(transfer_info(run.transfer_targets()));
        }
        for m in &cfg.middlewares {
            infos = m.offered_tools(infos, run);
        }
        let model = self.wrapped.with_tools(infos)?;
        if cfg.middlewares.is_empty() {
            *self.with_transfer.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((targets.clone(), model.clone()));
        }
        Ok(model)
    }

    async fn turn(&self, mut messages: Vec<Message>, ctx: &Context) -> Result<Message> {
        let run = agent_run(ctx)?;
        let cfg = &self.config;
        if !cfg.middlewares.is_empty() {
            for m in &cfg.middlewares {
                messages = m.before_model(messages, run).await?;
            }
            let kept = messages.clone();
            ctx.process_state(|s: &mut LoopState| s.messages = kept)?;
        }
        if !cfg.instruction.is_empty() {
            let text = format_fstring(&cfg.instruction, &run.session_values())?;
            messages.insert(0, Message::system(text));
        }
        let model = self.model_for(run)?;
        let options = ctx.chat_options();
        if !run.is_streaming() {
            let m = model.generate(&messages, &options).await?;
            run.emit_message(m.clone());
            return Ok(m);
        }
        let mut copies = model.stream(&messages, &options).await?.copy(2).into_iter();
        let (Some(shown), Some(kept)) = (copies.next(), copies.next()) else {
            return Err(Error::internal("stream copy count"));
        };
        run.emit(EventKind::MessageStream {
            role: Role::Assistant,
            tool_name: None,
            stream: shown,
        });
        let m = kept.concat().await?;
        run.record(m.clone());
        Ok(m)
    }
}

fn exit_info(config: &ChatModelAgentConfig) -> Option<ToolInfo> {
    config.exit_tool.then(|| {
        ToolInfo::of::<ExitArgs>(
            EXIT_TOOL,
            "End the task and give the user the final answer.",
        )
    })
}

/// Answer a call the agent handles itself (transfer, exit), and whether the answer ends
/// the turn; `None` for a call to a tool.
fn own_answer(call: &ToolCall, run: &AgentRun) -> Option<(String, bool)> {
    let args = &call.function.arguments;
    match call.function.name.as_str() {
        TRANSFER_TOOL => Some(match serde_json::from_str::<TransferArgs>(args) {
            Ok(a)
                if run
                    .transfer_targets()
                    .iter()
                    .any(|(n, _)| *n == a.agent_name) =>
            {
                (
                    format!("successfully transferred to agent [{}]", a.agent_name),
                    true,
                )
            }
            Ok(a) => (
                format!(
                    "there is no agent named '{}'; agents you can transfer to: {}",
                    a.agent_name,
                    run.transfer_targets()
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                false,
            ),
            Err(e) => (format!("invalid arguments for {TRANSFER_TOOL}: {e}"), false),
        }),
        EXIT_TOOL => Some(match serde_json::from_str::<ExitArgs>(args) {
            Ok(a) => (a.final_result, true),
            Err(e) => (format!("invalid arguments for {EXIT_TOOL}: {e}"), false),
        }),
        _ => None,
    }
}

/// What the tools node saves when the caller stopped the run before its tools ran.
#[derive(Serialize, Deserialize)]
struct StoppedBeforeTools {
    stopped: bool,
}

async fn tools_turn(tools: &ToolsNode, call: Message, ctx: &Context) -> Result<Vec<Message>> {
    let run = agent_run(ctx)?;
    // A safe point: the model's turn is done and recorded, no tool has run.
    if run.stop_requested() {
        return Err(run.stopped(StoppedBeforeTools { stopped: true }));
    }
    // Going on after such a stop, the tools run for the first time.
    let first_run;
    let ctx = if ctx.interrupt_state::<StoppedBeforeTools>().is_some() {
        first_run = ctx.without_resume();
        &first_run
    } else {
        ctx
    };
    let own = |c: &ToolCall| c.function.name == TRANSFER_TOOL || c.function.name == EXIT_TOOL;
    let answers = if call.tool_calls.iter().any(own) {
        let mut answers: Vec<Option<Message>> = Vec::with_capacity(call.tool_calls.len());
        let mut others = Message::assistant(call.content.clone(), Vec::new());
        for c in &call.tool_calls {
            match own_answer(c, run) {
                Some((text, ends)) => {
                    let mut m =
                        Message::tool(text, c.id.clone()).with_name(c.function.name.clone());
                    if ends {
                        m.extra.insert(ENDS_TURN.into(), Value::Bool(true));
                    }
                    answers.push(Some(m));
                }
                None => {
                    answers.push(None);
                    others.tool_calls.push(c.clone());
                }
            }
        }
        if !others.tool_calls.is_empty() {
            let mut results = tools.invoke(others, ctx).await?.into_iter();
            for slot in answers.iter_mut().filter(|a| a.is_none()) {
                *slot = results.next();
            }
        }
        answers.into_iter().flatten().collect()
    } else {
        // The common case: every call goes to the tools node as it is.
        tools.invoke(call, ctx).await?
    };
    for a in &answers {
        run.emit_message(a.clone());
    }
    Ok(answers)
}

/// The loop's end after a tool turn: the last call that ends it.
fn finish(answers: Vec<Message>, enders: &Enders, ctx: &Context) -> Result<Turn> {
    let last = answers
        .into_iter()
        .rev()
        .find(|m| enders.is_ender(m))
        .ok_or_else(|| Error::internal("the ending tool answer is missing"))?;
    let call_args = ctx.process_state(|s: &mut LoopState| {
        s.messages
            .iter()
            .rev()
            .flat_map(|m| &m.tool_calls)
            .find(|c| Some(&c.id) == last.tool_call_id.as_ref())
            .map(|c| c.function.arguments.clone())
    })?;
    let mut turn = Turn {
        message: last.clone(),
        ..Turn::default()
    };
    match last.name.as_deref() {
        Some(TRANSFER_TOOL) => {
            let to = call_args
                .and_then(|a| serde_json::from_str::<TransferArgs>(&a).ok())
                .map(|a| a.agent_name);
            turn.transfer_to = to;
        }
        Some(EXIT_TOOL) => turn.exit = true,
        _ => {}
    }
    Ok(turn)
}

impl ChatModelAgent {
    /// Build and compile the agent's loop.
    pub fn new(mut config: ChatModelAgentConfig) -> Result<Self> {
        if config.name.is_empty() {
            return Err(Error::invalid_input("an agent needs a name"));
        }
        let mut wrapped = config.model.clone();
        for m in config.middlewares.iter().rev() {
            wrapped = m.wrap_model(wrapped);
        }
        let mut instruction = vec![std::mem::take(&mut config.instruction)];
        for m in &config.middlewares {
            config.tools = m
                .tools()
                .into_iter()
                .fold(config.tools.clone(), |t, tool| t.with_tool(tool));
            instruction.extend(m.instruction());
        }
        instruction.retain(|s| !s.is_empty());
        config.instruction = instruction.join("\n\n");
        let mut infos = config.tools.tool_infos().to_vec();
        infos.extend(exit_info(&config));
        let bound = wrapped.with_tools(infos)?;
        let config = Arc::new(config);
        let node = Arc::new(ModelNode {
            config: config.clone(),
            wrapped,
            bound,
            with_transfer: std::sync::Mutex::new(None),
        });
        let max = config.max_iterations;
        let enders = Enders {
            return_directly: Arc::new(config.return_directly.clone()),
        };
        let mut g = Graph::<Vec<Message>, Turn>::with_state(LoopState::default);
        let chat = g.add_node(
            "chat",
            Lambda::new()
                .with_invoke(move |msgs: Vec<Message>, ctx: Context| {
                    let node = node.clone();
                    async move { node.turn(msgs, &ctx).await }
                })
                .with_kind(ComponentKind::ChatModel),
        );
        let tools_node = config.tools.clone();
        let tools = g.add_node(
            "tools",
            Lambda::new()
                .with_invoke(move |call: Message, ctx: Context| {
                    let t = tools_node.clone();
                    async move { tools_turn(&t, call, &ctx).await }
                })
                .with_kind(ComponentKind::ToolsNode),
        );
        let answer = g.add_node(
            "answer",
            crate::compose::lambda(|message: Message| async move {
                Ok(Turn {
                    message,
                    ..Turn::default()
                })
            }),
        );
        let e = enders.clone();
        let end = g.add_node(
            "finish",
            Lambda::new().with_invoke(move |answers: Vec<Message>, ctx: Context| {
                let e = e.clone();
                async move { finish(answers, &e, &ctx) }
            }),
        );
        g.set_pre_handler(chat, move |input: Vec<Message>, st: &mut LoopState| {
            st.iterations += 1;
            if st.iterations > max {
                return Err(Error::new(
                    ErrorKind::ExceededMaxSteps,
                    format!("exceeds max iterations: more than {max} model calls"),
                ));
            }
            st.messages.extend(input);
            Ok(st.messages.clone())
        });
        g.set_pre_handler(tools, |call: Message, st: &mut LoopState| {
            // A re-run after an interrupt passes here again with the restored state, which
            // already holds the call.
            if st.messages.last() != Some(&call) {
                st.messages.push(call.clone());
            }
            Ok(call)
        });
        // Only the tools node interrupts (a tool asks for input); the others need no saved
        // input in the checkpointed run.
        g.set_never_interrupts(chat);
        g.set_never_interrupts(answer);
        g.set_never_interrupts(end);
        g.add_edge(START, chat);
        let (to_tools, to_answer): (NodeId, NodeId) = (tools.id(), answer.id());
        g.add_branch(
            chat,
            Branch::new(move |m: &Message| {
                Ok(if m.tool_calls.is_empty() {
                    to_answer
                } else {
                    to_tools
                })
            }),
        )
        .to(tools)
        .to(answer);
        let (to_chat, to_end) = (chat.id(), end.id());
        g.add_branch(
            tools,
            Branch::new(move |answers: &Vec<Message>| {
                let ends = answers.iter().any(|m| enders.is_ender(m));
                Ok(if ends { to_end } else { to_chat })
            }),
        )
        .to(chat)
        .to(end);
        g.add_edge(answer, END);
        g.add_edge(end, END);
        let bridge = Arc::new(MemoryCheckpointStore::new());
        let opts = CompileOptions::default()
            .with_name(config.name.clone())
            .with_checkpoint_store(bridge.clone() as Arc<dyn CheckpointStore>);
        let opts = CompileOptions {
            max_steps: Some(2 * max + 4),
            ..opts
        };
        Ok(Self {
            graph: g.compile(opts)?,
            config,
            bridge,
        })
    }

    /// The loop's nodes and edges (to render or inspect).
    pub fn topology(&self) -> crate::compose::Topology {
        self.graph.topology()
    }

    /// The interrupt of a loop run: its points (each interrupted tool call, or the agent
    /// itself) and what to save.
    async fn interrupted(&self, e: Error, id: &str, run: &AgentRun) -> Error {
        let Some(info) = e.interrupt_info().cloned() else {
            return e;
        };
        let checkpoint = match self.bridge.get(id).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Error::internal("the agent loop's checkpoint is missing"),
            Err(e) => return e,
        };
        let _ = self.bridge.delete(id).await;
        let checkpoint: Value = match serde_json::from_slice(&checkpoint) {
            Ok(v) => v,
            Err(e) => return Error::from(e),
        };
        let state: Option<LoopState> = info
            .state
            .clone()
            .and_then(|s| serde_json::from_value(s).ok());
        let tool_name = |call_id: &str| {
            state
                .iter()
                .flat_map(|s| s.messages.iter().rev())
                .flat_map(|m| &m.tool_calls)
                .find(|c| c.id == call_id)
                .map(|c| c.function.name.clone())
                .unwrap_or_default()
        };
        let mut points = vec![InterruptPoint::new(
            run.address().to_vec(),
            Value::Null,
            false,
        )];
        let mut calls = Vec::new();
        // Stopped by the caller before the tools ran: that stop is the point.
        if let Some(stop) = info
            .rerun_info
            .get("tools")
            .and_then(AgentInterrupt::from_tool_info)
        {
            points = stop.points;
        }
        let tools: Option<ToolsInterruptState> = info
            .rerun_info
            .get("tools")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        for call_id in tools.iter().flat_map(|t| &t.rerun) {
            let name = tool_name(call_id);
            let mut address = run.address().to_vec();
            address.push(AddressSegment::tool(&name, call_id));
            let reported = tools
                .as_ref()
                .and_then(|t| t.rerun_info.get(call_id))
                .cloned()
                .unwrap_or(Value::Null);
            match AgentInterrupt::from_tool_info(&reported) {
                // An agent tool: its agent's points are below the call.
                Some(inner) => {
                    points.push(InterruptPoint::new(address, Value::Null, false));
                    points.extend(inner.points);
                }
                None => points.push(InterruptPoint::new(address, reported, true)),
            }
            calls.push((call_id.clone(), name));
        }
        if calls.is_empty() && points.len() == 1 && !points[0].is_root_cause {
            // Stopped elsewhere (an interrupt-before/after, a lambda): the agent is the cause.
            points[0].is_root_cause = true;
            points[0].info = serde_json::to_value(&info).unwrap_or(Value::Null);
        }
        let saved = SavedLoop { checkpoint, calls };
        match serde_json::to_value(saved) {
            Ok(state) => AgentInterrupt { points, state }.into_error(),
            Err(e) => Error::from(e),
        }
    }
}

impl Agent for ChatModelAgent {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn description(&self) -> &str {
        &self.config.description
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        run: &'a AgentRun,
    ) -> BoxFuture<'a, Result<Option<AgentAction>>> {
        Box::pin(async move {
            // The bridge store is this agent's own: a sequence number is a unique id.
            let id = RUN_SEQ.fetch_add(1, Ordering::Relaxed).to_string();
            let mut checkpoint = CheckpointRun::new(id.clone());
            match run.resume_state::<SavedLoop>() {
                Some(saved) => {
                    self.bridge
                        .put(&id, serde_json::to_vec(&saved.checkpoint)?)
                        .await?;
                    // Each interrupted call gets the data targeted at its point.
                    let mut data = serde_json::Map::new();
                    for (call_id, name) in &saved.calls {
                        let mut address = run.address().to_vec();
                        address.push(AddressSegment::tool(name, call_id));
                        let pid = super::interrupt::point_id(&address);
                        if let Some(v) = run.resume_data(&pid) {
                            data.insert(call_id.clone(), v.clone());
                        }
                    }
                    checkpoint = checkpoint.resume_with(["tools"], Value::Object(data))?;
                }
                None => checkpoint = checkpoint.force_new_run(),
            }
            // Tools see the run (agent tools continue it), merged into the caller's options.
            let mut tool_options = run
                .context()
                .options::<ToolOptions>()
                .last()
                .cloned()
                .unwrap_or_default();
            tool_options.extensions.insert(run.clone());
            let ctx = run
                .context()
                .clone()
                .with_option(CallOption::tools(tool_options))
                .with_checkpoint(checkpoint);
            let turn = match self.graph.invoke(messages, &ctx).await {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    return Err(self.interrupted(e, &id, run).await);
                }
                Err(e) => {
                    let _ = self.bridge.delete(&id).await;
                    return Err(e);
                }
            };
            if let Some(key) = &self.config.output_key {
                run.session_set(key.clone(), &turn.message.content)?;
            }
            Ok(if let Some(to) = turn.transfer_to {
                run.act(AgentAction::TransferTo(to))
            } else if turn.exit {
                run.act(AgentAction::Exit)
            } else {
                None
            })
        })
    }
}

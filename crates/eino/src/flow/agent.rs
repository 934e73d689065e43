//! Multi-agent building blocks: an [`Agent`] trait, a host that hands off to specialists,
//! agents as tools, and sequential / parallel / loop combinators sharing a [`Session`].
//!
//! For new code use [`crate::adk`], the agent layer with events, a runner, checkpoints and
//! interrupts, transfers and the prebuilt agents; this module stays for its [`HostAgent`]
//! (Go Eino's `flow/agent/multiagent/host`), which `adk` has no equivalent of yet.

use std::sync::{Arc, Mutex};

use futures_util::future::{join_all, BoxFuture};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::component::{ChatModel, Tool, ToolOptions};
use crate::compose::{Context, Runnable};
use crate::error::{Error, Result};
use crate::schema::{Map, Message, Role, StreamReader, ToolInfo};

#[derive(Default)]
struct SessionInner {
    values: Map,
    exit: bool,
}

/// Values shared by the agents of one run (typed reads and writes over JSON), plus the
/// "exit the loop" signal for [`LoopAgent`]. Cheap to clone; clones share the values.
#[derive(Clone, Default)]
pub struct Session {
    inner: Arc<Mutex<SessionInner>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Session")
            .field("values", &g.values)
            .field("exit", &g.exit)
            .finish()
    }
}

impl Session {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionInner> {
        // Writers only insert whole values, so a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key`, if present and of type `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let v = self.lock().values.get(key).cloned()?;
        serde_json::from_value(v).ok()
    }

    /// Set `key`.
    pub fn set(&self, key: impl Into<String>, value: impl Serialize) -> Result<()> {
        let v = serde_json::to_value(value)?;
        self.lock().values.insert(key.into(), v);
        Ok(())
    }

    /// Every value, as JSON.
    pub fn values(&self) -> Map {
        self.lock().values.clone()
    }

    /// Ask the enclosing [`LoopAgent`] to stop after the current agent.
    pub fn request_exit(&self) {
        self.lock().exit = true;
    }

    fn take_exit(&self) -> bool {
        std::mem::take(&mut self.lock().exit)
    }
}

/// An agent: answers a conversation, may read and write the session.
pub trait Agent: Send + Sync {
    /// Unique name (also its tool name when handed off to).
    fn name(&self) -> &str;
    /// What it is good at (the host model reads this).
    fn description(&self) -> &str;
    /// Answer.
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>>;
    /// Answer as a stream (default: the whole answer as one chunk).
    fn stream<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.run(messages, session, ctx).await?)) })
    }
}

/// Any `Runnable<Vec<Message>, Message>` (a ReAct agent, a chain, a compiled graph …) as a
/// named agent.
pub struct RunnableAgent<R> {
    name: String,
    description: String,
    runnable: R,
}

impl<R> std::fmt::Debug for RunnableAgent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnableAgent")
            .field("name", &self.name)
            .finish()
    }
}

impl<R: Runnable<Vec<Message>, Message>> RunnableAgent<R> {
    /// Name and describe a runnable.
    pub fn new(name: impl Into<String>, description: impl Into<String>, runnable: R) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            runnable,
        }
    }
}

impl<R: Runnable<Vec<Message>, Message>> Agent for RunnableAgent<R> {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        _: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        self.runnable.invoke(messages, ctx)
    }
    fn stream<'a>(
        &'a self,
        messages: Vec<Message>,
        _: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        self.runnable.stream(messages, ctx)
    }
}

/// The arguments of a hand-off or agent-tool call.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Request {
    /// What the agent should do, in full sentences.
    request: String,
}

fn agent_tool_info(agent: &dyn Agent) -> ToolInfo {
    ToolInfo::of::<Request>(agent.name(), agent.description())
}

/// An agent used as a tool by another agent: the tool's argument `request` becomes the
/// agent's user message; its answer is the tool's result.
pub struct AgentTool {
    agent: Arc<dyn Agent>,
    session: Session,
}

impl std::fmt::Debug for AgentTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTool")
            .field("agent", &self.agent.name())
            .finish()
    }
}

impl AgentTool {
    /// Wrap `agent`; it runs with `session`.
    pub fn new(agent: Arc<dyn Agent>, session: Session) -> Self {
        Self { agent, session }
    }
}

impl Tool for AgentTool {
    fn info(&self) -> ToolInfo {
        agent_tool_info(&*self.agent)
    }
    fn call<'a>(&'a self, arguments: &'a str, _: &'a ToolOptions) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let req: Request = serde_json::from_str(arguments).map_err(|e| {
                Error::invalid_input(format!(
                    "invalid arguments for agent '{}': {e}",
                    self.agent.name()
                ))
            })?;
            let answer = self
                .agent
                .run(
                    vec![Message::user(req.request)],
                    &self.session,
                    &Context::new(),
                )
                .await?;
            Ok(answer.content)
        })
    }
}

type OnHandoff = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A host model that answers itself or hands the conversation to one or more specialists
/// (offered to it as tools). Several hand-offs run concurrently; their answers are joined,
/// or summarised by an optional summariser model.
pub struct HostAgent {
    name: String,
    host: Arc<dyn ChatModel>,
    specialists: Vec<Arc<dyn Agent>>,
    summarizer: Option<Arc<dyn ChatModel>>,
    on_handoff: Option<OnHandoff>,
}

impl std::fmt::Debug for HostAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.specialists.iter().map(|a| a.name()).collect();
        f.debug_struct("HostAgent")
            .field("name", &self.name)
            .field("specialists", &names)
            .finish()
    }
}

impl HostAgent {
    /// A host over specialists; names must be unique.
    pub fn new(host: Arc<dyn ChatModel>, specialists: Vec<Arc<dyn Agent>>) -> Result<Self> {
        let infos: Vec<ToolInfo> = specialists.iter().map(|a| agent_tool_info(&**a)).collect();
        for (i, a) in infos.iter().enumerate() {
            if infos[..i].iter().any(|b| b.name == a.name) {
                return Err(Error::invalid_input(format!(
                    "two specialists are named '{}'",
                    a.name
                )));
            }
        }
        Ok(Self {
            name: "host".into(),
            host: host.with_tools(infos)?,
            specialists,
            summarizer: None,
            on_handoff: None,
        })
    }

    /// Summarise several specialists' answers with this model.
    pub fn with_summarizer(mut self, model: Arc<dyn ChatModel>) -> Self {
        self.summarizer = Some(model);
        self
    }

    /// Called as `f(host_name, specialist_name)` on every hand-off.
    pub fn on_handoff(mut self, f: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        self.on_handoff = Some(Arc::new(f));
        self
    }

    /// Set the host's name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The host's decision: its own answer, or the specialists to hand off to.
    async fn decide(
        &self,
        messages: &[Message],
        ctx: &Context,
    ) -> Result<std::result::Result<Message, Vec<&Arc<dyn Agent>>>> {
        let decision = self.host.generate(messages, &ctx.chat_options()).await?;
        if decision.tool_calls.is_empty() {
            return Ok(Ok(decision));
        }
        let mut chosen = Vec::new();
        for call in &decision.tool_calls {
            let agent = self
                .specialists
                .iter()
                .find(|a| a.name() == call.function.name)
                .ok_or_else(|| {
                    Error::invalid_input(format!(
                        "host chose unknown specialist '{}'",
                        call.function.name
                    ))
                })?;
            if !chosen
                .iter()
                .any(|a: &&Arc<dyn Agent>| a.name() == agent.name())
            {
                if let Some(f) = &self.on_handoff {
                    f(&self.name, agent.name());
                }
                chosen.push(agent);
            }
        }
        Ok(Err(chosen))
    }

    async fn join(
        &self,
        messages: Vec<Message>,
        answers: Vec<(String, Message)>,
        ctx: &Context,
    ) -> Result<Message> {
        match &self.summarizer {
            None => {
                let text = answers
                    .iter()
                    .map(|(n, m)| format!("{n}: {}", m.content))
                    .collect::<Vec<_>>()
                    .join("\n\n");
                Ok(Message::assistant(text, vec![]))
            }
            Some(model) => {
                let mut msgs = messages;
                for (n, m) in answers {
                    msgs.push(Message::assistant(m.content, vec![]).with_name(n));
                }
                msgs.push(Message::user(
                    "Combine the specialists' answers above into one answer to the user.",
                ));
                model.generate(&msgs, &ctx.chat_options()).await
            }
        }
    }
}

impl Agent for HostAgent {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        "routes a conversation to specialist agents"
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let chosen = match self.decide(&messages, ctx).await? {
                Ok(own) => return Ok(own),
                Err(chosen) => chosen,
            };
            if let [only] = chosen[..] {
                return only.run(messages, session, ctx).await;
            }
            let answers = join_all(chosen.iter().map(|a| a.run(messages.clone(), session, ctx)))
                .await
                .into_iter()
                .zip(&chosen)
                .map(|(r, a)| r.map(|m| (a.name().to_string(), m)))
                .collect::<Result<Vec<_>>>()?;
            self.join(messages, answers, ctx).await
        })
    }
    fn stream<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move {
            match self.decide(&messages, ctx).await? {
                Ok(own) => Ok(StreamReader::once(own)),
                Err(chosen) => match chosen[..] {
                    [only] => only.stream(messages, session, ctx).await,
                    _ => Ok(StreamReader::once(self.run(messages, session, ctx).await?)),
                },
            }
        })
    }
}

/// The named, non-empty list of agents a combinator runs.
struct Group {
    name: String,
    agents: Vec<Arc<dyn Agent>>,
}

impl Group {
    fn new(kind: &str, name: String, agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
        if agents.is_empty() {
            return Err(Error::invalid_input(format!(
                "a {kind} agent needs at least one agent"
            )));
        }
        Ok(Self { name, agents })
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.agents.iter().map(|a| a.name()).collect();
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("agents", &names)
            .finish()
    }
}

/// Runs agents one after another; each sees the conversation plus the earlier agents'
/// answers (as assistant messages named after them). Answers with the last one.
#[derive(Debug)]
pub struct SequentialAgent(Group);

impl SequentialAgent {
    /// A pipeline of agents (at least one).
    pub fn new(name: impl Into<String>, agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
        Group::new("sequential", name.into(), agents).map(Self)
    }
}

async fn run_in_turn(
    agents: &[Arc<dyn Agent>],
    mut messages: Vec<Message>,
    session: &Session,
    ctx: &Context,
) -> Result<(Message, Vec<Message>, bool)> {
    let mut last = None;
    for a in agents {
        let answer = a.run(messages.clone(), session, ctx).await?;
        let mut named = answer.clone();
        named.role = Role::Assistant;
        named.name = Some(a.name().to_string());
        messages.push(named);
        last = Some(answer);
        if session.take_exit() {
            return Ok((last.unwrap_or_default(), messages, true));
        }
    }
    Ok((last.unwrap_or_default(), messages, false))
}

impl Agent for SequentialAgent {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn description(&self) -> &str {
        "runs agents in order"
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let (answer, _, exit) = run_in_turn(&self.0.agents, messages, session, ctx).await?;
            if exit {
                // Not in a loop: the exit request is for an enclosing loop; keep it.
                session.request_exit();
            }
            Ok(answer)
        })
    }
}

/// Runs agents concurrently on the same conversation. Each answer is saved in the session
/// under the agent's name; the reply lists them as `name: answer`.
#[derive(Debug)]
pub struct ParallelAgent(Group);

impl ParallelAgent {
    /// Agents to run side by side (at least one).
    pub fn new(name: impl Into<String>, agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
        Group::new("parallel", name.into(), agents).map(Self)
    }
}

impl Agent for ParallelAgent {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn description(&self) -> &str {
        "runs agents side by side"
    }
    fn run<'a>(
        &'a self,
        messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let answers = join_all(
                self.0
                    .agents
                    .iter()
                    .map(|a| a.run(messages.clone(), session, ctx)),
            )
            .await;
            let mut parts = Vec::with_capacity(answers.len());
            for (a, r) in self.0.agents.iter().zip(answers) {
                let m = r?;
                session.set(a.name(), &m.content)?;
                parts.push(format!("{}: {}", a.name(), m.content));
            }
            Ok(Message::assistant(parts.join("\n\n"), vec![]).with_name(self.0.name.clone()))
        })
    }
}

/// Runs its agents in turn, again and again, until one calls
/// [`Session::request_exit`] or `max_iterations` rounds ran. Answers with the last answer.
#[derive(Debug)]
pub struct LoopAgent {
    group: Group,
    max_iterations: usize,
}

impl LoopAgent {
    /// Loop over `agents` at most `max_iterations` times (both at least one).
    pub fn new(
        name: impl Into<String>,
        agents: Vec<Arc<dyn Agent>>,
        max_iterations: usize,
    ) -> Result<Self> {
        if max_iterations == 0 {
            return Err(Error::invalid_input(
                "a loop agent needs at least one iteration",
            ));
        }
        Ok(Self {
            group: Group::new("loop", name.into(), agents)?,
            max_iterations,
        })
    }
}

impl Agent for LoopAgent {
    fn name(&self) -> &str {
        &self.group.name
    }
    fn description(&self) -> &str {
        "repeats agents until one is satisfied"
    }
    fn run<'a>(
        &'a self,
        mut messages: Vec<Message>,
        session: &'a Session,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let mut last = Message::default();
            for _ in 0..self.max_iterations {
                let (answer, history, exit) =
                    run_in_turn(&self.group.agents, messages, session, ctx).await?;
                last = answer;
                messages = history;
                if exit {
                    break;
                }
            }
            Ok(last)
        })
    }
}

//! ToolsNode: runs the tool calls of an assistant message and answers each with a tool
//! message, in call order.
//!
//! Differences from Go Eino, on purpose (inventory §5 item 2): by default a failing tool, an
//! unknown tool or arguments that are not JSON become a tool message the model can read and
//! react to, instead of aborting the run; [`ToolsNode::fail_on_error`] restores Eino's
//! behaviour. Interrupts always propagate.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::{join_all, BoxFuture};
use serde::{Deserialize, Serialize};

use super::node::{IntoNode, NodeDef};
use super::runnable::Runnable;
use super::value::concat_typed;
use super::Context;
use crate::callbacks::{ActiveCall, ComponentKind, RunInfo};
use crate::component::{Tool, ToolOptions, ToolResume};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::{Message, Role, StreamReader, ToolCall, ToolInfo};

/// One tool call as middlewares and handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInput {
    /// Tool name as the model wrote it.
    pub name: String,
    /// JSON arguments (after the arguments handler ran).
    pub arguments: String,
    /// The tool call id the answer must carry.
    pub call_id: String,
}

/// The rest of the middleware chain for an invoke call; call [`InvokeNext::run`] to go on.
pub struct InvokeNext<'a> {
    rest: &'a [Arc<dyn ToolMiddleware>],
    tool: &'a dyn Tool,
    options: &'a ToolOptions,
}

impl<'a> InvokeNext<'a> {
    /// Run the remaining middlewares and then the tool.
    pub fn run(self, input: ToolInput) -> BoxFuture<'a, Result<String>> {
        match self.rest.split_first() {
            Some((m, rest)) => m.invoke(input, InvokeNext { rest, ..self }),
            None => Box::pin(async move { self.tool.call(&input.arguments, self.options).await }),
        }
    }
}

/// The rest of the middleware chain for a streaming call.
pub struct StreamNext<'a> {
    rest: &'a [Arc<dyn ToolMiddleware>],
    tool: &'a dyn Tool,
    options: &'a ToolOptions,
}

impl<'a> StreamNext<'a> {
    /// Run the remaining middlewares and then the tool.
    pub fn run(self, input: ToolInput) -> BoxFuture<'a, Result<StreamReader<String>>> {
        match self.rest.split_first() {
            Some((m, rest)) => m.stream(input, StreamNext { rest, ..self }),
            None => Box::pin(async move { self.tool.stream(&input.arguments, self.options).await }),
        }
    }
}

/// Wraps every tool call of a [`ToolsNode`] (logging, retries, argument repair, error
/// rewriting …). Both methods default to passing the call on unchanged.
pub trait ToolMiddleware: Send + Sync {
    /// Wrap an invoke call.
    fn invoke<'a>(
        &'a self,
        input: ToolInput,
        next: InvokeNext<'a>,
    ) -> BoxFuture<'a, Result<String>> {
        next.run(input)
    }

    /// Wrap a streaming call.
    fn stream<'a>(
        &'a self,
        input: ToolInput,
        next: StreamNext<'a>,
    ) -> BoxFuture<'a, Result<StreamReader<String>>> {
        next.run(input)
    }
}

type UnknownToolHandler =
    Arc<dyn Fn(ToolInput) -> BoxFuture<'static, Result<String>> + Send + Sync>;
type ArgumentsHandler = Arc<dyn Fn(&str, String) -> Result<String> + Send + Sync>;

/// Runs an assistant message's tool calls; a graph node from `Message` to `Vec<Message>`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use eino::component::{tool_fn, Tool};
/// use eino::compose::{Context, Runnable, ToolsNode};
/// use eino::schema::{Message, ToolCall};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Args { city: String }
/// let weather: Arc<dyn Tool> = Arc::new(tool_fn("weather", "Weather", |a: Args| async move {
///     Ok(format!("sunny in {}", a.city))
/// }));
/// let node = ToolsNode::new([weather]);
/// let call = Message::assistant("", vec![
///     ToolCall::function("c1", "weather", r#"{"city":"Oslo"}"#),
///     ToolCall::function("c2", "weather", "not json"),
/// ]);
/// let out = node.invoke(call, &Context::new()).await.unwrap();
/// assert_eq!(out[0].content, "sunny in Oslo");
/// // Bad arguments go back to the model as a readable tool message.
/// assert!(out[1].content.contains("not valid JSON"));
/// # });
/// ```
#[derive(Clone)]
pub struct ToolsNode {
    tools: Arc<HashMap<String, Arc<dyn Tool>>>,
    infos: Arc<Vec<ToolInfo>>,
    sequential: bool,
    fail_on_error: bool,
    unknown: Option<UnknownToolHandler>,
    arguments: Option<ArgumentsHandler>,
    middlewares: Arc<Vec<Arc<dyn ToolMiddleware>>>,
    raw_arguments: bool,
}

impl std::fmt::Debug for ToolsNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolsNode")
            .field(
                "tools",
                &self.infos.iter().map(|i| &i.name).collect::<Vec<_>>(),
            )
            .field("sequential", &self.sequential)
            .field("fail_on_error", &self.fail_on_error)
            .finish()
    }
}

/// What a [`ToolsNode`] saves when some of its calls interrupt: the finished answers, so a
/// resumed run re-runs only the interrupted calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ToolsInterruptState {
    /// Answers of the calls that finished, by call id.
    pub executed: HashMap<String, String>,
    /// Ids of the calls that interrupted, in call order.
    pub rerun: Vec<String>,
    /// Each interrupted call's interrupt info, by call id.
    pub rerun_info: HashMap<String, serde_json::Value>,
}

impl ToolsNode {
    /// A node over these tools (a later tool with the same name replaces an earlier one).
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        let mut map = HashMap::new();
        let mut infos: Vec<ToolInfo> = Vec::new();
        for t in tools {
            let info = t.info();
            infos.retain(|i| i.name != info.name);
            map.insert(info.name.clone(), t);
            infos.push(info);
        }
        Self {
            tools: Arc::new(map),
            infos: Arc::new(infos),
            sequential: false,
            fail_on_error: false,
            unknown: None,
            arguments: None,
            middlewares: Arc::new(Vec::new()),
            raw_arguments: false,
        }
    }

    /// Add a tool (replacing one of the same name).
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        let info = tool.info();
        let infos = Arc::make_mut(&mut self.infos);
        infos.retain(|i| i.name != info.name);
        Arc::make_mut(&mut self.tools).insert(info.name.clone(), tool);
        infos.push(info);
        self
    }

    /// The tools' definitions, to hand to a model's `with_tools`.
    pub fn tool_infos(&self) -> &[ToolInfo] {
        &self.infos
    }

    /// Run calls one after another in call order instead of concurrently.
    pub fn sequential(mut self) -> Self {
        self.sequential = true;
        self
    }

    /// Fail the whole node on the first (in call order) tool error, like Go Eino, instead of
    /// answering the model with the error.
    pub fn fail_on_error(mut self) -> Self {
        self.fail_on_error = true;
        self
    }

    /// Answer calls to tools that do not exist (otherwise the model is told the tool is
    /// unknown and which tools exist).
    pub fn with_unknown_tool_handler<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(ToolInput) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String>> + Send + 'static,
    {
        self.unknown = Some(Arc::new(move |i| Box::pin(f(i))));
        self
    }

    /// Rewrite arguments before the tool sees them: `f(tool_name, arguments)`.
    pub fn with_arguments_handler(
        mut self,
        f: impl Fn(&str, String) -> Result<String> + Send + Sync + 'static,
    ) -> Self {
        self.arguments = Some(Arc::new(f));
        self
    }

    /// Hand tools their argument strings exactly as the model wrote them, like Go Eino:
    /// no JSON check (and an empty string stays empty). For tools that take free text or
    /// repair malformed JSON themselves.
    pub fn raw_arguments(mut self) -> Self {
        self.raw_arguments = true;
        self
    }

    /// Add a middleware; the first added is the outermost.
    pub fn with_middleware(mut self, m: impl ToolMiddleware + 'static) -> Self {
        Arc::make_mut(&mut self.middlewares).push(Arc::new(m));
        self
    }

    fn calls<'m>(&self, msg: &'m Message) -> Result<&'m [ToolCall]> {
        if msg.role != Role::Assistant {
            return Err(Error::invalid_input(format!(
                "expected message role is Assistant, got {}",
                msg.role.as_str()
            )));
        }
        if msg.tool_calls.is_empty() {
            return Err(Error::invalid_input("no tool call found in input message"));
        }
        Ok(&msg.tool_calls)
    }

    /// Answers for the calls that already ran before an interrupt (on resume).
    fn executed_before(ctx: &Context) -> HashMap<String, String> {
        ctx.interrupt_state::<ToolsInterruptState>()
            .map(|s| s.executed)
            .unwrap_or_default()
    }

    fn prepare(&self, call: &ToolCall) -> Result<ToolInput> {
        let name = call.function.name.clone();
        let mut arguments = call.function.arguments.clone();
        if let Some(h) = &self.arguments {
            arguments = h(&name, arguments)?;
        }
        Ok(ToolInput {
            name,
            arguments,
            call_id: call.id.clone(),
        })
    }

    /// Check arguments are JSON, so the model hears exactly what is wrong.
    fn check_json(input: &mut ToolInput) -> Result<()> {
        if input.arguments.trim().is_empty() {
            input.arguments = "{}".into();
            return Ok(());
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&input.arguments)
            .map(|_| ())
            .map_err(|e| {
                Error::invalid_input(format!(
                    "the arguments of tool '{}' are not valid JSON ({e}); call it again with a \
                     JSON object that matches its parameters",
                    input.name
                ))
            })
    }

    fn unknown_tool_error(&self, name: &str) -> Error {
        let known: Vec<&str> = self.infos.iter().map(|i| i.name.as_str()).collect();
        Error::invalid_input(format!(
            "tool {name} not found in toolsNode indexes; available tools: [{}]",
            known.join(", ")
        ))
    }

    /// Resolve a call: its prepared input and tool, or the unknown-tool answer.
    async fn resolve<'s>(&'s self, call: &ToolCall) -> Result<Resolved<'s>> {
        let mut input = self.prepare(call)?;
        let Some(tool) = self.tools.get(&input.name) else {
            return match &self.unknown {
                Some(h) => Ok(Resolved::Answered(h(input).await?)),
                None => Err(self.unknown_tool_error(&input.name)),
            };
        };
        if !self.raw_arguments {
            Self::check_json(&mut input)?;
        }
        Ok(Resolved::Tool(input, &**tool))
    }

    async fn invoke_one(&self, call: &ToolCall, ctx: &Context) -> Result<String> {
        let (input, tool) = match self.resolve(call).await? {
            Resolved::Answered(text) => return Ok(text),
            Resolved::Tool(input, tool) => (input, tool),
        };
        let options = tool_options(ctx, &call.id);
        let next = InvokeNext {
            rest: &self.middlewares,
            tool,
            options: &options,
        };
        let Some(call) = start_tool_call(ctx, tool, &input) else {
            return next.run(input).await;
        };
        let r = next.run(input).await;
        match &r {
            Ok(out) => call.end(out),
            Err(e) => call.error(e),
        }
        r
    }

    async fn stream_one(&self, call: &ToolCall, ctx: &Context) -> Result<StreamReader<String>> {
        let (input, tool) = match self.resolve(call).await? {
            Resolved::Answered(text) => return Ok(StreamReader::once(text)),
            Resolved::Tool(input, tool) => (input, tool),
        };
        let options = tool_options(ctx, &call.id);
        let next = StreamNext {
            rest: &self.middlewares,
            tool,
            options: &options,
        };
        let Some(call) = start_tool_call(ctx, tool, &input) else {
            return next.run(input).await;
        };
        match next.run(input).await {
            Ok(s) => Ok(call.end_stream(s)),
            Err(e) => {
                call.error(&e);
                Err(e)
            }
        }
    }

    /// Run every call (concurrently unless sequential) with `f`, in call order.
    async fn run_all<'a, T, F>(&'a self, calls: &'a [ToolCall], f: F) -> Vec<Result<T>>
    where
        F: Fn(&'a ToolCall) -> BoxFuture<'a, Result<T>>,
    {
        if let [only] = calls {
            return vec![f(only).await];
        }
        if self.sequential {
            let mut out = Vec::with_capacity(calls.len());
            for c in calls {
                out.push(f(c).await);
            }
            out
        } else {
            join_all(calls.iter().map(f)).await
        }
    }

    /// True if any call interrupted: then the node interrupts as a whole.
    fn any_interrupted<T>(results: &[Result<T>]) -> bool {
        results.iter().any(|r| {
            r.as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::Interrupted)
        })
    }

    /// The node's interrupt: which calls wait (with their info) and the answers of the
    /// calls that finished (now or before a previous interrupt), so only the waiting calls
    /// re-run on resume.
    fn interrupt(
        calls: &[ToolCall],
        results: Vec<Result<String>>,
        executed: &HashMap<String, String>,
    ) -> Error {
        let mut state = ToolsInterruptState::default();
        for (call, r) in calls.iter().zip(results) {
            match r {
                Ok(text) => {
                    state.executed.insert(call.id.clone(), text);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    state.rerun.push(call.id.clone());
                    if let Some(info) = e.interrupt_payload() {
                        state.rerun_info.insert(call.id.clone(), info.clone());
                    }
                }
                // Another call's failure: it re-runs on resume like the interrupted ones.
                Err(_) => {}
            }
        }
        for (id, text) in executed {
            state
                .executed
                .entry(id.clone())
                .or_insert_with(|| text.clone());
        }
        // The caller sees what ran and what waits; the re-run node reads the same back.
        match serde_json::to_value(&state) {
            Ok(info) => Error::interrupt_with_state(info.clone(), info),
            Err(e) => Error::from(e),
        }
    }

    /// Turn per-call results (none interrupted) into answers: errors become readable answers
    /// unless `fail_on_error`, which reports the first failing call instead. A cancelled
    /// call cancels the node.
    fn settle<T>(
        &self,
        calls: &[ToolCall],
        results: Vec<Result<T>>,
        answer_error: impl Fn(String) -> T,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(calls.len());
        for (call, r) in calls.iter().zip(results) {
            match r {
                Ok(t) => out.push(t),
                // The caller stopped the run: that is not the model's to read.
                Err(e) if e.kind() == ErrorKind::Cancelled => return Err(e),
                Err(e) if self.fail_on_error => {
                    let msg = format!(
                        "failed to invoke tool[name:{} id:{}]: {}",
                        call.function.name,
                        call.id,
                        e.message()
                    );
                    return Err(Error::new(e.kind(), msg).with_source(e));
                }
                Err(e) => out.push(answer_error(format!(
                    "error: tool '{}' failed: {e}",
                    call.function.name
                ))),
            }
        }
        Ok(out)
    }

    /// Run the calls of `msg` and answer each, in call order.
    pub async fn run(&self, msg: &Message, ctx: &Context) -> Result<Vec<Message>> {
        let calls = self.calls(msg)?;
        let executed = Self::executed_before(ctx);
        let results = self
            .run_all(calls, |c| {
                Box::pin(async {
                    match executed.get(&c.id) {
                        Some(done) => Ok(done.clone()),
                        None => self.invoke_one(c, ctx).await,
                    }
                })
            })
            .await;
        if Self::any_interrupted(&results) {
            return Err(Self::interrupt(calls, results, &executed));
        }
        let texts = self.settle(calls, results, |e| e)?;
        Ok(calls
            .iter()
            .zip(texts)
            .map(|(c, t)| tool_message(c, t))
            .collect())
    }

    /// Stream the answers: chunks are `Vec<Message>` of the call count, with one position
    /// filled (the others are empty tool messages), so index-aligned concat gives the answers.
    pub async fn stream_run(
        &self,
        msg: &Message,
        ctx: &Context,
    ) -> Result<StreamReader<Vec<Message>>> {
        let calls = self.calls(msg)?;
        let executed = Self::executed_before(ctx);
        let results = self
            .run_all(calls, |c| {
                Box::pin(async {
                    match executed.get(&c.id) {
                        Some(done) => Ok(StreamReader::once(done.clone())),
                        None => self.stream_one(c, ctx).await,
                    }
                })
            })
            .await;
        if Self::any_interrupted(&results) {
            // The finished answers are joined to be saved with the interrupt.
            let mut texts = Vec::with_capacity(results.len());
            for r in results {
                texts.push(match r {
                    Ok(s) => s.concat().await,
                    Err(e) => Err(e),
                });
            }
            return Err(Self::interrupt(calls, texts, &executed));
        }
        let streams = self.settle(calls, results, StreamReader::once)?;
        let n = calls.len();
        let per_call: Vec<StreamReader<Vec<Message>>> = calls
            .iter()
            .zip(streams)
            .enumerate()
            .map(|(i, (c, s))| {
                let (id, name) = (c.id.clone(), c.function.name.clone());
                s.map(move |text| {
                    let mut chunk: Vec<Message> = (0..n).map(|_| empty_tool_message()).collect();
                    chunk[i] = Message::tool(text, id.clone()).with_name(name.clone());
                    Ok(chunk)
                })
            })
            .collect();
        Ok(StreamReader::merge(per_call))
    }
}

enum Resolved<'s> {
    Answered(String),
    Tool(ToolInput, &'s dyn Tool),
}

/// Callbacks for one tool call (component `Tool`), unless the tool fires its own.
fn start_tool_call(ctx: &Context, tool: &dyn Tool, input: &ToolInput) -> Option<ActiveCall> {
    let cbs = ctx.callbacks().filter(|_| !tool.callbacks_enabled())?;
    let info = RunInfo::new(input.name.clone(), tool.type_name(), ComponentKind::Tool);
    Some(cbs.start(&info, &input.arguments))
}

/// The call's options; in a resumed node (only calls that did not finish run again), with
/// the call's entry of the resume data as [`ToolResume`].
fn tool_options(ctx: &Context, call_id: &str) -> ToolOptions {
    let mut options = ctx
        .options::<ToolOptions>()
        .last()
        .cloned()
        .unwrap_or_default();
    options.call_id = Some(call_id.to_string());
    if ctx.is_resumed() {
        let data = ctx
            .resume_data::<serde_json::Map<String, serde_json::Value>>()
            .and_then(|mut m| m.remove(call_id));
        let info = ctx
            .interrupt_state::<ToolsInterruptState>()
            .and_then(|mut s| s.rerun_info.remove(call_id));
        options.extensions.insert(ToolResume { data, info });
    }
    options
}

fn tool_message(call: &ToolCall, text: String) -> Message {
    Message::tool(text, call.id.clone()).with_name(call.function.name.clone())
}

fn empty_tool_message() -> Message {
    Message::new(Role::Tool, "")
}

impl ToolsNode {
    /// Run with the node's own callbacks (component `ToolsNode`) around the tool calls.
    async fn observed(&self, input: Message, ctx: &Context, stream: bool) -> Result<Answers> {
        let Some(cbs) = ctx.callbacks() else {
            return self.answers(&input, ctx, stream).await;
        };
        let info = ctx
            .run_info()
            .cloned()
            .unwrap_or_else(|| RunInfo::new("", "ToolsNode", ComponentKind::ToolsNode));
        let call = cbs.start(&info, &input);
        let inner = ctx.nested_in(&call);
        match self.answers(&input, &inner, stream).await {
            Ok(Answers::Value(v)) => {
                call.end(&v);
                Ok(Answers::Value(v))
            }
            Ok(Answers::Stream(s)) => Ok(Answers::Stream(call.end_stream(s))),
            Err(e) => {
                call.error(&e);
                Err(e)
            }
        }
    }

    async fn answers(&self, input: &Message, ctx: &Context, stream: bool) -> Result<Answers> {
        Ok(if stream {
            Answers::Stream(self.stream_run(input, ctx).await?)
        } else {
            Answers::Value(self.run(input, ctx).await?)
        })
    }
}

enum Answers {
    Value(Vec<Message>),
    Stream(StreamReader<Vec<Message>>),
}

impl Answers {
    async fn value(self) -> Result<Vec<Message>> {
        match self {
            Answers::Value(v) => Ok(v),
            Answers::Stream(s) => concat_typed(s).await,
        }
    }
    fn stream(self) -> StreamReader<Vec<Message>> {
        match self {
            Answers::Value(v) => StreamReader::once(v),
            Answers::Stream(s) => s,
        }
    }
}

impl Runnable<Message, Vec<Message>> for ToolsNode {
    fn invoke<'a>(
        &'a self,
        input: Message,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        Box::pin(async move { self.observed(input, ctx, false).await?.value().await })
    }
    fn stream<'a>(
        &'a self,
        input: Message,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Vec<Message>>>> {
        Box::pin(async move { Ok(self.observed(input, ctx, true).await?.stream()) })
    }
    fn collect<'a>(
        &'a self,
        input: StreamReader<Message>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Vec<Message>>> {
        Box::pin(async move {
            let m = concat_typed(input).await?;
            self.observed(m, ctx, false).await?.value().await
        })
    }
    fn transform<'a>(
        &'a self,
        input: StreamReader<Message>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<StreamReader<Vec<Message>>>> {
        Box::pin(async move {
            let m = concat_typed(input).await?;
            Ok(self.observed(m, ctx, true).await?.stream())
        })
    }
}

impl IntoNode<Message, Vec<Message>> for ToolsNode {
    fn into_node(self) -> NodeDef<Message, Vec<Message>> {
        NodeDef::from_runnable(Arc::new(self), ComponentKind::ToolsNode, "ToolsNode")
    }
}

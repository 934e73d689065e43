//! The handle an agent runs with: the run's session values and history, where it is (run
//! path and interrupt address), where its events go, the compose [`Context`] (callbacks,
//! call options, cancellation) and, when resuming, the state it saved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{AgentAction, AgentEvent, EventKind, EventSink};
use super::interrupt::{AddressSegment, AgentInterrupt, InterruptPoint, ResumeTargets};
use crate::component::ToolOptions;
use crate::compose::Context;
use crate::error::{Error, Result};
use crate::schema::{Map, Message};

/// One message of a run's shared history and who wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The agent that wrote it; `None` for the caller's input.
    pub agent: Option<Arc<str>>,
    /// The message (shared with the event that reported it).
    pub message: Arc<Message>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Writers replace whole values, so a poisoned lock still holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every agent of one run shares.
#[derive(Debug)]
struct Shared {
    session: Mutex<Map>,
    targets: ResumeTargets,
    streaming: bool,
    /// The caller asked the run to stop at the next safe point (and save a checkpoint).
    stop: Arc<AtomicBool>,
}

/// The run an agent is part of. Cheap to clone; clones share the session and history.
#[derive(Clone, Debug)]
pub struct AgentRun {
    shared: Arc<Shared>,
    history: Arc<Mutex<Vec<HistoryEntry>>>,
    /// The running agent's name (shared by its events and history entries).
    name: Arc<str>,
    path: Arc<[String]>,
    address: Arc<[AddressSegment]>,
    sink: EventSink,
    ctx: Context,
    resume: Option<Arc<Value>>,
    transfer_targets: Targets,
}

/// A tool call's arguments as `T`, or an error naming the tool (the model reads it).
pub(crate) fn tool_args<T: DeserializeOwned>(tool: &str, arguments: &str) -> Result<T> {
    serde_json::from_str(arguments).map_err(|e| {
        Error::invalid_input(format!("invalid arguments for {tool}: {e}")).with_source(e)
    })
}

/// Agents one may transfer to, as (name, description).
pub(crate) type Targets = Arc<Vec<(String, String)>>;

/// The parts a run starts from (the runner, or a test).
pub(crate) struct RunSeed {
    pub(crate) session: Map,
    pub(crate) history: Vec<HistoryEntry>,
    pub(crate) targets: ResumeTargets,
    pub(crate) streaming: bool,
    /// Set by the caller to stop at the next safe point (a fresh flag if nobody can).
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) ctx: Context,
    pub(crate) resume: Option<Value>,
}

impl AgentRun {
    pub(crate) fn root(seed: RunSeed, sink: EventSink) -> Self {
        Self {
            shared: Arc::new(Shared {
                session: Mutex::new(seed.session),
                targets: seed.targets,
                streaming: seed.streaming,
                stop: seed.stop,
            }),
            history: Arc::new(Mutex::new(seed.history)),
            name: Arc::from(""),
            path: Arc::new([]),
            address: Arc::new([]),
            sink,
            ctx: seed.ctx,
            resume: seed.resume.map(Arc::new),
            transfer_targets: Targets::default(),
        }
    }

    /// The run of `agent` inside this one: its name is appended to the run path and the
    /// interrupt address. It starts fresh (no resume state) unless given one with
    /// [`AgentRun::resuming`].
    pub fn enter(&self, agent: &str) -> AgentRun {
        let mut child = self.clone();
        child.name = Arc::from(agent);
        child.path = self
            .path
            .iter()
            .cloned()
            .chain([agent.to_string()])
            .collect();
        child.address = self
            .address
            .iter()
            .cloned()
            .chain([AddressSegment::agent(agent)])
            .collect();
        child.resume = None;
        child.transfer_targets = Targets::default();
        child
    }

    /// This run continuing from `state` (what the agent saved when it interrupted), or
    /// fresh for `None`.
    pub fn resuming(mut self, state: Option<Value>) -> AgentRun {
        self.resume = state.map(Arc::new);
        self
    }

    /// The run of an agent called as a tool (call `call_id` of tool `tool`): same session
    /// and cancellation, its own history, events forwarded only if `forward`.
    pub(crate) fn for_tool(&self, tool: &str, call_id: &str, forward: bool) -> AgentRun {
        let mut child = self.clone();
        child.address = self
            .address
            .iter()
            .cloned()
            .chain([AddressSegment::tool(tool, call_id)])
            .collect();
        child.history = Arc::new(Mutex::new(Vec::new()));
        child.resume = None;
        if !forward {
            child.sink = EventSink::discard();
        }
        child
    }

    pub(crate) fn with_transfer_targets(mut self, targets: Targets) -> Self {
        self.transfer_targets = targets;
        self
    }

    /// The run a tool call belongs to (a [`ChatModelAgent`](super::ChatModelAgent) puts it
    /// in its tools' options), or an error naming `tool` when called outside an agent.
    pub fn of_tool<'o>(options: &'o ToolOptions, tool: &str) -> Result<&'o AgentRun> {
        options
            .extensions
            .get::<AgentRun>()
            .ok_or_else(|| Error::invalid_input(format!("{tool} runs inside an agent")))
    }

    /// The transfer targets, shared (the same list for every run of a team member, so a
    /// model bound to it can be reused).
    pub(crate) fn transfer_targets_shared(&self) -> &Targets {
        &self.transfer_targets
    }

    /// The agents this one may transfer to, as (name, description).
    pub fn transfer_targets(&self) -> &[(String, String)] {
        &self.transfer_targets
    }

    /// The compose context: callbacks, call options and cancellation for what the agent
    /// runs (models, graphs, tools).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Replace the compose context (e.g. to add a call option for a sub-agent).
    pub fn with_context(mut self, ctx: Context) -> Self {
        self.ctx = ctx;
        self
    }

    /// Whether the caller asked for streamed messages.
    pub fn is_streaming(&self) -> bool {
        self.shared.streaming
    }

    /// The running agent's name (the last of the run path).
    pub fn agent(&self) -> &str {
        &self.name
    }

    /// The agent names from the root to the running agent.
    pub fn run_path(&self) -> &[String] {
        &self.path
    }

    /// The running agent's interrupt address.
    pub fn address(&self) -> &[AddressSegment] {
        &self.address
    }

    /// A session value shared by every agent of the run, if set and of type `T`.
    pub fn session_get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let v = lock(&self.shared.session).get(key).cloned()?;
        serde_json::from_value(v).ok()
    }

    /// Set a session value.
    pub fn session_set(&self, key: impl Into<String>, value: impl Serialize) -> Result<()> {
        let v = serde_json::to_value(value)?;
        lock(&self.shared.session).insert(key.into(), v);
        Ok(())
    }

    /// Every session value.
    pub fn session_values(&self) -> Map {
        lock(&self.shared.session).clone()
    }

    /// Send an event from the running agent.
    pub fn emit(&self, kind: EventKind) {
        self.sink.send(Ok(AgentEvent {
            agent: self.name.clone(),
            run_path: self.path.clone(),
            kind,
        }));
    }

    /// Send a complete message and add it to the history.
    pub fn emit_message(&self, message: Message) {
        let message = Arc::new(message);
        self.push(message.clone());
        self.emit(EventKind::Message(message));
    }

    /// Send an action and return it (what an agent's run returns).
    pub fn act(&self, action: AgentAction) -> Option<AgentAction> {
        self.emit(EventKind::Action(action.clone()));
        Some(action)
    }

    /// Add a message the running agent wrote to the history (a streamed message once it is
    /// complete).
    pub fn record(&self, message: Message) {
        self.push(Arc::new(message));
    }

    fn push(&self, message: Arc<Message>) {
        lock(&self.history).push(HistoryEntry {
            agent: Some(self.name.clone()),
            message,
        });
    }

    /// Add the caller's input to the history.
    pub(crate) fn record_input(&self, messages: &[Message]) {
        lock(&self.history).extend(messages.iter().map(|m| HistoryEntry {
            agent: None,
            message: Arc::new(m.clone()),
        }));
    }

    /// The run's history so far.
    pub fn history(&self) -> Vec<HistoryEntry> {
        lock(&self.history).clone()
    }

    /// True when the running agent interrupted before and now continues.
    pub fn is_resumed(&self) -> bool {
        self.resume.is_some()
    }

    /// The state the running agent saved when it interrupted, if it fits `T`.
    pub fn resume_state<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_value((**self.resume.as_ref()?).clone()).ok()
    }

    /// The data the resume gave to the interrupt point `id`.
    pub fn resume_data(&self, id: &str) -> Option<&Value> {
        self.shared.targets.get(id)
    }

    /// Stop the run here for outside input: `info` says what is needed, `state` is what the
    /// agent reads back with [`AgentRun::resume_state`] when resumed. Return the error from
    /// the agent's run.
    pub fn interrupt(&self, info: Value, state: impl Serialize) -> Error {
        let state = match serde_json::to_value(state) {
            Ok(s) => s,
            Err(e) => return Error::from(e),
        };
        AgentInterrupt {
            points: vec![InterruptPoint::new(self.address.to_vec(), info, true)],
            state,
        }
        .into_error()
    }

    /// A sub-agent (or tool) interrupted with `child`: the running agent stops too, saving
    /// `state` (which should hold the child's state, from [`AgentRun::child_state`]). Other
    /// errors pass through.
    pub fn wrap_interrupt(&self, child: Error, state: impl Serialize) -> Error {
        let Some(inner) = AgentInterrupt::from_error(&child) else {
            return child;
        };
        let state = match serde_json::to_value(state) {
            Ok(s) => s,
            Err(e) => return Error::from(e),
        };
        let mut points = vec![InterruptPoint::new(
            self.address.to_vec(),
            Value::Null,
            false,
        )];
        points.extend(inner.points);
        AgentInterrupt { points, state }.into_error()
    }

    /// A sub-agent that runs at the running agent's own address interrupted: keep its
    /// points, save `state` instead of its state.
    pub(crate) fn repack_interrupt(child: Error, state: impl Serialize) -> Error {
        let Some(inner) = AgentInterrupt::from_error(&child) else {
            return child;
        };
        match serde_json::to_value(state) {
            Ok(state) => AgentInterrupt {
                points: inner.points,
                state,
            }
            .into_error(),
            Err(e) => Error::from(e),
        }
    }

    /// The state a sub-agent's interrupt carries (to keep inside the running agent's own).
    pub fn child_state(child: &Error) -> Option<Value> {
        AgentInterrupt::from_error(child).map(|i| i.state)
    }

    /// True once the caller asked the run to stop at a safe point
    /// ([`RunHandle::stop`](super::RunHandle::stop)): agents then interrupt themselves
    /// with [`AgentRun::stopped`] where they can continue from.
    pub fn stop_requested(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// The interrupt an agent returns when it stops at a safe point on the caller's request,
    /// saving `state` to continue from.
    pub fn stopped(&self, state: impl Serialize) -> Error {
        self.interrupt(
            serde_json::json!({ "stopped": "the caller asked the run to stop; resume it to go on" }),
            state,
        )
    }

    /// True once the caller cancelled the run.
    pub fn is_cancelled(&self) -> bool {
        self.ctx.is_cancelled()
    }
}

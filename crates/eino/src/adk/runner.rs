//! [`Runner`]: runs an agent as a task and hands back its events; saves a checkpoint when
//! the run interrupts and resumes it by id (also in another process sharing the store);
//! cancels the run, sub-agents and tools included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::event::{AgentAction, AgentEvent, AgentEvents, EventKind, EventSink};
use super::interrupt::{AgentInterrupt, InterruptPoint, ResumeTargets};
use super::run::{AgentRun, HistoryEntry, RunSeed};
use super::Agent;
use crate::compose::{CheckpointStore, Context};
use crate::error::{Error, Result};
use crate::schema::{Map, Message};

/// What a runner saves when a run interrupts: enough to continue it anywhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentCheckpoint {
    /// Format version.
    pub version: u32,
    /// The root agent's name (a resume with another agent is refused).
    pub agent: String,
    /// The run's input.
    pub input: Vec<Message>,
    /// Session values when it stopped.
    pub session: Map,
    /// The shared history when it stopped.
    pub history: Vec<HistoryEntry>,
    /// The root agent's saved state.
    pub state: Value,
    /// Where it stopped.
    pub points: Vec<InterruptPoint>,
    /// Whether the run streamed messages.
    pub streaming: bool,
}

const CHECKPOINT_VERSION: u32 = 1;

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Save a checkpoint under this id if the run interrupts (needs a store).
    pub checkpoint_id: Option<String>,
    /// Session values to start with.
    pub session: Map,
    /// Callbacks and call options for everything the agents run.
    pub context: Context,
}

impl RunOptions {
    /// Save under `id` on interrupt.
    pub fn with_checkpoint_id(mut self, id: impl Into<String>) -> Self {
        self.checkpoint_id = Some(id.into());
        self
    }

    /// Start with a session value.
    pub fn with_session_value(mut self, key: impl Into<String>, value: Value) -> Self {
        self.session.insert(key.into(), value);
        self
    }

    /// Use this context (callbacks, call options).
    pub fn with_context(mut self, ctx: Context) -> Self {
        self.context = ctx;
        self
    }
}

/// A run in progress: its events and a way to cancel it. Dropping it cancels the run.
#[derive(Debug)]
pub struct RunHandle {
    events: AgentEvents,
    cancel: CancellationToken,
    stop: Arc<AtomicBool>,
}

impl RunHandle {
    /// The next event; `None` when the run is over.
    pub async fn next(&mut self) -> Option<Result<AgentEvent>> {
        self.events.next().await
    }

    /// Every event (streamed messages read to their end); the run's error if it failed.
    pub async fn collect(mut self) -> Result<Vec<AgentEvent>> {
        self.events.read_all().await
    }

    /// Stop the run: the model call or tool running now is dropped, and the run ends with
    /// a [`Cancelled`](crate::ErrorKind::Cancelled) error event.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stop the run at its next safe point, keeping what it did: a `ChatModelAgent` stops
    /// after its current model turn, before running the tools it asked for; a sequence or
    /// loop before its next agent; a team before the agent it transfers to. The run ends
    /// with an `Interrupted` action whose root point reports `"stopped"`, saved like any
    /// interrupt (with a store and a checkpoint id), so [`Runner::resume`] goes on from
    /// there. A run with no safe point left simply finishes.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// A token that cancels the run (to hand to another task).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Runs an agent.
///
/// [`Runner`]: runs an agent as a task and hands back its events; saves a checkpoint when
/// the run interrupts and resumes it by id (also in another process sharing the store);
/// cancels the run, sub-agents and tools included.
#[derive(Clone)]
pub struct Runner {
    agent: Arc<dyn Agent>,
    store: Option<Arc<dyn CheckpointStore>>,
    streaming: bool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("agent", &self.agent.name())
            .field("store", &self.store.is_some())
            .field("streaming", &self.streaming)
            .finish()
    }
}

impl Runner {
    /// A runner for `agent`, without checkpoints, not streaming.
    pub fn new(agent: Arc<dyn Agent>) -> Self {
        Self {
            agent,
            store: None,
            streaming: false,
        }
    }

    /// Save interrupted runs in `store` (SQLite, PostgreSQL, memory …).
    pub fn with_store(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Stream model turns as [`EventKind::MessageStream`] events.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Run on one user message with default options.
    pub fn query(&self, text: impl Into<String>) -> RunHandle {
        self.run(vec![Message::user(text)], RunOptions::default())
    }

    /// Run on `messages`. Must be called inside a Tokio runtime (the run is a task).
    pub fn run(&self, messages: Vec<Message>, options: RunOptions) -> RunHandle {
        let start = Start {
            input: messages,
            session: options.session,
            history: None,
            state: None,
            targets: ResumeTargets::new(),
            streaming: self.streaming,
        };
        self.spawn(
            async move { Ok(start) },
            options.checkpoint_id,
            options.context,
        )
    }

    /// Continue the run saved under `checkpoint_id`, giving `targets` their data. The
    /// checkpoint is replaced if the run interrupts again and deleted when it completes.
    pub fn resume(
        &self,
        checkpoint_id: impl Into<String>,
        targets: ResumeTargets,
        context: Context,
    ) -> RunHandle {
        let id = checkpoint_id.into();
        let (store, agent, key) = (self.store.clone(), self.agent.clone(), id.clone());
        let load = async move {
            let store = store.ok_or_else(|| {
                Error::invalid_input("resuming needs a runner with a checkpoint store")
            })?;
            let bytes = store
                .get(&key)
                .await?
                .ok_or_else(|| Error::invalid_input(format!("no checkpoint '{key}'")))?;
            let cp: AgentCheckpoint = serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal("stored agent checkpoint is not readable").with_source(e)
            })?;
            if cp.version != CHECKPOINT_VERSION {
                return Err(Error::internal(format!(
                    "agent checkpoint version {} is not supported",
                    cp.version
                )));
            }
            if cp.agent != agent.name() {
                return Err(Error::invalid_input(format!(
                    "checkpoint '{key}' belongs to agent '{}', not '{}'",
                    cp.agent,
                    agent.name()
                )));
            }
            Ok(Start {
                input: cp.input,
                session: cp.session,
                history: Some(cp.history),
                state: Some(cp.state),
                targets,
                streaming: cp.streaming,
            })
        };
        self.spawn(load, Some(id), context)
    }

    fn spawn(
        &self,
        start: impl std::future::Future<Output = Result<Start>> + Send + 'static,
        checkpoint_id: Option<String>,
        context: Context,
    ) -> RunHandle {
        let (sink, events) = EventSink::channel();
        let cancel = CancellationToken::new();
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = context.with_cancel(cancel.clone());
        let (agent, store, flag) = (self.agent.clone(), self.store.clone(), stop.clone());
        let watcher = sink.clone();
        let drive = async move {
            match start.await {
                Ok(start) => drive(agent, store, start, checkpoint_id, ctx, sink, flag).await,
                Err(e) => sink.send(Err(e)),
            }
        };
        let token = cancel.clone();
        tokio::spawn(async move {
            let closed = async move { watcher.closed().await };
            futures_util::pin_mut!(drive, closed);
            // Nobody reads the events any more: stop everything the run started.
            if let Either::Right(_) = select(drive, closed).await {
                token.cancel();
            }
        });
        RunHandle {
            events,
            cancel,
            stop,
        }
    }
}

/// Where a run starts from: fresh, or a checkpoint.
struct Start {
    input: Vec<Message>,
    session: Map,
    history: Option<Vec<HistoryEntry>>,
    state: Option<Value>,
    targets: ResumeTargets,
    streaming: bool,
}

async fn drive(
    agent: Arc<dyn Agent>,
    store: Option<Arc<dyn CheckpointStore>>,
    start: Start,
    checkpoint_id: Option<String>,
    ctx: Context,
    sink: EventSink,
    stop: Arc<AtomicBool>,
) {
    let resumed = start.history.is_some();
    let seed = RunSeed {
        session: start.session,
        history: start.history.unwrap_or_else(|| Vec::with_capacity(16)),
        targets: start.targets,
        streaming: start.streaming,
        stop,
        ctx,
        resume: None,
    };
    let run = AgentRun::root(seed, sink.clone())
        .enter(agent.name())
        .resuming(start.state);
    if !resumed {
        run.record_input(&start.input);
    }
    // The input is kept only where an interrupt can save it.
    let saves = store.is_some() && checkpoint_id.is_some();
    let (input, kept) = if saves {
        (start.input.clone(), start.input)
    } else {
        (start.input, Vec::new())
    };
    let result = agent.run(input, &run).await;
    let outcome = match result {
        Ok(_) => match (&store, &checkpoint_id, resumed) {
            (Some(store), Some(id), true) => store.delete(id).await,
            _ => Ok(()),
        },
        Err(e) => match AgentInterrupt::from_error(&e) {
            Some(interrupt) => {
                let saved = match (&store, &checkpoint_id) {
                    (Some(store), Some(id)) => {
                        let cp = AgentCheckpoint {
                            version: CHECKPOINT_VERSION,
                            agent: agent.name().to_string(),
                            input: kept,
                            session: run.session_values(),
                            history: run.history(),
                            state: interrupt.state,
                            points: interrupt.points.clone(),
                            streaming: start.streaming,
                        };
                        match serde_json::to_vec(&cp) {
                            Ok(bytes) => store.put(id, bytes).await.map(|_| Some(id.clone())),
                            Err(e) => Err(Error::from(e)),
                        }
                    }
                    _ => Ok(None),
                };
                saved.map(|checkpoint_id| {
                    sink.send(Ok(AgentEvent {
                        agent: Arc::from(agent.name()),
                        run_path: Arc::from([agent.name().to_string()]),
                        kind: EventKind::Action(AgentAction::Interrupted {
                            checkpoint_id,
                            points: interrupt.points,
                        }),
                    }))
                })
            }
            None => Err(e),
        },
    };
    if let Err(e) = outcome {
        sink.send(Err(e));
    }
}

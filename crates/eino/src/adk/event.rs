//! What an agent run yields: typed events (messages, streamed messages, actions), in order,
//! through an unbounded channel, ending with the run's error if it failed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::interrupt::InterruptPoint;
use crate::error::Result;
use crate::schema::{Message, Role, StreamReader};

/// One thing that happened in a run, and which agent it came from.
#[derive(Debug)]
pub struct AgentEvent {
    /// The agent that produced it.
    pub agent: Arc<str>,
    /// Names of the agents from the run's root down to `agent` (an agent run inside an
    /// agent tool continues its caller's path).
    pub run_path: Arc<[String]>,
    /// What happened.
    pub kind: EventKind,
}

/// The payload of an [`AgentEvent`].
#[derive(Debug)]
pub enum EventKind {
    /// A complete message: a model turn (role assistant) or a tool's result (role tool,
    /// `name` is the tool). Shared with the run's history.
    Message(Arc<Message>),
    /// A message still being written (streaming runs); its role and, for a tool's result,
    /// the tool's name are known before the first chunk.
    MessageStream {
        /// Assistant (a model turn) or tool (a tool's result).
        role: Role,
        /// The tool, for a tool's result.
        tool_name: Option<String>,
        /// The chunks; the consumer must read or drop it.
        stream: StreamReader<Message>,
    },
    /// A decision that changes the run's course.
    Action(AgentAction),
}

/// A change of course an agent asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAction {
    /// Hand the conversation to the named agent (a sub-agent or the parent).
    TransferTo(String),
    /// End the whole run with the last answer (no transfer back, no next agent).
    Exit,
    /// Stop the enclosing [`LoopAgent`](super::LoopAgent) after this agent.
    BreakLoop,
    /// The run stopped for outside input: every interrupt point, root causes and the
    /// agents that contain them. Resume with [`Runner::resume`](super::Runner::resume).
    Interrupted {
        /// The checkpoint to resume from (when the runner has a store and a checkpoint id).
        checkpoint_id: Option<String>,
        /// Where and why.
        points: Vec<InterruptPoint>,
    },
}

impl AgentEvent {
    /// The complete message of a message event (a streamed one is read to its end), or
    /// `None` for an action.
    pub async fn into_message(self) -> Result<Option<Message>> {
        match self.kind {
            EventKind::Message(m) => Ok(Some(Arc::unwrap_or_clone(m))),
            EventKind::MessageStream { stream, .. } => stream.concat().await.map(Some),
            EventKind::Action(_) => Ok(None),
        }
    }

    /// The action, if this is an action event.
    pub fn action(&self) -> Option<&AgentAction> {
        match &self.kind {
            EventKind::Action(a) => Some(a),
            _ => None,
        }
    }
}

type Item = Result<AgentEvent>;
/// What travels in the channel: boxed, so the channel's blocks stay small (an event or an
/// error is a few hundred bytes; unboxed, each run's first block would be kilobytes).
type Boxed = Box<Item>;

/// The events of a run, in the order they happened. An error item is the last one.
///
/// Dropping the stream cancels a run started by a [`Runner`](super::Runner).
#[derive(Debug)]
pub struct AgentEvents {
    rx: mpsc::UnboundedReceiver<Boxed>,
}

impl AgentEvents {
    /// The next event; `None` when the run is over.
    pub async fn next(&mut self) -> Option<Item> {
        self.rx.recv().await.map(|b| *b)
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Item> {
        self.rx.try_recv().ok().map(|b| *b)
    }

    /// Read every event, reading streamed messages to their end.
    pub async fn collect(mut self) -> Result<Vec<AgentEvent>> {
        self.read_all().await
    }

    pub(crate) async fn read_all(&mut self) -> Result<Vec<AgentEvent>> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            let mut e = e?;
            if let EventKind::MessageStream { stream, .. } = e.kind {
                e.kind = EventKind::Message(Arc::new(stream.concat().await?));
            }
            out.push(e);
        }
        Ok(out)
    }
}

impl Stream for AgentEvents {
    type Item = Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| *b))
    }
}

/// Where an agent writes its events. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    /// `None`: events are dropped (an agent tool's inner run nobody watches).
    tx: Option<mpsc::UnboundedSender<Boxed>>,
}

impl EventSink {
    /// A sink and the events it feeds. Unbounded like Go Eino's event iterator: events are
    /// few per step (streams travel inside them), and an agent never waits on its reader.
    pub(crate) fn channel() -> (Self, AgentEvents) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx: Some(tx) }, AgentEvents { rx })
    }

    /// A sink that drops every event.
    pub(crate) fn discard() -> Self {
        Self { tx: None }
    }

    /// Send; a reader that went away is not an error for the agent (the run is cancelled
    /// by whoever owns it).
    pub(crate) fn send(&self, item: Item) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Box::new(item));
        }
    }

    /// Resolves when the reader is gone (never for a discarding sink).
    pub(crate) async fn closed(&self) {
        match &self.tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }
}

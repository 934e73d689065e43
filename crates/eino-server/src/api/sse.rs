//! Streaming answers as server-sent events. The OpenAI shape: a role chunk, content /
//! tool-call / reasoning deltas, a finish chunk, an optional usage chunk, `data: [DONE]`.
//! An error after the first chunk becomes an `error` event (the status line is already
//! sent). The run is recorded when the stream ends, also when the client goes away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::sse::Event;
use eino::adk::{AgentAction, AgentEvent, AgentEvents, EventKind};
use eino::schema::{Concat, Message, StreamReader};
use futures_util::future::{select, BoxFuture, Either};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::api::wire::{finish_reason, json_event, Delta, SseHead, UsageWire};
use crate::error::ApiError;
use crate::metrics::InFlight;
use crate::runs::RunGuard;

enum Phase {
    Role,
    Body,
    Done,
}

struct Relay {
    stream: StreamReader<Message>,
    run: Option<RunGuard>,
    chunks: Vec<Message>,
    phase: Phase,
    _inflight: InFlight,
}

pub(crate) fn error_event(e: &ApiError) -> Event {
    Event::default().data(
        json!({ "error": { "message": e.message, "type": e.kind, "code": e.code } }).to_string(),
    )
}

/// What [`Relay::step`] got from the answer stream.
enum Step {
    /// A chunk, the last of [`Relay::chunks`] (see [`Relay::delta`]).
    Chunk,
    /// The stream failed; the run is recorded as failed.
    Failed(ApiError),
    /// The stream ended; the whole answer, the run recorded as ok.
    Finished(Message),
}

impl Relay {
    fn new(stream: StreamReader<Message>, run: RunGuard) -> Self {
        Self {
            stream,
            run: Some(run),
            chunks: Vec::new(),
            phase: Phase::Role,
            _inflight: InFlight::new("eino_streams_in_flight"),
        }
    }

    /// The next piece of the answer, shared by both event formats.
    async fn step(&mut self) -> Step {
        match self.stream.recv().await {
            Some(Ok(m)) => {
                self.chunks.push(m);
                Step::Chunk
            }
            Some(Err(e)) => {
                self.phase = Phase::Done;
                Step::Failed(match self.run.take() {
                    Some(run) => run.fail(e).await,
                    None => ApiError::from(e),
                })
            }
            None => {
                self.phase = Phase::Done;
                let full = Message::concat(std::mem::take(&mut self.chunks))
                    .unwrap_or_else(|_| Message::assistant("", vec![]));
                if let Some(run) = self.run.take() {
                    // Ok: the answer went out; a failure to save the trace is logged.
                    let _ = run.finish(Ok(full.clone())).await;
                }
                Step::Finished(full)
            }
        }
    }

    /// The delta of the chunk [`Relay::step`] just got, if it has anything to send.
    fn delta(&self) -> Option<Delta<'_>> {
        self.chunks.last().and_then(Delta::of)
    }
}

/// Sent for a chunk with nothing to show (a usage-only chunk …), so the stream always
/// yields something per step.
fn keepalive() -> Event {
    Event::default().comment("")
}

/// The OpenAI-compatible event stream of one answer.
pub(crate) fn openai_events(
    stream: StreamReader<Message>,
    run: RunGuard,
    head: SseHead,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let relay = Relay::new(stream, run);
    let events = futures_util::stream::unfold((relay, head), move |(mut r, head)| async move {
        let events: Vec<Event> = match r.phase {
            Phase::Role => {
                r.phase = Phase::Body;
                vec![head.chunk(Some(&Delta::role()), None, None)]
            }
            Phase::Body => match r.step().await {
                Step::Chunk => vec![r
                    .delta()
                    .map_or_else(keepalive, |d| head.chunk(Some(&d), None, None))],
                Step::Failed(err) => vec![error_event(&err), Event::default().data("[DONE]")],
                Step::Finished(full) => {
                    let finish = Some(finish_reason(&full));
                    let mut out = vec![head.chunk(Some(&Delta::default()), finish, None)];
                    if include_usage {
                        out.push(head.chunk(None, None, Some(UsageWire::of(&full))));
                    }
                    out.push(Event::default().data("[DONE]"));
                    out
                }
            },
            Phase::Done => return None,
        };
        Some((
            futures_util::stream::iter(events.into_iter().map(Ok::<Event, Infallible>)),
            (r, head),
        ))
    })
    .flatten();
    Batched::new(events)
}

/// The native API's event stream: `event: source` (retrieved chunks) first, then
/// `event: delta` (`{"content": …}`), then `event: done` with the whole message, or
/// `event: error`. `on_done` stores the turn before `done` is sent.
pub(crate) fn native_events<F, Fut>(
    stream: StreamReader<Message>,
    run: RunGuard,
    sources: Value,
    on_done: F,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(Message) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, ApiError>> + Send,
{
    let relay = Relay::new(stream, run);
    let events = futures_util::stream::unfold(
        (relay, Some(on_done), sources),
        move |(mut r, mut done, sources)| async move {
            let events: Vec<Event> = match r.phase {
                Phase::Role => {
                    r.phase = Phase::Body;
                    vec![Event::default().event("sources").data(sources.to_string())]
                }
                Phase::Body => match r.step().await {
                    Step::Chunk => vec![r.delta().map_or_else(keepalive, |d| {
                        json_event(Event::default().event("delta"), &d)
                    })],
                    Step::Failed(err) => vec![error_event(&err).event("error")],
                    Step::Finished(full) => match done.take() {
                        Some(f) => match f(full).await {
                            Ok(v) => vec![Event::default().event("done").data(v.to_string())],
                            Err(e) => vec![error_event(&e).event("error")],
                        },
                        None => Vec::new(),
                    },
                },
                Phase::Done => return None,
            };
            Some((
                futures_util::stream::iter(events.into_iter().map(Ok::<Event, Infallible>)),
                (r, done, sources),
            ))
        },
    )
    .flatten();
    Batched::new(events)
}

/// A message of an agent step: its real role, and for a tool's result the tool and call.
fn step_message(m: &Message) -> Value {
    let mut v = crate::api::wire::message_wire(m);
    v["role"] = json!(m.role.as_str());
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    if let Some(name) = &m.name {
        v["name"] = json!(name);
    }
    v
}

/// A multi-agent run's `event: agent` (see docs/server.md): who, where, and a message
/// (`type: message`, with `role` assistant or tool) or an action (`type: action`).
async fn agent_event(e: AgentEvent) -> Event {
    let mut body = json!({ "agent": e.agent, "run_path": e.run_path });
    match e.kind {
        EventKind::Message(m) => {
            body["type"] = json!("message");
            body["message"] = step_message(&m);
        }
        EventKind::MessageStream { stream, .. } => {
            body["type"] = json!("message");
            body["message"] = match stream.concat().await {
                Ok(m) => step_message(&m),
                Err(e) => json!({ "error": e.to_string() }),
            };
        }
        EventKind::Action(a) => {
            body["type"] = json!("action");
            body["action"] = match a {
                AgentAction::TransferTo(to) => json!({ "type": "transfer", "to": to }),
                AgentAction::Exit => json!({ "type": "exit" }),
                AgentAction::BreakLoop => json!({ "type": "break_loop" }),
                AgentAction::Interrupted { points, .. } => {
                    json!({ "type": "interrupted", "points": points })
                }
            };
        }
    }
    Event::default().event("agent").data(body.to_string())
}

type Events = BoxStream<'static, Result<Event, Infallible>>;

enum Prelude {
    /// The agents are running: their events go out as they come.
    Live(AgentEvents, BoxFuture<'static, Events>),
    /// The run ended: the events still queued, then the rest.
    Draining(AgentEvents, Events),
    Done,
}

/// A multi-agent run's native event stream: `event: agent` for each step as it happens,
/// then what `rest` gives once the run has an answer (the usual `sources`, `delta`s and
/// `done`, or `interrupted`, or `error`).
pub(crate) fn with_agent_events(
    events: AgentEvents,
    rest: BoxFuture<'static, Events>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Prelude::Live(events, rest), |st| async move {
        match st {
            Prelude::Live(mut events, mut rest) => {
                let next = match select(Box::pin(events.next()), &mut rest).await {
                    Either::Left((next, _)) => Either::Left(next),
                    Either::Right((tail, _)) => Either::Right(tail),
                };
                match next {
                    Either::Left(Some(Ok(e))) => {
                        let ev: Events = futures_util::stream::once(async move {
                            Ok::<_, Infallible>(agent_event(e).await)
                        })
                        .boxed();
                        Some((ev, Prelude::Live(events, rest)))
                    }
                    // The agents' channel closed: wait for the answer.
                    Either::Left(_) => {
                        let tail = rest.await;
                        Some((tail, Prelude::Done))
                    }
                    Either::Right(tail) => Some((
                        futures_util::stream::empty().boxed(),
                        Prelude::Draining(events, tail),
                    )),
                }
            }
            Prelude::Draining(mut events, tail) => match events.try_next() {
                Some(Ok(e)) => {
                    let ev: Events = futures_util::stream::once(async move {
                        Ok::<_, Infallible>(agent_event(e).await)
                    })
                    .boxed();
                    Some((ev, Prelude::Draining(events, tail)))
                }
                _ => Some((tail, Prelude::Done)),
            },
            Prelude::Done => None,
        }
    })
    .flatten()
}

/// Most events a [`Batched`] stream holds back before it lets them go.
const MAX_BATCH: usize = 16;

/// Scheduler rounds without a new event after which a [`Batched`] stream lets its batch
/// go.
const IDLE_ROUNDS: u8 = 3;

/// Events that are ready together leave together: one write to the client instead of
/// one per event.
///
/// An answer's chunks come from the upstream connection's task, one decoded piece at a
/// time, so after each event the stream is briefly empty; hyper writes out what it has
/// whenever the body is empty, which made one `writev` per event (and one read per event
/// for the client). This stream instead lets the feeding tasks run once more (it wakes
/// itself and yields) after collecting what is ready, and releases the batch when a
/// round brings nothing new, at the end, or at [`MAX_BATCH`] events. A lone event (a
/// model generating token by token) waits one scheduler round, microseconds.
pub(crate) struct Batched<S: Stream> {
    inner: Pin<Box<S>>,
    held: VecDeque<S::Item>,
    releasing: bool,
    ended: bool,
    /// Rounds in a row that brought nothing new.
    idle: u8,
}

impl<S: Stream> Batched<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner: Box::pin(inner),
            held: VecDeque::new(),
            releasing: false,
            ended: false,
            idle: 0,
        }
    }
}

// Nothing is pinned structurally: the inner stream is pinned on the heap.
impl<S: Stream> Unpin for Batched<S> {}

impl<S: Stream> Stream for Batched<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if this.releasing {
            if let Some(item) = this.held.pop_front() {
                return Poll::Ready(Some(item));
            }
            this.releasing = false;
        }
        let mut more = false;
        while !this.ended && this.held.len() < MAX_BATCH {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.held.push_back(item);
                    more = true;
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if this.held.is_empty() {
            return if this.ended {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        this.idle = if more { 0 } else { this.idle.saturating_add(1) };
        if this.idle < IDLE_ROUNDS && !this.ended && this.held.len() < MAX_BATCH {
            // One more round for the tasks that feed the stream before the batch goes.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.releasing = true;
        Poll::Ready(this.held.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the runs of items the consumer gets between two `Pending`s: what hyper
    /// would write at once.
    struct Runs<S> {
        inner: S,
        current: usize,
        runs: Vec<usize>,
    }

    impl<S: Stream + Unpin> std::future::Future for Runs<S> {
        type Output = Vec<usize>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<usize>> {
            loop {
                match Pin::new(&mut self.inner).poll_next(cx) {
                    Poll::Ready(Some(_)) => self.current += 1,
                    Poll::Ready(None) => {
                        let c = self.current;
                        self.runs.push(c);
                        return Poll::Ready(std::mem::take(&mut self.runs));
                    }
                    Poll::Pending => {
                        let c = std::mem::take(&mut self.current);
                        if c > 0 {
                            self.runs.push(c);
                        }
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn items_fed_one_at_a_time_by_another_task_leave_together() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        tokio::spawn(async move {
            for i in 0..9 {
                tx.send(i).await.unwrap();
            }
        });
        let fed = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let runs = Runs {
            inner: Batched::new(fed),
            current: 0,
            runs: Vec::new(),
        }
        .await;
        assert_eq!(runs, vec![9]);
    }

    /// The real source of the ping-pong: an upstream's SSE body read through reqwest,
    /// whose connection task hands over one decoded piece per round. Read as is, nine
    /// events come one per round; batched, together.
    #[tokio::test(flavor = "current_thread")]
    async fn an_upstream_body_read_through_reqwest_leaves_in_one_batch() {
        use axum::response::sse::Sse;
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                let events =
                    (0..9).map(|i| Ok::<_, Infallible>(Event::default().data(i.to_string())));
                Sse::new(futures_util::stream::iter(events))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let client = reqwest::Client::new();
        let body = || async { client.get(&url).send().await.unwrap().bytes_stream() };
        let plain = Runs {
            inner: Box::pin(body().await),
            current: 0,
            runs: Vec::new(),
        }
        .await;
        assert!(
            plain.len() > 3,
            "read as is, the events come apart: {plain:?}"
        );
        let batched = Runs {
            inner: Batched::new(body().await),
            current: 0,
            runs: Vec::new(),
        }
        .await;
        assert_eq!(batched, vec![9]);
    }
}

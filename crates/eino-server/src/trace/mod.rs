//! Callback handlers of the service: [`RunTracer`] records one run's nodes (timings,
//! inputs/outputs, errors, token usage) for `/api/v1/runs`; [`MetricsHandler`] counts
//! component calls, latency, errors and tokens for `/metrics`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use eino::callbacks::{
    CallbackStream, CallbackValue, ComponentKind, Handler, RunInfo, ScopeValue, StreamEnd,
    StreamWatcher,
};
use eino::schema::{Concat, Message};
use eino::Error;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod component_metrics;
mod summary;

pub use component_metrics::MetricsHandler;
use summary::{summarize, Payload};

fn usage_of(v: CallbackValue<'_>) -> Option<(u64, u64)> {
    let m = v.downcast_ref::<Message>()?;
    let u = m.meta.as_ref()?.usage.as_ref()?;
    Some((u.prompt_tokens, u.completion_tokens))
}

/// One node of a run's trace, as stored (see `GET /api/v1/runs/{id}`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeTrace {
    // Cows as the callbacks give them: a static name or type is not copied per run.
    name: Cow<'static, str>,
    component: &'static str,
    typ: Cow<'static, str>,
    start_ms: f64,
    duration_ms: Option<f64>,
    input: Payload,
    output: Payload,
    error: Option<String>,
    streamed: bool,
}

#[derive(Default)]
struct Recorded {
    nodes: Vec<NodeTrace>,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Streamed outputs being watched, not yet ended or dropped.
    streams_open: usize,
}

/// Records one run. Add it to the run's context with `Context::with_callbacks`, then call
/// [`RunTracer::finish`] after the answer (and its stream) is complete.
///
/// A streamed node's output is watched as its reader takes it ([`StreamWatcher`]: no copy
/// of the stream, no task); the stream's end, or its reader's drop, is the node's end.
#[derive(Clone)]
pub struct RunTracer {
    started: Instant,
    rec: Arc<Mutex<Recorded>>,
    /// Told when a watched stream ends, for [`RunTracer::finish`].
    stream_ended: Arc<Notify>,
    /// Once fired, [`RunTracer::finish`] stops waiting for streams still open.
    cancel: Option<CancellationToken>,
}

/// What the tracer's scope value holds for a node: its index in the trace and when it
/// started.
type NodeScope = (usize, Instant);

impl Default for RunTracer {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`RunTracer::finish`] returns.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    /// The nodes, in the order they started.
    pub nodes: Vec<NodeTrace>,
    /// Prompt tokens reported by models.
    pub prompt_tokens: u64,
    /// Completion tokens reported by models.
    pub completion_tokens: u64,
}

/// Drop the inputs and outputs of a trace that was `size` bytes of JSON, more than
/// `max_bytes`: every node keeps its name, timings and error, and its input and output say
/// they were clipped.
pub fn clip_nodes(nodes: &mut [NodeTrace], size: usize, max_bytes: usize) {
    let note = Payload::Text(format!(
        "<clipped: this run's trace was {size} bytes, more than {max_bytes} \
         (telemetry.runs_max_trace_bytes)>"
    ));
    for n in nodes {
        n.input = note.clone();
        n.output = note.clone();
    }
}

/// One model node whose input is `text` (tests of the writer).
#[cfg(test)]
pub(crate) fn test_nodes(text: &str) -> Vec<NodeTrace> {
    vec![NodeTrace {
        name: "model".into(),
        component: "ChatModel",
        typ: "Fake".into(),
        start_ms: 0.0,
        duration_ms: Some(1.0),
        input: Payload::Text(text.into()),
        output: Payload::Null,
        error: None,
        streamed: false,
    }]
}

impl RunTracer {
    /// A tracer whose clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            rec: Arc::default(),
            stream_ended: Arc::default(),
            cancel: None,
        }
    }

    /// This tracer, its [`finish`](Self::finish) waiting no longer for streamed outputs
    /// still being read once `token` fires (the run's cancellation): their nodes are
    /// recorded as cut short.
    pub fn with_cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.rec.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ms(&self, t: Instant) -> f64 {
        (t - self.started).as_secs_f64() * 1000.0
    }

    fn close(&self, scope: Option<&ScopeValue>, f: impl FnOnce(&mut NodeTrace)) {
        let Some(&(i, start)) = scope.and_then(|s| s.downcast_ref::<NodeScope>()) else {
            return;
        };
        let mut g = self.lock();
        if let Some(n) = g.nodes.get_mut(i) {
            n.duration_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
            f(n);
        }
    }

    fn open(&self, info: &RunInfo, input: Payload) -> Option<ScopeValue> {
        let now = Instant::now();
        let mut g = self.lock();
        g.nodes.push(NodeTrace {
            name: info.name.clone(),
            component: info.component.as_str(),
            typ: info.typ.clone(),
            start_ms: self.ms(now),
            duration_ms: None,
            input,
            output: Payload::Null,
            error: None,
            streamed: false,
        });
        let scope: NodeScope = (g.nodes.len() - 1, now);
        Some(Arc::new(scope))
    }

    fn add_tokens(&self, usage: Option<(u64, u64)>) {
        if let Some((p, c)) = usage {
            let mut g = self.lock();
            g.prompt_tokens += p;
            g.completion_tokens += c;
        }
    }

    /// Wait until every watched stream has ended (or the run is cancelled), then return
    /// the trace (once: the nodes move out of the tracer).
    pub async fn finish(&self) -> TraceSummary {
        loop {
            let ended = self.stream_ended.notified();
            let mut ended = std::pin::pin!(ended);
            // Registered before the count is read, so an end in between is not missed.
            ended.as_mut().enable();
            if self.lock().streams_open == 0 {
                break;
            }
            match &self.cancel {
                None => ended.await,
                Some(token) => {
                    tokio::select! {
                        _ = ended => {}
                        _ = token.cancelled() => {
                            self.cut_open_nodes();
                            break;
                        }
                    }
                }
            }
        }
        let mut g = self.lock();
        TraceSummary {
            nodes: std::mem::take(&mut g.nodes),
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
        }
    }

    /// Mark the nodes still open when the run was cancelled.
    fn cut_open_nodes(&self) {
        for n in &mut self.lock().nodes {
            if n.duration_ms.is_none() && n.error.is_none() {
                n.error = Some("cancelled before it ended".into());
            }
        }
    }
}

/// Collects a streamed node's output as its reader takes it, and closes the node at the
/// stream's end.
struct NodeWatcher {
    tracer: RunTracer,
    scope: ScopeValue,
    is_model: bool,
    chunks: Vec<Message>,
    error: Option<String>,
}

impl StreamWatcher for NodeWatcher {
    fn on_item(&mut self, item: Result<CallbackValue<'_>, &Error>) {
        match item {
            Ok(c) => {
                if let Some(m) = c.downcast_ref::<Message>() {
                    self.chunks.push(m.clone());
                }
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn on_finish(self: Box<Self>, end: StreamEnd) {
        let Self {
            tracer,
            scope,
            is_model,
            chunks,
            mut error,
        } = *self;
        if end == StreamEnd::Dropped && error.is_none() {
            // Not always a cancellation: a reader may need no more of the stream.
            error = Some("its reader stopped before the end".into());
        }
        let joined = (!chunks.is_empty())
            .then(|| Message::concat(chunks).ok())
            .flatten();
        let usage = joined
            .as_ref()
            .filter(|_| is_model)
            .and_then(|m| usage_of(m));
        tracer.close(Some(&scope), |n| {
            n.streamed = true;
            n.error = error;
            if let Some(m) = &joined {
                n.output = Payload::message(m);
            }
        });
        tracer.add_tokens(usage);
        tracer.lock().streams_open -= 1;
        tracer.stream_ended.notify_waiters();
    }
}

impl Handler for RunTracer {
    fn on_start(
        &self,
        info: &RunInfo,
        input: CallbackValue<'_>,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        self.open(info, summarize(input))
    }

    fn on_end(&self, info: &RunInfo, output: CallbackValue<'_>, scope: Option<&ScopeValue>) {
        // Only model calls report tokens; the graph's own output repeats the model's message.
        let usage = (info.component == ComponentKind::ChatModel)
            .then(|| usage_of(output))
            .flatten();
        self.close(scope, |n| n.output = summarize(output));
        self.add_tokens(usage);
    }

    fn on_error(&self, _: &RunInfo, error: &Error, scope: Option<&ScopeValue>) {
        self.close(scope, |n| n.error = Some(error.to_string()));
    }

    fn on_start_with_stream_input(
        &self,
        info: &RunInfo,
        input: CallbackStream,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        drop(input);
        self.open(info, Payload::Text("<stream>".into()))
    }

    fn watch_stream_output(
        &self,
        info: &RunInfo,
        scope: Option<&ScopeValue>,
    ) -> Option<Box<dyn StreamWatcher>> {
        let scope = scope.cloned()?;
        self.lock().streams_open += 1;
        Some(Box::new(NodeWatcher {
            tracer: self.clone(),
            scope,
            is_model: info.component == ComponentKind::ChatModel,
            chunks: Vec::new(),
            error: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eino::compose::{stream_lambda, Chain, Compiled, Context, Runnable};
    use eino::schema::{pipe, StreamReader, StreamWriter};
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A node's output as the stored JSON has it.
    fn output(n: &NodeTrace) -> serde_json::Value {
        serde_json::to_value(&n.output).unwrap()
    }

    /// A chain whose one node streams what is written to the returned writer. (A stand-in
    /// for a model: these tests are about the callbacks' stream copies.)
    fn streaming_chain() -> (Compiled<Vec<Message>, Message>, StreamWriter<Message>) {
        let (tx, rx) = pipe::<Message>(8);
        let rx = Mutex::new(Some(rx));
        let chain = Chain::<Vec<Message>, Vec<Message>>::new()
            .then_keyed(
                "gen",
                stream_lambda(move |_: Vec<Message>| {
                    let rx = rx.lock().unwrap().take();
                    async move { rx.ok_or_else(|| Error::internal("streams once")) }
                }),
            )
            .compile()
            .unwrap();
        (chain, tx)
    }

    /// The chain's answer stream, run with a tracer and a cancellation token, and the
    /// writer that feeds it.
    async fn traced_stream() -> (
        StreamReader<Message>,
        StreamWriter<Message>,
        RunTracer,
        CancellationToken,
    ) {
        let (chain, tx) = streaming_chain();
        let (tracer, cancel) = (RunTracer::new(), CancellationToken::new());
        let ctx = Context::new()
            .with_cancel(cancel.clone())
            .with_callbacks(Arc::new(tracer.clone()));
        let out = chain.stream(vec![Message::user("hi")], &ctx).await.unwrap();
        (out, tx, tracer, cancel)
    }

    #[tokio::test]
    async fn a_streamed_node_closes_when_its_reader_takes_the_end() {
        let (mut out, tx, tracer, _cancel) = traced_stream().await;
        for piece in ["a", "b"] {
            tx.send(Message::assistant(piece, vec![])).await.unwrap();
        }
        out.recv().await.unwrap().unwrap();
        assert_eq!(tracer.lock().streams_open, 2, "the graph's and the node's");
        drop(tx);
        while let Some(m) = out.recv().await {
            m.unwrap();
        }
        assert_eq!(
            tracer.lock().streams_open,
            0,
            "closed by the reader, no task"
        );
        let trace = tokio::time::timeout(Duration::from_secs(5), tracer.finish())
            .await
            .unwrap();
        let kinds: Vec<&str> = trace.nodes.iter().map(|n| n.component).collect();
        assert_eq!(kinds, ["Chain", "Lambda"]);
        for n in &trace.nodes {
            assert!(n.streamed && n.duration_ms.is_some(), "{n:?}");
            assert_eq!(output(n)["content"], "ab", "{n:?}");
            assert!(n.error.is_none(), "{n:?}");
        }
    }

    #[tokio::test]
    async fn the_finish_waits_for_a_stream_still_being_read() {
        let (mut out, tx, tracer, _cancel) = traced_stream().await;
        tx.send(Message::assistant("a", vec![])).await.unwrap();
        let finish = tokio::spawn({
            let tracer = tracer.clone();
            async move { tracer.finish().await }
        });
        out.recv().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!finish.is_finished(), "the answer is still open");
        drop(tx);
        while out.recv().await.is_some() {}
        let trace = tokio::time::timeout(Duration::from_secs(5), finish)
            .await
            .unwrap()
            .unwrap();
        assert!(trace.nodes.iter().all(|n| n.duration_ms.is_some()));
    }

    #[tokio::test]
    async fn a_cancelled_run_finishes_without_waiting_for_a_held_stream() {
        let (chain, tx) = streaming_chain();
        let cancel = CancellationToken::new();
        let tracer = RunTracer::new().with_cancel(cancel.clone());
        let ctx = Context::new()
            .with_cancel(cancel.clone())
            .with_callbacks(Arc::new(tracer.clone()));
        let mut out = chain.stream(vec![Message::user("hi")], &ctx).await.unwrap();
        tx.send(Message::assistant("a", vec![])).await.unwrap();
        out.recv().await.unwrap().unwrap();
        // Held, not read, not dropped: only the cancellation ends the wait.
        cancel.cancel();
        let trace = tokio::time::timeout(Duration::from_secs(5), tracer.finish())
            .await
            .expect("the finish gives up on open streams once the run is cancelled");
        assert!(trace
            .nodes
            .iter()
            .all(|n| n.error.as_deref().is_some_and(|e| e.contains("cancel"))));
        drop((out, tx));
    }

    /// Two graphs called straight with one tracer's context: each records its own output.
    #[tokio::test]
    async fn two_graphs_on_one_tracer_each_record_their_output() {
        let tracer = RunTracer::new();
        let ctx = Context::new().with_callbacks(Arc::new(tracer.clone()));
        for piece in ["a", "b"] {
            let (chain, tx) = streaming_chain();
            let mut out = chain.stream(vec![Message::user("hi")], &ctx).await.unwrap();
            tx.send(Message::assistant(piece, vec![])).await.unwrap();
            drop(tx);
            while let Some(m) = out.recv().await {
                m.unwrap();
            }
        }
        let trace = tokio::time::timeout(Duration::from_secs(5), tracer.finish())
            .await
            .unwrap();
        let graphs: Vec<serde_json::Value> = trace
            .nodes
            .iter()
            .filter(|n| n.component == "Chain")
            .map(|n| output(n)["content"].clone())
            .collect();
        assert_eq!(graphs, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_cancelled_stream_still_finishes_its_trace() {
        let (mut out, tx, tracer, cancel) = traced_stream().await;
        tx.send(Message::assistant("a", vec![])).await.unwrap();
        out.recv().await.unwrap().unwrap();
        // The client goes away: the answer is dropped and the run cancelled while the
        // source is still open.
        drop(out);
        cancel.cancel();
        let trace = tokio::time::timeout(Duration::from_secs(5), tracer.finish())
            .await
            .expect("the finish does not wait for a source nobody reads");
        assert_eq!(trace.nodes.len(), 2);
        for n in &trace.nodes {
            assert!(n.duration_ms.is_some(), "{n:?}");
            let error = n.error.as_deref().unwrap_or_default();
            assert!(error.contains("stopped before the end"), "{n:?}");
        }
        drop(tx);
    }
}

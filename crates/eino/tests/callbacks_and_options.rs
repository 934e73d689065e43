//! Callback and call-option behaviour (inventory §4 cases 25 and 26, §3.10 ordering), chains,
//! registered merges (case 14) and the tracing handler.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{s, FakeModel};
use eino::callbacks::{CallbackValue, Handler, RunInfo, ScopeValue};
use eino::component::{ChatModel, ChatOptions};
use eino::compose::{
    lambda, CallOption, Chain, ChainBranch, CompileOptions, Context, Graph, Parallel, Runnable,
    END, START,
};
use eino::schema::{Message, StreamReader};

#[derive(Default)]
struct Counter {
    start: AtomicUsize,
    end: AtomicUsize,
    error: AtomicUsize,
    names: Mutex<Vec<String>>,
}

impl Handler for Counter {
    fn on_start(
        &self,
        info: &RunInfo,
        _: CallbackValue<'_>,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        self.start.fetch_add(1, Ordering::SeqCst);
        self.names
            .lock()
            .unwrap()
            .push(format!("{}:{}", info.component, info.name));
        None
    }
    fn on_end(&self, _: &RunInfo, _: CallbackValue<'_>, _: Option<&ScopeValue>) {
        self.end.fetch_add(1, Ordering::SeqCst);
    }
    fn on_error(&self, _: &RunInfo, _: &eino::Error, _: Option<&ScopeValue>) {
        self.error.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn case25_callbacks_on_early_failure() {
    let mut g = Graph::<String, String>::new();
    let n = g.add_node("1", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::dag()).unwrap();
    let h = Arc::new(Counter::default());
    let ctx = Context::new().with_callbacks(h.clone()).with_max_steps(1);
    assert!(app.invoke(s("x"), &ctx).await.is_err());
    assert_eq!(h.start.load(Ordering::SeqCst), 1);
    assert_eq!(h.error.load(Ordering::SeqCst), 1);
    assert_eq!(h.end.load(Ordering::SeqCst), 0);
}

#[derive(Clone, Debug, PartialEq)]
struct LambdaOpt(&'static str);

#[tokio::test]
async fn case26_designated_options_and_callbacks_in_all_modes() {
    let m2 = FakeModel::default();
    let m3 = FakeModel::default();
    let seen_lambda = Arc::new(Mutex::new(Vec::new()));
    // START -> 1 -> 2 -> adapt -> 3 -> END
    let app = {
        let mut g2 = Graph::<String, Message>::new();
        let l1 = g2.add_node(
            "1",
            eino::compose::Lambda::new().with_invoke({
                let sl = seen_lambda.clone();
                move |x: String, ctx: Context| {
                    sl.lock()
                        .unwrap()
                        .push(ctx.options::<LambdaOpt>().cloned().collect::<Vec<_>>());
                    async move { Ok(vec![Message::user(x)]) }
                }
            }),
        );
        let c2 = g2.add_node("2", Arc::new(m2.clone()) as Arc<dyn ChatModel>);
        let adapt = g2.add_node("adapt", lambda(|m: Message| async move { Ok(vec![m]) }));
        let c3 = g2.add_node("3", Arc::new(m3.clone()) as Arc<dyn ChatModel>);
        g2.add_edge(START, l1);
        g2.add_edge(l1, c2);
        g2.add_edge(c2, adapt);
        g2.add_edge(adapt, c3);
        g2.add_edge(c3, END);
        g2.compile(CompileOptions::default()).unwrap()
    };
    let h = Arc::new(Counter::default());
    let ctx = Context::new()
        .with_option(
            CallOption::chat_model(ChatOptions::default().with_model("123")).designate("2"),
        )
        .with_option(
            CallOption::chat_model(ChatOptions::default().with_model("456")).designate("3"),
        )
        .with_option(CallOption::chat_model(
            ChatOptions::default().with_top_p(1.0),
        ))
        .with_option(CallOption::lambda(LambdaOpt("1")).designate("1"))
        .with_callbacks_for(h.clone(), ["3"]);

    let out = app.invoke(s("hi"), &ctx).await.unwrap();
    assert_eq!(out.content, "echo: echo: hi");
    let _ = app
        .stream(s("hi"), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    let _ = app
        .collect(StreamReader::once(s("hi")), &ctx)
        .await
        .unwrap();
    let _ = app
        .transform(StreamReader::once(s("hi")), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();

    for (seen, model) in [(&m2.seen, "123"), (&m3.seen, "456")] {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        for o in seen.iter() {
            assert_eq!(o.model.as_deref(), Some(model));
            assert_eq!(o.top_p, Some(1.0));
        }
    }
    for opts in seen_lambda.lock().unwrap().iter() {
        assert_eq!(opts, &vec![LambdaOpt("1")]);
    }
    // The designated handler saw only node 3, once per mode.
    assert_eq!(h.start.load(Ordering::SeqCst), 4);
    assert!(h.names.lock().unwrap().iter().all(|n| n == "ChatModel:3"));

    // Designating to an unknown node, or the wrong kind, is an error before anything runs.
    let bad = Context::new().with_option(CallOption::lambda(LambdaOpt("x")).designate("nope"));
    assert!(app.invoke(s("hi"), &bad).await.is_err());
    let wrong =
        Context::new().with_option(CallOption::chat_model(ChatOptions::default()).designate("1"));
    let e = app.invoke(s("hi"), &wrong).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("is different from which the designated node[1]"),
        "{e}"
    );
}

#[derive(Default)]
struct Order(Mutex<Vec<String>>, &'static str);

impl Handler for Order {
    fn on_start(
        &self,
        info: &RunInfo,
        _: CallbackValue<'_>,
        _: Option<&ScopeValue>,
    ) -> Option<ScopeValue> {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {} {}", self.1, info.name));
        None
    }
    fn on_end(&self, info: &RunInfo, _: CallbackValue<'_>, _: Option<&ScopeValue>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("end {} {}", self.1, info.name));
    }
}

#[tokio::test]
async fn graph_and_node_callbacks_nest_in_order() {
    let log = Arc::new(Order(Mutex::new(Vec::new()), "a"));
    let mut g = Graph::<String, String>::new();
    let n = g.add_node("n", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::default().with_name("g")).unwrap();
    app.invoke(s("x"), &Context::new().with_callbacks(log.clone()))
        .await
        .unwrap();
    let got = log.0.lock().unwrap().clone();
    assert_eq!(got, ["start a g", "start a n", "end a n", "end a g"]);
}

#[tokio::test]
async fn chain_with_parallel_and_branch() {
    #[derive(Clone, Debug, PartialEq)]
    enum Route {
        Short,
        Long,
    }
    let chain = Chain::<String>::new()
        .parallel(
            Parallel::new()
                .add(
                    "upper",
                    lambda(|x: String| async move { Ok(x.to_uppercase()) }),
                )
                .add("len", lambda(|x: String| async move { Ok(x.len() as i64) })),
        )
        .then(lambda(|m: eino::schema::Map| async move {
            Ok(format!(
                "{}:{}",
                m["upper"].as_str().unwrap_or(""),
                m["len"]
            ))
        }))
        .branch(
            ChainBranch::new(|x: &String| {
                Ok(if x.len() > 6 {
                    Route::Long
                } else {
                    Route::Short
                })
            })
            .add(
                Route::Short,
                lambda(|x: String| async move { Ok(format!("short {x}")) }),
            )
            .add(
                Route::Long,
                lambda(|x: String| async move { Ok(format!("long {x}")) }),
            ),
        )
        .compile()
        .unwrap();
    let keys = chain.node_keys();
    assert_eq!(
        keys,
        [
            "node_0_parallel_0",
            "node_0_parallel_1",
            "node_1",
            "node_2_branch_Short",
            "node_2_branch_Long"
        ]
    );
    let ctx = Context::new();
    assert_eq!(chain.invoke(s("ab"), &ctx).await.unwrap(), "short AB:2");
    assert_eq!(
        chain.invoke(s("abcdef"), &ctx).await.unwrap(),
        "long ABCDEF:6"
    );
    let streamed = chain
        .stream(s("ab"), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed, "short AB:2");
}

/// Case 14: a registered merge for a user type (A summed, B sorted).
#[derive(Clone, Debug, PartialEq, Default)]
struct TestType {
    a: i64,
    b: Vec<String>,
}
fn merge_test_type(vs: Vec<TestType>) -> eino::Result<TestType> {
    let mut out = TestType::default();
    for v in vs {
        out.a += v.a;
        out.b.extend(v.b);
    }
    out.b.sort();
    Ok(out)
}
eino::graph_value!(TestType: merge = merge_test_type);

#[tokio::test]
async fn case14_registered_merge_for_user_type() {
    let mut g = Graph::<String, TestType>::new();
    let mk = |a: i64, b: &'static [&'static str]| {
        lambda(move |_: String| async move {
            Ok(TestType {
                a,
                b: b.iter().map(|x| x.to_string()).collect(),
            })
        })
    };
    let n1 = g.add_node("1", mk(1, &["1", "2"]));
    let n2 = g.add_node("2", mk(2, &["22", "3"]));
    let n3 = g.add_node("3", mk(3, &["33", "333"]));
    for n in [n1, n2, n3] {
        g.add_edge(START, n);
        g.add_edge(n, END);
    }
    let app = g.compile(CompileOptions::dag()).unwrap();
    let out = app.invoke(s("x"), &Context::new()).await.unwrap();
    assert_eq!(out.a, 6);
    assert_eq!(out.b, ["1", "2", "22", "3", "33", "333"]);

    let dup =
        eino::compose::merge_maps(vec![common::map(&[("1", "1")]), common::map(&[("1", "x")])])
            .unwrap_err();
    assert!(dup.to_string().contains("duplicated key ('1') found"));
}

#[tokio::test]
async fn compile_rejects_what_rustc_cannot() {
    // Unreachable node.
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", lambda(|x: String| async move { Ok(x) }));
    let _orphan = g.add_node("orphan", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, a);
    g.add_edge(a, END);
    assert!(g
        .compile(CompileOptions::default())
        .unwrap_err()
        .to_string()
        .contains("unreachable"));

    // No path to END.
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", lambda(|x: String| async move { Ok(x) }));
    let dead = g.add_node("dead", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, a);
    g.add_edge(a, END);
    g.add_edge(a, dead);
    assert!(g
        .compile(CompileOptions::default())
        .unwrap_err()
        .to_string()
        .contains("no path to END"));

    // Cycle in DAG mode.
    let mut g = Graph::<eino::schema::Map, eino::schema::Map>::new();
    let a = g.add_node("a", lambda(|x: eino::schema::Map| async move { Ok(x) }));
    let b = g.add_node("b", lambda(|x: eino::schema::Map| async move { Ok(x) }));
    g.add_edge(START, a);
    g.add_edge(a, b);
    g.add_edge(b, a);
    g.add_edge(b, END);
    assert!(g
        .compile(CompileOptions::dag())
        .unwrap_err()
        .to_string()
        .contains("cycles"));

    // A streaming node whose type has no Concat rule.
    #[derive(Clone)]
    struct NoConcat;
    eino::graph_value!(NoConcat);
    let mut g = Graph::<String, NoConcat>::new();
    let a = g.add_node(
        "a",
        eino::compose::stream_lambda(|_: String| async move {
            Ok(StreamReader::from_vec(vec![NoConcat, NoConcat]))
        }),
    );
    g.add_edge(START, a);
    g.add_edge(a, END);
    assert!(g
        .compile(CompileOptions::default())
        .unwrap_err()
        .to_string()
        .contains("no Concat rule"));

    // Duplicate keys.
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", lambda(|x: String| async move { Ok(x) }));
    let _ = g.add_node("a", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, a);
    g.add_edge(a, END);
    assert!(g
        .compile(CompileOptions::default())
        .unwrap_err()
        .to_string()
        .contains("already present"));
}

#[tokio::test]
async fn tracing_handler_emits_genai_spans() {
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Default, Clone)]
    struct Fields(Arc<Mutex<Vec<String>>>);
    /// Records every span field as `name=value`.
    struct V<'a>(&'a Mutex<Vec<String>>);
    impl tracing::field::Visit for V<'_> {
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.lock().unwrap().push(format!("{}={:?}", f.name(), v));
        }
        fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
            self.0.lock().unwrap().push(format!("{}={}", f.name(), v));
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Fields {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            attrs.record(&mut V(&self.0));
        }
        fn on_record(
            &self,
            _: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            values.record(&mut V(&self.0));
        }
    }
    let fields = Fields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    struct UsageModel;
    impl ChatModel for UsageModel {
        fn generate<'a>(
            &'a self,
            _: &'a [Message],
            _: &'a ChatOptions,
        ) -> futures_util::future::BoxFuture<'a, eino::Result<Message>> {
            Box::pin(async {
                let mut m = Message::assistant("hi", vec![]);
                m.meta = Some(eino::schema::ResponseMeta {
                    finish_reason: Some("stop".into()),
                    usage: Some(eino::schema::TokenUsage {
                        prompt_tokens: 7,
                        completion_tokens: 2,
                        total_tokens: 9,
                        ..Default::default()
                    }),
                });
                Ok(m)
            })
        }
        fn stream<'a>(
            &'a self,
            m: &'a [Message],
            o: &'a ChatOptions,
        ) -> futures_util::future::BoxFuture<'a, eino::Result<StreamReader<Message>>> {
            Box::pin(async move { Ok(StreamReader::once(self.generate(m, o).await?)) })
        }
        fn with_tools(&self, _: Vec<eino::schema::ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
            Ok(Arc::new(UsageModel))
        }
        fn model_name(&self) -> Option<&str> {
            Some("smollm2")
        }
    }
    let mut g = Graph::<Vec<Message>, Message>::new();
    let m = g.add_node("model", Arc::new(UsageModel) as Arc<dyn ChatModel>);
    g.add_edge(START, m);
    g.add_edge(m, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let ctx = Context::new().with_callbacks(Arc::new(eino::callbacks::TracingHandler));
    app.invoke(vec![Message::user("q")], &ctx).await.unwrap();
    let got = fields.0.lock().unwrap().clone();
    for want in [
        "gen_ai.operation.name=chat",
        "gen_ai.operation.name=invoke_graph",
        "gen_ai.request.model=smollm2",
        "gen_ai.usage.input_tokens=7",
        "gen_ai.usage.output_tokens=2",
        "gen_ai.response.finish_reasons=stop",
    ] {
        assert!(got.iter().any(|f| f == want), "missing {want} in {got:?}");
    }
    // Streamed, the usage and finish reason are watched in the model's stream.
    fields.0.lock().unwrap().clear();
    let out = app.stream(vec![Message::user("q")], &ctx).await.unwrap();
    out.concat().await.unwrap();
    let got = fields.0.lock().unwrap().clone();
    for want in [
        "gen_ai.usage.input_tokens=7",
        "gen_ai.usage.output_tokens=2",
        "gen_ai.response.finish_reasons=stop",
    ] {
        assert!(
            got.iter().any(|f| f == want),
            "streamed: missing {want} in {got:?}"
        );
    }
}

#[tokio::test]
async fn tools_node_fires_callbacks_per_tool_call() {
    use eino::component::{tool_fn, Tool};
    use eino::compose::ToolsNode;
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct A {}
    let t: Arc<dyn Tool> = Arc::new(tool_fn("get_time", "", |_: A| async { Ok("noon") }));
    let mut g = Graph::<Message, Vec<Message>>::new();
    let n = g.add_node("tools", ToolsNode::new([t]));
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let counter = Arc::new(Counter::default());
    let ctx = Context::new().with_callbacks(counter.clone());
    let call = Message::assistant(
        "",
        vec![
            eino::schema::ToolCall::function("1", "get_time", "{}"),
            eino::schema::ToolCall::function("2", "get_time", "{}"),
        ],
    );
    app.invoke(call, &ctx).await.unwrap();
    let names = counter.names.lock().unwrap().clone();
    assert_eq!(
        names,
        [
            "Graph:Graph",
            "ToolsNode:tools",
            "Tool:get_time",
            "Tool:get_time"
        ]
    );
    assert_eq!(counter.end.load(Ordering::SeqCst), 4);
}

/// Reads its copy of every output stream to the end, in the background, as a tracer does.
#[derive(Default)]
struct StreamReaderHandler {
    ended_with_error: Arc<AtomicUsize>,
}

impl Handler for StreamReaderHandler {
    fn on_end_with_stream_output(
        &self,
        _: &RunInfo,
        mut output: eino::callbacks::CallbackStream,
        _: Option<&ScopeValue>,
    ) {
        let errors = self.ended_with_error.clone();
        tokio::spawn(async move {
            while let Some(item) = output.recv().await {
                if item.is_err() {
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_does_not_keep_its_source_alive_through_handler_copies() {
    // The source streams for a long time and notes when nobody reads it any more.
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = closed.clone();
    let source = eino::compose::stream_lambda(move |_: String| {
        let seen = seen.clone();
        async move {
            let (w, r) = eino::schema::pipe(1);
            tokio::spawn(async move {
                for i in 0..10_000 {
                    if w.send(format!("{i}")).await.is_err() {
                        seen.store(true, Ordering::SeqCst);
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            });
            Ok(r)
        }
    });
    let chain = Chain::<String, String>::new()
        .then_keyed("source", source)
        .compile()
        .unwrap();
    let handler = Arc::new(StreamReaderHandler::default());
    let token = tokio_util::sync::CancellationToken::new();
    let ctx = Context::new()
        .with_callbacks(handler.clone())
        .with_cancel(token.clone());
    let mut out = chain.stream("go".into(), &ctx).await.unwrap();
    out.recv().await.unwrap().unwrap();
    // The caller goes away: its reader is dropped and the run cancelled.
    drop(out);
    token.cancel();
    for _ in 0..200 {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        closed.load(Ordering::SeqCst),
        "the handler's copy kept the source running after cancellation"
    );
    assert!(handler.ended_with_error.load(Ordering::SeqCst) >= 1);
}

/// Watches every streamed output: what it saw, and how each stream ended.
#[derive(Default)]
struct Watching {
    log: Arc<Mutex<Vec<String>>>,
    copies: AtomicUsize,
}

struct Watch {
    name: String,
    seen: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl eino::callbacks::StreamWatcher for Watch {
    fn on_item(&mut self, item: Result<CallbackValue<'_>, &eino::Error>) {
        if let Some(s) = item.ok().and_then(|v| v.downcast_ref::<String>()) {
            self.seen.push(s.clone());
        }
    }
    fn on_finish(self: Box<Self>, end: eino::callbacks::StreamEnd) {
        let line = format!("{} {} {end:?}", self.name, self.seen.join(""));
        self.log.lock().unwrap().push(line);
    }
}

impl Handler for Watching {
    fn on_end_with_stream_output(
        &self,
        _: &RunInfo,
        _: eino::callbacks::CallbackStream,
        _: Option<&ScopeValue>,
    ) {
        self.copies.fetch_add(1, Ordering::SeqCst);
    }
    fn watch_stream_output(
        &self,
        info: &RunInfo,
        _: Option<&ScopeValue>,
    ) -> Option<Box<dyn eino::callbacks::StreamWatcher>> {
        Some(Box::new(Watch {
            name: format!("{}:{}", info.component, info.name),
            seen: Vec::new(),
            log: self.log.clone(),
        }))
    }
}

/// A chain whose one node streams its input's characters.
fn splitting_chain() -> eino::compose::Compiled<String, String> {
    Chain::<String, String>::new()
        .then_keyed(
            "split",
            eino::compose::stream_lambda(|x: String| async move {
                Ok(StreamReader::from_vec(
                    x.chars().map(|c| c.to_string()).collect(),
                ))
            }),
        )
        .compile()
        .unwrap()
}

#[tokio::test]
async fn a_watcher_sees_each_streamed_output_once_beside_a_copying_handler() {
    let chain = splitting_chain();
    let watching = Arc::new(Watching::default());
    let copying = Arc::new(StreamReaderHandler::default());
    let ctx = Context::new()
        .with_callbacks(watching.clone())
        .with_callbacks(copying.clone());
    let out = chain.stream("abc".into(), &ctx).await.unwrap();
    assert_eq!(out.concat().await.unwrap(), "abc");
    assert_eq!(
        watching.copies.load(Ordering::SeqCst),
        0,
        "a watcher gets no copy"
    );
    let mut log = watching.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        ["Chain:Chain abc Complete", "Lambda:split abc Complete"]
    );
}

#[tokio::test]
async fn a_watcher_hears_of_a_reader_dropped_early() {
    let chain = splitting_chain();
    let watching = Arc::new(Watching::default());
    let ctx = Context::new().with_callbacks(watching.clone());
    let mut out = chain.stream("abc".into(), &ctx).await.unwrap();
    out.recv().await.unwrap().unwrap();
    drop(out);
    let log = watching.log.lock().unwrap().clone();
    assert!(
        log.contains(&"Chain:Chain a Dropped".to_string()),
        "{log:?}"
    );
}

/// Go's `NewChainMultiBranch`: the condition picks several branches; their outputs are
/// merged for the next step. Picking none, or an unknown key, is an error.
#[tokio::test]
async fn chain_multi_branch_runs_every_selected_branch_and_merges() {
    let branch = |key: &'static str| {
        lambda(move |x: String| async move {
            let mut m = eino::schema::Map::new();
            m.insert(key.into(), serde_json::json!(format!("{key}:{x}")));
            Ok(m)
        })
    };
    let chain = Chain::<String>::new()
        .branch(
            ChainBranch::multi(|x: &String| {
                Ok(x.split(',')
                    .map(str::to_string)
                    .filter(|k| !k.is_empty())
                    .collect())
            })
            .add("a".to_string(), branch("a"))
            .add("b".to_string(), branch("b"))
            .add("c".to_string(), branch("c")),
        )
        .then(lambda(|m: eino::schema::Map| async move {
            Ok(m.keys().cloned().collect::<Vec<_>>().join("+"))
        }))
        .compile()
        .unwrap();
    let ctx = Context::new();
    assert_eq!(chain.invoke(s("a,c"), &ctx).await.unwrap(), "a+c");
    assert_eq!(chain.invoke(s("b"), &ctx).await.unwrap(), "b");
    let streamed = chain
        .stream(s("a,b,c"), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed, "a+b+c");
    let none = chain.invoke(s(""), &ctx).await.unwrap_err();
    assert!(none.to_string().contains("selected no branch"), "{none}");
    let unknown = chain.invoke(s("z"), &ctx).await.unwrap_err();
    assert!(
        unknown.to_string().contains("unintended end node"),
        "{unknown}"
    );
}

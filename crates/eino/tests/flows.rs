//! Retriever and indexer flows (inventory case 30) and the multi-agent building blocks.
//! Retrievers and agents here are small in-test fakes: the tests are about the flows'
//! routing, fusion and hand-off rules.

mod common;

use std::sync::{Arc, Mutex};

use common::{call_msg, ScriptedModel};
use eino::component::{
    IndexOptions, Indexer, RetrieveOptions, Retriever, Tool, ToolOptions, TransformOptions,
    Transformer,
};
use eino::compose::{lambda, Context};
use eino::flow::agent::{
    Agent, AgentTool, HostAgent, LoopAgent, ParallelAgent, RunnableAgent, SequentialAgent, Session,
};
use eino::flow::retriever::{
    reciprocal_rank_fusion, MultiQueryRetriever, ParentIndexer, ParentRetriever, RouterRetriever,
};
use eino::schema::{Document, Message};
use futures_util::future::BoxFuture;

fn doc(id: &str) -> Document {
    Document {
        id: id.into(),
        content: format!("doc {id}"),
        ..Document::default()
    }
}

fn ids(docs: &[Document]) -> Vec<&str> {
    docs.iter().map(|d| d.id.as_str()).collect()
}

/// Returns fixed documents and records the queries it got.
#[derive(Clone)]
struct Fixed {
    docs: Vec<Document>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Fixed {
    fn new(ids: &[&str]) -> Self {
        Self {
            docs: ids.iter().map(|i| doc(i)).collect(),
            queries: Arc::default(),
        }
    }
}

impl Retriever for Fixed {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        _: &'a RetrieveOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<Document>>> {
        self.queries.lock().unwrap().push(query.to_string());
        let docs = self.docs.clone();
        Box::pin(async move { Ok(docs) })
    }
}

#[test]
fn case30_rrf_order() {
    let list = |xs: &[&str]| xs.iter().map(|i| doc(i)).collect::<Vec<_>>();
    let fused = reciprocal_rank_fusion(
        vec![
            list(&["1", "2", "3", "4", "5"]),
            list(&["2", "3", "4", "5", "1"]),
            list(&["3", "4", "5", "1", "2"]),
        ],
        60.0,
    );
    assert_eq!(ids(&fused), ["3", "2", "4", "1", "5"]);
    let top = fused[0].score.unwrap();
    assert!((top - (1.0 / 62.0 + 1.0 / 61.0 + 1.0 / 60.0)).abs() < 1e-12);
}

#[tokio::test]
async fn case30_router_picks_two_of_three() {
    let (a, b, c) = (Fixed::new(&["1"]), Fixed::new(&["2"]), Fixed::new(&["3"]));
    let router = RouterRetriever::new([
        ("a", Arc::new(a.clone()) as Arc<dyn Retriever>),
        ("b", Arc::new(b.clone()) as Arc<dyn Retriever>),
        ("c", Arc::new(c.clone()) as Arc<dyn Retriever>),
    ])
    .router(|_q| async { Ok(vec!["a".to_string(), "c".to_string()]) });
    let docs = router
        .retrieve("query", &RetrieveOptions::default())
        .await
        .unwrap();
    assert_eq!(docs.len(), 2);
    assert!(b.queries.lock().unwrap().is_empty());
    let bad = RouterRetriever::new([("a", Arc::new(a) as Arc<dyn Retriever>)])
        .router(|_q| async { Ok(vec!["zzz".to_string()]) });
    let e = bad
        .retrieve("q", &RetrieveOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "router chose unknown retriever 'zzz'");
    // Without a router every retriever is asked (Go Eino would call a nil router here).
    let all = RouterRetriever::new([
        ("b", Arc::new(b) as Arc<dyn Retriever>),
        ("c", Arc::new(c) as Arc<dyn Retriever>),
    ]);
    let docs = all
        .retrieve("q", &RetrieveOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&docs), ["2", "3"]);
}

#[tokio::test]
async fn multi_query_rewrites_limits_and_dedupes() {
    let base = Fixed::new(&["x", "y"]);
    let model = ScriptedModel::new(vec![Message::assistant(
        "- what is rust\nrust language\n\nwhat is rust\nrust lang\nrust programming\nrust ide\nextra",
        vec![],
    )]);
    let mq = MultiQueryRetriever::with_model(Arc::new(base.clone()), Arc::new(model.clone()))
        .max_queries(3);
    let docs = mq
        .retrieve("rust?", &RetrieveOptions::default())
        .await
        .unwrap();
    assert_eq!(
        ids(&docs),
        ["x", "y"],
        "deduped by id, first occurrence kept"
    );
    let mut qs = base.queries.lock().unwrap().clone();
    qs.sort();
    assert_eq!(qs, ["rust lang", "rust language", "what is rust"]);
    let prompt = model.received.lock().unwrap()[0][0].content.clone();
    assert!(prompt.contains("Original question: rust?"));

    let custom =
        MultiQueryRetriever::with_rewriter(Arc::new(Fixed::new(&["z"])), |_q| async { Ok(vec![]) });
    assert_eq!(custom.queries("orig").await.unwrap(), ["orig"]);
}

#[tokio::test]
async fn case30_parent_retriever() {
    let subs: Vec<Document> = "123233"
        .chars()
        .enumerate()
        .map(|(i, p)| {
            let mut d = doc(&format!("sub{i}"));
            d.metadata
                .insert("parent".into(), serde_json::Value::String(p.to_string()));
            d
        })
        .collect();
    let base = Fixed {
        docs: subs,
        queries: Arc::default(),
    };
    let r = ParentRetriever::new(Arc::new(base), "parent", |ids: Vec<String>| async move {
        Ok(ids.iter().map(|i| doc(i)).collect())
    });
    let docs = r.retrieve("q", &RetrieveOptions::default()).await.unwrap();
    assert_eq!(ids(&docs), ["1", "2", "3"]);
}

/// Splits every document in two.
struct Halves;

impl Transformer for Halves {
    fn transform<'a>(
        &'a self,
        docs: Vec<Document>,
        _: &'a TransformOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<Document>>> {
        Box::pin(async move { Ok(docs.into_iter().flat_map(|d| [d.clone(), d]).collect()) })
    }
}

#[derive(Default)]
struct Collect(Mutex<Vec<Document>>);

impl Indexer for Collect {
    fn store<'a>(
        &'a self,
        docs: Vec<Document>,
        _: &'a IndexOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<String>>> {
        let ids = docs.iter().map(|d| d.id.clone()).collect();
        self.0.lock().unwrap().extend(docs);
        Box::pin(async move { Ok(ids) })
    }
}

#[tokio::test]
async fn case30_parent_indexer() {
    let store = Arc::new(Collect::default());
    let idx = ParentIndexer::new(store.clone(), Arc::new(Halves), "parent")
        .sub_ids(|p, n| Ok((0..n).map(|i| format!("{p}{i}")).collect()));
    let out = idx
        .store(vec![doc("id"), doc("ID")], &IndexOptions::default())
        .await
        .unwrap();
    assert_eq!(out, ["id0", "id1", "ID0", "ID1"]);
    let parent = store.0.lock().unwrap()[3].metadata["parent"].clone();
    assert_eq!(parent, "ID");
    let bad = ParentIndexer::new(store.clone(), Arc::new(Halves), "p").sub_ids(|_, _| Ok(vec![]));
    assert!(bad
        .store(vec![doc("a")], &IndexOptions::default())
        .await
        .is_err());
}

fn echo_agent(name: &str, reply: &'static str) -> Arc<dyn Agent> {
    Arc::new(RunnableAgent::new(
        name,
        format!("{name} specialist"),
        lambda(move |msgs: Vec<Message>| async move {
            let last = msgs.last().map(|m| m.content.clone()).unwrap_or_default();
            Ok(Message::assistant(format!("{reply} ({last})"), vec![]))
        }),
    ))
}

#[tokio::test]
async fn host_hands_off_to_one_or_several_specialists() {
    let handoffs = Arc::new(Mutex::new(Vec::new()));
    let h = handoffs.clone();
    let host_model = ScriptedModel::new(vec![
        call_msg("", &[("1", "weather", r#"{"request":"oslo"}"#)]),
        call_msg(
            "",
            &[
                ("2", "weather", r#"{"request":"a"}"#),
                ("3", "news", r#"{"request":"b"}"#),
            ],
        ),
        Message::assistant("I can answer that myself.", vec![]),
    ]);
    let host = HostAgent::new(
        Arc::new(host_model.clone()),
        vec![echo_agent("weather", "sunny"), echo_agent("news", "calm")],
    )
    .unwrap()
    .on_handoff(move |from, to| h.lock().unwrap().push(format!("{from}->{to}")));
    assert_eq!(*host_model.tools.lock().unwrap(), ["weather", "news"]);
    let session = Session::new();
    let ctx = Context::new();
    let one = host
        .run(vec![Message::user("weather?")], &session, &ctx)
        .await
        .unwrap();
    assert_eq!(one.content, "sunny (weather?)");
    let two = host
        .run(vec![Message::user("both")], &session, &ctx)
        .await
        .unwrap();
    assert_eq!(two.content, "weather: sunny (both)\n\nnews: calm (both)");
    let own = host
        .stream(vec![Message::user("hi")], &session, &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(own.content, "I can answer that myself.");
    assert_eq!(
        *handoffs.lock().unwrap(),
        ["host->weather", "host->weather", "host->news"]
    );
}

#[tokio::test]
async fn host_with_summarizer_and_duplicate_names() {
    let host_model = ScriptedModel::new(vec![call_msg(
        "",
        &[
            ("1", "a", r#"{"request":"x"}"#),
            ("2", "b", r#"{"request":"y"}"#),
        ],
    )]);
    let summarizer = ScriptedModel::new(vec![Message::assistant("summary", vec![])]);
    let host = HostAgent::new(
        Arc::new(host_model),
        vec![echo_agent("a", "A"), echo_agent("b", "B")],
    )
    .unwrap()
    .with_summarizer(Arc::new(summarizer.clone()));
    let out = host
        .run(vec![Message::user("q")], &Session::new(), &Context::new())
        .await
        .unwrap();
    assert_eq!(out.content, "summary");
    let sent = &summarizer.received.lock().unwrap()[0];
    assert_eq!(sent[1].name.as_deref(), Some("a"));
    assert_eq!(sent[2].content, "B (q)");
    let dup = HostAgent::new(
        Arc::new(ScriptedModel::default()),
        vec![echo_agent("a", "1"), echo_agent("a", "2")],
    );
    assert!(dup.is_err());
}

#[tokio::test]
async fn agent_as_tool() {
    let tool = AgentTool::new(echo_agent("translator", "bonjour"), Session::new());
    assert_eq!(tool.info().name, "translator");
    assert_eq!(tool.info().parameters["required"][0], "request");
    let out = tool
        .call(r#"{"request":"hello"}"#, &ToolOptions::default())
        .await
        .unwrap();
    assert_eq!(out, "bonjour (hello)");
    assert!(tool.call("{}", &ToolOptions::default()).await.is_err());
}

/// Counts its runs in the session and asks to exit the loop at the third.
struct Counter;

impl Agent for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn description(&self) -> &str {
        "counts"
    }
    fn run<'a>(
        &'a self,
        _: Vec<Message>,
        session: &'a Session,
        _: &'a Context,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async move {
            let n = session.get::<u32>("count").unwrap_or(0) + 1;
            session.set("count", n)?;
            if n == 3 {
                session.request_exit();
            }
            Ok(Message::assistant(format!("count {n}"), vec![]))
        })
    }
}

#[tokio::test]
async fn sequential_parallel_and_loop_share_the_session() {
    let session = Session::new();
    let ctx = Context::new();
    let seq =
        SequentialAgent::new("seq", vec![echo_agent("a", "A"), echo_agent("b", "B")]).unwrap();
    let out = seq
        .run(vec![Message::user("go")], &session, &ctx)
        .await
        .unwrap();
    // "b" saw "a"'s answer as the last message.
    assert_eq!(out.content, "B (A (go))");

    let par = ParallelAgent::new("par", vec![echo_agent("a", "A"), echo_agent("b", "B")]).unwrap();
    let out = par
        .run(vec![Message::user("x")], &session, &ctx)
        .await
        .unwrap();
    assert_eq!(out.content, "a: A (x)\n\nb: B (x)");
    assert_eq!(session.get::<String>("b").as_deref(), Some("B (x)"));

    let lp = LoopAgent::new("loop", vec![Arc::new(Counter)], 10).unwrap();
    let out = lp.run(vec![], &session, &ctx).await.unwrap();
    assert_eq!(out.content, "count 3");
    assert_eq!(session.get::<u32>("count"), Some(3));
    let capped = LoopAgent::new("capped", vec![echo_agent("e", "E")], 2).unwrap();
    let out = capped
        .run(vec![Message::user("s")], &session, &ctx)
        .await
        .unwrap();
    assert_eq!(out.content, "E (E (s))");
    assert!(LoopAgent::new("none", vec![], 1).is_err());
}

/// Each call: the query and the `top_k` it was given.
type Calls = Arc<Mutex<Vec<(String, Option<usize>)>>>;

/// Records each call's query and `top_k`; named like Go's test double.
#[derive(Clone, Default)]
struct Mock(Calls);

impl Retriever for Mock {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
        o: &'a RetrieveOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<Document>>> {
        self.0.lock().unwrap().push((query.to_string(), o.top_k));
        Box::pin(async move { Ok(vec![doc(query)]) })
    }
    fn type_name(&self) -> std::borrow::Cow<'static, str> {
        "MockRetriever".into()
    }
}

#[derive(Default)]
struct Names(Mutex<Vec<String>>);

impl eino::callbacks::Handler for Names {
    fn on_start(
        &self,
        info: &eino::callbacks::RunInfo,
        _: eino::callbacks::CallbackValue<'_>,
        _: Option<&eino::callbacks::ScopeValue>,
    ) -> Option<eino::callbacks::ScopeValue> {
        self.0.lock().unwrap().push(info.name.to_string());
        None
    }
}

/// Inventory case 30 (`TestRouterRetriever`): callbacks of the router, each retriever and
/// the fusion; here the call's options also reach the inner retrievers, in a graph node
/// and when called directly with a context.
#[tokio::test]
async fn retriever_flows_take_the_context() {
    use eino::compose::{CallOption, Graph, Runnable, END, START};
    let (a, b, c) = (Mock::default(), Mock::default(), Mock::default());
    let router = RouterRetriever::new([
        ("a", Arc::new(a.clone()) as Arc<dyn Retriever>),
        ("b", Arc::new(b.clone()) as Arc<dyn Retriever>),
        ("c", Arc::new(c.clone()) as Arc<dyn Retriever>),
    ])
    .router(|_q| async { Ok(vec!["a".to_string(), "b".to_string()]) });
    let mut g = Graph::<String, Vec<Document>>::new();
    let n = g.add_node("router", router.clone());
    g.add_edge(START, n);
    g.add_edge(n, END);
    let graph = g.compile(Default::default()).unwrap();
    let names = Arc::new(Names::default());
    let options = RetrieveOptions {
        top_k: Some(3),
        ..RetrieveOptions::default()
    };
    let ctx = Context::new()
        .with_callbacks(names.clone())
        .with_option(CallOption::retriever(options));
    let docs = graph.invoke("q".into(), &ctx).await.unwrap();
    assert_eq!(docs.len(), 1, "both found 'q': fused into one");
    assert_eq!(
        *names.0.lock().unwrap(),
        [
            "Graph",
            "router",
            "RouterLambda",
            "MockRetriever",
            "MockRetriever",
            "FusionFuncLambda"
        ]
    );
    assert_eq!(*a.0.lock().unwrap(), [("q".to_string(), Some(3))]);
    assert!(c.0.lock().unwrap().is_empty());

    // Multi-query and parent flows, called directly with a context.
    names.0.lock().unwrap().clear();
    let mq = MultiQueryRetriever::with_rewriter(Arc::new(b.clone()), |q| async move {
        Ok(vec![q.clone(), format!("{q}!")])
    });
    mq.retrieve_in("x", &ctx).await.unwrap();
    let parent = ParentRetriever::new(Arc::new(c.clone()), "parent", |_ids| async { Ok(vec![]) });
    parent.retrieve_in("y", &ctx).await.unwrap();
    assert_eq!(
        *names.0.lock().unwrap(),
        [
            "QueryRewriteLambda",
            "MockRetriever",
            "MockRetriever",
            "FusionFuncLambda",
            "MockRetriever",
            "GetParentsLambda"
        ]
    );
    assert_eq!(c.0.lock().unwrap()[0], ("y".to_string(), Some(3)));
}

//! Eino behaviour cases (inventory §4, cases 1–13, 16–18, 27) ported with the same inputs
//! and expected outputs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{map, s, FakeModel};
use eino::component::ChatModel;
use eino::compose::{
    lambda, stream_lambda, transform_lambda, Branch, CompileOptions, Context, Graph, IntoNodeExt,
    Passthrough, Runnable, END, START,
};
use eino::prompt::{ChatTemplate, FormatType, MessageTemplate, PromptTemplate};
use eino::schema::{source_ended_name, Map, Message, StreamReader};
use eino::ErrorKind;
use serde_json::json;

fn append(key: &'static str) -> eino::compose::Lambda<String, String> {
    lambda(move |x: String| async move { Ok(format!("{x}{key}")) })
}

fn keyed(key: &'static str) -> eino::compose::Lambda<Map, Map> {
    lambda(move |_: Map| async move { Ok(map(&[(key, key)])) })
}

#[tokio::test]
async fn case01_prompt_model_graph_missing_variable() {
    let tpl: Arc<dyn ChatTemplate> = Arc::new(PromptTemplate::new(
        FormatType::FString,
        vec![MessageTemplate::user("what's the weather in {location}?")],
    ));
    let model: Arc<dyn ChatModel> = Arc::new(FakeModel::default());
    let mut g = Graph::<Map, Message>::new();
    let t = g.add_node("prompt", tpl);
    let m = g.add_node("model", model);
    g.add_edge(START, t);
    g.add_edge(t, m);
    g.add_edge(m, END);
    let app = g
        .compile(CompileOptions::default().with_max_steps(10))
        .unwrap();
    let ctx = Context::new();
    let good = map(&[("location", "beijing")]);
    let out = app.invoke(good.clone(), &ctx).await.unwrap();
    assert_eq!(out.content, "echo: what's the weather in beijing?");
    let streamed = app
        .stream(good.clone(), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed.content, out.content);
    let transformed = app
        .transform(StreamReader::once(good), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(transformed.content, out.content);

    let mut bad = Map::new();
    bad.insert("wrong key".into(), json!(1));
    assert!(app.invoke(bad.clone(), &ctx).await.is_err());
    let stream_err = match app.stream(bad.clone(), &ctx).await {
        Err(e) => e,
        Ok(s) => s.concat().await.unwrap_err(),
    };
    assert_eq!(stream_err.node_path(), ["prompt"]);
    assert!(app.transform(StreamReader::once(bad), &ctx).await.is_err());
}

#[tokio::test]
async fn case02_runtime_max_steps() {
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("1", lambda(|x: String| async move { Ok(x) }));
    let b = g.add_node("2", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, a);
    g.add_edge(a, b);
    g.add_edge(b, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let e = app
        .invoke(s("how are you"), &Context::new().with_max_steps(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ExceededMaxSteps);
    assert!(e.to_string().contains("exceeds max steps"));
    assert_eq!(
        app.invoke(s("how are you"), &Context::new()).await.unwrap(),
        "how are you"
    );
    let mut st = app.stream(s("i'm fine"), &Context::new()).await.unwrap();
    assert_eq!(st.recv().await.unwrap().unwrap(), "i'm fine");
}

#[tokio::test]
async fn case04_pregel_end_fires_on_first_write() {
    let mut g = Graph::<String, String>::new();
    let n1 = g.add_node("node1", lambda(|_: String| async move { Ok(s("node1")) }));
    let n2 = g.add_node("node2", lambda(|_: String| async move { Ok(s("node2")) }));
    g.add_edge(START, n1);
    g.add_edge(n1, END);
    g.add_edge(n1, n2);
    g.add_edge(n2, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    assert_eq!(app.invoke(s(""), &Context::new()).await.unwrap(), "node1");
}

#[tokio::test]
async fn case05_dag_fan_in_map_merge() {
    let mut g = Graph::<Map, Map>::new();
    let n1 = g.add_node("1", keyed("1"));
    let n2 = g.add_node("2", lambda(|m: Map| async move { Ok(m) }));
    g.add_edge(START, n1);
    g.add_edge(n1, n2);
    g.add_edge(START, n2);
    g.add_edge(n2, END);
    let app = g.compile(CompileOptions::dag()).unwrap();
    let out = app
        .invoke(map(&[("start", "start")]), &Context::new())
        .await
        .unwrap();
    assert_eq!(out, map(&[("start", "start"), ("1", "1")]));
}

#[tokio::test]
async fn case06_dag_branch() {
    let mut g = Graph::<String, String>::new();
    let n1 = g.add_node("1", append("1"));
    let n2 = g.add_node("2", append("2"));
    let (id1, id2) = (n1.id(), n2.id());
    g.add_branch(
        START,
        Branch::new(move |x: &String| Ok(if x.len() > 3 { id2 } else { id1 })),
    )
    .to(n1)
    .to(n2);
    g.add_edge(n1, END);
    g.add_edge(n2, END);
    let app = g.compile(CompileOptions::dag()).unwrap();
    assert_eq!(app.invoke(s("hi"), &Context::new()).await.unwrap(), "hi1");
    assert_eq!(
        app.invoke(s("hello"), &Context::new()).await.unwrap(),
        "hello2"
    );
}

#[tokio::test]
async fn case07_two_branches_from_one_node() {
    let mut g = Graph::<Map, Map>::new();
    let ns: Vec<_> = ["1", "2", "3", "4"]
        .into_iter()
        .map(|k| g.add_node(k, keyed(k)))
        .collect();
    let (a, c) = (ns[0].id(), ns[2].id());
    g.add_branch(START, Branch::new(move |_: &Map| Ok(a)))
        .to(ns[0])
        .to(ns[1]);
    g.add_branch(START, Branch::new(move |_: &Map| Ok(c)))
        .to(ns[2])
        .to(ns[3]);
    for n in &ns {
        g.add_edge(*n, END);
    }
    let app = g.compile(CompileOptions::dag()).unwrap();
    let out = app
        .invoke(map(&[("input", "hi")]), &Context::new())
        .await
        .unwrap();
    assert_eq!(out, map(&[("1", "1"), ("3", "3")]));
}

#[tokio::test]
async fn case08_overlapping_branches_do_not_skip_selected() {
    let mut g = Graph::<Map, Map>::new();
    let ns: Vec<_> = ["1", "2", "3"]
        .into_iter()
        .map(|k| g.add_node(k, keyed(k)))
        .collect();
    let (a, b) = (ns[0].id(), ns[1].id());
    g.add_branch(START, Branch::new(move |_: &Map| Ok(a)))
        .to(ns[0])
        .to(ns[1]);
    g.add_branch(START, Branch::new(move |_: &Map| Ok(b)))
        .to(ns[1])
        .to(ns[2]);
    for n in &ns {
        g.add_edge(*n, END);
    }
    let app = g.compile(CompileOptions::dag()).unwrap();
    let out = app
        .invoke(map(&[("input", "hi")]), &Context::new())
        .await
        .unwrap();
    assert_eq!(out, map(&[("1", "1"), ("2", "2")]));
}

#[tokio::test]
async fn case09_nested_branches() {
    let mut g = Graph::<String, String>::new();
    let n: Vec<_> = [("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")]
        .into_iter()
        .map(|(k, v)| g.add_node(k, append(v)))
        .collect();
    let (i1, i2, i3, i4) = (n[0].id(), n[1].id(), n[2].id(), n[3].id());
    g.add_branch(
        START,
        Branch::new(move |x: &String| Ok(if x.len() > 3 { i2 } else { i1 })),
    )
    .to(n[0])
    .to(n[1]);
    g.add_branch(
        n[1],
        Branch::new(move |x: &String| Ok(if x.len() > 10 { i4 } else { i3 })),
    )
    .to(n[2])
    .to(n[3]);
    g.add_edge(n[0], END);
    g.add_edge(n[2], END);
    g.add_edge(n[3], END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let ctx = Context::new();
    assert_eq!(app.invoke(s("hello"), &ctx).await.unwrap(), "hello23");
    assert_eq!(app.invoke(s("hi"), &ctx).await.unwrap(), "hi1");
    assert_eq!(
        app.invoke(s("hellohello"), &ctx).await.unwrap(),
        "hellohello24"
    );
}

#[tokio::test]
async fn case10_empty_multi_branch_selection() {
    let build = |with_start_edge: bool| {
        let mut g = Graph::<String, String>::new();
        let n1 = g.add_node("1", lambda(|x: String| async move { Ok(x) }));
        let n2 = g.add_node("2", lambda(|x: String| async move { Ok(x) }));
        g.add_edge(START, n1);
        g.add_branch(n1, Branch::multi(|_: &String| Ok(vec![])))
            .to(n2);
        if with_start_edge {
            g.add_edge(START, n2);
        }
        g.add_edge(n2, END);
        g.compile(CompileOptions::dag())
    };
    let e = build(false)
        .unwrap()
        .invoke(s("input"), &Context::new())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("[GraphRunError] no tasks to execute, last completed nodes: [1]"),
        "{e}"
    );
    let app = build(true).unwrap();
    assert_eq!(
        app.invoke(s("input"), &Context::new()).await.unwrap(),
        "input"
    );

    // Two predecessors that always run and a type without a merge rule: compile() refuses.
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", append("a"));
    let b = g.add_node("b", append("b"));
    let j = g.add_node("join", append("j"));
    g.add_edge(START, a);
    g.add_edge(START, b);
    g.add_edge(a, j);
    g.add_edge(b, j);
    g.add_edge(j, END);
    let e = g.compile(CompileOptions::dag()).unwrap_err();
    assert!(e.to_string().contains("no merge rule"), "{e}");
}

#[tokio::test]
async fn case11_multi_branch_with_output_keys() {
    let mut g = Graph::<String, Map>::new();
    let ns: Vec<_> = ["1", "2", "3"]
        .into_iter()
        .map(|k| g.add_node(k, lambda(|x: String| async move { Ok(x) }).output_key(k)))
        .collect();
    let (a, b) = (ns[0].id(), ns[1].id());
    g.add_branch(START, Branch::multi(move |_: &String| Ok(vec![a, b])))
        .to(ns[0])
        .to(ns[1])
        .to(ns[2]);
    for n in &ns {
        g.add_edge(*n, END);
    }
    let app = g.compile(CompileOptions::dag()).unwrap();
    let want = map(&[("1", "start"), ("2", "start")]);
    assert_eq!(app.invoke(s("start"), &Context::new()).await.unwrap(), want);
    let streamed = app
        .stream(s("start"), &Context::new())
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(streamed, want);
}

#[tokio::test]
async fn case12_branch_from_start_straight_to_end() {
    let mut g = Graph::<String, String>::new();
    let n1 = g.add_node("1", append("1"));
    g.add_branch(START, Branch::new(|_: &String| Ok(END.id())))
        .to(n1)
        .to(END);
    g.add_edge(n1, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let mut out = app
        .transform(StreamReader::from_vec(vec![s("test")]), &Context::new())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(c) = out.recv().await {
        assert_eq!(c.unwrap(), "test");
        n += 1;
    }
    assert!(n >= 1);
}

#[tokio::test]
async fn case13_stream_fan_in_with_source_end() {
    for mode in [CompileOptions::default(), CompileOptions::dag()] {
        let mut g = Graph::<i64, Map>::new();
        let s1 = g.add_node(
            "s1",
            stream_lambda(|x: i64| async move { Ok(StreamReader::from_vec(vec![x + 1, x + 2])) })
                .output_key("s1"),
        );
        let s2 = g.add_node(
            "s2",
            stream_lambda(|x: i64| async move { Ok(StreamReader::from_vec(vec![x + 10, x + 20])) })
                .output_key("s2"),
        );
        g.add_edge(START, s1);
        g.add_edge(START, s2);
        g.add_edge(s1, END);
        g.add_edge(s2, END);
        let mut opts = mode;
        opts.stream_merge_with_source_end = vec!["end".into()];
        let app = g.compile(opts).unwrap();
        let mut out = app.stream(1, &Context::new()).await.unwrap();
        let (mut v1, mut v2, mut ended) = (vec![], vec![], vec![]);
        while let Some(item) = out.recv().await {
            match item {
                Ok(m) => {
                    if let Some(v) = m.get("s1") {
                        v1.push(v.as_i64().unwrap());
                    }
                    if let Some(v) = m.get("s2") {
                        v2.push(v.as_i64().unwrap());
                    }
                }
                Err(e) => ended.push(source_ended_name(&e).unwrap().to_string()),
            }
        }
        v1.sort();
        v2.sort();
        ended.sort();
        assert_eq!(v1, vec![2, 3]);
        assert_eq!(v2, vec![11, 21]);
        assert_eq!(ended, vec!["s1", "s2"]);
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Ms {
    ms: Vec<String>,
}

#[tokio::test]
async fn case16_state_handlers_across_paradigms() {
    let mut g = Graph::with_state(Ms::default);
    let inv = g.add_node(
        "invokable",
        lambda(|x: String| async move { Ok(format!("InvokableLambda: {x}")) }),
    );
    let stm = g.add_node(
        "streamable",
        stream_lambda(|x: String| async move {
            let words: Vec<String> = format!("StreamableLambda: {x}")
                .split(' ')
                .map(|w| format!("{w} "))
                .collect();
            Ok(StreamReader::from_vec(words))
        }),
    );
    let trf = g.add_node(
        "transformable",
        transform_lambda(|s: StreamReader<String>| async move {
            let mut first = true;
            Ok(s.map(move |c| {
                if std::mem::take(&mut first) {
                    Ok(format!("TransformableLambda: {c}"))
                } else {
                    Ok(c)
                }
            }))
        }),
    );
    g.set_pre_handler(inv, |x: String, st: &mut Ms| {
        st.ms.push(x.clone());
        Ok(x)
    });
    g.set_post_handler(inv, |x: String, st: &mut Ms| {
        st.ms.push(x.clone());
        Ok(x)
    });
    g.set_post_handler(stm, |x: String, st: &mut Ms| {
        st.ms.push(x.clone());
        Ok(x)
    });
    g.set_post_handler(trf, |x: String, st: &mut Ms| {
        assert_eq!(st.ms.len(), 3);
        st.ms.push(x.clone());
        Ok(x)
    });
    g.add_edge(START, inv);
    g.add_edge(inv, stm);
    g.add_edge(stm, trf);
    g.add_edge(trf, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let want = "TransformableLambda: StreamableLambda: InvokableLambda: how are you ";
    let ctx = Context::new();
    assert_eq!(app.invoke(s("how are you"), &ctx).await.unwrap(), want);
    assert_eq!(
        app.stream(s("how are you"), &ctx)
            .await
            .unwrap()
            .concat()
            .await
            .unwrap(),
        want
    );
    let t = app
        .transform(StreamReader::once(s("how are you")), &ctx)
        .await
        .unwrap();
    assert_eq!(t.concat().await.unwrap(), want);
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct F1 {
    field1: String,
}

#[tokio::test]
async fn case17_stream_state_handlers() {
    let mut g = Graph::with_state(|| F1 { field1: s("1") });
    let node = g.add_node("1", Passthrough::<String>::new());
    g.set_stream_pre_handler(node, |_input: StreamReader<String>, st: &mut F1| {
        Ok(StreamReader::from_vec(vec![st.field1.clone(); 5]))
    });
    g.set_stream_post_handler(node, |out: StreamReader<String>, st: &mut F1| {
        let items = futures_util::FutureExt::now_or_never(out.collect_vec())
            .expect("array stream is ready")?;
        st.field1.push_str(&items.concat());
        Ok(StreamReader::from_vec(items))
    });
    g.add_edge(START, node);
    g.add_edge(node, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    // The input pipe is never written nor closed: the pre-handler replaces it.
    let (_w, r) = eino::schema::pipe::<String>(1);
    let out = app.transform(r, &Context::new()).await.unwrap();
    assert_eq!(out.collect_vec().await.unwrap(), vec![s("1"); 5]);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Inner(String);
#[derive(serde::Serialize, serde::Deserialize)]
struct Outer(String);

#[tokio::test]
async fn case18_nested_state_lookup_and_shadowing() {
    let mut inner = Graph::with_state(|| Inner(s("inner")));
    let n = inner.add_node(
        "read",
        eino::compose::Lambda::new().with_invoke(|x: String, ctx: Context| async move {
            let i = ctx.process_state(|st: &mut Inner| st.0.clone())?;
            let o = ctx.process_state(|st: &mut Outer| st.0.clone())?;
            Ok(format!("{x}_inner={i}_outer={o}"))
        }),
    );
    inner.add_edge(START, n);
    inner.add_edge(n, END);
    let mut outer = Graph::with_state(|| Outer(s("outer")));
    let sub = outer.add_graph("sub", inner, CompileOptions::default());
    outer.add_edge(START, sub);
    outer.add_edge(sub, END);
    let app = outer.compile(CompileOptions::default()).unwrap();
    assert_eq!(
        app.invoke(s("start"), &Context::new()).await.unwrap(),
        "start_inner=inner_outer=outer"
    );

    // Same state type in both graphs: the inner one wins.
    let mut inner = Graph::with_state(|| Inner(s("inner")));
    let n = inner.add_node(
        "read",
        eino::compose::Lambda::new().with_invoke(|x: String, ctx: Context| async move {
            Ok(format!(
                "{x}_{}",
                ctx.process_state(|st: &mut Inner| st.0.clone())?
            ))
        }),
    );
    inner.add_edge(START, n);
    inner.add_edge(n, END);
    let mut outer = Graph::with_state(|| Inner(s("outer")));
    let sub = outer.add_graph("sub", inner, CompileOptions::default());
    outer.add_edge(START, sub);
    outer.add_edge(sub, END);
    let app = outer.compile(CompileOptions::default()).unwrap();
    assert_eq!(
        app.invoke(s("start"), &Context::new()).await.unwrap(),
        "start_inner"
    );
}

#[tokio::test]
async fn case27_error_wrapping_node_path_and_cancel() {
    let mut g = Graph::<String, String>::new();
    let n = g.add_node(
        "1",
        lambda(|_: String| async move { Err::<String, _>(eino::Error::internal("my error")) }),
    );
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let e = app.invoke(s("x"), &Context::new()).await.unwrap_err();
    assert_eq!(e.message(), "my error");
    assert_eq!(e.node_path(), ["1"]);

    // An empty closed stream into an invoke-only node.
    let mut g = Graph::<String, String>::new();
    let n = g.add_node("1", lambda(|x: String| async move { Ok(x) }));
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let e = app
        .transform(StreamReader::empty(), &Context::new())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("stream reader is empty, concat fail"),
        "{e}"
    );
    assert_eq!(e.node_path(), ["1"]);

    // Subgraph "a" containing failing "1".
    let mut inner = Graph::<String, String>::new();
    let n = inner.add_node(
        "1",
        lambda(|_: String| async move { Err::<String, _>(eino::Error::internal("my error")) }),
    );
    inner.add_edge(START, n);
    inner.add_edge(n, END);
    let mut outer = Graph::<String, String>::new();
    let a = outer.add_graph("a", inner, CompileOptions::default());
    outer.add_edge(START, a);
    outer.add_edge(a, END);
    let app = outer.compile(CompileOptions::default()).unwrap();
    let e = app.invoke(s("x"), &Context::new()).await.unwrap_err();
    assert_eq!(e.node_path(), ["a", "1"]);

    // Pre-cancelled context.
    let token = tokio_util::sync::CancellationToken::new();
    token.cancel();
    let e = app
        .invoke(s("x"), &Context::new().with_cancel(token))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert!(e.to_string().contains("context has been canceled"));
}

#[tokio::test]
async fn cancel_and_timeout_stop_running_nodes() {
    let mut g = Graph::<String, String>::new();
    let slow = g.add_node(
        "slow",
        lambda(|x: String| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(x)
        }),
    );
    g.add_edge(START, slow);
    g.add_edge(slow, END);
    g.set_timeout(slow, Duration::from_millis(20));
    let app = g.compile(CompileOptions::default()).unwrap();
    let e = app.invoke(s("x"), &Context::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.node_path(), ["slow"]);

    let mut g = Graph::<String, String>::new();
    let slow = g.add_node(
        "slow",
        lambda(|x: String| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(x)
        }),
    );
    g.add_edge(START, slow);
    g.add_edge(slow, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let t2 = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        t2.cancel();
    });
    let e = app
        .invoke(s("x"), &Context::new().with_cancel(token))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
}

#[tokio::test]
async fn first_chunk_reaches_caller_before_the_stream_ends() {
    // A producer that writes one chunk and then waits: the caller must see the chunk
    // while the producer is still running.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let mut g = Graph::<String, String>::new();
    let producer = g.add_node(
        "producer",
        stream_lambda(move |x: String| {
            let rx = rx.clone();
            async move {
                let (w, r) = eino::schema::pipe(4);
                tokio::spawn(async move {
                    w.send(format!("{x}-1")).await.ok();
                    if let Some(rx) = rx.lock().await.take() {
                        rx.await.ok();
                    }
                    w.send(format!("{x}-2")).await.ok();
                });
                Ok(r)
            }
        }),
    );
    let upper = g.add_node(
        "upper",
        transform_lambda(
            |s: StreamReader<String>| async move { Ok(s.map(|c| Ok(c.to_uppercase()))) },
        ),
    );
    g.add_edge(START, producer);
    g.add_edge(producer, upper);
    g.add_edge(upper, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let mut out = app.stream(s("a"), &Context::new()).await.unwrap();
    assert_eq!(out.recv().await.unwrap().unwrap(), "A-1");
    tx.send(()).unwrap();
    assert_eq!(out.recv().await.unwrap().unwrap(), "A-2");
    assert!(out.recv().await.is_none());
}

/// Async stream state handlers: the pre-handler awaits the whole input stream (without
/// holding the state's lock), records what it saw in the state, and passes a new stream on;
/// the post-handler reads the state. Works in stream and invoke mode.
#[tokio::test]
async fn async_stream_state_handlers_can_await() {
    use eino::compose::{transform_lambda, Graph, Runnable, StateAccess, END, START};
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    struct Seen {
        chunks: usize,
    }
    let mut g = Graph::<String, String>::with_state(Seen::default);
    let echo = g.add_node(
        "echo",
        transform_lambda(|s: StreamReader<String>| async move { Ok(s) }),
    );
    g.set_async_stream_pre_handler(
        echo,
        |s: StreamReader<String>, st: StateAccess<Seen>| async move {
            let chunks = s.collect_vec().await?;
            tokio::task::yield_now().await;
            st.with(|seen| seen.chunks = chunks.len())?;
            Ok(StreamReader::from_vec(chunks))
        },
    );
    g.set_async_stream_post_handler(
        echo,
        |s: StreamReader<String>, st: StateAccess<Seen>| async move {
            let n = st.with(|seen| seen.chunks)?;
            let text = s.concat().await?;
            Ok(StreamReader::once(format!("{text} ({n} chunks)")))
        },
    );
    g.add_edge(START, echo);
    g.add_edge(echo, END);
    let graph = g.compile(Default::default()).unwrap();
    let ctx = eino::compose::Context::new();
    let input = StreamReader::from_vec(vec![s("a"), s("b"), s("c")]);
    let out = graph
        .transform(input, &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(out, "abc (3 chunks)");
    assert_eq!(graph.invoke(s("xy"), &ctx).await.unwrap(), "xy (1 chunks)");
}

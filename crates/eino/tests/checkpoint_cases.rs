//! Checkpoints, interrupts and resume: inventory cases 20–24 with their expected values,
//! plus per-call interrupts, progress checkpoints and the inspection API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eino::component::{tool_fn, Tool};
use eino::compose::{
    lambda, list_checkpoints, CheckpointPolicy, CheckpointRun, CheckpointStore, CompileOptions,
    Context, Graph, IntoNodeExt, Lambda, MemoryCheckpointStore, Passthrough, Runnable, ToolsNode,
    END, START,
};
use eino::schema::{Map, Message, ToolCall};
use eino::{Error, ErrorKind};
use futures_util::future::BoxFuture;
use serde_json::json;

fn append(key: &'static str) -> Lambda<String, String> {
    lambda(move |x: String| async move { Ok(format!("{x}{key}")) })
}

#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StateA {
    a: String,
}

fn interrupted(e: &Error) -> &eino::compose::InterruptInfo {
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e}");
    e.interrupt_info().expect("graph interrupt info")
}

#[tokio::test]
async fn case21_interrupt_before_and_after_then_resume_with_data() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut g = Graph::<String, String>::with_state(StateA::default);
    let n1 = g.add_node("1", append("1"));
    let n2 = g.add_node("2", append("2"));
    g.set_pre_handler(n2, |x: String, s: &mut StateA| Ok(format!("{x}{}", s.a)));
    g.add_edge(START, n1);
    g.add_edge(n1, n2);
    g.add_edge(n2, END);
    let app = g
        .compile(
            CompileOptions::dag()
                .with_name("root")
                .with_checkpoint_store(store.clone())
                .with_interrupt_after(["1"])
                .with_interrupt_before(["2"]),
        )
        .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("1"));
    let e = app.invoke(s("start"), &ctx).await.unwrap_err();
    let info = interrupted(&e);
    assert_eq!(info.state, Some(json!({"a": ""})));
    assert_eq!(info.before_nodes, ["2"]);
    assert_eq!(info.after_nodes, ["1"]);
    assert_eq!(info.checkpoint_id.as_deref(), Some("1"));
    assert_eq!(info.interrupt_paths(), vec![vec![s("2")], vec![s("1")]]);

    // Inspection: the pending interrupt is listed with why it stopped.
    let pending = list_checkpoints(store.as_ref()).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, "1");
    assert_eq!(pending[0].1.as_ref().unwrap().before_nodes, ["2"]);

    // Resume with data for the graph itself: it replaces the state. The input is ignored.
    let resume = CheckpointRun::new("1")
        .resume_state(StateA { a: s("state") })
        .unwrap();
    let out = app
        .invoke(s("ignored"), &Context::new().with_checkpoint(resume))
        .await
        .unwrap();
    assert_eq!(out, "start1state2");
    // A finished run leaves no checkpoint.
    assert!(store.list().await.unwrap().is_empty());
}

fn s(x: &str) -> String {
    x.to_string()
}

fn slow_echo(ms: u64) -> Lambda<String, String> {
    lambda(move |x: String| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(x)
    })
}

#[tokio::test]
async fn case22_interrupt_after_parallel_dag_nodes() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut g = Graph::<String, Map>::new();
    let n1 = g.add_node("1", slow_echo(100).output_key("1"));
    let n2 = g.add_node("2", slow_echo(200).output_key("2"));
    let n3 = g.add_node("3", Passthrough::<Map>::new());
    g.add_edge(START, n1);
    g.add_edge(START, n2);
    g.add_edge(n1, n3);
    g.add_edge(n2, n3);
    g.add_edge(n3, END);
    let app = g
        .compile(
            CompileOptions::dag()
                .with_checkpoint_store(store)
                .with_interrupt_after(["1", "2"]),
        )
        .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("cp"));
    let e = app.invoke(s("input"), &ctx).await.unwrap_err();
    assert_eq!(interrupted(&e).after_nodes, ["1", "2"]);
    let out = app.invoke(s(""), &ctx).await.unwrap();
    let expect: Map = serde_json::from_value(json!({"1": "input", "2": "input"})).unwrap();
    assert_eq!(out, expect);
}

fn rerun_graph(store: Arc<MemoryCheckpointStore>) -> eino::compose::Compiled<String, String> {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut g = Graph::<String, String>::with_state(StateA::default);
    let node = Lambda::new().with_invoke(move |x: String, _ctx: Context| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(2) {
                return Err(Error::interrupt(json!("test extra")));
            }
            Ok(x)
        }
    });
    let n1 = g.add_node("1", node);
    g.set_pre_handler(n1, |_x: String, s: &mut StateA| Ok(s.a.clone()));
    g.add_edge(START, n1);
    g.add_edge(n1, END);
    g.compile(CompileOptions::default().with_checkpoint_store(store))
        .unwrap()
}

#[tokio::test]
async fn case23_in_node_interrupt_and_state_modifier() {
    let app = rerun_graph(Arc::new(MemoryCheckpointStore::new()));
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("1"));
    let e = app.invoke(s("input"), &ctx).await.unwrap_err();
    let info = interrupted(&e);
    assert_eq!(info.rerun_nodes, ["1"]);
    assert_eq!(info.rerun_info["1"], json!("test extra"));
    let resume = CheckpointRun::new("1").modify_state(|path: &[String], st: &mut StateA| {
        assert!(path.is_empty(), "the root graph's state");
        st.a = s("state");
    });
    let out = app
        .invoke(s(""), &Context::new().with_checkpoint(resume))
        .await
        .unwrap();
    assert_eq!(out, "state");

    // The same in stream mode: one chunk "state", then the end.
    let app = rerun_graph(Arc::new(MemoryCheckpointStore::new()));
    let e = app.stream(s("input"), &ctx).await.unwrap_err();
    assert_eq!(interrupted(&e).rerun_nodes, ["1"]);
    let resume = CheckpointRun::new("1").modify_state(|_: &[String], st: &mut StateA| {
        st.a = s("state");
    });
    let chunks = app
        .stream(s(""), &Context::new().with_checkpoint(resume))
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert_eq!(chunks, ["state"]);
}

/// Counts store reads, to prove `force_new_run` never looks.
#[derive(Default)]
struct CountingStore {
    inner: MemoryCheckpointStore,
    gets: AtomicUsize,
}

impl CheckpointStore for CountingStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, eino::Result<Option<Vec<u8>>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id)
    }
    fn put<'a>(&'a self, id: &'a str, data: Vec<u8>) -> BoxFuture<'a, eino::Result<()>> {
        self.inner.put(id, data)
    }
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, eino::Result<()>> {
        self.inner.delete(id)
    }
    fn list(&self) -> BoxFuture<'_, eino::Result<Vec<String>>> {
        self.inner.list()
    }
}

fn subgraph_app(store: Arc<CountingStore>) -> eino::compose::Compiled<String, String> {
    let mut sub = Graph::<String, String>::new();
    let i1 = sub.add_node("1", append("sub1"));
    sub.add_edge(START, i1);
    sub.add_edge(i1, END);
    let mut g = Graph::<String, String>::new();
    let n1 = g.add_node("1", append("1"));
    let n2 = g.add_graph(
        "2",
        sub,
        CompileOptions::default().with_interrupt_before(["1"]),
    );
    g.add_edge(START, n1);
    g.add_edge(n1, n2);
    g.add_edge(n2, END);
    g.compile(CompileOptions::default().with_checkpoint_store(store))
        .unwrap()
}

#[tokio::test]
async fn case24_subgraph_interrupt_before_and_force_new_run() {
    let store = Arc::new(CountingStore::default());
    let app = subgraph_app(store.clone());
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("1"));
    let e = app.invoke(s("input"), &ctx).await.unwrap_err();
    let info = interrupted(&e);
    assert_eq!(info.subgraphs["2"].before_nodes, ["1"]);
    assert!(info.rerun_nodes.is_empty());
    assert_eq!(info.interrupt_paths(), vec![vec![s("2"), s("1")]]);
    assert_eq!(app.invoke(s(""), &ctx).await.unwrap(), "input1sub1");

    // Force a new run: the store is not read, and the run starts from the input again.
    let store = Arc::new(CountingStore::default());
    let app = subgraph_app(store.clone());
    let e = app.invoke(s("input"), &ctx).await.unwrap_err();
    interrupted(&e);
    let reads = store.gets.load(Ordering::SeqCst);
    let fresh = Context::new().with_checkpoint(CheckpointRun::new("1").force_new_run());
    let e = app.invoke(s("again"), &fresh).await.unwrap_err();
    assert_eq!(interrupted(&e).subgraphs["2"].before_nodes, ["1"]);
    assert_eq!(store.gets.load(Ordering::SeqCst), reads);
    assert_eq!(app.invoke(s(""), &ctx).await.unwrap(), "again1sub1");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// A tool that interrupts the first time it is called, then answers.
fn interrupting_tool(name: &'static str) -> Arc<dyn Tool> {
    let calls = Arc::new(AtomicUsize::new(0));
    Arc::new(tool_fn(name, "", move |_: NoArgs| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                return Err(Error::interrupt(json!(format!("{name} rerun extra"))));
            }
            Ok(format!("{name} input: input"))
        }
    }))
}

/// A tool that must run exactly once across the interrupt and the resume.
fn once_tool(name: &'static str) -> Arc<dyn Tool> {
    let calls = Arc::new(AtomicUsize::new(0));
    Arc::new(tool_fn(name, "", move |_: NoArgs| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            assert_eq!(n, 0, "{name} ran twice");
            Ok(format!("{name} input: input"))
        }
    }))
}

#[tokio::test]
async fn case20_tool_interrupt_reruns_only_interrupted_calls() {
    let tools = ToolsNode::new([
        interrupting_tool("tool1"),
        interrupting_tool("tool2"),
        once_tool("tool3"),
        once_tool("tool4"),
    ]);
    let mut g = Graph::<Message, String>::new();
    let t = g.add_node("tool node", tools);
    let join = g.add_node(
        "join",
        lambda(|mut msgs: Vec<Message>| async move {
            msgs.sort_by(|a, b| a.content.cmp(&b.content));
            Ok(msgs.into_iter().map(|m| m.content).collect::<String>())
        }),
    );
    g.add_edge(START, t);
    g.add_edge(t, join);
    g.add_edge(join, END);
    let store = Arc::new(MemoryCheckpointStore::new());
    let app = g
        .compile(CompileOptions::default().with_checkpoint_store(store))
        .unwrap();
    let call = |id: &str, name: &str| ToolCall::function(id, name, "{}");
    let input = Message::assistant(
        "",
        vec![
            call("3", "tool3"),
            call("4", "tool4"),
            call("1", "tool1"),
            call("2", "tool2"),
        ],
    );
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("1"));
    let e = app.stream(input, &ctx).await.unwrap_err();
    let info = interrupted(&e);
    assert_eq!(info.rerun_nodes, ["tool node"]);
    let extra = &info.rerun_info["tool node"];
    assert_eq!(extra["rerun"], json!(["1", "2"]));
    assert_eq!(
        extra["rerun_info"],
        json!({"1": "tool1 rerun extra", "2": "tool2 rerun extra"})
    );
    assert_eq!(
        extra["executed"],
        json!({"3": "tool3 input: input", "4": "tool4 input: input"})
    );
    let out = app
        .stream(Message::default(), &ctx)
        .await
        .unwrap()
        .concat()
        .await
        .unwrap();
    assert_eq!(
        out,
        "tool1 input: inputtool2 input: inputtool3 input: inputtool4 input: input"
    );
}

#[tokio::test]
async fn resume_data_reaches_the_interrupted_node() {
    // Human approval: the node asks, the caller answers on resume.
    let mut g = Graph::<String, String>::new();
    let ask = Lambda::new().with_invoke(|x: String, ctx: Context| async move {
        match ctx.resume_data::<bool>() {
            None => Err(Error::interrupt(
                json!({"question": format!("send '{x}'?")}),
            )),
            Some(true) => Ok(format!("sent {x}")),
            Some(false) => Ok(s("cancelled")),
        }
    });
    let n = g.add_node("approve", ask);
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g
        .compile(
            CompileOptions::default().with_checkpoint_store(Arc::new(MemoryCheckpointStore::new())),
        )
        .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("r"));
    let e = app.invoke(s("mail"), &ctx).await.unwrap_err();
    let info = interrupted(&e);
    assert_eq!(info.rerun_info["approve"]["question"], "send 'mail'?");
    // Resuming without an answer asks again (the node decides).
    let e = app.invoke(s(""), &ctx).await.unwrap_err();
    interrupted(&e);
    let yes = CheckpointRun::new("r")
        .resume_with(["approve"], true)
        .unwrap();
    let out = app
        .invoke(s(""), &Context::new().with_checkpoint(yes))
        .await
        .unwrap();
    assert_eq!(out, "sent mail", "the node re-ran with its saved input");
}

#[tokio::test]
async fn per_call_interrupts_and_write_to() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", append("a"));
    let b = g.add_node("b", append("b"));
    g.add_edge(START, a);
    g.add_edge(a, b);
    g.add_edge(b, END);
    let app = g
        .compile(CompileOptions::default().with_checkpoint_store(store.clone()))
        .unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("x").interrupt_before(["b"]));
    let e = app.invoke(s(">"), &ctx).await.unwrap_err();
    assert_eq!(interrupted(&e).before_nodes, ["b"]);
    // Resume from "x" but keep "x" as a fork point: the run writes to "y".
    let fork = Context::new().with_checkpoint(CheckpointRun::new("x").write_to("y"));
    assert_eq!(app.invoke(s(""), &fork).await.unwrap(), ">ab");
    assert_eq!(store.list().await.unwrap(), ["x"]);
    let bad = Context::new().with_checkpoint(CheckpointRun::new("x").interrupt_after(["zz"]));
    let e = app.invoke(s(""), &bad).await.unwrap_err();
    assert!(e.to_string().contains("unknown node 'zz'"), "{e}");
}

#[tokio::test]
async fn checkpoint_without_store_and_unserializable_values_are_refused() {
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", append("a"));
    g.add_edge(START, a);
    g.add_edge(a, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let ctx = Context::new().with_checkpoint(CheckpointRun::new("x"));
    let e = app.invoke(s(""), &ctx).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "receive checkpoint id but have not set checkpoint store"
    );

    #[derive(Clone)]
    struct Opaque;
    eino::graph_value!(Opaque);
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", lambda(|_: String| async { Ok(Opaque) }));
    let b = g.add_node("b", lambda(|_: Opaque| async { Ok(s("")) }));
    g.add_edge(START, a);
    g.add_edge(a, b);
    g.add_edge(b, END);
    let e = g
        .compile(
            CompileOptions::default().with_checkpoint_store(Arc::new(MemoryCheckpointStore::new())),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("checkpointing needs serializable values: node 'a' carries type"),
        "{e}"
    );
}

#[tokio::test]
async fn in_node_interrupt_without_checkpoint_still_reports() {
    let mut g = Graph::<String, String>::new();
    let n = g.add_node(
        "n",
        lambda(|_: String| async { Err::<String, _>(Error::interrupt(json!("need input"))) }),
    );
    g.add_edge(START, n);
    g.add_edge(n, END);
    let app = g.compile(CompileOptions::default()).unwrap();
    let e = app.invoke(s(""), &Context::new()).await.unwrap_err();
    assert_eq!(interrupted(&e).rerun_info["n"], json!("need input"));
}

#[tokio::test]
async fn every_step_policy_saves_progress_and_resumes_after_a_crash() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let crash = Arc::new(AtomicUsize::new(0));
    let c = crash.clone();
    let mut g = Graph::<String, String>::new();
    let a = g.add_node("a", append("a"));
    let b = g.add_node(
        "b",
        lambda(move |x: String| {
            let first = c.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    return Err(Error::new(ErrorKind::Transient, "process died"));
                }
                Ok(format!("{x}b"))
            }
        }),
    );
    g.add_edge(START, a);
    g.add_edge(a, b);
    g.add_edge(b, END);
    let app = g
        .compile(CompileOptions::default().with_checkpoint_store(store.clone()))
        .unwrap();
    let ctx =
        Context::new().with_checkpoint(CheckpointRun::new("p").policy(CheckpointPolicy::EveryStep));
    assert!(app.invoke(s(">"), &ctx).await.is_err());
    // The progress checkpoint after "a" is there, not marked as an interrupt.
    let listed = list_checkpoints(store.as_ref()).await.unwrap();
    assert_eq!(listed, vec![(s("p"), None)]);
    // Re-running resumes after "a": "a" does not run again (the input is ignored).
    assert_eq!(app.invoke(s("ignored"), &ctx).await.unwrap(), ">ab");
}

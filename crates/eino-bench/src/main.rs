//! Orchestration overhead benchmarks, printed as `name value unit` lines.
//!
//! Run: `cargo run --release -p eino-bench --bin bench_compose`
//!
//! Each figure is the median of several rounds; futures are awaited (the work is measured,
//! not future construction). Allocations are counted by a counting global allocator.
#![allow(unsafe_code)] // the counting allocator below forwards to `System`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use eino::component::{ChatModel, ChatOptions, Tool, ToolOptions};
use eino::compose::{
    lambda, stream_lambda, transform_lambda, Chain, CheckpointPolicy, CheckpointRun,
    CompileOptions, Compiled, Context, Graph, IntoNodeExt, Runnable, ToolsNode, END, START,
};
use eino::flow::react::{ReactAgent, ReactConfig};
use eino::schema::{Map, Message, Role, StreamReader, ToolCall, ToolInfo};
use eino_sqlite::SqliteCheckpointStore;
use futures_util::future::BoxFuture;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn chain10_with(opts: CompileOptions) -> Compiled<i64, i64> {
    let mut c = Chain::<i64>::new().then(lambda(|x: i64| async move { Ok(x + 1) }));
    for _ in 0..9 {
        c = c.then(lambda(|x: i64| async move { Ok(x + 1) }));
    }
    c.compile_with(opts).expect("valid chain")
}

fn chain10() -> Compiled<i64, i64> {
    chain10_with(CompileOptions::default())
}

/// A fake tool-calling model: calls the tool until it has seen three answers, then
/// answers. Stateless and cheap, so the figure is framework time.
#[derive(Clone)]
struct ThreeRounds;

impl ChatModel for ThreeRounds {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let rounds = msgs.iter().filter(|m| m.role == Role::Tool).count();
        Box::pin(async move {
            Ok(if rounds < 3 {
                Message::assistant("", vec![ToolCall::function("c", "noop", "{}")])
            } else {
                Message::assistant("done", vec![])
            })
        })
    }
    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(msgs, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

struct Noop;

impl Tool for Noop {
    fn info(&self) -> ToolInfo {
        ToolInfo::new(
            "noop",
            "does nothing",
            serde_json::json!({"type": "object"}),
        )
    }
    fn call<'a>(&'a self, _: &'a str, _: &'a ToolOptions) -> BoxFuture<'a, eino::Result<String>> {
        Box::pin(async { Ok(String::from("ok")) })
    }
}

fn fanout8() -> Compiled<i64, Map> {
    let mut g = Graph::<i64, Map>::new();
    let first = g.add_node("first", lambda(|x: i64| async move { Ok(x + 1) }));
    let join = g.add_node("join", lambda(|m: Map| async move { Ok(m) }));
    g.add_edge(START, first);
    for i in 0..8 {
        let key = format!("p{i}");
        let p = g.add_node(
            key.clone(),
            lambda(|x: i64| async move { Ok(x + 1) }).output_key(key),
        );
        g.add_edge(first, p);
        g.add_edge(p, join);
    }
    g.add_edge(join, END);
    g.compile(CompileOptions::dag()).expect("valid graph")
}

fn streamer(chunks: usize) -> Compiled<String, String> {
    let mut g = Graph::<String, String>::new();
    let src = g.add_node(
        "source",
        stream_lambda(move |_: String| async move {
            Ok(StreamReader::from_stream(futures_util::stream::iter(
                (0..chunks).map(|_| Ok(String::new())),
            )))
        }),
    );
    let map = g.add_node(
        "map",
        transform_lambda(|s: StreamReader<String>| async move { Ok(s.map(Ok)) }),
    );
    g.add_edge(START, src);
    g.add_edge(src, map);
    g.add_edge(map, END);
    g.compile(CompileOptions::default()).expect("valid graph")
}

/// Run `round` `rounds` times and return the median of what it measured.
fn median_of(rounds: usize, mut round: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..rounds).map(|_| round()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// ReAct with a fake tool-calling model: three tool rounds, then the answer.
fn react3(rt: &tokio::runtime::Runtime, ctx: &Context, rounds: usize) {
    let agent = ReactAgent::new(ReactConfig::new(
        Arc::new(ThreeRounds),
        ToolsNode::new([Arc::new(Noop) as Arc<dyn Tool>]),
    ))
    .expect("valid agent");
    let input = vec![Message::user("go")];
    let iters = 5_000;
    let react_ns = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let out = agent.generate(input.clone(), ctx).await.expect("runs");
                std::hint::black_box(out);
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
    });
    println!("react3_invoke_ns {react_ns:.0} ns");
    let allocs = rt.block_on(async {
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..100 {
            agent.generate(input.clone(), ctx).await.expect("runs");
        }
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 100.0
    });
    println!("react3_allocs_per_invoke {allocs:.1} allocs");
}

/// Answers at once.
#[derive(Clone)]
struct Answers;

impl ChatModel for Answers {
    fn generate<'a>(
        &'a self,
        _: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async { Ok(Message::assistant("ok", vec![])) })
    }
    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(msgs, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

/// The supervisor of the agent benchmark: hands over to `a`, then to `b`, then answers.
#[derive(Clone)]
struct SuperviseTwo;

impl ChatModel for SuperviseTwo {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let heard = |n: &str| msgs.iter().any(|m| m.content.starts_with(n));
        let transfer = |to: &str| {
            let args = format!(r#"{{"agent_name":"{to}"}}"#);
            Message::assistant("", vec![ToolCall::function("t", "transfer_to_agent", args)])
        };
        let out = if !heard("For context: [a] said") {
            transfer("a")
        } else if !heard("For context: [b] said") {
            transfer("b")
        } else {
            Message::assistant("done", vec![])
        };
        Box::pin(async move { Ok(out) })
    }
    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::once(self.generate(msgs, o).await?)) })
    }
    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

/// Time and allocations per run of `agent` through a [`Runner`](eino::adk::Runner), all
/// events read: the same method as `react3`.
fn agent_run(
    rt: &tokio::runtime::Runtime,
    name: &str,
    agent: Arc<dyn eino::adk::Agent>,
    rounds: usize,
) {
    let runner = eino::adk::Runner::new(agent);
    let input = vec![Message::user("go")];
    let once = || async {
        let options = eino::adk::RunOptions::default();
        let events = runner
            .run(input.clone(), options)
            .collect()
            .await
            .expect("runs");
        std::hint::black_box(events);
    };
    let iters = 5_000;
    let ns = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                once().await;
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
    });
    println!("{name}_invoke_ns {ns:.0} ns");
    let allocs = rt.block_on(async {
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..100 {
            once().await;
        }
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 100.0
    });
    println!("{name}_allocs_per_invoke {allocs:.1} allocs");
}

/// The ADK layer: a ChatModelAgent doing what `react3` does, and a supervisor handing the
/// conversation to two sub-agents in turn (each answers at once) before answering.
fn adk(rt: &tokio::runtime::Runtime, rounds: usize) {
    use eino::adk::{ChatModelAgent, ChatModelAgentConfig};
    let chat3 = ChatModelAgentConfig::new("agent", "bench", Arc::new(ThreeRounds))
        .with_tools(ToolsNode::new([Arc::new(Noop) as Arc<dyn Tool>]));
    let chat3 = ChatModelAgent::new(chat3).expect("valid agent");
    agent_run(rt, "adk_chat3", Arc::new(chat3), rounds);
    let answers = |name: &str| {
        let done = ChatModelAgentConfig::new(name, "answers", Arc::new(Answers));
        Arc::new(ChatModelAgent::new(done).expect("valid agent")) as Arc<dyn eino::adk::Agent>
    };
    let sup = ChatModelAgentConfig::new("sup", "bench", Arc::new(SuperviseTwo));
    let team = eino::adk::prebuilt::supervisor::supervisor(
        Arc::new(ChatModelAgent::new(sup).expect("valid agent")),
        vec![answers("a"), answers("b")],
    )
    .expect("valid team");
    agent_run(rt, "adk_supervisor2", Arc::new(team), rounds);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = Context::new();
    let rounds = 7;

    let only = std::env::var("EINO_BENCH_ONLY").unwrap_or_default();
    let chain = chain10();
    if only == "react3" {
        react3(&rt, &ctx, rounds);
        return;
    }
    if only == "adk" {
        react3(&rt, &ctx, rounds);
        adk(&rt, rounds);
        return;
    }
    if std::env::var("EINO_BENCH_SIZES").is_ok() {
        let f = chain.invoke(1, &ctx);
        println!("invoke_future_bytes {}", std::mem::size_of_val(&*f));
    }
    let iters = 20_000;
    let per_invoke = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                std::hint::black_box(chain.invoke(i, &ctx).await.expect("runs"));
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
    });
    println!("chain10_invoke_ns {per_invoke:.0} ns");
    println!("chain10_per_node_ns {:.1} ns", per_invoke / 10.0);
    let allocs = rt.block_on(async {
        let before = ALLOCS.load(Ordering::Relaxed);
        for i in 0..1000 {
            chain.invoke(i, &ctx).await.expect("runs");
        }
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 1000.0
    });
    println!("chain10_allocs_per_invoke {allocs:.1} allocs");
    if only == "chain10" {
        // Profiling aid: `EINO_BENCH_ONLY=chain10 perf record ./bench_compose`.
        return;
    }

    let fan = fanout8();
    let iters = 10_000;
    let fan_ns = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                std::hint::black_box(fan.invoke(i, &ctx).await.expect("runs"));
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
    });
    println!("fanout8_invoke_ns {fan_ns:.0} ns");

    let chunks = 100_000;
    let s = streamer(chunks);
    let cps = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            let mut out = s.stream(String::new(), &ctx).await.expect("runs");
            let mut n = 0usize;
            while let Some(c) = out.recv().await {
                std::hint::black_box(c.expect("chunk"));
                n += 1;
            }
            assert_eq!(n, chunks);
            chunks as f64 / t.elapsed().as_secs_f64()
        })
    });
    println!("stream_chunks_per_sec {cps:.0} chunks/s");

    let wall = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            let all = (0..1000).map(|i| chain.invoke(i, &ctx));
            let outs = futures_util::future::join_all(all).await;
            assert!(outs.iter().all(|o| o.is_ok()));
            t.elapsed().as_secs_f64() * 1000.0
        })
    });
    println!("concurrent1000_wall_ms {wall:.2} ms");
    println!("concurrent1000_peak_rss_mb {:.1} MB", peak_rss_mb());

    react3(&rt, &ctx, rounds);

    let path = std::env::temp_dir().join(format!("eino-bench-{}.db", std::process::id()));
    let store = rt
        .block_on(SqliteCheckpointStore::open(&path))
        .expect("sqlite store");
    let durable = chain10_with(CompileOptions::default().with_checkpoint_store(Arc::new(store)));
    let run = Context::new()
        .with_checkpoint(CheckpointRun::new("bench").policy(CheckpointPolicy::EveryStep));
    let iters = 300;
    let cp_us = median_of(rounds, || {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..iters {
                std::hint::black_box(durable.invoke(i, &run).await.expect("runs"));
            }
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
    });
    println!("chain10_sqlite_checkpoint_invoke_us {cp_us:.0} us");
    // 10 saves per invoke (one per node) plus one read and one delete.
    println!(
        "sqlite_checkpoint_save_us {:.1} us",
        (cp_us - per_invoke / 1000.0) / 10.0
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

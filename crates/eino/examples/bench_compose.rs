//! Orchestration overhead benchmarks, printed as `name value unit` lines.
//!
//! Run: `cargo run --release -p eino --example bench_compose`
//!
//! Each figure is the median of several rounds; futures are awaited (the work is measured,
//! not future construction). Allocations are counted by a counting global allocator.
#![allow(unsafe_code)] // the counting allocator below forwards to `System`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use eino::compose::{
    lambda, stream_lambda, transform_lambda, Chain, CompileOptions, Compiled, Context, Graph,
    IntoNodeExt, Runnable, END, START,
};
use eino::schema::{Map, StreamReader};

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

fn chain10() -> Compiled<i64, i64> {
    let mut c = Chain::<i64>::new().then(lambda(|x: i64| async move { Ok(x + 1) }));
    for _ in 0..9 {
        c = c.then(lambda(|x: i64| async move { Ok(x + 1) }));
    }
    c.compile().expect("valid chain")
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

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = Context::new();
    let rounds = 7;

    let chain = chain10();
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
}

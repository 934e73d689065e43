//! Divan benchmarks of orchestration overhead (awaited futures, allocation counts).
//! Run: `cargo bench -p eino --bench compose`

use eino::compose::{lambda, Chain, Compiled, Context, Runnable};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

fn chain10() -> Compiled<i64, i64> {
    let mut c = Chain::<i64>::new().then(lambda(|x: i64| async move { Ok(x + 1) }));
    for _ in 0..9 {
        c = c.then(lambda(|x: i64| async move { Ok(x + 1) }));
    }
    c.compile().expect("valid chain")
}

#[divan::bench]
fn chain10_invoke(b: divan::Bencher) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let app = chain10();
    let ctx = Context::new();
    b.bench_local(|| {
        rt.block_on(app.invoke(divan::black_box(1), &ctx))
            .expect("runs")
    });
}

#[divan::bench]
fn concat_1000_message_chunks(b: divan::Bencher) {
    use eino::schema::{Concat, Message};
    let chunks: Vec<Message> = (0..1000)
        .map(|i| Message::assistant(i.to_string(), vec![]))
        .collect();
    b.bench_local(|| Message::concat(divan::black_box(chunks.clone())).expect("concat"));
}

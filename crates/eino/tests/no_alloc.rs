// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]
//! With no callback handler installed, callbacks cost nothing: no stream copies and no
//! allocations. Counted with a counting global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use eino::callbacks::Handler;
use eino::compose::{lambda, transform_lambda, Chain, Context, Runnable};
use eino::schema::StreamReader;

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

struct Noop;
impl Handler for Noop {}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn no_handler_means_no_callback_allocations_and_no_stream_copies() {
    let rt = rt();
    let mut chain = Chain::<i64>::new().then(lambda(|x: i64| async move { Ok(x + 1) }));
    for _ in 0..9 {
        chain = chain.then(lambda(|x: i64| async move { Ok(x + 1) }));
    }
    let app = chain.compile().unwrap();
    let plain = Context::new();
    let with_handler = Context::new().with_callbacks(Arc::new(Noop));
    rt.block_on(async {
        assert_eq!(app.invoke(0, &plain).await.unwrap(), 10);
        let before = ALLOCS.load(Ordering::Relaxed);
        app.invoke(0, &plain).await.unwrap();
        let without = ALLOCS.load(Ordering::Relaxed) - before;
        let before = ALLOCS.load(Ordering::Relaxed);
        app.invoke(0, &with_handler).await.unwrap();
        let with = ALLOCS.load(Ordering::Relaxed) - before;
        assert!(
            with > without,
            "handler run allocated {with}, plain {without}"
        );
        // The empty context path is bounded per node, independent of callbacks.
        eprintln!("plain 10-chain invoke: {without} allocations");
        assert!(without <= 10 * 6, "plain invoke allocated {without}");
    });

    // Streaming 1000 chunks through a transform node: without a handler nothing is copied,
    // so consuming the stream allocates nothing per chunk.
    let app = Chain::<String>::new()
        .then(transform_lambda(|s: StreamReader<String>| async move {
            Ok(s.map(Ok))
        }))
        .compile()
        .unwrap();
    rt.block_on(async {
        let chunks: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let input =
            StreamReader::from_stream(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let mut out = app.transform(input, &plain).await.unwrap();
        let before = ALLOCS.load(Ordering::Relaxed);
        let mut n = 0;
        while let Some(c) = out.recv().await {
            drop(c.unwrap());
            n += 1;
        }
        let during = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(n, 1000);
        assert!(
            during < 10,
            "consuming 1000 chunks allocated {during} times"
        );

        let chunks: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let input =
            StreamReader::from_stream(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let mut out = app.transform(input, &with_handler).await.unwrap();
        let before = ALLOCS.load(Ordering::Relaxed);
        while let Some(c) = out.recv().await {
            drop(c.unwrap());
        }
        let copied = ALLOCS.load(Ordering::Relaxed) - before;
        assert!(
            copied >= 1000,
            "with a handler the stream is copied ({copied} allocations)"
        );
    });
}

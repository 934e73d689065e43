//! Local model throughput, printed as `name value unit` lines.
//! `cargo run --release -p eino-local --example bench_local`
//!
//! MiniLM: batches of 32 short sentences on the configured threads (1 on a 2-core machine),
//! and 1000-character chunks in batches of 32 (`minilm_chunks_per_sec`, int8 by default on
//! CPUs with VNNI; `_f32` with the stored weights; `_2calls`: two batches at once on two
//! threads, as ingestion runs on a 2-core machine). `--minilm-only` stops there.
//! SmolLM2: prompt processing = prompt tokens / time to the first token; generation = the
//! following tokens / the time they took (greedy, 128 tokens); `local_chat_pp_long_tps` is
//! prompt processing of a ~300-token prompt.

use std::time::Instant;

use eino::component::ChatOptions;
use eino::schema::Message;
use eino_local::{
    GenerationConfig, LocalChatModel, LocalOptions, MiniLmEmbedder, ModelCache, MINILM, SMOLLM2,
};

// As the `eino` binary allocates (candle makes a fresh buffer per tensor operation).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A passage of plain technical English, cut into 1000-character chunks that start at
/// different places (so no two batches' texts are the same).
fn chunks(n: usize) -> Vec<String> {
    let text = "The kernel keeps a table of open files for every process. A file descriptor \
        is an index into that table; reading from it asks the kernel to copy bytes from the \
        file's page cache into the caller's buffer, blocking until data is there unless the \
        descriptor was opened non-blocking. Writes go the other way, and a successful write \
        only means the bytes reached the page cache: fsync asks for them to reach the disk. \
        Sockets, pipes and terminals are files too, so the same calls serve them, with \
        options of their own set through fcntl and ioctl. ";
    let long = text.repeat(4);
    (0..n)
        .map(|i| {
            let start = (i * 37) % text.len();
            let start = (start..).find(|&s| long.is_char_boundary(s)).unwrap_or(0);
            long[start..start + 1000].to_string()
        })
        .collect()
}

/// Chunks per second through `m` (best of three rounds of 64 chunks, batches of 32).
fn chunks_per_sec(m: &MiniLmEmbedder) -> Result<f64, Box<dyn std::error::Error>> {
    let texts = chunks(64);
    m.embed_blocking(&texts[..32])?; // warm-up
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        for batch in texts.chunks(32) {
            std::hint::black_box(m.embed_blocking(batch)?);
        }
        best = best.max(texts.len() as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = ModelCache::default().ensure(&MINILM)?;
    let t = Instant::now();
    let m = MiniLmEmbedder::load(&dir, &LocalOptions::default())?;
    println!(
        "minilm_load_ms {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let base = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "A monkey is playing drums.",
        "The new movie is awesome.",
        "Rust has a strong type system.",
    ];
    let batch: Vec<String> = (0..32).map(|i| base[i % base.len()].to_string()).collect();
    m.embed_blocking(&batch)?; // warm-up
    let rounds = 10;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(m.embed_blocking(&batch)?);
    }
    let sps = (rounds * batch.len()) as f64 / t.elapsed().as_secs_f64();
    println!("minilm_sentences_per_sec {sps:.0} sentences/s");
    let t = Instant::now();
    m.embed_blocking(&batch[..1])?;
    println!(
        "minilm_single_query_ms {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!("minilm_peak_rss_mb {:.0} MB", peak_rss_mb());
    // Ingestion's case: 1000-character chunks (~200 tokens), 32 per batch, with the default
    // (int8 where the CPU has VNNI) and the stored f32 weights.
    let exact = MiniLmEmbedder::load(
        &dir,
        &LocalOptions {
            keep_quantization: true,
            ..LocalOptions::default()
        },
    )?;
    for (name, model) in [("", &m), ("_f32", &exact)] {
        println!(
            "minilm_chunks_per_sec{name} {:.1} chunks/s",
            chunks_per_sec(model)?
        );
    }
    // As the ingestion pipeline runs it on a 2-core machine: two calls at once, each on
    // its own thread.
    let texts = chunks(64);
    let t = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let calls: Vec<_> = texts
            .chunks(32)
            .map(|half| {
                let m = &m;
                s.spawn(move || m.embed_blocking(half).map(drop))
            })
            .collect();
        calls.into_iter().map(|c| c.join()).collect()
    });
    for r in results {
        r.map_err(|_| "an embedding thread panicked")??;
    }
    println!(
        "minilm_chunks_per_sec_2calls {:.1} chunks/s",
        texts.len() as f64 / t.elapsed().as_secs_f64()
    );
    if std::env::args().any(|a| a == "--minilm-only") {
        return Ok(());
    }

    let dir = ModelCache::default().ensure(&SMOLLM2)?;
    let t = Instant::now();
    let chat = LocalChatModel::load(
        &dir.join("model.gguf"),
        &LocalOptions::default(),
        GenerationConfig::default(),
    )?;
    println!(
        "local_chat_load_ms {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let q = [Message::user(
        "Write a short story about a robot who learns to paint.",
    )];
    let opts = ChatOptions::default().with_max_tokens(128);
    let mut best = (0.0f64, 0.0f64);
    for _ in 0..3 {
        let start = Instant::now();
        let mut first = None;
        let m = chat.generate_blocking(&q, &opts, |_| {
            first.get_or_insert_with(Instant::now);
            true
        })?;
        let end = Instant::now();
        let usage = m.meta.and_then(|x| x.usage).unwrap_or_default();
        let first = first.unwrap_or(end);
        let pp = usage.prompt_tokens as f64 / (first - start).as_secs_f64();
        let gen = (usage.completion_tokens.saturating_sub(1)) as f64
            / (end - first).as_secs_f64().max(1e-9);
        best = (best.0.max(pp), best.1.max(gen));
    }
    println!("local_chat_pp_tps {:.1} tokens/s", best.0);
    // A RAG-sized prompt (about 300 tokens), answered with one token: prompt processing only.
    let passage = "Rust is a general-purpose programming language emphasizing performance, type \
        safety, and concurrency. It enforces memory safety, meaning that all references point \
        to valid memory. ";
    let long = [Message::user(format!(
        "{}\nSummarise the text above in one sentence.",
        passage.repeat(8)
    ))];
    let one = ChatOptions::default().with_max_tokens(1);
    let mut best_long = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let m = chat.generate_blocking(&long, &one, |_| true)?;
        let usage = m.meta.and_then(|x| x.usage).unwrap_or_default();
        best_long = best_long.max(usage.prompt_tokens as f64 / start.elapsed().as_secs_f64());
    }
    println!("local_chat_pp_long_tps {best_long:.1} tokens/s");
    println!("local_chat_gen_tps {:.1} tokens/s", best.1);
    println!("local_chat_peak_rss_mb {:.0} MB", peak_rss_mb());
    Ok(())
}

//! Knowledge-base search latency: the chunks of one knowledge base in PostgreSQL
//! (pgvector, exact cosine; full-text keywords) against the in-process indexes, with
//! 384-dimensional vectors (MiniLM's size) around 200 random topics and 60-word texts over
//! 2 000 words. Recall is the share of the exact top 10 (the in-process index, exact at
//! this size) that PostgreSQL's HNSW search returns.
//!
//! `scripts/bench_chunks.sh` starts a throwaway PostgreSQL and runs this; by hand:
//! `DATABASE_URL=postgres://… cargo run --release -p eino-server --example bench_chunks -- 20000`
//! (the chunk count; default 20 000). Prints `name value unit` lines.

use std::time::Instant;

use eino::schema::Document;
use eino_rag::{Bm25Index, ChunkQuery, ChunkStore, LocalChunks, VectorIndex};
use eino_server::store::PostgresStore;

const DIMS: usize = 384;
const PER_SOURCE: usize = 500;
const QUERIES: usize = 200;
/// Clusters the vectors are drawn around.
const TOPICS: usize = 200;
/// Words `w0` … `w1999`: a query word is in about 3 % of the chunks.
const VOCABULARY: u64 = 2000;

/// A small deterministic generator (xorshift64*): the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    /// Near one of `centers` (real embeddings cluster by topic; uniform random vectors
    /// in 384 dimensions are all about equally far apart, which no index is made for).
    fn vector(&mut self, centers: &[Vec<f32>]) -> Vec<f32> {
        let c = &centers[(self.next() % centers.len() as u64) as usize];
        c.iter().map(|x| x + 0.5 * self.unit()).collect()
    }
    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| format!("w{}", self.next() % VOCABULARY))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Ingest `n` chunks, time searches; returns the ids each vector search found.
async fn measure(name: &str, store: &dyn ChunkStore, n: usize) -> eino::Result<Vec<Vec<String>>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let centers: Vec<Vec<f32>> = (0..TOPICS)
        .map(|_| (0..DIMS).map(|_| rng.unit()).collect())
        .collect();
    let started = Instant::now();
    for s in 0..n.div_ceil(PER_SOURCE) {
        let source = format!("file-{s}.md");
        let chunks = (0..PER_SOURCE.min(n - s * PER_SOURCE))
            .map(|i| {
                let mut d = Document::new(format!("{source}#{i}"), rng.text(60));
                d.metadata.insert("source".into(), source.clone().into());
                (d, rng.vector(&centers))
            })
            .collect();
        store.replace_source("kb", &source, chunks).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{name}_ingest_chunks_per_s {:.0} chunks/s", n as f64 / secs);
    let mut found = Vec::new();
    for (side, keyword) in [("vector", false), ("keyword", true)] {
        let mut ms = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let (v, q) = (rng.vector(&centers), rng.text(4));
            let t = Instant::now();
            let hits = if keyword {
                store
                    .keyword_search("kb", &q, 10)
                    .await?
                    .unwrap_or_default()
            } else {
                store.search("kb", ChunkQuery::new(&v, 10)).await?
            };
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(hits.len(), 10, "{side} search found too little");
            if !keyword {
                found.push(hits.into_iter().map(|d| d.id).collect());
            }
        }
        ms.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        println!("{name}_{side}_search_p50 {p50:.2} ms");
        println!("{name}_{side}_search_p99 {p99:.2} ms");
    }
    store.drop_collection("kb").await?;
    Ok(found)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    println!("chunks {n} ({DIMS} dimensions, one knowledge base)");
    let local = LocalChunks::new(VectorIndex::in_memory()).with_keywords(Bm25Index::in_memory());
    // Below its HNSW threshold the in-process index is exact: the reference for recall.
    let exact = measure("local", &local, n).await?;
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL=postgres://…")?;
    let pg = PostgresStore::connect(&url, 4).await?.chunks().await?;
    let approximate = measure("postgres", &pg, n).await?;
    let same: usize = exact
        .iter()
        .zip(&approximate)
        .map(|(e, a)| a.iter().filter(|id| e.contains(id)).count())
        .sum();
    let recall = same as f64 / exact.iter().map(Vec::len).sum::<usize>() as f64;
    println!("postgres_vector_recall10 {recall:.4}");
    Ok(())
}

//! Retrieval quality, ingestion throughput and query latency of eino-rag, printed as
//! `name value unit` lines (recorded in `docs/benchmarks.md`).
//!
//! `cargo run --release -p eino-rag --example bench_rag [-- --quick] [--only quality|ingest|latency]`,
//! and for the latency part `[--noise 1.5] [--ef-search 64] [--max-connections 16]`
//! (`-- --export-pages DIR` writes 1000 pages as Markdown files for `scripts/bench_rag_server.sh`)
//!
//! - **Quality**: the Linux man-pages (`scripts/bench_corpus.sh` fetches them on first
//!   run). Each page's NAME description ("read from a file descriptor") is a query whose
//!   relevant document is that page (pages sharing a description are all relevant); the
//!   indexed text is the rest of the page, so the answer is never the query verbatim.
//!   Recall@10 and nDCG@10 for the vector side (local MiniLM), BM25, and hybrid (RRF and
//!   weighted fusion).
//! - **Ingestion**: the whole pipeline (split, embed, vector + BM25 index) on full pages,
//!   with MiniLM on a sample, and with a cheap hashing embedder on all pages, which
//!   separates the index cost from the model cost.
//! - **Latency**: synthetic clustered 384-dimensional unit vectors (real embeddings of
//!   100k chunks would take hours to compute here) at 10k and 100k points: exact search,
//!   and HNSW with its recall@10 against exact. `--quick` skips 100k.

mod roff;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eino::component::{EmbedOptions, Embedder, RetrieveOptions, Retriever};
use eino::schema::Document;
use eino_local::{LocalOptions, MiniLmEmbedder};
use eino_rag::ingest::Ingestor;
use eino_rag::{
    Bm25Index, Bm25Retriever, ChunkRetriever, Fusion, HnswConfig, HybridRetriever, LocalChunks,
    RecursiveSplitter, VectorIndex,
};
use futures_util::future::BoxFuture;

/// Characters of each page that are indexed for the quality test (MiniLM reads 256 tokens).
const DOC_CHARS: usize = 1500;

fn metric(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.4} {unit}");
}

fn corpus_dir() -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Ok(dir) = std::env::var("EINO_BENCH_CORPUS") {
        return Ok(dir.into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_corpus.sh");
    let out = std::process::Command::new("bash").arg(script).output()?;
    if !out.status.success() {
        return Err(format!(
            "fetching the corpus failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().into())
}

/// `(id, page)` for every real page, sorted by id.
fn pages(dir: &Path) -> Result<Vec<(String, roff::Page)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(src) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(page) = roff::parse(&src) {
            out.push((entry.file_name().to_string_lossy().into_owned(), page));
        }
    }
    Ok(out)
}

fn head(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// Recall@10 and nDCG@10 of one ranked list with binary relevance.
fn score(ranked: &[Document], relevant: &HashSet<&str>) -> (f64, f64) {
    let mut seen = HashSet::new();
    let ids: Vec<&str> = ranked
        .iter()
        .map(|d| d.id.as_str())
        .filter(|id| seen.insert(*id))
        .take(10)
        .collect();
    let hits = ids.iter().filter(|id| relevant.contains(*id)).count();
    let dcg: f64 = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| relevant.contains(*id))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    (hits as f64 / relevant.len() as f64, dcg / ideal)
}

async fn quality(
    pages: &[(String, roff::Page)],
    embedder: Arc<MiniLmEmbedder>,
) -> Result<(), Box<dyn std::error::Error>> {
    let docs: Vec<Document> = pages
        .iter()
        .map(|(id, p)| Document::new(id.clone(), head(&p.body, DOC_CHARS)))
        .collect();
    let started = Instant::now();
    let texts: Vec<String> = docs.iter().map(|d| d.content.clone()).collect();
    let mut vectors = Vec::new();
    for batch in texts.chunks(32) {
        vectors.extend(embedder.embed(batch, &EmbedOptions::default()).await?);
    }
    eprintln!("embedded {} pages in {:.0?}", docs.len(), started.elapsed());
    let (vi, bm) = (VectorIndex::in_memory(), Bm25Index::in_memory());
    let items: Vec<(Document, Vec<f32>)> = docs.iter().cloned().zip(vectors).collect();
    vi.upsert("man", items.clone())?;
    bm.upsert("man", docs)?;
    let ann = VectorIndex::in_memory().with_hnsw(HnswConfig::default().with_min_docs(0))?;
    ann.upsert("man", items)?;
    ann.build_hnsw("man")?;

    let vector = Arc::new(ChunkRetriever::new(vi, embedder.clone(), "man").with_top_k(10));
    let keyword = Arc::new(Bm25Retriever::new(bm, "man").with_top_k(10));
    let rrf = HybridRetriever::new(vector.clone(), keyword.clone()).with_top_k(10);
    let weighted = rrf
        .clone()
        .with_fusion(Fusion::Weighted { vector_weight: 0.5 });

    let mut relevant: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (id, p) in pages {
        relevant
            .entry(p.description.as_str())
            .or_default()
            .insert(id.as_str());
    }
    let mut queries: Vec<(&str, HashSet<&str>)> = relevant.into_iter().collect();
    queries.sort_by_key(|q| q.0);
    let sides: [(&str, &dyn Retriever); 4] = [
        ("vector", vector.as_ref()),
        ("bm25", keyword.as_ref()),
        ("hybrid", &rrf),
        ("hybrid_weighted", &weighted),
    ];
    let opts = RetrieveOptions::default();
    for (name, r) in sides {
        let (mut recall, mut ndcg) = (0.0, 0.0);
        for (q, rel) in &queries {
            let (rc, nd) = score(&r.retrieve(q, &opts).await?, rel);
            recall += rc;
            ndcg += nd;
        }
        let n = queries.len() as f64;
        metric(&format!("recall10_{name}"), recall / n, "ratio");
        metric(&format!("ndcg10_{name}"), ndcg / n, "ratio");
    }
    metric("quality_queries", queries.len() as f64, "queries");

    // The graph's recall on real embeddings (the latency figures use synthetic ones).
    let texts: Vec<String> = queries.iter().map(|q| q.0.to_string()).collect();
    let (mut found, mut total) = (0, 0);
    for batch in texts.chunks(32) {
        for q in embedder.embed(batch, &EmbedOptions::default()).await? {
            let exact = ann.search_exact("man", &q, 10, None, None)?;
            let approx = ann.search("man", &q, 10, None, None)?;
            found += approx
                .iter()
                .filter(|d| exact.iter().any(|e| e.id == d.id))
                .count();
            total += exact.len();
        }
    }
    metric(
        "hnsw_recall10_manpages",
        found as f64 / total as f64,
        "ratio",
    );
    Ok(())
}

// As the `eino` binary allocates.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A cheap stand-in for a model: each word hashed into one of 384 buckets (a real, if
/// weak, bag-of-words embedding), so ingestion measures the pipeline and indexes only.
struct HashingEmbedder;

impl Embedder for HashingEmbedder {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a EmbedOptions,
    ) -> BoxFuture<'a, eino::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 384];
                    for w in t.split_whitespace() {
                        let h = w.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                        });
                        v[(h % 384) as usize] += 1.0;
                    }
                    v[0] += 1e-3;
                    v
                })
                .collect())
        })
    }
}

/// Chunks per second through the whole ingestion pipeline.
async fn ingest(
    pages: &[(String, roff::Page)],
    embedder: Arc<dyn Embedder>,
) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let index = VectorIndex::in_memory();
    let ingestor = Ingestor::new(
        Arc::new(RecursiveSplitter::new(1000)),
        embedder,
        LocalChunks::new(index.clone()).with_keywords(Bm25Index::in_memory()),
        "man",
    )?;
    let docs = pages
        .iter()
        .map(|(id, p)| {
            let mut d = Document::new(id.clone(), p.body.clone());
            d.metadata.insert("source".into(), id.clone().into());
            d
        })
        .collect();
    let started = Instant::now();
    let report = ingestor.ingest(docs, |_| {}).await;
    let secs = started.elapsed().as_secs_f64();
    if report.failed() > 0 {
        return Err(format!("{} sources failed to ingest", report.failed()).into());
    }
    let chunks = index.len("man");
    let stored = index.find_where("man", &serde_json::json!({}), usize::MAX);
    let chars: usize = stored.iter().map(|d| d.content.chars().count()).sum();
    metric(
        "ingest_mean_chunk_chars",
        chars as f64 / stored.len().max(1) as f64,
        "chars",
    );
    Ok((chunks, chunks as f64 / secs))
}

/// Deterministic pseudo-random numbers in [-1, 1) (xorshift; no seeding crate needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A point of the cluster around `centre`: each component moved by up to `noise`.
    fn vector(&mut self, around: &[f32], noise: f32) -> Vec<f32> {
        around.iter().map(|c| c + noise * self.next()).collect()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Exact and HNSW latency at `n` points, and HNSW recall@10 against exact.
///
/// Centres have components uniform in [-1, 1]; with `noise` 1.5 two points of one cluster
/// have a cosine similarity of about 0.3 (unrelated points about 0), with 2.5 about 0.1,
/// which is close to random and hard for any graph index.
fn latency(
    n: usize,
    label: &str,
    noise: f32,
    cfg: &HnswConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    const DIM: usize = 384;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let centres: Vec<Vec<f32>> = (0..n / 50)
        .map(|_| (0..DIM).map(|_| rng.next()).collect())
        .collect();
    let index = VectorIndex::in_memory().with_hnsw(cfg.clone())?;
    let items: Vec<(Document, Vec<f32>)> = (0..n)
        .map(|i| {
            let d = Document::new(format!("p{i}"), String::new());
            (d, rng.vector(&centres[i % centres.len()], noise))
        })
        .collect();
    index.upsert("lat", items)?;
    let queries: Vec<Vec<f32>> = (0..500)
        .map(|i| rng.vector(&centres[(i * 7919) % centres.len()], noise))
        .collect();

    let mut exact = Vec::new();
    let mut times = Vec::new();
    for q in &queries {
        let t = Instant::now();
        exact.push(index.search_exact("lat", q, 10, None, None)?);
        times.push(t.elapsed());
    }
    times.sort();
    metric(
        &format!("query_p50_ms_exact_{label}"),
        percentile(&times, 0.5),
        "ms",
    );
    metric(
        &format!("query_p99_ms_exact_{label}"),
        percentile(&times, 0.99),
        "ms",
    );

    let t = Instant::now();
    index.build_hnsw("lat")?;
    metric(
        &format!("hnsw_build_s_{label}"),
        t.elapsed().as_secs_f64(),
        "s",
    );
    metric(
        &format!("hnsw_graph_bytes_per_vector_{label}"),
        index.hnsw_memory("lat").unwrap_or(0) as f64 / n as f64,
        "bytes",
    );
    let (mut times, mut found) = (Vec::new(), 0);
    for (q, want) in queries.iter().zip(&exact) {
        let t = Instant::now();
        let got = index.search("lat", q, 10, None, None)?;
        times.push(t.elapsed());
        let want: HashSet<&str> = want.iter().map(|d| d.id.as_str()).collect();
        found += got.iter().filter(|d| want.contains(d.id.as_str())).count();
    }
    times.sort();
    metric(
        &format!("query_p50_ms_hnsw_{label}"),
        percentile(&times, 0.5),
        "ms",
    );
    metric(
        &format!("query_p99_ms_hnsw_{label}"),
        percentile(&times, 0.99),
        "ms",
    );
    metric(
        &format!("hnsw_recall10_{label}"),
        found as f64 / (10 * queries.len()) as f64,
        "ratio",
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .windows(2)
        .find(|w| w[0] == "--only")
        .map(|w| w[1].clone());
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if let Some(w) = args.windows(2).find(|w| w[0] == "--export-pages") {
        // The service benchmark's knowledge base: pages as Markdown files.
        let pages = pages(&corpus_dir()?)?;
        let dir = Path::new(&w[1]);
        std::fs::create_dir_all(dir)?;
        for (id, page) in pages.iter().take(1000) {
            let text = format!(
                "# {id}: {}\n\n{}\n",
                page.description,
                head(&page.body, DOC_CHARS)
            );
            std::fs::write(dir.join(format!("{id}.md")), text)?;
        }
        eprintln!(
            "{} pages written to {}",
            pages.len().min(1000),
            dir.display()
        );
        return Ok(());
    }

    if run("quality") || run("ingest") {
        let pages = pages(&corpus_dir()?)?;
        eprintln!("{} man pages", pages.len());
        let embedder = Arc::new(MiniLmEmbedder::load_default(LocalOptions::default()).await?);
        if run("quality") {
            quality(&pages, embedder.clone()).await?;
        }
        if run("ingest") {
            // A sample for the model (MiniLM embeds some 15 full 1000-character chunks a
            // second per core), every page for the hashing embedder.
            let (chunks, rate) = ingest(&pages[..100.min(pages.len())], embedder).await?;
            metric("ingest_chunks_per_sec", rate, "chunks/s");
            metric("ingest_chunks_minilm", chunks as f64, "chunks");
            let (chunks, rate) = ingest(&pages, Arc::new(HashingEmbedder)).await?;
            metric("ingest_chunks_per_sec_fake_embedder", rate, "chunks/s");
            metric("ingest_chunks_fake_embedder", chunks as f64, "chunks");
        }
    }
    if run("latency") {
        let value = |name: &str| {
            let w = args.windows(2).find(|w| w[0] == name)?;
            w[1].parse::<f64>().ok()
        };
        let noise = value("--noise").unwrap_or(1.5) as f32;
        let mut cfg = HnswConfig::default().with_min_docs(0);
        if let Some(ef) = value("--ef-search") {
            cfg = cfg.with_ef_search(ef as usize);
        }
        if let Some(m) = value("--max-connections") {
            let ef_construction = cfg.ef_construction.max(2 * m as usize);
            cfg = cfg.with_construction(m as usize, ef_construction);
        }
        eprintln!("synthetic vectors, noise {noise}, {cfg:?}");
        latency(10_000, "10k", noise, &cfg)?;
        if !quick {
            latency(100_000, "100k", noise, &cfg)?;
        }
    }
    Ok(())
}

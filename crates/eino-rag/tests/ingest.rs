//! The ingestion pipeline. The embedder here is a small deterministic fake (the test is
//! about orchestration: hashes, replacement, progress, failures); the real MiniLM run is in
//! tests/rag.rs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eino::component::{EmbedOptions, Embedder};
use eino::schema::Document;
use eino::{Error, Result};
use eino_rag::chunks::SourceChunks;
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::{keys, parse, parse_with, Format, ParseOptions};
use eino_rag::{ChunkQuery, ChunkStore, RecursiveSplitter, Size, VectorIndex};
use futures_util::future::BoxFuture;

/// Letter histogram as the vector; fails on texts containing "FAIL".
#[derive(Default)]
struct Letters {
    calls: AtomicUsize,
}

impl Embedder for Letters {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            texts
                .iter()
                .map(|t| {
                    if t.contains("FAIL") {
                        return Err(Error::new(eino::ErrorKind::Transient, "embedder down"));
                    }
                    let mut v = vec![0.0f32; 26];
                    for c in t
                        .to_ascii_lowercase()
                        .bytes()
                        .filter(u8::is_ascii_lowercase)
                    {
                        v[usize::from(c - b'a')] += 1.0;
                    }
                    v[0] += 0.001;
                    Ok(v)
                })
                .collect()
        })
    }
}

fn setup(batch: usize) -> (Ingestor, VectorIndex, Arc<Letters>) {
    let index = VectorIndex::in_memory();
    let embedder = Arc::new(Letters::default());
    let ingestor = Ingestor::with_batch_size(
        Arc::new(RecursiveSplitter::new(40).with_size(Size::Chars)),
        embedder.clone(),
        index.clone(),
        "kb",
        batch,
    )
    .unwrap();
    (ingestor, index, embedder)
}

fn text(source: &str, body: &str) -> eino::schema::Document {
    parse(Format::Text, body.as_bytes(), source)
        .unwrap()
        .remove(0)
}

const LONG: &str = "Alpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu. \
                    Nu xi omicron pi. Rho sigma tau upsilon.";

#[tokio::test]
async fn unchanged_sources_are_skipped_and_changed_ones_replaced() {
    let (ingestor, index, embedder) = setup(2);
    let report = ingestor
        .ingest(
            vec![text("a.txt", LONG), text("b.txt", "Short one.")],
            |_| {},
        )
        .await;
    let Outcome::Added { chunks } = report.outcomes[0].1 else {
        panic!("{report:?}")
    };
    assert!(chunks >= 3, "{chunks}");
    assert_eq!(report.outcomes[1].1, Outcome::Added { chunks: 1 });
    assert_eq!(index.len("kb"), chunks + 1);
    // Batches of two across both sources (b.txt's chunk shares a call with a.txt's).
    assert_eq!(
        embedder.calls.load(Ordering::SeqCst),
        (chunks + 1).div_ceil(2)
    );

    let calls = embedder.calls.load(Ordering::SeqCst);
    let again = ingestor
        .ingest(
            vec![text("a.txt", LONG), text("b.txt", "Short one.")],
            |_| {},
        )
        .await;
    assert!(again.outcomes.iter().all(|(_, o)| *o == Outcome::Unchanged));
    assert_eq!(
        embedder.calls.load(Ordering::SeqCst),
        calls,
        "nothing re-embedded"
    );

    let changed = ingestor
        .ingest(vec![text("a.txt", "Now only this.")], |_| {})
        .await;
    assert_eq!(
        changed.outcomes[0].1,
        Outcome::Replaced {
            chunks: 1,
            removed: chunks
        }
    );
    assert_eq!(index.len("kb"), 2);
    let stored = index.find_where("kb", &serde_json::json!({"source": "a.txt"}), 10);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content, "Now only this.");
    assert_eq!(
        stored[0].metadata[keys::CONTENT_HASH],
        eino_rag::load::content_hash(b"Now only this.")
    );
    assert_eq!(ingestor.remove_source("a.txt").await.unwrap(), 1);
    assert_eq!(index.len("kb"), 1);
}

#[tokio::test]
async fn a_failing_source_keeps_its_old_chunks_and_the_others_go_on() {
    let (ingestor, index, _) = setup(8);
    ingestor
        .ingest(vec![text("a.txt", "Old good text.")], |_| {})
        .await;
    let report = ingestor
        .ingest(
            vec![
                text("a.txt", "New text that will FAIL."),
                text("c.txt", "Fine."),
            ],
            |_| {},
        )
        .await;
    assert!(
        matches!(&report.outcomes[0].1, Outcome::Failed { error } if error.contains("embedder down"))
    );
    assert_eq!(report.outcomes[1].1, Outcome::Added { chunks: 1 });
    assert_eq!(report.failed(), 1);
    let kept = index.find_where("kb", &serde_json::json!({"source": "a.txt"}), 10);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].content, "Old good text.",
        "old version still served"
    );
}

#[tokio::test]
async fn progress_counts_documents_chunks_and_bytes() {
    let (ingestor, _, _) = setup(4);
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let docs = vec![text("a.txt", LONG), text("b.txt", "Short one.")];
    let bytes = (LONG.len() + "Short one.".len()) as u64;
    let report = ingestor
        .ingest(docs, move |p| sink.lock().unwrap().push(p.clone()))
        .await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].documents_done, 0);
    assert_eq!(seen[0].bytes_total, bytes);
    let last = seen.last().unwrap();
    assert_eq!(last, &report.progress);
    assert_eq!((last.documents_done, last.documents_total), (2, 2));
    assert_eq!(last.bytes_done, bytes);
    assert_eq!(last.chunks_done, last.chunks_total);
    assert!(seen.windows(2).all(
        |w| w[0].chunks_done <= w[1].chunks_done && w[0].documents_done <= w[1].documents_done
    ));
}

#[tokio::test]
async fn the_pages_of_one_pdf_are_one_source() {
    let (ingestor, index, _) = setup(8);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdf/tides.pdf");
    let bytes = std::fs::read(&path).unwrap();
    let options = ParseOptions::default().with_pdf_per_page(true);
    let pages = parse_with(Format::Pdf, &bytes, "tides.pdf", &options).unwrap();
    assert_eq!(pages.len(), 2);
    let report = ingestor.ingest(pages.clone(), |_| {}).await;
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    assert_eq!(report.progress.bytes_total, bytes.len() as u64);
    let stored = index.find_where("kb", &serde_json::json!({"source": "tides.pdf"}), 100);
    assert!(stored.iter().any(|d| d.metadata[keys::PAGE] == 1));
    assert!(
        stored.iter().any(|d| d.metadata[keys::PAGE] == 2),
        "page 2 did not replace page 1"
    );
    let again = ingestor.ingest(pages, |_| {}).await;
    assert_eq!(again.outcomes[0].1, Outcome::Unchanged);
}

/// Counts the store's writes; everything else goes to a `VectorIndex`.
struct CountingStore {
    inner: VectorIndex,
    writes: AtomicUsize,
}

impl ChunkStore for CountingStore {
    fn source_hash<'a>(&'a self, c: &'a str, s: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        self.inner.source_hash(c, s)
    }
    fn replace_source<'a>(
        &'a self,
        c: &'a str,
        s: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        ChunkStore::replace_source(&self.inner, c, s, chunks)
    }
    fn replace_sources<'a>(
        &'a self,
        c: &'a str,
        sources: Vec<SourceChunks>,
    ) -> BoxFuture<'a, Result<Vec<usize>>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        ChunkStore::replace_sources(&self.inner, c, sources)
    }
    fn drop_collection<'a>(&'a self, c: &'a str) -> BoxFuture<'a, Result<bool>> {
        ChunkStore::drop_collection(&self.inner, c)
    }
    fn is_empty<'a>(&'a self, c: &'a str) -> BoxFuture<'a, Result<bool>> {
        ChunkStore::is_empty(&self.inner, c)
    }
    fn search<'a>(&'a self, c: &'a str, q: ChunkQuery<'a>) -> BoxFuture<'a, Result<Vec<Document>>> {
        ChunkStore::search(&self.inner, c, q)
    }
    fn upsert<'a>(
        &'a self,
        c: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        ChunkStore::upsert(&self.inner, c, chunks)
    }
}

fn many_sources(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            text(
                &format!("s{i}.txt"),
                &format!("Source number {i} says hello."),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_window_of_sources_is_one_write_to_the_store() {
    let store = Arc::new(CountingStore {
        inner: VectorIndex::in_memory(),
        writes: AtomicUsize::new(0),
    });
    let splitter = || Arc::new(RecursiveSplitter::new(200).with_size(Size::Chars));
    let ingestor = Ingestor::new(
        splitter(),
        Arc::new(Letters::default()),
        store.clone(),
        "kb",
    )
    .unwrap();
    let report = ingestor.ingest(many_sources(20), |_| {}).await;
    assert_eq!(report.failed(), 0, "{report:?}");
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        1,
        "20 small files, one write"
    );
    assert_eq!(store.inner.len("kb"), 20);

    // One source per window: one write each, and the outcomes say what each replaced.
    let small = Ingestor::new(
        splitter(),
        Arc::new(Letters::default()),
        store.clone(),
        "kb",
    )
    .unwrap()
    .with_window_bytes(1);
    let mut docs = many_sources(3);
    for d in &mut docs {
        d.content.push_str(" Changed.");
        let hash = eino_rag::load::content_hash(d.content.as_bytes());
        d.metadata.insert(keys::CONTENT_HASH.into(), hash.into());
    }
    let report = small.ingest(docs, |_| {}).await;
    assert_eq!(store.writes.load(Ordering::SeqCst), 4);
    assert!(report.outcomes.iter().all(|(_, o)| *o
        == Outcome::Replaced {
            chunks: 1,
            removed: 1
        }));
    assert_eq!(store.inner.len("kb"), 20);
}

/// Records how many calls run at once and the text lengths of every call.
#[derive(Default)]
struct Slow {
    now: AtomicUsize,
    most: AtomicUsize,
    lengths: Mutex<Vec<Vec<usize>>>,
}

impl Embedder for Slow {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            self.lengths
                .lock()
                .unwrap()
                .push(texts.iter().map(String::len).collect());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        })
    }
}

#[tokio::test]
async fn batches_go_longest_first_and_as_many_at_once_as_configured() {
    for calls in [1, 3] {
        let embedder = Arc::new(Slow::default());
        let ingestor = Ingestor::with_batch_size(
            Arc::new(RecursiveSplitter::new(400).with_size(Size::Chars)),
            embedder.clone(),
            VectorIndex::in_memory(),
            "kb",
            4,
        )
        .unwrap()
        .with_embed_concurrency(calls);
        let docs = (0..24)
            .map(|i| text(&format!("d{i}.txt"), &"word ".repeat(1 + (i * 7) % 24)))
            .collect();
        let report = ingestor.ingest(docs, |_| {}).await;
        assert_eq!(report.failed(), 0);
        assert_eq!(embedder.most.load(Ordering::SeqCst), calls);
        let lengths: Vec<usize> = embedder.lengths.lock().unwrap().concat();
        assert_eq!(lengths.len(), 24);
        if calls == 1 {
            assert!(lengths.windows(2).all(|w| w[0] >= w[1]), "{lengths:?}");
        }
    }
}

#[tokio::test]
async fn admission_sees_every_split_source_and_can_fail_it() {
    let (ingestor, index, embedder) = setup(8);
    let seen: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let log = seen.clone();
    let ingestor = ingestor.with_admission(Arc::new(move |source: &str, chunks| {
        log.lock().unwrap().push((source.to_string(), chunks));
        if source == "b.txt" {
            return Err(Error::invalid_input("b.txt: over the quota"));
        }
        Ok(())
    }));
    let report = ingestor
        .ingest(
            vec![text("a.txt", LONG), text("b.txt", "Short one.")],
            |_| {},
        )
        .await;
    assert!(matches!(report.outcomes[0].1, Outcome::Added { .. }));
    assert!(
        matches!(&report.outcomes[1].1, Outcome::Failed { error } if error.contains("over the quota"))
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], ("b.txt".to_string(), 1));
    assert!(index
        .find_where("kb", &serde_json::json!({"source": "b.txt"}), 5)
        .is_empty());
    // b.txt's chunk was never embedded: a.txt's chunks alone went to the embedder.
    assert_eq!(embedder.calls.load(Ordering::SeqCst), seen[0].1.div_ceil(8));
}

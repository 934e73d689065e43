//! The ingestion pipeline. The embedder here is a small deterministic fake (the test is
//! about orchestration: hashes, replacement, progress, failures); the real MiniLM run is in
//! tests/rag.rs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use eino::component::{EmbedOptions, Embedder};
use eino::{Error, Result};
use eino_rag::ingest::{Ingestor, Outcome, Progress};
use eino_rag::load::{keys, parse, parse_with, Format, ParseOptions};
use eino_rag::{RecursiveSplitter, Size, VectorIndex};
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
    // Batches of two: ceil(chunks / 2) calls for a.txt, one for b.txt.
    assert_eq!(
        embedder.calls.load(Ordering::SeqCst),
        chunks.div_ceil(2) + 1
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

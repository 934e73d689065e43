//! The worked example of docs/architecture.md: a vector store written from scratch (a
//! `BTreeMap`, exact search) implements the one trait, `ChunkStore`, and is then an eino
//! `Indexer` and `Retriever` and an ingestion target. The embedder is a fake (the test is
//! about the trait's reach, not about retrieval quality).

use std::collections::BTreeMap;
use std::sync::Mutex;

use eino::schema::Document;
use eino::Result;
use eino_rag::index::matches;
use eino_rag::{ChunkQuery, ChunkStore};
use futures_util::future::BoxFuture;

/// (collection, id) → the chunk and its vector.
type Chunks = BTreeMap<(String, String), (Document, Vec<f32>)>;

#[derive(Default)]
struct MapStore(Mutex<Chunks>);

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    f64::from(dot / (n(a) * n(b)).max(f32::EPSILON))
}

impl ChunkStore for MapStore {
    fn source_hash<'a>(
        &'a self,
        col: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let m = self.0.lock().unwrap();
            Ok(m.iter()
                .filter(|((c, _), (d, _))| {
                    c == col && d.metadata.get("source").and_then(|s| s.as_str()) == Some(source)
                })
                .find_map(|(_, (d, _))| d.metadata.get("content_hash")?.as_str().map(String::from)))
        })
    }
    fn replace_source<'a>(
        &'a self,
        col: &'a str,
        source: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<usize>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            let before = m.len();
            m.retain(|(c, _), (d, _)| {
                !(c == col && d.metadata.get("source").and_then(|s| s.as_str()) == Some(source))
            });
            let removed = before - m.len();
            for (d, v) in chunks {
                m.insert((col.to_string(), d.id.clone()), (d, v));
            }
            Ok(removed)
        })
    }
    fn upsert<'a>(
        &'a self,
        col: &'a str,
        chunks: Vec<(Document, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            for (d, v) in chunks {
                m.insert((col.to_string(), d.id.clone()), (d, v));
            }
            Ok(())
        })
    }
    fn drop_collection<'a>(&'a self, col: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            let before = m.len();
            m.retain(|(c, _), _| c != col);
            Ok(m.len() < before)
        })
    }
    fn is_empty<'a>(&'a self, col: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(!self.0.lock().unwrap().keys().any(|(c, _)| c == col)) })
    }
    fn search<'a>(
        &'a self,
        col: &'a str,
        q: ChunkQuery<'a>,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(async move {
            let m = self.0.lock().unwrap();
            let mut hits: Vec<Document> = m
                .iter()
                .filter(|((c, _), (d, _))| {
                    c == col && q.filter.is_none_or(|f| matches(f, &d.metadata))
                })
                .map(|(_, (d, v))| Document {
                    score: Some(cosine(q.vector, v)),
                    ..d.clone()
                })
                .filter(|d| q.min_score.is_none_or(|min| d.score.unwrap_or(0.0) >= min))
                .collect();
            hits.sort_by(|a, b| b.score.unwrap_or(0.0).total_cmp(&a.score.unwrap_or(0.0)));
            hits.truncate(q.k);
            Ok(hits)
        })
    }
}

/// Two dimensions: how much of the text is about fruit, how much about tools.
struct Axis;

impl eino::component::Embedder for Axis {
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        _: &'a eino::component::EmbedOptions,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| {
                    let fruit = ["apple", "pear"].iter().filter(|w| t.contains(*w)).count();
                    let tools = ["hammer", "saw"].iter().filter(|w| t.contains(*w)).count();
                    vec![fruit as f32 + 0.01, tools as f32 + 0.01]
                })
                .collect())
        })
    }
}

#[tokio::test]
async fn a_store_written_from_scratch_is_usable_everywhere() {
    use std::sync::Arc;

    use eino::component::{IndexOptions, Indexer, RetrieveOptions, Retriever};
    use eino_rag::ingest::{Ingestor, Outcome};
    use eino_rag::{ChunkIndexer, ChunkRetriever, RecursiveSplitter};

    let store = Arc::new(MapStore::default());
    // As an eino Indexer.
    let indexer = ChunkIndexer::new(store.clone(), Arc::new(Axis), "kb");
    indexer
        .store(
            vec![
                Document::new("a", "an apple and a pear"),
                Document::new("h", "a hammer and a saw"),
            ],
            &IndexOptions::default(),
        )
        .await
        .unwrap();
    // As an eino Retriever, filters included.
    let retriever = ChunkRetriever::new(store.clone(), Arc::new(Axis), "kb").with_top_k(1);
    let hits = retriever
        .retrieve("which fruit? apple", &RetrieveOptions::default())
        .await
        .unwrap();
    assert_eq!(hits[0].id, "a");
    let o = RetrieveOptions {
        filter: Some(serde_json::json!({"missing": true})),
        ..RetrieveOptions::default()
    };
    assert!(retriever.retrieve("apple", &o).await.unwrap().is_empty());
    // As the ingestion pipeline's target: a source is added, then found unchanged.
    let ingestor = Ingestor::new(
        Arc::new(RecursiveSplitter::new(200)),
        Arc::new(Axis),
        store.clone(),
        "docs",
    )
    .unwrap();
    let doc = eino_rag::load::parse(
        eino_rag::load::Format::Text,
        b"a saw and a hammer",
        "tools.txt",
    )
    .unwrap();
    let report = ingestor.ingest(doc.clone(), |_| {}).await;
    assert!(
        matches!(report.outcomes[0].1, Outcome::Added { .. }),
        "{report:?}"
    );
    let again = ingestor.ingest(doc, |_| {}).await;
    assert_eq!(again.outcomes[0].1, Outcome::Unchanged);
}

//! The keyword index in the pipeline: the fixture folder ingested into a vector index (real
//! local MiniLM embeddings) and a BM25 index side by side, then searched by each and by the
//! hybrid retriever.

use std::path::Path;
use std::sync::Arc;

use eino::component::{RetrieveOptions, Retriever};
use eino_rag::ingest::{Ingestor, Outcome};
use eino_rag::load::DirLoader;
use eino_rag::{
    Bm25Index, Bm25Retriever, ChunkRetriever, Fusion, HybridRetriever, LocalChunks,
    RecursiveSplitter, VectorIndex,
};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/docs"))
}

#[tokio::test]
async fn ingest_into_both_indexes_and_search_hybrid() {
    let embedder = Arc::new(
        eino_local::MiniLmEmbedder::load_default(eino_local::LocalOptions::default())
            .await
            .unwrap(),
    );
    let (vectors, keywords) = (VectorIndex::in_memory(), Bm25Index::in_memory());
    let ingestor = Ingestor::new(
        Arc::new(RecursiveSplitter::new(160)),
        embedder.clone(),
        LocalChunks::new(vectors.clone()).with_keywords(keywords.clone()),
        "kb",
    )
    .unwrap();
    let report = DirLoader::new().load_dir(fixtures()).await.unwrap();
    assert!(
        !report.errors.is_empty(),
        "the broken fixtures are reported"
    );
    let first = ingestor.ingest(report.documents.clone(), |_| {}).await;
    assert_eq!(first.failed(), 0, "{:?}", first.outcomes);
    let chunks = vectors.len("kb");
    assert!(chunks > 3);
    assert_eq!(keywords.len("kb"), chunks, "both sides hold every chunk");

    // Re-ingesting changes nothing on either side.
    let again = ingestor.ingest(report.documents.clone(), |_| {}).await;
    assert!(again.outcomes.iter().all(|(_, o)| *o == Outcome::Unchanged));
    assert_eq!(keywords.len("kb"), chunks);

    // An exact term: BM25 finds the Cargo chunk.
    let bm25 = Arc::new(Bm25Retriever::new(keywords.clone(), "kb"));
    let o = RetrieveOptions::default();
    let hits = bm25.retrieve("cargo build", &o).await.unwrap();
    assert!(
        hits[0].content.contains("cargo build"),
        "{:?}",
        hits[0].content
    );
    assert!(hits[0].metadata["source"]
        .as_str()
        .unwrap()
        .ends_with("rust.md"));

    // A paraphrase with no shared word: only the vector side can answer it.
    let vector = Arc::new(ChunkRetriever::new(vectors.clone(), embedder, "kb"));
    let paraphrase = "who is responsible for freeing a variable";
    assert!(bm25
        .retrieve(paraphrase, &o)
        .await
        .unwrap()
        .iter()
        .all(|d| !d.content.contains("owner")));
    for fusion in [Fusion::Rrf(60.0), Fusion::Weighted { vector_weight: 0.5 }] {
        let hybrid = HybridRetriever::new(vector.clone(), bm25.clone())
            .with_fusion(fusion)
            .with_top_k(3);
        let (hits, report) = hybrid.retrieve_with_report(paraphrase, &o).await.unwrap();
        assert!(!report.degraded());
        assert!(
            hits.iter().any(|d| d.content.contains("single owner")),
            "{fusion:?}: {hits:?}"
        );
        let (hits, _) = hybrid
            .retrieve_with_report("cargo build", &o)
            .await
            .unwrap();
        assert!(hits.iter().any(|d| d.content.contains("cargo build")));
    }

    // Removing a source removes it from both sides.
    let rust_md = fixtures().join("rust.md").to_string_lossy().into_owned();
    let removed = ingestor.remove_source(&rust_md).await.unwrap();
    assert!(removed > 0);
    assert_eq!(keywords.len("kb"), vectors.len("kb"));
    assert!(bm25
        .retrieve("cargo build", &o)
        .await
        .unwrap()
        .iter()
        .all(|d| !d.content.contains("cargo build")));
}

#[test]
fn a_hybrid_fusion_serves_as_a_multi_query_fusion() {
    use eino::flow::retriever::{reciprocal_rank_fusion, FusionFn};
    use eino::schema::Document;
    let list = |ids: &[&str]| -> Vec<Document> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut d = Document::new(*id, *id);
                d.score = Some(1.0 - i as f64 / 10.0);
                d
            })
            .collect()
    };
    let lists = vec![list(&["a", "b", "c"]), list(&["c", "b"]), list(&["c"])];
    let rrf: FusionFn = eino_rag::Fusion::Rrf(60.0).into();
    let ids = |docs: Vec<Document>| docs.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(rrf(lists.clone()).unwrap()),
        ids(reciprocal_rank_fusion(lists.clone(), 60.0))
    );
    // Weighted: the first list is the vector side; all the vector side weighs here.
    let vector_only: FusionFn = eino_rag::Fusion::Weighted { vector_weight: 1.0 }.into();
    assert_eq!(ids(vector_only(lists).unwrap())[0], "a");
}

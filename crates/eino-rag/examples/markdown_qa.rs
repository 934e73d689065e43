//! Answer questions over a folder of Markdown with hybrid retrieval and the local models:
//! no API key, no server.
//!
//! `cargo run --release -p eino-rag --example markdown_qa -- DIR "QUESTION"`
//! (DIR defaults to this repository's `docs/`).
//!
//! The folder is ingested into a vector index (MiniLM embeddings) and a BM25 index side by
//! side; a [`HybridRetriever`] fuses both, the best chunks are reordered so the strongest
//! sit at the ends of the context, and SmolLM2 streams an answer that cites its sources.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use eino::component::{ChatModel, ChatOptions, RetrieveOptions};
use eino::schema::Message;
use eino_local::{LocalChatModel, LocalOptions, MiniLmEmbedder};
use eino_rag::ingest::Ingestor;
use eino_rag::load::DirLoader;
use eino_rag::{
    reorder_for_context, Bm25Index, Bm25Retriever, ChunkRetriever, HybridRetriever, LocalChunks,
    MarkdownHeaderSplitter, VectorIndex,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")));
    let question = args.collect::<Vec<_>>().join(" ");
    let question = if question.is_empty() {
        "How do I reproduce the server benchmark?".to_string()
    } else {
        question
    };

    let embedder = Arc::new(MiniLmEmbedder::load_default(LocalOptions::default()).await?);
    let (vectors, keywords) = (VectorIndex::in_memory(), Bm25Index::in_memory());
    let ingestor = Ingestor::new(
        Arc::new(MarkdownHeaderSplitter::new(600)),
        embedder.clone(),
        LocalChunks::new(vectors.clone()).with_keywords(keywords.clone()),
        "docs",
    )?;
    let loaded = DirLoader::new().include("**/*.md")?.load_dir(&dir).await?;
    for e in &loaded.errors {
        eprintln!("skipped {}: {}", e.path.display(), e.error);
    }
    let report = ingestor.ingest(loaded.documents, |_| {}).await;
    eprintln!(
        "indexed {} chunks from {} files",
        report.progress.chunks_done,
        report.outcomes.len()
    );

    let hybrid = HybridRetriever::new(
        Arc::new(ChunkRetriever::new(vectors, embedder, "docs")),
        Arc::new(Bm25Retriever::new(keywords, "docs")),
    )
    .with_top_k(4);
    let (hits, side) = hybrid
        .retrieve_with_report(&question, &RetrieveOptions::default())
        .await?;
    if side.degraded() {
        eprintln!("retrieval degraded: {side:?}");
    }
    let mut context = String::new();
    for d in reorder_for_context(hits) {
        let source = d
            .metadata
            .get("source")
            .and_then(|s| s.as_str())
            .unwrap_or("?");
        eprintln!("context: {source}");
        context.push_str(&format!("[{source}]\n{}\n\n", d.content));
    }

    let model = LocalChatModel::load_default(LocalOptions::default()).await?;
    let messages = [
        Message::system(format!(
            "Answer the question using only this context. Say which file you used.\n\n{context}"
        )),
        Message::user(question),
    ];
    let mut stream = model
        .stream(&messages, &ChatOptions::default().with_max_tokens(200))
        .await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.recv().await {
        write!(out, "{}", chunk?.content)?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}

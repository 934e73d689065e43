//! The semantic splitter with the real local MiniLM embedder: a text that changes topic
//! once is cut where it changes.

use std::sync::Arc;

use eino::schema::Document;
use eino_rag::SemanticSplitter;

const TIDES: [&str; 4] = [
    "Tides are the rise and fall of sea levels.",
    "They are caused by the gravity of the Moon and the Sun.",
    "Most coasts see two high tides and two low tides every day.",
    "Spring tides happen when the Sun and Moon line up.",
];
const BREAD: [&str; 4] = [
    "To bake bread, mix flour, water, salt and yeast into a dough.",
    "Knead the dough until it is smooth and elastic.",
    "Let it rise in a warm place for an hour.",
    "Bake the loaf in a hot oven until the crust is brown.",
];

#[tokio::test]
async fn cuts_where_the_topic_changes() {
    let embedder = Arc::new(
        eino_local::MiniLmEmbedder::load_default(eino_local::LocalOptions::default())
            .await
            .unwrap(),
    );
    let text = format!("{} {}", TIDES.join(" "), BREAD.join(" "));
    let doc = Document::new("notes.txt", &text);
    for buffer in [0, 1, 2] {
        let chunks = SemanticSplitter::new(embedder.clone())
            .with_buffer(buffer)
            .split(&doc)
            .await
            .unwrap();
        let texts: Vec<&str> = chunks.iter().map(|c| c.content.as_str()).collect();
        assert_eq!(texts, [TIDES.join(" "), BREAD.join(" ")], "buffer {buffer}");
        assert_eq!(chunks[1].id, "notes.txt#1");
    }
}

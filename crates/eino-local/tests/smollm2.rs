//! The real SmolLM2-135M-Instruct Q4_1 model (fetched into the cache on first use): golden
//! token ids (identical to llama.cpp), the rendered prompt, greedy answers, stream/invoke
//! parity and UTF-8-safe streaming.

use std::sync::OnceLock;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Concat, Message};
use eino_local::{GenerationConfig, LocalChatModel, LocalOptions, ModelCache, SMOLLM2};

fn model() -> &'static LocalChatModel {
    static M: OnceLock<LocalChatModel> = OnceLock::new();
    M.get_or_init(|| {
        let dir = ModelCache::default()
            .ensure(&SMOLLM2)
            .expect("fetch SmolLM2");
        LocalChatModel::load(
            &dir.join("model.gguf"),
            &LocalOptions::default(),
            GenerationConfig::default(),
        )
        .expect("load SmolLM2")
    })
}

#[test]
fn tokenizer_golden_ids() {
    let m = model();
    let cases: [(&str, &[u32]); 4] = [
        (
            "What is the capital of France?",
            &[1780, 314, 260, 3575, 282, 4649, 47],
        ),
        (
            "Hello world 12345 3.14159",
            &[
                19556, 905, 216, 33, 34, 35, 36, 37, 216, 35, 30, 33, 36, 33, 37, 41,
            ],
        ),
        ("<|im_start|>user\nhi<|im_end|>", &[1, 4093, 198, 6004, 2]),
        ("don't I'll we've", &[12420, 982, 339, 3060, 392, 3543]),
    ];
    for (text, ids) in cases {
        assert_eq!(m.tokenize(text).unwrap(), ids, "{text}");
    }
}

#[test]
fn rendered_prompt_matches_llama_cpp() {
    let m = model();
    let p = m
        .render_prompt(&[Message::user("What is the capital of France?")])
        .unwrap();
    assert!(p.starts_with("<|im_start|>system\n"), "{p}");
    assert!(p.ends_with("<|im_start|>assistant\n"), "{p}");
    assert_eq!(m.tokenize(&p).unwrap().len(), 37);
}

fn greedy(max: u32) -> ChatOptions {
    ChatOptions::default().with_max_tokens(max)
}

#[tokio::test]
async fn greedy_answer_and_stream_parity() {
    let m = model();
    let q = vec![Message::user("What is the capital of Germany?")];
    let whole = m.generate(&q, &greedy(40)).await.unwrap();
    assert!(whole.content.contains("Berlin"), "{}", whole.content);
    let usage = whole.meta.as_ref().unwrap().usage.unwrap();
    assert!(usage.prompt_tokens > 30 && usage.completion_tokens > 0);
    let chunks = m
        .stream(&q, &greedy(40))
        .await
        .unwrap()
        .collect_vec()
        .await
        .unwrap();
    assert!(chunks.len() > 2, "the answer streams");
    let streamed = Message::concat(chunks).unwrap();
    assert_eq!(streamed.content, whole.content);
    assert_eq!(streamed.meta, whole.meta);
}

#[test]
fn streaming_never_splits_characters() {
    let m = model();
    // Emoji and CJK take several byte-level tokens each.
    let text = "Hi 👋🏽 世界, ça va? 🇩🇪";
    let ids = m.tokenize(text).unwrap();
    assert!(
        ids.len() > text.chars().count(),
        "multi-token characters present"
    );
    let pieces = m.stream_decode(&ids).unwrap();
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), text);
    // Cut mid-character (as a token limit does): the half character is held back.
    let cut = m.stream_decode(&ids[..ids.len() - 1]).unwrap().concat();
    assert!(text.starts_with(&cut) && cut.len() < text.len(), "{cut}");
}

#[tokio::test]
async fn a_token_limit_mid_character_is_not_emitted() {
    let m = model();
    let q = vec![Message::user("Say hello in Chinese characters.")];
    for max in [3, 7, 11] {
        let chunks = m
            .stream(&q, &greedy(max))
            .await
            .unwrap()
            .collect_vec()
            .await
            .unwrap();
        let joined: String = chunks.iter().map(|c| c.content.as_str()).collect();
        assert!(!joined.contains('\u{FFFD}'), "max {max}: {joined:?}");
        let whole = m.generate(&q, &greedy(max)).await.unwrap();
        assert_eq!(whole.content, joined);
    }
}

#[tokio::test]
async fn too_long_prompt_and_tools_are_typed_errors() {
    let m = model();
    // SmolLM2's context is 8192 tokens.
    let huge = vec![Message::user("word ".repeat(9000))];
    let e = m.generate(&huge, &greedy(8)).await.unwrap_err();
    assert_eq!(e.kind(), eino::ErrorKind::ContextLength, "{e}");
    assert!(m.with_tools(vec![]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_independent() {
    let m = model().clone();
    let (q1, q2) = (
        vec![Message::user("What is the capital of Germany?")],
        vec![Message::user("Name a color.")],
    );
    let o = greedy(24);
    let (a, b) = tokio::join!(m.generate(&q1, &o), m.generate(&q2, &o));
    let again = m.generate(&q1, &o).await.unwrap();
    assert_eq!(
        a.unwrap().content,
        again.content,
        "each call has its own KV cache"
    );
    assert!(!b.unwrap().content.is_empty());
}

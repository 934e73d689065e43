//! Stream the default local model's answer to stdout: no API key, no server.
//! `cargo run --release -p eino-local --example local_chat -- "What is the capital of Germany?"`

use std::io::Write;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::Message;
use eino_local::{LocalChatModel, LocalOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let question = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let question = if question.is_empty() {
        "What is the capital of Germany?".to_string()
    } else {
        question
    };
    let model = LocalChatModel::load_default(LocalOptions::default()).await?;
    let mut s = model
        .stream(
            &[Message::user(question)],
            &ChatOptions::default().with_max_tokens(256),
        )
        .await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = s.recv().await {
        write!(out, "{}", chunk?.content)?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok(())
}

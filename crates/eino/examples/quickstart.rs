//! Quick start: a prompt template → chat model → post-processing graph, invoked and streamed.
//!
//! The chat model here is a tiny echo model defined below so the example runs with no API
//! key and no download; swap in any `Arc<dyn ChatModel>`.
//!
//! Run: `cargo run -p eino --example quickstart`

use std::sync::Arc;

use futures_util::future::BoxFuture;

use eino::component::{ChatModel, ChatOptions};
use eino::compose::{transform_lambda, CompileOptions, Context, Graph, Runnable, END, START};
use eino::prompt::{ChatTemplate, FormatType, MessageTemplate, PromptTemplate};
use eino::schema::{Map, Message, Role, StreamReader, ToolInfo};

/// Answers by echoing the last user message word by word (a stand-in for a real model).
struct EchoModel;

impl ChatModel for EchoModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async move {
            let last = msgs.iter().rev().find(|m| m.role == Role::User);
            Ok(Message::assistant(
                format!("You said: {}", last.map_or("", |m| &m.content)),
                vec![],
            ))
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        opts: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move {
            let full = self.generate(msgs, opts).await?;
            let words: Vec<Message> = full
                .content
                .split_inclusive(' ')
                .map(|w| Message::assistant(w, vec![]))
                .collect();
            Ok(StreamReader::from_vec(words))
        })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(EchoModel))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> eino::Result<()> {
    let template: Arc<dyn ChatTemplate> = Arc::new(PromptTemplate::new(
        FormatType::FString,
        vec![
            MessageTemplate::system("You are a concise assistant."),
            MessageTemplate::user("{question}"),
        ],
    ));
    let model: Arc<dyn ChatModel> = Arc::new(EchoModel);

    let mut g = Graph::<Map, String>::new();
    let prompt = g.add_node("prompt", template);
    let chat = g.add_node("model", model);
    // A transform node: it maps chunks as they arrive, so the answer streams word by word.
    let text = g.add_node(
        "text",
        transform_lambda(|s: StreamReader<Message>| async move { Ok(s.map(|m| Ok(m.content))) }),
    );
    g.add_edge(START, prompt);
    g.add_edge(prompt, chat);
    g.add_edge(chat, text);
    g.add_edge(text, END);
    let app = g.compile(CompileOptions::default().with_name("quickstart"))?;

    let mut vars = Map::new();
    vars.insert("question".into(), "what is a graph?".into());
    println!(
        "invoke: {}",
        app.invoke(vars.clone(), &Context::new()).await?
    );

    print!("stream:");
    let mut s = app.stream(vars, &Context::new()).await?;
    while let Some(chunk) = s.recv().await {
        print!(" [{}]", chunk?);
    }
    println!();
    Ok(())
}

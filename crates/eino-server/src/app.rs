//! Applications: each is a compiled eino chain
//! `retrieve → branch(rag | chat) → model`, the seed's "chain selection": a message whose
//! knowledge bases hold relevant chunks goes the RAG way (context in the system prompt),
//! anything else is answered as plain chat. The model node is a [`FallbackModel`], so an
//! application degrades to its fallback models when the first one fails.

use std::sync::{Arc, Mutex};

use eino::component::ChatModel;
use eino::compose::{
    CallOption, Chain, ChainBranch, CompileOptions, Compiled, Context, Lambda, Topology,
};
use eino::schema::{Document, Message, Role};
use eino::Result;

use crate::config::AppConfig;
use crate::knowledge::Knowledge;
use crate::resilience::FallbackModel;

/// What an application runs on: the tenant and the conversation so far (history + new
/// user message, without the system prompt).
#[derive(Debug, Clone)]
pub struct AppInput {
    /// Whose knowledge bases to search.
    pub tenant: String,
    /// The conversation.
    pub messages: Vec<Message>,
}
eino::graph_value!(AppInput);

#[derive(Debug, Clone)]
struct Retrieved {
    messages: Vec<Message>,
    context: Vec<Document>,
}
eino::graph_value!(Retrieved);

#[derive(Debug, Clone, PartialEq)]
enum Route {
    Rag,
    Chat,
}

/// Where a run's retrieved chunks are put for the response (`sources`).
#[derive(Clone, Default)]
pub struct SourcesSink(pub Arc<Mutex<Vec<Document>>>);

impl SourcesSink {
    /// The chunks the run retrieved.
    pub fn take(&self) -> Vec<Document> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A configured application.
#[derive(Clone)]
pub struct Application {
    /// Its id (a model id of the OpenAI-compatible API).
    pub id: String,
    /// Its configuration.
    pub config: AppConfig,
    graph: Compiled<AppInput, Message>,
}

fn system(text: String) -> Message {
    Message::new(Role::System, text)
}

fn context_block(docs: &[Document]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        let source = d
            .metadata
            .get("source")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        out.push_str(&format!("[{}] ({source})\n{}\n\n", i + 1, d.content.trim()));
    }
    out
}

impl Application {
    /// Compile the application's graph.
    pub fn build(
        id: &str,
        config: AppConfig,
        model: FallbackModel,
        knowledge: Knowledge,
    ) -> Result<Self> {
        let kbs = config.knowledge_bases.clone();
        let (top_k, min_score) = (config.top_k, config.min_score);
        let retrieve = Lambda::new().with_invoke(move |input: AppInput, ctx: Context| {
            let (knowledge, kbs) = (knowledge.clone(), kbs.clone());
            async move {
                let query = input
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.clone())
                    .unwrap_or_default();
                let context = if kbs.is_empty() {
                    Vec::new()
                } else {
                    knowledge
                        .search(&input.tenant, &kbs, &query, top_k, min_score)
                        .await?
                };
                if let Some(sink) = ctx.options::<SourcesSink>().next() {
                    *sink.0.lock().unwrap_or_else(|e| e.into_inner()) = context.clone();
                }
                Ok(Retrieved {
                    messages: input.messages,
                    context,
                })
            }
        });
        let prompt = config.system_prompt.clone().unwrap_or_default();
        let rag_prompt = prompt.clone();
        let rag = eino::compose::lambda(move |r: Retrieved| {
            let base = rag_prompt.clone();
            async move {
                let text = format!(
                    "{base}\n\nAnswer using the context below; cite sources as [n]. If the context \
                     does not contain the answer, say you do not know.\n\nContext:\n{}",
                    context_block(&r.context)
                );
                Ok(std::iter::once(system(text.trim_start().to_string()))
                    .chain(r.messages)
                    .collect::<Vec<_>>())
            }
        });
        let chat = eino::compose::lambda(move |r: Retrieved| {
            let base = prompt.clone();
            async move {
                let head = (!base.is_empty()).then(|| system(base));
                Ok(head.into_iter().chain(r.messages).collect::<Vec<_>>())
            }
        });
        let route = ChainBranch::new(|r: &Retrieved| {
            Ok(if r.context.is_empty() {
                Route::Chat
            } else {
                Route::Rag
            })
        })
        .add(Route::Rag, rag)
        .add(Route::Chat, chat);
        let model: Arc<dyn ChatModel> = Arc::new(model);
        let graph = Chain::<AppInput, AppInput>::new()
            .then_keyed("retrieve", retrieve)
            .branch(route)
            .then_keyed("model", model)
            .compile_with(CompileOptions::default().with_name(id.to_string()))?;
        Ok(Self {
            id: id.to_string(),
            config,
            graph,
        })
    }

    /// Answer in one piece.
    pub async fn invoke(&self, input: AppInput, ctx: &Context) -> Result<Message> {
        eino::compose::Runnable::invoke(&self.graph, input, ctx).await
    }

    /// Answer as a stream of chunks.
    pub async fn stream(
        &self,
        input: AppInput,
        ctx: &Context,
    ) -> Result<eino::schema::StreamReader<Message>> {
        eino::compose::Runnable::stream(&self.graph, input, ctx).await
    }

    /// The graph's nodes and edges.
    pub fn topology(&self) -> Topology {
        self.graph.topology()
    }
}

/// A context carrying the sources sink.
pub fn context_with_sources(ctx: Context, sink: &SourcesSink) -> Context {
    ctx.with_option(CallOption::lambda(sink.clone()))
}

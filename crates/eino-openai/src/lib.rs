//! OpenAI-compatible chat models and embedders for eino.
//!
//! One client for every server that speaks the OpenAI chat-completions wire format:
//! OpenAI, Azure OpenAI, DeepSeek, Qwen/DashScope, vLLM, Ollama's `/v1`, llama.cpp's server,
//! LM Studio; and Anthropic's Messages API ([`anthropic`]). Parsing is lenient (unknown fields and enum values, missing optional fields,
//! empty finish reasons); errors are typed and say whether a retry can help; transient
//! failures are retried with jittered exponential backoff.
//!
//! ```no_run
//! # async fn demo() -> eino::Result<()> {
//! use eino::component::{ChatModel, ChatOptions};
//! use eino::schema::Message;
//! use eino_openai::{OpenAiChatModel, OpenAiConfig};
//!
//! let model = OpenAiChatModel::new(
//!     OpenAiConfig::new("gpt-4o-mini").with_api_key(std::env::var("OPENAI_API_KEY").ok()),
//! )?;
//! let reply = model.generate(&[Message::user("Hello!")], &ChatOptions::default()).await?;
//! println!("{}", reply.content);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod anthropic;
mod chat;
mod config;
mod embed;
mod http;
mod stream;
mod wire;

pub use anthropic::{AnthropicChatModel, AnthropicConfig};
pub use chat::OpenAiChatModel;
pub use config::{ApiKeyHeader, OpenAiConfig, ResponseFormat};
pub use embed::OpenAiEmbedder;

//! OpenAI-compatible chat models and embedders for eino.
//!
//! One client for every server that speaks the OpenAI chat-completions wire format:
//! OpenAI, Azure OpenAI, DeepSeek, Qwen/DashScope, vLLM, Ollama's `/v1`, llama.cpp's server,
//! LM Studio; and, with the `anthropic` feature (on by default), Anthropic's Messages API
//! (`anthropic`). [`OpenAiSettings`] (and `AnthropicSettings`) are what a configuration file
//! says about one. Parsing is lenient (unknown fields and enum values, missing optional fields,
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

#[cfg(feature = "anthropic")]
pub mod anthropic;
mod chat;
mod config;
mod embed;
mod http;
mod settings;
mod stream;
mod wire;

#[cfg(feature = "anthropic")]
pub use anthropic::{AnthropicChatModel, AnthropicConfig};
pub use chat::OpenAiChatModel;
pub use config::{ApiKeyHeader, OpenAiConfig, ResponseFormat};
pub use embed::OpenAiEmbedder;
#[cfg(feature = "anthropic")]
pub use settings::AnthropicSettings;
pub use settings::OpenAiSettings;

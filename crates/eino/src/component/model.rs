//! Chat models.

use std::borrow::Cow;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::Extensions;
use crate::error::Result;
use crate::schema::{Message, StreamReader, ToolChoice, ToolInfo};

/// Options of one chat-model call. Unset fields keep the model's configured defaults;
/// [`merge`](Self::merge) lays several option sets over each other (later wins).
#[derive(Debug, Clone, Default)]
pub struct ChatOptions {
    /// Model id (overrides the configured one).
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Maximum tokens to generate.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Option<Vec<String>>,
    /// Random seed, for reproducible sampling where supported.
    pub seed: Option<u64>,
    /// Tools offered for this call (overrides those bound with `with_tools`).
    pub tools: Option<Vec<ToolInfo>>,
    /// Whether and which tools the model may call.
    pub tool_choice: Option<ToolChoice>,
    /// Implementation-specific options.
    pub extensions: Extensions,
}

impl ChatOptions {
    /// Lay `other` over `self`: every field set in `other` wins.
    pub fn merge(&mut self, other: &ChatOptions) {
        macro_rules! over {
            ($($f:ident),*) => {$( if other.$f.is_some() { self.$f = other.$f.clone(); } )*};
        }
        over!(
            model,
            temperature,
            top_p,
            max_tokens,
            stop,
            seed,
            tools,
            tool_choice
        );
        self.extensions.extend(&other.extensions);
    }

    /// Set the model.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Set the temperature.
    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Set top-p.
    pub fn with_top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Set max tokens.
    pub fn with_max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }
}

/// What callbacks see as a chat model's input: the messages and the effective options
/// (with `model` filled in from the component when the call did not set it).
#[derive(Debug, Clone)]
pub struct ChatCallbackInput {
    /// The prompt.
    pub messages: Vec<Message>,
    /// Effective options.
    pub options: ChatOptions,
}

/// A chat model. Object-safe: use it as `Arc<dyn ChatModel>`.
///
/// Implementations return their own futures (`Box::pin(async move { … })`), so no macro is
/// needed. `with_tools` returns a new instance and never mutates `self`, so one model can
/// be shared by agents with different tools.
pub trait ChatModel: Send + Sync {
    /// Generate a whole reply.
    fn generate<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>>;

    /// Generate a reply as a stream of message chunks (joined by `Message`'s `Concat`).
    fn stream<'a>(
        &'a self,
        messages: &'a [Message],
        options: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>>;

    /// A copy of this model with `tools` bound.
    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>>;

    /// The configured model id, reported to callbacks as `gen_ai.request.model`.
    fn model_name(&self) -> Option<&str> {
        None
    }

    /// Implementation name for callbacks (`OpenAI`, `Local` …).
    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ChatModel")
    }

    /// True if the model fires its own callbacks, so the framework must not wrap it.
    fn callbacks_enabled(&self) -> bool {
        false
    }
}

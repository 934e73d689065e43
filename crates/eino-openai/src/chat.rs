//! The chat model.

use std::borrow::Cow;
use std::sync::Arc;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Message, StreamReader, ToolInfo};
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;

use crate::config::OpenAiConfig;
use crate::http::Http;
use crate::stream::message_stream;
use crate::wire::{to_message, ChatRequest, WireResponse};

/// A chat model on any OpenAI-compatible server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OpenAiChatModel {
    http: Arc<Http>,
    tools: Arc<Vec<ToolInfo>>,
}

impl OpenAiChatModel {
    /// A model with this configuration.
    pub fn new(cfg: OpenAiConfig) -> Result<Self> {
        Ok(Self {
            http: Arc::new(Http::new(cfg)?),
            tools: Arc::new(Vec::new()),
        })
    }
}

impl ChatModel for OpenAiChatModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<Message>> {
        Box::pin(async move {
            let body = ChatRequest::new(&self.http.cfg, &self.tools, msgs, o, false);
            let mut resp: WireResponse = self.http.post_json("chat/completions", &body).await?;
            if resp.choices.is_empty() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "model server answered without choices",
                ));
            }
            let choice = resp.choices.swap_remove(0);
            let m = choice.message.or(choice.delta).unwrap_or_default();
            Ok(to_message(
                m,
                choice.finish_reason,
                resp.usage.as_ref(),
                false,
            ))
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, Result<StreamReader<Message>>> {
        Box::pin(async move {
            let body = ChatRequest::new(&self.http.cfg, &self.tools, msgs, o, true);
            let body = self.http.post_stream("chat/completions", &body).await?;
            Ok(message_stream(body))
        })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Self {
            http: self.http.clone(),
            tools: Arc::new(tools),
        }))
    }

    fn model_name(&self) -> Option<&str> {
        Some(&self.http.cfg.model)
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("OpenAI")
    }
}

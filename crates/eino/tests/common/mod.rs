//! Test helpers. `FakeModel` is a scripted chat model: these tests are about orchestration,
//! not model quality, so a fake is the right tool here.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{Message, StreamReader, ToolInfo};
use futures_util::future::BoxFuture;

/// Replies "echo: <last message>" and records the options of each call.
#[derive(Default, Clone)]
pub struct FakeModel {
    pub seen: Arc<Mutex<Vec<ChatOptions>>>,
}

impl ChatModel for FakeModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        opts: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        self.seen.lock().unwrap().push(opts.clone());
        let last = msgs.last().map(|m| m.content.clone()).unwrap_or_default();
        Box::pin(async move { Ok(Message::assistant(format!("echo: {last}"), vec![])) })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        opts: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move {
            let m = self.generate(msgs, opts).await?;
            let parts = m
                .content
                .split_inclusive(' ')
                .map(|w| Message::assistant(w, vec![]))
                .collect();
            Ok(StreamReader::from_vec(parts))
        })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

pub fn s(x: &str) -> String {
    x.to_string()
}

pub fn map(pairs: &[(&str, &str)]) -> eino::schema::Map {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect()
}

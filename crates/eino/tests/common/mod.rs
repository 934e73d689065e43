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

/// A scripted tool-calling model: answers with the next scripted message each call and
/// records what it was sent. Streaming sends the text in 3-character chunks **before** the
/// tool calls (like Claude or DeepSeek do), then the tool calls as deltas by index.
#[derive(Clone, Default)]
pub struct ScriptedModel {
    pub script: Arc<Mutex<std::collections::VecDeque<Message>>>,
    pub received: Arc<Mutex<Vec<Vec<Message>>>>,
    pub tools: Arc<Mutex<Vec<String>>>,
}

impl ScriptedModel {
    pub fn new(script: Vec<Message>) -> Self {
        Self {
            script: Arc::new(Mutex::new(script.into())),
            ..Self::default()
        }
    }

    fn next(&self, msgs: &[Message]) -> eino::Result<Message> {
        self.received.lock().unwrap().push(msgs.to_vec());
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| eino::Error::internal("script exhausted"))
    }
}

impl ChatModel for ScriptedModel {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        let r = self.next(msgs);
        Box::pin(async move { r })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        _: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        let r = self.next(msgs);
        Box::pin(async move {
            let m = r?;
            let chars: Vec<char> = m.content.chars().collect();
            let mut chunks: Vec<Message> = chars
                .chunks(3)
                .map(|c| Message::assistant(c.iter().collect::<String>(), vec![]))
                .collect();
            for (i, call) in m.tool_calls.iter().enumerate() {
                let mut head = call.clone().with_index(i);
                let args = std::mem::take(&mut head.function.arguments);
                let (a, b) = args.split_at(args.len() / 2);
                head.function.arguments = a.to_string();
                let mut tail = eino::schema::ToolCall::function("", "", b).with_index(i);
                tail.kind = String::new();
                chunks.push(Message::assistant("", vec![head]));
                chunks.push(Message::assistant("", vec![tail]));
            }
            if chunks.is_empty() {
                chunks.push(Message::assistant("", vec![]));
            }
            Ok(StreamReader::from_vec(chunks))
        })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        *self.tools.lock().unwrap() = tools.into_iter().map(|t| t.name).collect();
        Ok(Arc::new(self.clone()))
    }
}

pub fn call_msg(text: &str, calls: &[(&str, &str, &str)]) -> Message {
    Message::assistant(
        text,
        calls
            .iter()
            .map(|(id, name, args)| eino::schema::ToolCall::function(*id, *name, *args))
            .collect(),
    )
}

//! A test server in-process on a random loopback port, with scripted fake models: these
//! tests are about the HTTP layer, sessions, tenancy and resilience, not about what a model
//! answers (the real local models are used in tests/knowledge.rs and the CLI's SDK test).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, ChatOptions};
use eino::schema::{
    FunctionCall, Message, ResponseMeta, Role, StreamReader, TokenUsage, ToolCall, ToolInfo,
};
use eino::{Error, ErrorKind};
use eino_server::config::{AppConfig, Config, ModelConfig};
use eino_server::registry::Registry;
use eino_server::resilience::Breaker;
use eino_server::state::AppState;
use futures_util::future::BoxFuture;

/// Answers `echo(<n messages>): <last user message>`; with tools bound, calls the first
/// tool with `{"q": <last user message>}`.
#[derive(Clone, Default)]
pub struct Echo {
    tools: Vec<ToolInfo>,
    pub calls: Arc<AtomicUsize>,
}

fn usage(m: &mut Message, p: u64, c: u64) {
    m.meta = Some(ResponseMeta {
        finish_reason: Some("stop".into()),
        usage: Some(TokenUsage {
            prompt_tokens: p,
            completion_tokens: c,
            ..TokenUsage::default()
        }),
    });
}

impl Echo {
    fn answer(&self, msgs: &[Message], opts: &ChatOptions) -> Message {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let last = msgs
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        if let Some(t) = self.tools.first() {
            let call = ToolCall {
                index: Some(0),
                id: "call_1".into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: t.name.clone(),
                    arguments: serde_json::json!({ "q": last }).to_string(),
                },
                ..ToolCall::default()
            };
            let mut m = Message::assistant("", vec![call]);
            usage(&mut m, 7, 3);
            return m;
        }
        let sys = msgs
            .iter()
            .find(|m| m.role == Role::System)
            .map_or("", |m| m.content.as_str());
        let mut text = format!("echo({}): {last}", msgs.len());
        if sys.contains("Context:") {
            text.push_str(" [rag]");
        }
        if let Some(n) = opts.max_tokens {
            text.push_str(&format!(" max={n}"));
        }
        let mut m = Message::assistant(text, vec![]);
        usage(&mut m, 10, 5);
        m
    }
}

impl ChatModel for Echo {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async move { Ok(self.answer(msgs, o)) })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move {
            let full = self.answer(msgs, o);
            if !full.tool_calls.is_empty() {
                return Ok(StreamReader::from_vec(vec![full]));
            }
            let mut chunks: Vec<Message> = full
                .content
                .split_inclusive(' ')
                .map(|w| Message::assistant(w, vec![]))
                .collect();
            let mut last = Message::assistant("", vec![]);
            last.meta = full.meta.clone();
            chunks.push(last);
            Ok(StreamReader::from_vec(chunks))
        })
    }

    fn with_tools(&self, tools: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(Self {
            tools,
            calls: self.calls.clone(),
        }))
    }
}

/// Fails with a transient error while `failing` is set (counting calls), else echoes.
#[derive(Clone, Default)]
pub struct Flaky {
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub calls: Arc<AtomicUsize>,
    /// Sleep this long before failing (a stalled upstream).
    pub stall: Option<Duration>,
}

impl ChatModel for Flaky {
    fn generate<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<Message>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                if let Some(d) = self.stall {
                    tokio::time::sleep(d).await;
                    return Err(Error::new(ErrorKind::Timeout, "upstream stalled"));
                }
                return Err(Error::new(ErrorKind::Transient, "upstream 503"));
            }
            let mut m = Echo::default().answer(msgs, o);
            m.content = format!("flaky-ok: {}", m.content);
            Ok(m)
        })
    }

    fn stream<'a>(
        &'a self,
        msgs: &'a [Message],
        o: &'a ChatOptions,
    ) -> BoxFuture<'a, eino::Result<StreamReader<Message>>> {
        Box::pin(async move { Ok(StreamReader::from_vec(vec![self.generate(msgs, o).await?])) })
    }

    fn with_tools(&self, _: Vec<ToolInfo>) -> eino::Result<Arc<dyn ChatModel>> {
        Ok(Arc::new(self.clone()))
    }
}

/// The real local MiniLM embedder, loaded once per test binary.
pub async fn minilm() -> Arc<eino_local::MiniLmEmbedder> {
    static E: tokio::sync::OnceCell<Arc<eino_local::MiniLmEmbedder>> =
        tokio::sync::OnceCell::const_new();
    E.get_or_init(|| async {
        Arc::new(
            eino_local::MiniLmEmbedder::load_default(eino_local::LocalOptions::default())
                .await
                .unwrap(),
        )
    })
    .await
    .clone()
}

/// API keys `key-of-alice-0123456789` (tenant `alice`) and `key-of-bob-0123456789` (`bob`).
pub fn with_keys(cfg: &mut Config) {
    for (key, tenant) in [
        ("key-of-alice-0123456789", "alice"),
        ("key-of-bob-0123456789", "bob"),
    ] {
        cfg.auth.api_keys.push(eino_server::config::ApiKeyConfig {
            sha256: eino_server::auth::hash_key(key),
            tenant: tenant.into(),
            name: None,
        });
    }
}

pub fn app(model: &str, fallbacks: &[&str], kbs: &[&str]) -> AppConfig {
    AppConfig {
        model: model.into(),
        fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
        system_prompt: Some("Be brief.".into()),
        knowledge_bases: kbs.iter().map(|s| s.to_string()).collect(),
        embedder: "minilm".into(),
        top_k: 3,
        min_score: 0.3,
        history_messages: 20,
        agent: Default::default(),
        tools: Vec::new(),
        max_model_calls: 8,
        sub_agents: Vec::new(),
        description: None,
    }
}

/// A model entry for the config; the test registry supplies the model itself.
pub fn placeholder() -> ModelConfig {
    ModelConfig::Openai(eino_openai::OpenAiSettings::new("fake"))
}

pub struct TestServer {
    pub url: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub echo: Echo,
    pub flaky: Flaky,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The server's PostgreSQL, in the PostgreSQL pass.
    pub pg: Option<pg::Postgres>,
}

impl TestServer {
    /// A server whose config is `tweak`ed from: models `echo` and `flaky` (fakes), apps
    /// `assistant` (echo, no kbs) and `resilient` (flaky → echo).
    pub async fn start(
        tweak: impl FnOnce(&mut Config),
        registry_tweak: impl FnOnce(&mut Registry),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.server.data_dir = dir.path().to_path_buf();
        cfg.models.clear();
        cfg.embedders.clear();
        cfg.applications.clear();
        cfg.models.insert("echo".into(), placeholder());
        cfg.models.insert("flaky".into(), placeholder());
        cfg.applications
            .insert("assistant".into(), app("echo", &[], &[]));
        cfg.applications
            .insert("resilient".into(), app("flaky", &["echo"], &[]));
        tweak(&mut cfg);
        // The second pass of scripts/test.sh runs the same suites on PostgreSQL.
        let pg = if pg::requested() && cfg.store.database_url.is_none() {
            let pg = tokio::task::spawn_blocking(pg::Postgres::start)
                .await
                .unwrap();
            cfg.store.database_url = Some(pg.url.clone());
            Some(pg)
        } else {
            None
        };
        cfg.validate().unwrap();
        let echo = Echo::default();
        let flaky = Flaky::default();
        let mut reg = Registry::default();
        reg.insert_model("echo", Arc::new(echo.clone()));
        reg.insert_model_with_breaker(
            "flaky",
            Arc::new(flaky.clone()),
            Breaker::new(2, Duration::from_millis(300)),
        );
        registry_tweak(&mut reg);
        let state = AppState::build(cfg, reg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(eino_server::http::serve(
            listener,
            state.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            http: reqwest::Client::new(),
            state,
            dir,
            echo,
            flaky,
            shutdown: Some(tx),
            task: Some(task),
            pg,
        }
    }

    pub async fn default() -> Self {
        Self::start(|_| {}, |_| {}).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// POST `body` and read the answer as text (an SSE stream, say).
    pub async fn post_text(&self, path: &str, body: serde_json::Value) -> String {
        let r = self.http.post(self.url(path)).json(&body).send().await;
        r.unwrap().text().await.unwrap()
    }

    /// GET `path` and read the answer as text (an SSE stream, say).
    pub async fn get_text(&self, path: &str) -> String {
        let r = self.http.get(self.url(path)).send().await;
        r.unwrap().text().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// An ingestion job's status once it is no longer `running`, polled every 50 ms; panics
    /// if it still runs after `within`.
    pub async fn job_done(&self, job: &str, within: Duration) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let (_, st) = self.get(&format!("/api/v1/jobs/{job}")).await;
            if st["state"] != "running" {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job} did not finish within {within:?}");
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The `data:` payloads of an SSE body, and event names.
pub fn sse(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .filter_map(|block| {
            let mut name = "message".to_string();
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().into();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(v.trim_start().to_string());
                }
            }
            data.map(|d| (name, d))
        })
        .collect()
}

pub mod agent;
pub mod pg;

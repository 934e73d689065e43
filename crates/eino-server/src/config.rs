//! Configuration: defaults that run the embedded setup, a YAML file, then `EINO_…`
//! environment overrides (`EINO_SERVER__ADDR=0.0.0.0:9000`, `__` between levels), checked
//! at start with messages that name the bad key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Yaml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening address, data directory and HTTP limits.
    pub server: ServerConfig,
    /// Chat models by id; each is also a model id of the OpenAI-compatible API.
    pub models: BTreeMap<String, ModelConfig>,
    /// Embedding models by id.
    pub embedders: BTreeMap<String, EmbedderConfig>,
    /// Applications by id (a compiled graph each); also model ids of the API.
    pub applications: BTreeMap<String, AppConfig>,
    /// Tools by name, for applications with `agent: react`.
    pub tools: BTreeMap<String, crate::tools::ToolConfig>,
    /// Storage: SQLite under the data dir unless a database URL is given.
    pub store: StoreConfig,
    /// API keys and JWT. With neither, the server only listens on loopback.
    pub auth: AuthConfig,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// Response cache.
    pub cache: CacheConfig,
    /// A Redis shared by replicas (rate limits and the response cache).
    pub redis: RedisConfig,
    /// Logs.
    pub telemetry: TelemetryConfig,
}

/// `server:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listening address.
    pub addr: String,
    /// Where the database, the index and uploads live.
    pub data_dir: PathBuf,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest upload (multipart) body.
    pub max_upload_bytes: usize,
    /// Deadline of a non-streaming request.
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS (`*` for any); empty disables CORS.
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for open streams.
    pub shutdown_grace_secs: u64,
    /// Serve the web UI at `/ui/`.
    pub web_ui: bool,
    /// Connections served at once; further ones wait in the listen backlog until one
    /// closes (the file-descriptor limit is never reached by clients alone).
    pub max_connections: usize,
    /// A connection must send a complete request head within this time after it opens or
    /// after its previous answer; otherwise it is closed. Covers slow-header clients and
    /// idle keep-alive connections alike.
    pub header_read_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("eino-data"),
            max_body_bytes: 4 << 20,
            max_upload_bytes: 64 << 20,
            request_timeout_secs: 300,
            cors_origins: Vec::new(),
            shutdown_grace_secs: 30,
            web_ui: true,
            max_connections: 4096,
            header_read_timeout_secs: 10,
        }
    }
}

/// A chat model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelConfig {
    /// The in-process GGUF model (SmolLM2-135M-Instruct unless `path` is given).
    Local {
        /// A GGUF file; default: the cached SmolLM2 (fetched if missing).
        #[serde(default)]
        path: Option<PathBuf>,
        /// Or a GGUF file of a Hugging Face Hub repository (`hub.file` names it),
        /// downloaded into the model cache at start.
        #[serde(default)]
        hub: Option<HubSource>,
        /// Inference threads (default: 1 on ≤ 2 cores).
        #[serde(default)]
        threads: Option<usize>,
        /// Default answer length.
        #[serde(default)]
        max_tokens: Option<u32>,
    },
    /// Any OpenAI-compatible endpoint.
    Openai {
        /// The provider's model name.
        model: String,
        /// Base URL (default `https://api.openai.com/v1`).
        #[serde(default)]
        base_url: Option<String>,
        /// Environment variable holding the API key.
        #[serde(default)]
        api_key_env: Option<String>,
        /// Request deadline.
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// Retries of transient errors.
        #[serde(default)]
        max_retries: Option<u32>,
    },
    /// Anthropic's Messages API.
    Anthropic {
        /// The model name.
        model: String,
        /// Base URL (default `https://api.anthropic.com`).
        #[serde(default)]
        base_url: Option<String>,
        /// Environment variable holding the API key.
        #[serde(default)]
        api_key_env: Option<String>,
        /// Default answer length (required by the API; default 1024).
        #[serde(default)]
        max_tokens: Option<u32>,
    },
}

/// An embedding model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// In-process all-MiniLM-L6-v2 (384 dimensions).
    Local {
        /// A directory with model.safetensors, config.json, tokenizer.json.
        #[serde(default)]
        path: Option<PathBuf>,
        /// Or a Hugging Face Hub repository holding those three files (a BERT
        /// sentence-transformer such as `sentence-transformers/all-MiniLM-L6-v2`).
        #[serde(default)]
        hub: Option<HubSource>,
    },
    /// An OpenAI-compatible embeddings endpoint.
    Openai {
        /// The provider's model name.
        model: String,
        /// Base URL.
        #[serde(default)]
        base_url: Option<String>,
        /// Environment variable holding the API key.
        #[serde(default)]
        api_key_env: Option<String>,
    },
}

/// A model on the Hugging Face Hub (or a mirror), fetched into the model cache at start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubSource {
    /// `owner/name`.
    pub repo: String,
    /// The GGUF file inside the repository (chat models only).
    #[serde(default)]
    pub file: Option<String>,
    /// A branch, tag or commit (default `main`); a commit pins the files.
    #[serde(default)]
    pub revision: Option<String>,
    /// The hub's base URL (default `$HF_ENDPOINT`, else `https://huggingface.co`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Environment variable holding an access token (default `HF_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// An application: a model, a system prompt and optional knowledge bases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The chat model id.
    pub model: String,
    /// Models tried in order when `model` fails with a retryable error or its breaker is open.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// The system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Knowledge bases searched for context (names; `*` for all of the tenant's).
    #[serde(default)]
    pub knowledge_bases: Vec<String>,
    /// The embedder for the knowledge bases.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// Chunks put into the prompt.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Chunks scoring below this are ignored; when none is left the app answers as plain chat.
    #[serde(default = "default_min_score")]
    pub min_score: f64,
    /// Past messages of a session sent to the model.
    #[serde(default = "default_history")]
    pub history_messages: usize,
    /// How messages are answered: `chat` (one model call, with knowledge-base context when
    /// some is found) or `react` (a ReAct agent that may call `tools`).
    #[serde(default)]
    pub agent: AgentKind,
    /// Tools the agent may call (names of the `tools:` section).
    #[serde(default)]
    pub tools: Vec<String>,
    /// `react`: model calls per message at most.
    #[serde(default = "default_max_model_calls")]
    pub max_model_calls: usize,
}

/// An application's agent type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Routed per message: RAG when the knowledge bases hold relevant chunks, else plain chat.
    #[default]
    Chat,
    /// A ReAct agent over the application's tools (context from the knowledge bases, when
    /// found, goes into its system prompt).
    React,
}

fn default_max_model_calls() -> usize {
    8
}

fn default_embedder() -> String {
    "minilm".into()
}
fn default_top_k() -> usize {
    4
}
fn default_min_score() -> f64 {
    // MiniLM scores unrelated text up to ~0.2: keep those out of the prompt.
    0.3
}
fn default_history() -> usize {
    20
}

/// `store:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` for PostgreSQL; empty for SQLite at `<data_dir>/eino.db`.
    pub database_url: Option<String>,
    /// PostgreSQL: pooled connections per replica.
    pub max_connections: usize,
    /// PostgreSQL: keep the knowledge bases' chunks in the database (pgvector for the
    /// vectors, full-text search for keywords), so every replica searches what any of them
    /// ingested. `false` keeps them in the in-process indexes under the data dir (one
    /// replica only). Without a database URL the chunks are always in-process.
    pub chunks_in_database: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            max_connections: 16,
            chunks_in_database: true,
        }
    }
}

/// One API key, stored as its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Hex SHA-256 of the key (`eino keys hash KEY` prints it).
    pub sha256: String,
    /// The tenant whose data this key sees.
    pub tenant: String,
    /// A label for logs and metrics.
    #[serde(default)]
    pub name: Option<String>,
}

/// `auth:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted API keys (`Authorization: Bearer KEY`).
    pub api_keys: Vec<ApiKeyConfig>,
    /// JWT validation.
    pub jwt: Option<JwtConfig>,
}

/// JWT validation: HS256 with a shared secret from the environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Environment variable holding the HMAC secret.
    pub secret_env: String,
    /// Required `iss`, if any.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim naming the tenant (default `tenant`).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Accept a token without the tenant claim as tenant `sub` (off: such a token is
    /// refused, so a JWT subject can never read an API-key tenant of the same name by
    /// accident). Turn on only when subjects are tenant names by design.
    #[serde(default)]
    pub tenant_from_sub: bool,
}

/// `limits:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per minute per key (per tenant without auth); 0 disables.
    pub requests_per_minute: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
    /// Runs waiting for an approval longer than this are dropped with their checkpoints
    /// (default a week); 0 keeps them forever.
    pub interrupted_run_ttl_secs: u64,
    /// Failed authentications allowed per client address per minute (then 429 until the
    /// bucket refills); 0 disables.
    pub auth_failures_per_minute: u32,
    /// Messages in one chat request at most (413 beyond).
    pub max_messages: usize,
    /// Characters of text in one chat request at most: message contents and tool-call
    /// arguments together (413 beyond).
    pub max_input_chars: usize,
    /// Tool definitions in one chat request at most (413 beyond).
    pub max_tools: usize,
    /// Ingestion jobs parsing and embedding at once per replica; further jobs wait
    /// (`running`, no progress) for a slot, so memory stays bounded under many uploads.
    pub ingest_jobs_at_once: usize,
    /// Bytes a document may inflate to while being parsed (PDF streams, the DOCX body);
    /// a larger one fails as that file's outcome.
    pub max_document_inflated_bytes: u64,
    /// Time a document may take to parse; a slower one fails as that file's outcome.
    pub max_parse_secs: u64,
    /// Chunks one document may be split into; a document with more fails as that file's
    /// outcome (nothing of it is indexed).
    pub max_chunks_per_document: usize,
    /// Chunks a tenant's knowledge bases may hold together; 0: no limit.
    pub max_chunks_per_tenant: u64,
    /// Bytes of documents a tenant's knowledge bases may hold together; 0: no limit.
    pub max_bytes_per_tenant: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 0,
            burst: 10,
            interrupted_run_ttl_secs: 7 * 24 * 3600,
            auth_failures_per_minute: 30,
            max_messages: 1000,
            max_input_chars: 1_000_000,
            max_tools: 128,
            ingest_jobs_at_once: 2,
            max_document_inflated_bytes: 64 << 20,
            max_parse_secs: 60,
            max_chunks_per_document: 5000,
            max_chunks_per_tenant: 1_000_000,
            max_bytes_per_tenant: 10 << 30,
        }
    }
}

/// `cache:` section: an in-process response cache for identical non-streaming requests
/// to raw models and for embeddings (off by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Turn the cache on.
    pub enabled: bool,
    /// Entries kept at most.
    pub max_entries: usize,
    /// Time to live.
    pub ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_entries: 10_000,
            ttl_secs: 600,
        }
    }
}

/// `redis:` section: with a URL, rate limits and the response cache live in Redis (or
/// Valkey), so every replica using it shares them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; empty keeps limits and cache in process.
    pub url: Option<String>,
    /// Prefix of every key this deployment writes.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "eino:".into(),
        }
    }
}

/// `telemetry:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `json` or `text`.
    pub log_format: String,
    /// A tracing filter (`info`, `eino_server=debug` …).
    pub log_level: String,
    /// Keep run traces for `/api/v1/runs` (one row per request, written in batches off the
    /// request path; about a third of the CPU of a plain proxied request).
    pub record_runs: bool,
    /// Share of successful runs whose traces are kept (0–1). Failed, interrupted and
    /// cancelled runs are always kept (without node details when outside the sample).
    pub record_runs_sample: f64,
    /// Export traces to an OpenTelemetry collector (OTLP/HTTP).
    pub otlp: Option<crate::telemetry::OtlpConfig>,
    /// Run traces older than this are removed (hourly sweep); 0 keeps them.
    pub runs_ttl_secs: u64,
    /// Run traces kept at most (the oldest go first, hourly sweep); 0: no cap.
    pub runs_max: u64,
    /// Largest stored trace of one run (its nodes' inputs and outputs as JSON); a larger
    /// trace keeps its nodes' names, timings and errors without their inputs and outputs.
    pub runs_max_trace_bytes: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: "json".into(),
            log_level: "info".into(),
            record_runs: true,
            record_runs_sample: 1.0,
            otlp: None,
            runs_ttl_secs: 7 * 24 * 3600,
            runs_max: 1_000_000,
            runs_max_trace_bytes: 256 << 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut models = BTreeMap::new();
        models.insert(
            "smollm2".to_string(),
            ModelConfig::Local {
                path: None,
                hub: None,
                threads: None,
                max_tokens: Some(256),
            },
        );
        let mut embedders = BTreeMap::new();
        embedders.insert(
            "minilm".to_string(),
            EmbedderConfig::Local {
                path: None,
                hub: None,
            },
        );
        let mut applications = BTreeMap::new();
        applications.insert(
            "assistant".to_string(),
            AppConfig {
                model: "smollm2".into(),
                fallbacks: Vec::new(),
                system_prompt: Some("You are a helpful assistant. Answer briefly.".into()),
                knowledge_bases: vec!["*".into()],
                embedder: default_embedder(),
                top_k: default_top_k(),
                min_score: default_min_score(),
                history_messages: default_history(),
                agent: AgentKind::Chat,
                tools: Vec::new(),
                max_model_calls: default_max_model_calls(),
            },
        );
        Self {
            server: ServerConfig::default(),
            models,
            embedders,
            applications,
            tools: BTreeMap::new(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            cache: CacheConfig::default(),
            redis: RedisConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// Names of models, applications, tenants and knowledge bases.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl HubSource {
    /// The hub files `files` of this repository at its revision.
    pub fn model(&self, files: Vec<String>) -> eino_local::HubModel {
        let mut model = eino_local::HubModel::new(self.repo.clone(), files);
        model.revision = self.revision.clone();
        model
    }
}

/// The files of a BERT sentence-transformer repository that the local embedder reads.
pub fn embedder_files() -> Vec<String> {
    ["config.json", "tokenizer.json", "model.safetensors"]
        .map(String::from)
        .to_vec()
}

/// A local model comes from one place, and a hub chat model names its GGUF file.
fn check_local_source(
    key: &str,
    path: &Option<PathBuf>,
    hub: &Option<HubSource>,
    chat: bool,
) -> Result<(), ConfigError> {
    let Some(hub) = hub else { return Ok(()) };
    if path.is_some() {
        return Err(ConfigError::new(
            key,
            "give either `path` or `hub`, not both",
        ));
    }
    match (&hub.file, chat) {
        (None, true) => {
            return Err(ConfigError::new(
                format!("{key}.hub.file"),
                "name the GGUF file inside the repository",
            ))
        }
        (Some(_), false) => {
            return Err(ConfigError::new(
                format!("{key}.hub.file"),
                "an embedder reads the repository's config.json, tokenizer.json and \
                 model.safetensors; remove `file`",
            ))
        }
        _ => {}
    }
    let files = if chat {
        hub.file.iter().cloned().collect()
    } else {
        embedder_files()
    };
    hub.model(files)
        .validate()
        .map_err(|e| ConfigError::new(format!("{key}.hub"), e.message().to_string()))
}

impl Config {
    /// Defaults, then `file` (if any), then `EINO_…` variables from `env` (pass
    /// `std::env::vars()`), then validation. A file that lists `models`, `embedders` or
    /// `applications` replaces the default entries of that section instead of adding to them.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut base = Config::default();
        let mut file_text = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::new("--config", format!("{}: {e}", path.display())))?;
            let sections = Yaml::string(&text)
                .data()
                .map_err(ConfigError::from_figment)?
                .into_values()
                .next()
                .unwrap_or_default();
            if sections.contains_key("models") {
                base.models.clear();
            }
            if sections.contains_key("embedders") {
                base.embedders.clear();
            }
            if sections.contains_key("applications") {
                base.applications.clear();
            }
            file_text = Some(text);
        }
        let mut fig = Figment::from(Serialized::defaults(base));
        if let Some(text) = file_text {
            fig = fig.merge(Yaml::string(&text));
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("EINO_") else {
                continue;
            };
            if !rest.contains("__") {
                continue; // EINO_MODELS_DIR and friends belong to other parts
            }
            let path = rest.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.clone()));
            fig = fig.merge(Serialized::default(&path, value));
        }
        let config: Config = fig.extract().map_err(ConfigError::from_figment)?;
        config.validate()?;
        Ok(config)
    }

    /// Check references and values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .addr
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::new("server.addr", format!("{:?}: {e}", self.server.addr)))?;
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::new("server.max_body_bytes", "must be > 0"));
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs as usize,
            ),
            ("limits.max_messages", self.limits.max_messages),
            ("limits.max_input_chars", self.limits.max_input_chars),
            (
                "limits.ingest_jobs_at_once",
                self.limits.ingest_jobs_at_once,
            ),
            (
                "limits.max_document_inflated_bytes",
                self.limits.max_document_inflated_bytes as usize,
            ),
            ("limits.max_parse_secs", self.limits.max_parse_secs as usize),
            (
                "limits.max_chunks_per_document",
                self.limits.max_chunks_per_document,
            ),
            (
                "telemetry.runs_max_trace_bytes",
                self.telemetry.runs_max_trace_bytes,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be > 0"));
            }
        }
        if let Some(url) = &self.redis.url {
            if !url.starts_with("redis://") && !url.starts_with("unix://") {
                return Err(ConfigError::new(
                    "redis.url",
                    "must start with redis:// or unix:// (TLS, rediss://, is not built in)",
                ));
            }
        }
        for id in self
            .models
            .keys()
            .chain(self.applications.keys())
            .chain(self.embedders.keys())
        {
            if !valid_name(id) {
                return Err(ConfigError::new(
                    id,
                    "ids must be 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
        }
        if let Some(id) = self
            .applications
            .keys()
            .find(|a| self.models.contains_key(*a))
        {
            return Err(ConfigError::new(
                format!("applications.{id}"),
                "an application cannot have the id of a model",
            ));
        }
        for (id, m) in &self.models {
            if let ModelConfig::Local { path, hub, .. } = m {
                check_local_source(&format!("models.{id}"), path, hub, true)?;
            }
        }
        for (id, e) in &self.embedders {
            if let EmbedderConfig::Local { path, hub } = e {
                check_local_source(&format!("embedders.{id}"), path, hub, false)?;
            }
        }
        for (id, app) in &self.applications {
            for m in std::iter::once(&app.model).chain(&app.fallbacks) {
                if !self.models.contains_key(m) {
                    return Err(ConfigError::new(
                        format!("applications.{id}.model"),
                        format!(
                            "unknown model {m:?} (models: {:?})",
                            self.models.keys().collect::<Vec<_>>()
                        ),
                    ));
                }
            }
            if !app.knowledge_bases.is_empty() && !self.embedders.contains_key(&app.embedder) {
                return Err(ConfigError::new(
                    format!("applications.{id}.embedder"),
                    format!("unknown embedder {:?}", app.embedder),
                ));
            }
            for t in &app.tools {
                if !self.tools.contains_key(t) {
                    return Err(ConfigError::new(
                        format!("applications.{id}.tools"),
                        format!(
                            "unknown tool {t:?} (tools: {:?})",
                            self.tools.keys().collect::<Vec<_>>()
                        ),
                    ));
                }
            }
            match (app.agent, app.tools.is_empty()) {
                (AgentKind::React, true) => {
                    return Err(ConfigError::new(
                        format!("applications.{id}.tools"),
                        "a react agent needs at least one tool",
                    ))
                }
                (AgentKind::Chat, false) => {
                    return Err(ConfigError::new(
                        format!("applications.{id}.agent"),
                        "tools are called by a react agent: set `agent: react`",
                    ))
                }
                _ => {}
            }
            if app.max_model_calls == 0 || app.max_model_calls > 100 {
                return Err(ConfigError::new(
                    format!("applications.{id}.max_model_calls"),
                    "must be 1-100",
                ));
            }
            if app.top_k == 0 || app.top_k > 50 {
                return Err(ConfigError::new(
                    format!("applications.{id}.top_k"),
                    "must be 1-50",
                ));
            }
        }
        for (name, t) in &self.tools {
            if !valid_name(name) || name.contains('.') {
                return Err(ConfigError::new(
                    format!("tools.{name}"),
                    "tool names are 1-64 letters, digits, '-' or '_'",
                ));
            }
            t.validate(name)?;
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    format!("auth.api_keys[{i}].sha256"),
                    "must be the 64-hex-digit SHA-256 of the key (see `eino keys hash`)",
                ));
            }
            if !valid_name(&k.tenant) {
                return Err(ConfigError::new(
                    format!("auth.api_keys[{i}].tenant"),
                    "tenants are 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
        }
        if !["json", "text"].contains(&self.telemetry.log_format.as_str()) {
            return Err(ConfigError::new(
                "telemetry.log_format",
                "must be json or text",
            ));
        }
        if !(0.0..=1.0).contains(&self.telemetry.record_runs_sample) {
            return Err(ConfigError::new(
                "telemetry.record_runs_sample",
                "must be between 0 and 1",
            ));
        }
        if let Some(o) = &self.telemetry.otlp {
            o.validate()?;
        }
        if let Some(url) = &self.store.database_url {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(ConfigError::new(
                    "store.database_url",
                    "must be a postgres:// URL (leave it out for SQLite)",
                ));
            }
        }
        Ok(())
    }

    /// Whether any authentication is configured.
    pub fn auth_enabled(&self) -> bool {
        !self.auth.api_keys.is_empty() || self.auth.jwt.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_run_the_embedded_setup() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.server.addr, "127.0.0.1:8080");
        assert!(matches!(c.models["smollm2"], ModelConfig::Local { .. }));
        assert_eq!(c.applications["assistant"].model, "smollm2");
        assert!(!c.auth_enabled());
    }

    #[test]
    fn file_sections_replace_defaults_and_env_overrides_win() {
        let f = file(
            "models:\n  gpt:\n    provider: openai\n    model: gpt-4o-mini\n    api_key_env: OPENAI_API_KEY\n\
             applications:\n  helper:\n    model: gpt\n    system_prompt: hi\n\
             server:\n  addr: 127.0.0.1:9000\n",
        );
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("EINO_SERVER__ADDR", "127.0.0.1:9100"),
                ("EINO_LIMITS__REQUESTS_PER_MINUTE", "30"),
                ("EINO_MODELS_DIR", "/ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.models.keys().collect::<Vec<_>>(),
            ["gpt"],
            "default local model replaced"
        );
        assert_eq!(c.applications.keys().collect::<Vec<_>>(), ["helper"]);
        assert_eq!(c.server.addr, "127.0.0.1:9100");
        assert_eq!(c.limits.requests_per_minute, 30);
        assert_eq!(
            c.embedders.keys().collect::<Vec<_>>(),
            ["minilm"],
            "untouched section keeps defaults"
        );
    }

    #[test]
    fn errors_name_the_bad_key() {
        let cases = [
            ("server:\n  addr: nowhere\n", "server.addr"),
            ("server:\n  max_body_bytes: lots\n", "server.max_body_bytes"),
            ("servr:\n  addr: x\n", "servr"),
            (
                "applications:\n  a:\n    model: missing\n",
                "applications.a.model",
            ),
            ("models:\n  m:\n    provider: gemini\n", "models.m"),
            (
                "auth:\n  api_keys:\n    - sha256: abc\n      tenant: t\n",
                "auth.api_keys[0].sha256",
            ),
            ("store:\n  database_url: mysql://x\n", "store.database_url"),
            ("telemetry:\n  log_format: xml\n", "telemetry.log_format"),
            (
                "telemetry:\n  record_runs_sample: 1.5\n",
                "telemetry.record_runs_sample",
            ),
            (
                "telemetry:\n  otlp:\n    endpoint: collector:4318\n",
                "telemetry.otlp.endpoint",
            ),
            (
                "applications:\n  a:\n    model: smollm2\n    agent: react\n",
                "applications.a.tools",
            ),
            ("redis:\n  url: http://cache:6379\n", "redis.url"),
            (
                "models:\n  m:\n    provider: local\n    hub:\n      repo: a/b\n",
                "models.m.hub.file",
            ),
            (
                "models:\n  m:\n    provider: local\n    hub:\n      repo: nope\n      file: f.gguf\n",
                "models.m.hub",
            ),
            (
                "models:\n  m:\n    provider: local\n    path: m.gguf\n    hub:\n      repo: a/b\n      file: f.gguf\n",
                "models.m",
            ),
            (
                "embedders:\n  e:\n    provider: local\n    hub:\n      repo: a/b\n      file: x\n",
                "embedders.e.hub.file",
            ),
            (
                "embedders:\n  e:\n    provider: local\n    hub:\n      repo: a/b\n      revison: v1\n",
                "embedders.e",
            ),
        ];
        for (yaml, key) in cases {
            let f = file(yaml);
            let err = Config::load(Some(f.path()), Vec::new()).unwrap_err();
            assert!(
                err.key.starts_with(key) || err.to_string().contains(key),
                "{yaml:?}: {err}"
            );
        }
        let err = Config::load(None, env(&[("EINO_SERVER__ADDR", "bad")])).unwrap_err();
        assert_eq!(err.key, "server.addr");
        let err =
            Config::load(Some(std::path::Path::new("/no/such/file.yaml")), Vec::new()).unwrap_err();
        assert_eq!(err.key, "--config");
    }
}

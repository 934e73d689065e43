//! Configuration: defaults that run the embedded setup, a YAML file, then `EINO_…`
//! environment overrides (`EINO_SERVER__ADDR=0.0.0.0:9000`, `__` between levels), checked
//! at start with messages that name the bad key.

//!
//! One file per section, each with its own checks; this module holds the whole
//! [`Config`], loading and the checks across sections (references between models,
//! applications, embedders and tools). It imports nothing else of the server: every other
//! part reads its settings from here.

mod applications;
mod auth;
mod cache;
mod embedders;
mod limits;
mod models;
mod redis;
mod server;
mod store;
mod telemetry;
mod tools;

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format, Serialized, Yaml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

use applications::{
    default_embedder, default_history, default_max_model_calls, default_min_score, default_top_k,
};
pub use applications::{AgentKind, AppConfig};
pub use auth::{ApiKeyConfig, AuthConfig, JwtConfig};
pub use cache::CacheConfig;
pub use embedders::EmbedderConfig;
pub use limits::LimitsConfig;
use models::check_local_source;
pub use models::{embedder_files, HubSource, ModelConfig};
pub use redis::RedisConfig;
pub use server::ServerConfig;
pub use store::StoreConfig;
pub use telemetry::{OtlpConfig, OtlpProtocol, TelemetryConfig};
pub use tools::{HttpToolConfig, KnowledgeSearchConfig, ToolConfig};

/// A configuration error, naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("configuration error at `{key}`: {message}")]
pub struct ConfigError {
    /// The offending key (`server.addr`, `applications.assistant.model` …).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn from_figment(e: figment::Error) -> Self {
        let key = if e.path.is_empty() {
            "<root>".to_string()
        } else {
            e.path.join(".")
        };
        Self::new(key, e.kind.to_string())
    }
}

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
    pub tools: BTreeMap<String, ToolConfig>,
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
                sub_agents: Vec::new(),
                description: None,
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

/// `value` must not be 0.
pub(super) fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(key, "must be > 0"));
    }
    Ok(())
}

/// Names of models, applications, tenants and knowledge bases.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
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

    /// `sub_agents` name `chat`/`react` applications, only where the kind uses them.
    fn check_sub_agents(&self, id: &str, app: &AppConfig) -> Result<(), ConfigError> {
        let bad = |why: String| ConfigError::new(format!("applications.{id}.sub_agents"), why);
        match app.agent {
            AgentKind::Supervisor if app.sub_agents.is_empty() => {
                return Err(bad("a supervisor needs at least one sub-agent".into()))
            }
            AgentKind::Supervisor | AgentKind::Deep => {}
            _ if !app.sub_agents.is_empty() => {
                return Err(bad(
                    "only `agent: supervisor` and `agent: deep` have sub-agents".into(),
                ))
            }
            _ => {}
        }
        for (i, sub) in app.sub_agents.iter().enumerate() {
            let Some(s) = self.applications.get(sub) else {
                return Err(bad(format!("unknown application {sub:?}")));
            };
            if sub == id || app.sub_agents[..i].contains(sub) {
                return Err(bad(format!(
                    "{sub:?} is listed twice or is the application itself"
                )));
            }
            if s.agent.is_multi_agent() {
                return Err(bad(format!(
                    "{sub:?} is a {:?} application; sub-agents are `chat` or `react` applications",
                    s.agent
                )));
            }
        }
        Ok(())
    }

    /// Check references and values; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.limits.validate()?;
        self.redis.validate()?;
        self.store.validate()?;
        self.auth.validate()?;
        self.telemetry.validate()?;
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
                // `entry` or, for an mcp entry, `entry/tool`.
                let (entry, one) = match t.split_once('/') {
                    Some((e, tool)) => (e, Some(tool)),
                    None => (t.as_str(), None),
                };
                let bad = |why: String| ConfigError::new(format!("applications.{id}.tools"), why);
                let Some(c) = self.tools.get(entry) else {
                    return Err(bad(format!(
                        "unknown tool {t:?} (tools: {:?})",
                        self.tools.keys().collect::<Vec<_>>()
                    )));
                };
                if let Some(one) = one {
                    if c.mcp.is_none() {
                        return Err(bad(format!(
                            "{t:?}: only an mcp entry has tools to pick with `/`"
                        )));
                    }
                    if !c.allow.is_empty() && !c.allow.iter().any(|a| a == one) {
                        return Err(bad(format!(
                            "{t:?}: tools.{entry}.allow does not list {one:?}"
                        )));
                    }
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
            self.check_sub_agents(id, app)?;
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

    /// Containers configure secrets by environment alone (docs/deploy.md): API-key hashes
    /// as a list of tables, the database URL with its password.
    #[test]
    fn api_keys_and_urls_come_from_the_environment() {
        let hash = "ab".repeat(32);
        let keys = format!(
            r#"[{{sha256="{hash}",tenant="acme",name="ci"}}, {{sha256="{hash}",tenant="b"}}]"#
        );
        let c = Config::load(
            None,
            env(&[
                ("EINO_AUTH__API_KEYS", &keys),
                (
                    "EINO_STORE__DATABASE_URL",
                    "postgres://eino:p%40ss@db:5432/eino",
                ),
                ("EINO_REDIS__URL", "redis://valkey:6379"),
            ]),
        )
        .unwrap();
        assert_eq!(c.auth.api_keys.len(), 2);
        assert_eq!(c.auth.api_keys[0].sha256, hash);
        assert_eq!(c.auth.api_keys[0].tenant, "acme");
        assert_eq!(c.auth.api_keys[0].name.as_deref(), Some("ci"));
        assert_eq!(c.auth.api_keys[1].tenant, "b");
        assert!(c.auth_enabled());
        assert_eq!(
            c.store.database_url.as_deref(),
            Some("postgres://eino:p%40ss@db:5432/eino")
        );
        let bad = Config::load(
            None,
            env(&[("EINO_AUTH__API_KEYS", r#"[{sha256="nothex",tenant="a"}]"#)]),
        )
        .unwrap_err();
        assert!(bad.to_string().contains("auth.api_keys[0].sha256"), "{bad}");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let cases = [
            ("server:\n  addr: nowhere\n", "server.addr"),
            ("server:\n  max_body_bytes: lots\n", "server.max_body_bytes"),
            ("server:\n  workers: 5000\n", "server.workers"),
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

//! Builds the configured chat models and embedders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, Embedder};
use eino::{Error, Result};
use eino_local::{GenerationConfig, LocalChatModel, LocalOptions, MiniLmEmbedder};
use eino_openai::anthropic::{AnthropicChatModel, AnthropicConfig};
use eino_openai::{OpenAiChatModel, OpenAiConfig, OpenAiEmbedder};

use crate::config::{Config, EmbedderConfig, ModelConfig};
use crate::resilience::{Breaker, GuardedModel};

/// The models and embedders of a configuration, by id.
#[derive(Clone, Default)]
pub struct Registry {
    /// Chat models with their breakers.
    pub models: BTreeMap<String, GuardedModel>,
    /// Embedders.
    pub embedders: BTreeMap<String, Arc<dyn Embedder>>,
}

fn key_from_env(id: &str, var: Option<&str>) -> Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ => Err(Error::invalid_input(format!(
            "models.{id}.api_key_env: environment variable {var} is not set"
        ))),
    }
}

async fn chat_model(id: &str, cfg: &ModelConfig) -> Result<Arc<dyn ChatModel>> {
    Ok(match cfg {
        ModelConfig::Local {
            path,
            threads,
            max_tokens,
        } => {
            let opts = LocalOptions {
                threads: *threads,
                ..LocalOptions::default()
            };
            let mut gen = GenerationConfig::default();
            if let Some(n) = max_tokens {
                gen.max_tokens = *n as usize;
            }
            let model = match path {
                Some(p) => {
                    let p = p.clone();
                    tokio::task::spawn_blocking(move || LocalChatModel::load(&p, &opts, gen))
                        .await
                        .map_err(|e| Error::internal(format!("model load task: {e}")))??
                }
                None => LocalChatModel::load_default_with(opts, gen).await?,
            };
            Arc::new(model)
        }
        ModelConfig::Openai {
            model,
            base_url,
            api_key_env,
            timeout_secs,
            max_retries,
        } => {
            let mut c = OpenAiConfig::new(model.clone())
                .with_api_key(key_from_env(id, api_key_env.as_deref())?);
            if let Some(u) = base_url {
                c = c.with_base_url(u.clone());
            }
            if let Some(t) = timeout_secs {
                c.timeout = Duration::from_secs(*t);
            }
            if let Some(n) = max_retries {
                c = c.with_max_retries(*n);
            }
            Arc::new(OpenAiChatModel::new(c)?)
        }
        ModelConfig::Anthropic {
            model,
            base_url,
            api_key_env,
            max_tokens,
        } => {
            let mut c = AnthropicConfig::new(model.clone());
            c.api_key = key_from_env(id, api_key_env.as_deref())?;
            if let Some(u) = base_url {
                c.base_url = u.clone();
            }
            if let Some(n) = max_tokens {
                c.max_tokens = *n;
            }
            Arc::new(AnthropicChatModel::new(c)?)
        }
    })
}

async fn embedder(id: &str, cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>> {
    Ok(match cfg {
        EmbedderConfig::Local { path } => match path {
            Some(p) => {
                let p = p.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || {
                        MiniLmEmbedder::load(&p, &LocalOptions::default())
                    })
                    .await
                    .map_err(|e| Error::internal(format!("model load task: {e}")))??,
                )
            }
            None => Arc::new(MiniLmEmbedder::load_default(LocalOptions::default()).await?),
        },
        EmbedderConfig::Openai {
            model,
            base_url,
            api_key_env,
        } => {
            let mut c = OpenAiConfig::new(model.clone())
                .with_api_key(key_from_env(id, api_key_env.as_deref())?);
            if let Some(u) = base_url {
                c = c.with_base_url(u.clone());
            }
            Arc::new(OpenAiEmbedder::new(c)?)
        }
    })
}

impl Registry {
    /// Load every model of `config` (local ones are fetched into the model cache first if
    /// missing). The error names the model.
    pub async fn load(config: &Config) -> Result<Self> {
        let mut out = Registry::default();
        for (id, cfg) in &config.models {
            let model = chat_model(id, cfg)
                .await
                .map_err(|e| Error::new(e.kind(), format!("model {id}: {}", e.message())))?;
            tracing::info!(model = %id, "chat model ready");
            out.insert_model(id, model);
        }
        for (id, cfg) in &config.embedders {
            let e = embedder(id, cfg)
                .await
                .map_err(|e| Error::new(e.kind(), format!("embedder {id}: {}", e.message())))?;
            tracing::info!(embedder = %id, "embedder ready");
            out.embedders.insert(id.clone(), e);
        }
        Ok(out)
    }

    /// Add (or replace) a chat model; a breaker opens after 5 consecutive retryable
    /// failures for 30 s.
    pub fn insert_model(&mut self, id: &str, model: Arc<dyn ChatModel>) {
        self.insert_model_with_breaker(id, model, Breaker::new(5, Duration::from_secs(30)));
    }

    /// Add a chat model with its own breaker settings.
    pub fn insert_model_with_breaker(&mut self, id: &str, model: Arc<dyn ChatModel>, b: Breaker) {
        self.models.insert(
            id.to_string(),
            GuardedModel {
                id: id.to_string(),
                model,
                breaker: Arc::new(b),
            },
        );
    }
}

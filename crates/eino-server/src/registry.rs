//! Builds the configured chat models and embedders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eino::component::{ChatModel, Embedder};
use eino::{Error, Result};
use eino_local::{
    GenerationConfig, HubOptions, LocalChatModel, LocalOptions, MiniLmEmbedder, ModelCache,
    ModelSpec, MINILM, SMOLLM2,
};
use eino_openai::anthropic::AnthropicChatModel;
use eino_openai::{OpenAiChatModel, OpenAiEmbedder};

use crate::config::{embedder_files, Config, EmbedderConfig, HubSource, ModelConfig};
use crate::resilience::{Breaker, GuardedModel};

/// The models and embedders of a configuration, by id.
#[derive(Clone, Default)]
pub struct Registry {
    /// Chat models with their breakers.
    pub models: BTreeMap<String, GuardedModel>,
    /// Embedders.
    pub embedders: BTreeMap<String, Arc<dyn Embedder>>,
}

/// The secret in environment variable `var`; `key` names the setting in the error when
/// the variable is unset or empty. Shared by API keys, hub tokens, tool headers and
/// collector headers.
pub(crate) fn secret_var(key: &str, var: &str) -> Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::invalid_input(format!(
            "{key}: environment variable {var} is not set"
        ))),
    }
}

/// [`secret_var`] for a setting that may name no variable.
fn secret_from_env(key: &str, var: Option<&str>) -> Result<Option<String>> {
    var.map(|v| secret_var(key, v)).transpose()
}

/// Download a hub model's `files` into the model cache (or find them there); the
/// directory that holds them.
async fn fetch_hub(
    cache: &ModelCache,
    key: &str,
    hub: &HubSource,
    files: Vec<String>,
) -> Result<PathBuf> {
    let token = secret_from_env(&format!("{key}.hub.token_env"), hub.token_env.as_deref())?;
    let model = hub.model(files);
    let opts = HubOptions {
        endpoint: hub.endpoint.clone(),
        token,
    };
    cache.fetch_hub(&model, &opts).await
}

/// Run a model load on the blocking pool: it reads and converts hundreds of megabytes.
async fn load_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("model load task: {e}")))?
}

/// A default model's directory, fetched with pip into `cache` if missing.
async fn ensure(cache: &ModelCache, spec: &'static ModelSpec) -> Result<PathBuf> {
    let cache = cache.clone();
    load_blocking(move || cache.ensure(spec)).await
}

async fn chat_model(cache: &ModelCache, id: &str, cfg: &ModelConfig) -> Result<Arc<dyn ChatModel>> {
    Ok(match cfg {
        ModelConfig::Local {
            path,
            hub,
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
            let file = match (path, hub) {
                (Some(p), _) => p.clone(),
                (None, Some(h)) => {
                    let file = h.file.clone().unwrap_or_default();
                    let key = format!("models.{id}");
                    fetch_hub(cache, &key, h, vec![file.clone()])
                        .await?
                        .join(file)
                }
                (None, None) => ensure(cache, &SMOLLM2).await?.join("model.gguf"),
            };
            let model = load_blocking(move || LocalChatModel::load(&file, &opts, gen)).await?;
            Arc::new(model)
        }
        ModelConfig::Openai(settings) => {
            let key = secret_from_env(
                &format!("models.{id}.api_key_env"),
                settings.api_key_env.as_deref(),
            )?;
            Arc::new(OpenAiChatModel::new(settings.to_config(key))?)
        }
        ModelConfig::Anthropic(settings) => {
            let key = secret_from_env(
                &format!("models.{id}.api_key_env"),
                settings.api_key_env.as_deref(),
            )?;
            Arc::new(AnthropicChatModel::new(settings.to_config(key))?)
        }
    })
}

async fn embedder(cache: &ModelCache, id: &str, cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>> {
    Ok(match cfg {
        EmbedderConfig::Local { path, hub } => {
            let dir = match (path, hub) {
                (Some(p), _) => p.clone(),
                (None, Some(h)) => {
                    let key = format!("embedders.{id}");
                    fetch_hub(cache, &key, h, embedder_files()).await?
                }
                (None, None) => ensure(cache, &MINILM).await?,
            };
            let opts = LocalOptions::default();
            Arc::new(load_blocking(move || MiniLmEmbedder::load(&dir, &opts)).await?)
        }
        EmbedderConfig::Openai(settings) => {
            let key = secret_from_env(
                &format!("embedders.{id}.api_key_env"),
                settings.api_key_env.as_deref(),
            )?;
            Arc::new(OpenAiEmbedder::new(settings.to_config(key))?)
        }
    })
}

impl Registry {
    /// Load every model of `config` (local ones are fetched into the default model cache
    /// first if missing). The error names the model.
    pub async fn load(config: &Config) -> Result<Self> {
        Self::load_with(config, &ModelCache::default()).await
    }

    /// As [`Registry::load`], with local models fetched into and read from `cache`.
    pub async fn load_with(config: &Config, cache: &ModelCache) -> Result<Self> {
        let mut out = Registry::default();
        for (id, cfg) in &config.models {
            let model = chat_model(cache, id, cfg)
                .await
                .map_err(|e| Error::new(e.kind(), format!("model {id}: {}", e.message())))?;
            tracing::info!(model = %id, "chat model ready");
            out.insert_model(id, model);
        }
        for (id, cfg) in &config.embedders {
            let e = embedder(cache, id, cfg)
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

#[cfg(test)]
mod tests {
    use eino::component::{ChatOptions, EmbedOptions};
    use eino::schema::Message;
    use eino::ErrorKind;
    use eino_local::testing::HubStandIn;

    use super::*;

    fn hub_source(hub: &HubStandIn, repo: &str, file: Option<&str>) -> HubSource {
        HubSource {
            repo: repo.into(),
            file: file.map(String::from),
            revision: Some("v1".into()),
            endpoint: Some(hub.endpoint()),
            token_env: None,
        }
    }

    /// The real default models, served by a stand-in hub, load from `hub:` sources and
    /// behave as the defaults do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_models_come_from_a_hub_repository() {
        let defaults = ModelCache::default();
        let minilm = ensure(&defaults, &MINILM).await.unwrap();
        let smollm2 = ensure(&defaults, &SMOLLM2).await.unwrap();
        let hub = HubStandIn::start().await;
        for f in embedder_files() {
            let bytes = std::fs::read(minilm.join(&f)).unwrap();
            hub.serve("someone/minilm", "v1", &f, bytes).await;
        }
        let gguf = std::fs::read(smollm2.join("model.gguf")).unwrap();
        hub.serve("someone/smollm2", "v1", "chat.gguf", gguf).await;

        let mut config = Config::default();
        config.models.clear();
        config.models.insert(
            "hubchat".into(),
            ModelConfig::Local {
                path: None,
                hub: Some(hub_source(&hub, "someone/smollm2", Some("chat.gguf"))),
                threads: None,
                max_tokens: Some(16),
            },
        );
        config.embedders.clear();
        config.embedders.insert(
            "hubembed".into(),
            EmbedderConfig::Local {
                path: None,
                hub: Some(hub_source(&hub, "someone/minilm", None)),
            },
        );
        config.applications.clear();
        config.validate().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(cache_dir.path());
        let registry = Registry::load_with(&config, &cache).await.unwrap();

        let snapshots = cache.hub_snapshots().unwrap();
        let repos: Vec<_> = snapshots.iter().map(|s| s.repo.as_str()).collect();
        assert_eq!(repos, ["someone/minilm", "someone/smollm2"]);

        let texts = vec!["The capital of Germany is Berlin.".to_string()];
        let got = registry.embedders["hubembed"]
            .embed(&texts, &EmbedOptions::default())
            .await
            .unwrap();
        let opts = LocalOptions::default();
        let want = MiniLmEmbedder::load(&minilm, &opts)
            .unwrap()
            .embed_blocking(&texts)
            .unwrap();
        assert_eq!(got, want);

        let answer = registry.models["hubchat"]
            .model
            .generate(
                &[Message::user("What is the capital of Germany?")],
                &ChatOptions::default().with_temperature(0.0),
            )
            .await
            .unwrap();
        assert!(answer.content.contains("Berlin"), "{}", answer.content);
    }

    /// A repository the hub does not have, or a token variable that is not set, stops the
    /// start with an error naming the model.
    #[tokio::test]
    async fn hub_failures_name_the_model() {
        let hub = HubStandIn::start().await;
        hub.fail("someone/private", "v1", "config.json", 401).await;
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(cache_dir.path());
        let load = |id: &str, source: HubSource| {
            let mut config = Config::default();
            config.models.clear();
            config.applications.clear();
            config.embedders.clear();
            config.embedders.insert(
                id.into(),
                EmbedderConfig::Local {
                    path: None,
                    hub: Some(source),
                },
            );
            let cache = cache.clone();
            async move { Registry::load_with(&config, &cache).await.err().unwrap() }
        };

        let e = load("missing", hub_source(&hub, "someone/missing", None)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().starts_with("embedder missing:"), "{e}");
        assert!(e.message().contains("someone/missing"), "{e}");

        let e = load("private", hub_source(&hub, "someone/private", None)).await;
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");

        let mut source = hub_source(&hub, "someone/private", None);
        source.token_env = Some("EINO_TEST_UNSET_HUB_TOKEN".into());
        let e = load("tokenless", source).await;
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains("EINO_TEST_UNSET_HUB_TOKEN"), "{e}");
    }
}

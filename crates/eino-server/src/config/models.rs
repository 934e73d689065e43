//! `models:`: chat models by id (local GGUF, OpenAI-compatible, Anthropic), and where a
//! local model comes from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    /// Any OpenAI-compatible endpoint (the provider crate's settings).
    Openai(eino_openai::OpenAiSettings),
    /// Anthropic's Messages API (the provider crate's settings).
    Anthropic(eino_openai::AnthropicSettings),
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

impl HubSource {
    /// The hub files `files` of this repository at its revision.
    pub fn model(&self, files: Vec<String>) -> eino_local::HubModel {
        let mut model = eino_local::HubModel::new(self.repo.clone(), files);
        model.revision = self.revision.clone();
        model
    }
}

/// A local model comes from one place, and a hub chat model names its GGUF file.
pub(super) fn check_local_source(
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

/// The files of a BERT sentence-transformer repository that the local embedder reads.
pub fn embedder_files() -> Vec<String> {
    ["config.json", "tokenizer.json", "model.safetensors"]
        .map(String::from)
        .to_vec()
}

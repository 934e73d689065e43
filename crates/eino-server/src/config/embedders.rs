//! `embedders:`: embedding models by id.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::models::HubSource;

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
    /// An OpenAI-compatible embeddings endpoint (the provider crate's settings).
    Openai(eino_openai::OpenAiSettings),
}

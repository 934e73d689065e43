//! What a configuration file says about a provider, deserializable: the model, where it
//! is, which environment variable holds its key, and the few knobs an operator sets. A
//! service embeds these in its own configuration (the `eino` server's `models:` and
//! `embedders:` entries are exactly these) and turns them into the client configuration
//! with the key it read.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::OpenAiConfig;

/// An OpenAI-compatible chat model or embedder as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// The provider's model name.
    pub model: String,
    /// Base URL, up to and including `/v1` (default `https://api.openai.com/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key (none for local servers).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whole-request limit for non-streaming calls (default 120 s).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Retries of transient errors (default 2).
    #[serde(default)]
    pub max_retries: Option<u32>,
}

impl OpenAiSettings {
    /// The settings for `model`, everything else by default.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: None,
            api_key_env: None,
            timeout_secs: None,
            max_retries: None,
        }
    }

    /// The client configuration, with `api_key` (read from [`Self::api_key_env`] by the
    /// caller, which knows how to report a missing one).
    pub fn to_config(&self, api_key: Option<String>) -> OpenAiConfig {
        let mut c = OpenAiConfig::new(self.model.clone()).with_api_key(api_key);
        if let Some(u) = &self.base_url {
            c = c.with_base_url(u.clone());
        }
        if let Some(t) = self.timeout_secs {
            c.timeout = Duration::from_secs(t);
        }
        if let Some(n) = self.max_retries {
            c = c.with_max_retries(n);
        }
        c
    }
}

/// An Anthropic chat model as configured.
#[cfg(feature = "anthropic")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicSettings {
    /// The model name.
    pub model: String,
    /// Base URL (default `https://api.anthropic.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Default answer length (required by the API; default 4096).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[cfg(feature = "anthropic")]
impl AnthropicSettings {
    /// The client configuration, with `api_key`.
    pub fn to_config(&self, api_key: Option<String>) -> crate::AnthropicConfig {
        let mut c = crate::AnthropicConfig::new(self.model.clone());
        c.api_key = api_key;
        if let Some(u) = &self.base_url {
            c.base_url = u.clone();
        }
        if let Some(n) = self.max_tokens {
            c.max_tokens = n;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_from_configuration_become_client_configs() {
        let s: OpenAiSettings = serde_json::from_str(
            r#"{"model": "m", "base_url": "http://h:1/v1/", "timeout_secs": 5, "max_retries": 0}"#,
        )
        .unwrap();
        let c = s.to_config(Some("k".into()));
        assert_eq!(c.base_url, "http://h:1/v1");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.max_retries, 0);
        assert_eq!(c.api_key.as_deref(), Some("k"));
        let unknown = serde_json::from_str::<OpenAiSettings>(r#"{"model": "m", "modle": "x"}"#);
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}

//! `redis:`: a Redis shared by replicas.

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl RedisConfig {
    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !url.starts_with("redis://") && !url.starts_with("unix://") {
                return Err(ConfigError::new(
                    "redis.url",
                    "must start with redis:// or unix:// (TLS, rediss://, is not built in)",
                ));
            }
        }
        Ok(())
    }
}

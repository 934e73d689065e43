//! `cache:`: the response cache.

use serde::{Deserialize, Serialize};

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
